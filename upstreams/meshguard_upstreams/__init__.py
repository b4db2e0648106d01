"""Meshguard's Python upstreams: five small ASGI services behind Envoy.

Each service shares the same skeleton (``app.build``): ``/healthz``, the GDPR
export/erase endpoints over a per-user local store, an ``x-upstream-instance``
response header, and a loopback-only fault switch for resilience tests.
"""
