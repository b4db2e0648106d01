"""The fault switch: makes one instance fail on purpose, for resilience tests.

It is controlled over a separate HTTP listener that binds to 127.0.0.1 only,
so nothing that reaches the service through Envoy (or from another machine)
can flip it:

    PUT  http://127.0.0.1:<control-port>/fault  {"mode": "error", "status": 503}
    GET  http://127.0.0.1:<control-port>/fault  the current setting and counters

Modes: ``ok``; ``error`` (answer ``status``, default 503); ``delay`` (wait
``delay_ms`` before answering); ``reset`` (abort the connection with a TCP RST
as soon as a request arrives). ``/healthz`` keeps answering unless
``include_healthz`` is true, so a test can tell outlier detection (real
traffic) from active health checking apart.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

MODES = ("ok", "error", "delay", "reset")


@dataclass
class Fault:
    mode: str = "ok"
    status: int = 503
    delay_ms: int = 0
    include_healthz: bool = False


class FaultSwitch:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fault = Fault()
        self.counters = {"requests": 0, "failed": 0, "delayed": 0, "reset": 0}

    @property
    def fault(self) -> Fault:
        with self._lock:
            return self._fault

    def set(self, raw: dict[str, Any]) -> Fault:
        unknown = set(raw) - set(Fault.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fields: {sorted(unknown)}")
        fault = Fault(**{**asdict(Fault()), **raw})
        if fault.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if not isinstance(fault.status, int) or not 100 <= fault.status <= 599:
            raise ValueError("status must be an HTTP status code")
        if not isinstance(fault.delay_ms, int) or not 0 <= fault.delay_ms <= 600_000:
            raise ValueError("delay_ms must be 0..600000")
        if not isinstance(fault.include_healthz, bool):
            raise ValueError("include_healthz must be true or false")
        with self._lock:
            self._fault = fault
        return fault

    def count(self, name: str) -> None:
        with self._lock:
            self.counters[name] += 1

    def applies(self, path: str) -> Fault | None:
        fault = self.fault
        if fault.mode == "ok" or (path == "/healthz" and not fault.include_healthz):
            return None
        return fault


SWITCH = FaultSwitch()


class FaultMiddleware:
    """Applies the ``error`` and ``delay`` modes in front of the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        SWITCH.count("requests")
        fault = SWITCH.applies(scope["path"])
        if fault is not None and fault.mode == "delay":
            SWITCH.count("delayed")
            await asyncio.sleep(fault.delay_ms / 1000)
        elif fault is not None and fault.mode == "error":
            SWITCH.count("failed")
            body = json.dumps({"error": "fault injected", "status": fault.status}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": fault.status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def _request_path(data: bytes) -> str:
    """The path of the request line at the start of ``data``, if any."""
    parts = data.split(b"\r\n", 1)[0].split(b" ")
    return parts[1].split(b"?", 1)[0].decode("latin-1") if len(parts) >= 2 else ""


class FaultyH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus the ``reset`` mode at the socket level."""

    def data_received(self, data: bytes) -> None:
        fault = SWITCH.applies(_request_path(data))
        if fault is not None and fault.mode == "reset":
            SWITCH.count("reset")
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                # Linger 0: close() sends RST instead of FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()
            return
        super().data_received(data)


class _ControlHandler(BaseHTTPRequestHandler):
    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _state(self) -> dict[str, Any]:
        return {"fault": asdict(SWITCH.fault), "counters": dict(SWITCH.counters)}

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        if self.path == "/fault":
            self._reply(200, self._state())
        else:
            self._reply(404, {"error": "no route"})

    def do_PUT(self) -> None:  # noqa: N802
        if self.path != "/fault":
            self._reply(404, {"error": "no route"})
            return
        try:
            length = int(self.headers.get("content-length") or 0)
            raw = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(raw, dict):
                raise ValueError("body must be a JSON object")
            SWITCH.set(raw)
        except (ValueError, TypeError) as err:
            self._reply(400, {"error": str(err)})
            return
        self._reply(200, self._state())

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return


def serve_control(port: int) -> ThreadingHTTPServer:
    """Starts the control listener on 127.0.0.1:``port`` in a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _ControlHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="fault-control", daemon=True).start()
    return server
