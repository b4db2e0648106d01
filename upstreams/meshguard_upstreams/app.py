"""The skeleton every service shares: health, GDPR export/erase, errors as
JSON, the instance header and the fault switch."""

from __future__ import annotations

import hmac
import json
import os
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .caching import NoStoreByDefault
from .faults import FaultMiddleware
from .limits import BodyLimit, max_body_bytes
from .store import Store

MESHGUARD_HEADER_PREFIXES = ("x-auth-", "x-feature-", "x-variant-", "x-meshguard-")

# Set by the auth plugin only (docs/architecture.md); absent for anonymous calls.
USER_HEADER = "x-auth-sub"
GDPR_TOKEN_ENV = "MESHGUARD_GDPR_TOKEN"
MAX_BODY = 1 << 20


class BadRequest(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(400, detail)


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise HTTPException(413, "body too large")
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest(f"body is not JSON: {err}") from err
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    """``body[name]`` checked against ``kind``; a 400 naming the field otherwise."""
    if name not in body:
        if default is ...:
            raise BadRequest(f"{name} is required")
        return default
    value = body[name]
    # bool is an int in Python; numbers must be real numbers.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise BadRequest(f"{name} has the wrong type")
    if not isinstance(value, kind):
        raise BadRequest(f"{name} has the wrong type")
    return value


def user_of(request: Request) -> str | None:
    return request.headers.get(USER_HEADER) or None


class InstanceHeader:
    """Adds ``x-upstream-instance`` so callers (and tests) see which host answered."""

    def __init__(self, app: ASGIApp, instance: str) -> None:
        self.app = app
        self.value = instance.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-upstream-instance", self.value)]
            await send(message)

        await self.app(scope, receive, send_with_header)


def build(
    service: str,
    instance: str,
    store: Store,
    routes: Callable[[Store], list[Route]],
    endpoints: list[str],
) -> ASGIApp:
    token = os.environ.get(GDPR_TOKEN_ENV, "")

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "service": service, "instance": instance})

    async def info(request: Request) -> JSONResponse:
        # What the Meshguard chain told this upstream: identity, flags, trace context.
        seen = {
            name: value
            for name, value in request.headers.items()
            if name.startswith(MESHGUARD_HEADER_PREFIXES) or name in ("traceparent", "tracestate")
        }
        return JSONResponse(
            {"service": service, "instance": instance, "endpoints": endpoints, "meshguard_headers": seen}
        )

    def authorize(request: Request) -> str:
        if not token:
            raise HTTPException(503, f"GDPR endpoints are off: {GDPR_TOKEN_ENV} is not set")
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "a valid bearer token is required")
        user_id = request.path_params["user_id"]
        if not 0 < len(user_id) <= 256:
            raise BadRequest("user id must be 1..256 characters")
        return user_id

    # The answers echo the id they were asked about and say "no data" in so
    # many words: meshguard-gdpr counts nothing else (a 404 from a route
    # that did not match an id is not an answer about the user).
    async def gdpr_export(request: Request) -> JSONResponse:
        user_id = authorize(request)
        records = store.export(user_id)
        return JSONResponse(
            {"service": service, "user_id": user_id, "no_data": not records, "records": records}
        )

    async def gdpr_erase(request: Request) -> JSONResponse:
        user_id = authorize(request)
        erased = store.erase(user_id)
        return JSONResponse({"service": service, "user_id": user_id, "no_data": erased == 0, "erased": erased})

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    app = Starlette(
        routes=[
            Route("/", info, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            # `path`: every valid subject reaches the handler, `/` included
            # (sent percent-encoded, decoded before routing).
            Route("/gdpr/users/{user_id:path}", gdpr_export, methods=["GET"]),
            Route("/gdpr/users/{user_id:path}", gdpr_erase, methods=["DELETE"]),
            *routes(store),
        ],
        exception_handlers={HTTPException: http_error},
    )
    # Outside the fault switch: its injected errors are no-store too.
    return InstanceHeader(NoStoreByDefault(FaultMiddleware(BodyLimit(app, max_body_bytes()))), instance)
