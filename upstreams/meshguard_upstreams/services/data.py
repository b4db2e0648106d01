"""Data: event validation and (deterministic, synthetic) market data."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..app import BadRequest, field, json_body, user_of
from ..caching import cacheable
from ..store import Store

NAME = "data"
ENDPOINTS = ["POST /events/validate", "GET /market/{symbol}"]
EVENT_TYPES = {"page_view", "click", "purchase", "signup"}
MAX_EVENTS = 1_000
SYMBOL = re.compile(r"^[A-Z]{1,10}$")
# A quote may be this many seconds old: the same for every caller, so any cache keeps it.
QUOTE_MAX_AGE = 2


def event_errors(event: object) -> list[str]:
    if not isinstance(event, dict):
        return ["event must be an object"]
    errors = []
    if event.get("type") not in EVENT_TYPES:
        errors.append(f"type must be one of {sorted(EVENT_TYPES)}")
    user = event.get("user_id")
    if not isinstance(user, str) or not 0 < len(user) <= 256:
        errors.append("user_id must be a string of 1..256 characters")
    stamp = event.get("timestamp")
    try:
        if not isinstance(stamp, str) or datetime.fromisoformat(stamp.replace("Z", "+00:00")).tzinfo is None:
            raise ValueError
    except ValueError:
        errors.append("timestamp must be an ISO 8601 time with a zone")
    if "properties" in event and not isinstance(event["properties"], dict):
        errors.append("properties must be an object")
    if event.get("type") == "purchase":
        amount = (event.get("properties") or {}).get("amount") if isinstance(event.get("properties"), dict) else None
        if not isinstance(amount, (int, float)) or isinstance(amount, bool) or amount <= 0:
            errors.append("purchase events need properties.amount > 0")
    return errors


def quote(symbol: str) -> dict:
    digest = hashlib.sha256(symbol.encode()).digest()
    cents = 1_000 + int.from_bytes(digest[:4], "big") % 99_000
    spread = 1 + digest[4] % 10
    return {
        "symbol": symbol,
        "price": cents / 100,
        "bid": (cents - spread) / 100,
        "ask": (cents + spread) / 100,
        "volume": int.from_bytes(digest[5:8], "big"),
    }


def routes(store: Store) -> list[Route]:
    async def validate(request: Request) -> JSONResponse:
        events = field(await json_body(request), "events", list)
        if not 0 < len(events) <= MAX_EVENTS:
            raise BadRequest(f"events must hold 1..{MAX_EVENTS} items")
        results = [{"index": i, "valid": not errs, "errors": errs} for i, errs in enumerate(map(event_errors, events))]
        valid = sum(r["valid"] for r in results)
        store.add(user_of(request), "validation", {"events": len(events), "valid": valid})
        return JSONResponse({"valid": valid, "invalid": len(events) - valid, "results": results})

    async def market(request: Request) -> Response:
        symbol = request.path_params["symbol"]
        if not SYMBOL.match(symbol):
            raise BadRequest("symbol must be 1..10 upper-case letters")
        result = quote(symbol)
        # Kept for the requests that reach the service: an answer from a cache leaves none.
        store.add(user_of(request), "quote", {"symbol": symbol})
        return cacheable(request, result, QUOTE_MAX_AGE)

    return [
        Route("/events/validate", validate, methods=["POST"]),
        Route("/market/{symbol:str}", market, methods=["GET"]),
    ]
