"""The compose stack's span log: an OTLP/HTTP JSON receiver that appends each
span, as one JSON line with its resource's `service.name` added as
"service", to /data/spans.jsonl (the `spans` volume), so sampled spans are
visible without a collector:

    docker-compose -f envoy/docker-compose.yaml exec span-log grep TRACE_ID /data/spans.jsonl

Envoy's `otel_collector` cluster reaches it as `otel-collector:4318`
(`POST /v1/traces`); docs/docker.md tells how to put Jaeger or the
OpenTelemetry Collector there instead. The file is bounded: past 16 MiB it
becomes spans.jsonl.1 (replacing the previous one). Standard library only,
so it runs in the upstreams image unchanged.
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock

PATH = os.environ.get("MESHGUARD_SPAN_LOG", "/data/spans.jsonl")
MAX_BYTES = 16 * 1024 * 1024
# An export larger than this is refused (413): the trace plugin's batches are
# far smaller.
MAX_BODY = 8 * 1024 * 1024
LOCK = Lock()


def span_lines(export):
    """One JSON line per span of an OTLP JSON export request."""
    for resource in export.get("resourceSpans") or []:
        service = None
        for attribute in (resource.get("resource") or {}).get("attributes") or []:
            if attribute.get("key") == "service.name":
                service = (attribute.get("value") or {}).get("stringValue")
        for scope in resource.get("scopeSpans") or []:
            for span in scope.get("spans") or []:
                if isinstance(span, dict):
                    yield json.dumps(dict(span, service=service), separators=(",", ":"))


def append(lines):
    with LOCK:
        try:
            if os.path.getsize(PATH) > MAX_BYTES:
                os.replace(PATH, PATH + ".1")
        except OSError:
            pass
        with open(PATH, "a", encoding="utf-8") as file:
            for line in lines:
                file.write(line + "\n")


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body=b"{}"):
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.answer(200 if self.path == "/healthz" else 404)

    def do_POST(self):
        if self.path != "/v1/traces":
            return self.answer(404)
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            return self.answer(400)
        if length < 0 or length > MAX_BODY:
            return self.answer(413)
        body = self.rfile.read(length)
        try:
            export = json.loads(body)
            if not isinstance(export, dict):
                raise ValueError("not an object")
            lines = list(span_lines(export))
        except (ValueError, AttributeError, TypeError):
            # OTLP/HTTP JSON only (the trace plugin's encoding).
            return self.answer(400)
        append(lines)
        self.answer(200)

    def log_message(self, *args):
        pass


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 4318
    print(f"span log: OTLP/HTTP on :{port}/v1/traces -> {PATH}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Receiver).serve_forever()


if __name__ == "__main__":
    main()
