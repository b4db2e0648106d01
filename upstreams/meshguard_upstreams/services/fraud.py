"""Fraud: rule-based risk assessment of a payment."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..app import BadRequest, field, json_body, user_of
from ..caching import cacheable
from ..store import Store

NAME = "fraud"
ENDPOINTS = ["POST /assess", "GET /rules"]
HIGH_RISK_COUNTRIES = {"KP", "IR", "SY"}
# (rule, points): the score is the sum of the rules that fire, capped at 100.
RULES = {
    "large_amount": 30,
    "very_large_amount": 30,
    "new_account": 20,
    "high_velocity": 25,
    "country_mismatch": 15,
    "high_risk_country": 40,
}
REVIEW_AT, DECLINE_AT = 40, 70
# The rules change with a deployment only: a minute in any cache.
RULES_MAX_AGE = 60
CODE = {"currency": re.compile(r"^[A-Z]{3}$"), "country": re.compile(r"^[A-Z]{2}$")}


def assess(body: dict) -> dict:
    amount = field(body, "amount", (int, float))
    if not 0 < amount <= 10_000_000:
        raise BadRequest("amount must be in (0, 10000000]")
    currency = field(body, "currency", str)
    country = field(body, "country", str)
    card_country = field(body, "card_country", str, country)
    for name, value in (("currency", currency), ("country", country), ("card_country", card_country)):
        if not CODE["currency" if name == "currency" else "country"].match(value):
            raise BadRequest(f"{name} must be an upper-case ISO code")
    age = field(body, "account_age_days", int, 365)
    velocity = field(body, "transactions_last_hour", int, 0)
    if age < 0 or velocity < 0:
        raise BadRequest("account_age_days and transactions_last_hour must be >= 0")
    fired = [
        rule
        for rule, hit in (
            ("large_amount", amount >= 1_000),
            ("very_large_amount", amount >= 10_000),
            ("new_account", age < 30),
            ("high_velocity", velocity > 10),
            ("country_mismatch", card_country != country),
            ("high_risk_country", country in HIGH_RISK_COUNTRIES or card_country in HIGH_RISK_COUNTRIES),
        )
        if hit
    ]
    score = min(100, sum(RULES[r] for r in fired))
    decision = "decline" if score >= DECLINE_AT else "review" if score >= REVIEW_AT else "approve"
    return {"score": score, "decision": decision, "reasons": fired}


def routes(store: Store) -> list[Route]:
    async def assess_route(request: Request) -> JSONResponse:
        body = await json_body(request)
        result = assess(body)
        store.add(user_of(request), "assessment", {"amount": body["amount"], "currency": body["currency"], **result})
        return JSONResponse(result)

    async def rules(request: Request) -> Response:
        return cacheable(request, {"rules": RULES, "review_at": REVIEW_AT, "decline_at": DECLINE_AT}, RULES_MAX_AGE)

    return [Route("/assess", assess_route, methods=["POST"]), Route("/rules", rules, methods=["GET"])]
