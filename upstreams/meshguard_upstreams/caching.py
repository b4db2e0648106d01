"""What Envoy's HTTP cache (and any other cache) may keep of an answer.

A read endpoint whose answer is the same for every caller says so with
``cacheable``: ``Cache-Control: public, max-age=N`` and a strong ``ETag``
over the body, and a ``304 Not Modified`` when the request's
``If-None-Match`` names that ETag (Envoy's revalidation of a stale entry,
or a client's own). Everything else is ``no-store`` (``NoStoreByDefault``):
errors, writes, per-user and per-request answers, the GDPR endpoints.
Per-user answers are never stored by a shared cache: Envoy's file-system
cache keeps an entry on disk past its max-age until it is evicted for space,
where an erasure could not reach it (docs/upstreams.md, "Caching").
"""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NO_STORE = b"no-store"


def cacheable(request: Request, content: Any, max_age: int) -> Response:
    """``content`` as JSON that any cache may keep for ``max_age`` seconds,
    revalidated by its ETag afterwards."""
    response = JSONResponse(content)
    etag = '"' + hashlib.sha256(response.body).hexdigest()[:32] + '"'
    headers = {"cache-control": f"public, max-age={max_age}", "etag": etag}
    if etag_matches(request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return response


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 13.1.2: weak comparison against a list of tags or ``*``."""
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


class NoStoreByDefault:
    """Adds ``Cache-Control: no-store`` to every response that does not say
    how it may be cached, so nothing is cached by accident."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_default(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    message["headers"] = [*headers, (b"cache-control", NO_STORE)]
            await send(message)

        await self.app(scope, receive, send_with_default)
