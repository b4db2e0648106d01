"""Runs one instance of a service:

    python -m meshguard_upstreams ml --port 8101 --control-port 9101 --data-dir .run/upstreams
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from .app import build
from .faults import FaultyH11Protocol, serve_control
from .services import SERVICES
from .store import Store


def main() -> None:
    parser = argparse.ArgumentParser(prog="meshguard_upstreams", description=__doc__)
    parser.add_argument("service", choices=sorted(SERVICES))
    parser.add_argument("--host", default="127.0.0.1", help="address of the service listener")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, default=0, help="fault switch on 127.0.0.1 (0: off)")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="holds <service>.sqlite3")
    parser.add_argument("--instance", default="", help="name in x-upstream-instance (default service@port)")
    parser.add_argument(
        "--keep-alive",
        type=float,
        default=5.0,
        help="seconds an idle connection stays open; Envoy's upstream idle_timeout must be lower",
    )
    args = parser.parse_args()

    module = SERVICES[args.service]
    instance = args.instance or f"{args.service}@{args.port}"
    store = Store(args.data_dir / f"{args.service}.sqlite3")
    app = build(args.service, instance, store, module.routes, module.ENDPOINTS)
    if args.control_port:
        serve_control(args.control_port)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        http=FaultyH11Protocol,
        timeout_keep_alive=args.keep_alive,
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
    print(f"{instance} listening on {args.host}:{args.port}", flush=True)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
