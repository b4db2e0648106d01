"""The request body limit, enforced while the body arrives.

Envoy refuses bodies over its own limit before they reach a service, but a
service must not rely on that alone: anything else on its network (another
container, a misrouted load balancer) reaches it directly. A request whose
``content-length`` is over the limit is answered 413 at once, before a byte of
its body is read; a chunked body is counted as it is read and refused as soon
as it passes the limit, so no request makes a service hold more than the
limit in memory.
"""

from __future__ import annotations

import json
import os

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_ENV = "MESHGUARD_MAX_BODY_BYTES"
DEFAULT_MAX_BODY = 1 << 20


def max_body_bytes() -> int:
    """The limit: ``MESHGUARD_MAX_BODY_BYTES``, else 1 MiB (Envoy's default too)."""
    raw = os.environ.get(MAX_BODY_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BODY
    value = int(raw)
    if value <= 0:
        raise ValueError(f"{MAX_BODY_ENV} must be a positive number of bytes")
    return value


class BodyLimit:
    """ASGI middleware: 413 for a body over ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = [v for k, v in scope["headers"] if k == b"content-length"]
        if declared:
            # Several values or a non-number: the framing itself is in doubt.
            if len(declared) > 1 or not declared[0].strip().isdigit():
                await refuse(send, 400, "invalid content-length")
                return
            if int(declared[0]) > self.limit:
                await refuse(send, 413, f"body over {self.limit} bytes")
                return
        received = 0
        limit = self.limit

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the handler that reads the body: the
                    # app's HTTPException handler answers it.
                    raise HTTPException(413, f"body over {limit} bytes", headers={"connection": "close"})
            return message

        await self.app(scope, counted, send)


async def refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"error": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The unread body stays on the connection: it cannot be reused.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
