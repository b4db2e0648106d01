"""ML: logistic-regression scoring and training (deterministic)."""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..app import BadRequest, field, json_body, user_of
from ..caching import cacheable
from ..store import Store

NAME = "ml"
ENDPOINTS = ["POST /predict", "GET /predict?features=..", "POST /train", "GET /model"]
MAX_FEATURES = 64
DEFAULT_MODEL = {"version": 0, "bias": -0.5, "weights": [0.8, -0.4, 0.3, 0.1]}
# How long a cache may answer GET /model and GET /predict: a POST /train is
# seen by every reader at most this many seconds later.
MODEL_MAX_AGE = 2


def features_of(raw: object, name: str) -> list[float]:
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_FEATURES:
        raise BadRequest(f"{name} must be a list of 1..{MAX_FEATURES} numbers")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in raw):
        raise BadRequest(f"{name} must hold finite numbers only")
    return [float(x) for x in raw]


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-max(-60.0, min(60.0, z))))


def score(model: dict, features: list[float]) -> float:
    return sigmoid(model["bias"] + sum(w * x for w, x in zip(model["weights"], features)))


def routes(store: Store) -> list[Route]:
    def model() -> dict:
        return store.get("model") or DEFAULT_MODEL

    async def predict(request: Request) -> JSONResponse:
        features = features_of(field(await json_body(request), "features", list), "features")
        current = model()
        p = score(current, features)
        result = {"score": round(p, 6), "label": int(p >= 0.5), "model_version": current["version"]}
        store.add(user_of(request), "prediction", {"features": features, **result})
        return JSONResponse(result)

    async def train(request: Request) -> JSONResponse:
        body = await json_body(request)
        samples = field(body, "samples", list)
        epochs = field(body, "epochs", int, 20)
        rate = field(body, "learning_rate", (int, float), 0.1)
        if not 0 < len(samples) <= 10_000:
            raise BadRequest("samples must hold 1..10000 items")
        if not 0 < epochs <= 200 or not 0 < rate <= 10:
            raise BadRequest("epochs must be 1..200 and learning_rate in (0, 10]")
        data = []
        for i, sample in enumerate(samples):
            if not isinstance(sample, dict) or sample.get("label") not in (0, 1):
                raise BadRequest(f"samples[{i}] needs features and a label of 0 or 1")
            data.append((features_of(sample.get("features"), f"samples[{i}].features"), sample["label"]))
        width = max(len(x) for x, _ in data)
        weights, bias = [0.0] * width, 0.0
        for _ in range(epochs):  # full-batch gradient descent: same data, same model
            grad_w, grad_b = [0.0] * width, 0.0
            for x, y in data:
                err = sigmoid(bias + sum(w * v for w, v in zip(weights, x))) - y
                for j, v in enumerate(x):
                    grad_w[j] += err * v
                grad_b += err
            weights = [w - rate * g / len(data) for w, g in zip(weights, grad_w)]
            bias -= rate * grad_b / len(data)
        trained = {"version": model()["version"] + 1, "bias": bias, "weights": weights}
        loss = -sum(
            math.log(max(1e-12, p if y else 1 - p)) for p, y in ((score(trained, x), y) for x, y in data)
        ) / len(data)
        store.put("model", trained)
        result = {"model_version": trained["version"], "loss": round(loss, 6), "samples": len(data)}
        store.add(user_of(request), "training", result)
        return JSONResponse(result)

    async def predict_get(request: Request) -> Response:
        # The same input gives the same answer for everyone until the model
        # changes: shared and cacheable, so it keeps no per-user record.
        raw = request.query_params.get("features", "")
        try:
            values = [float(x) for x in raw.split(",")] if raw else []
        except ValueError as err:
            raise BadRequest("features must be comma-separated numbers") from err
        features = features_of(values, "features")
        current = model()
        p = score(current, features)
        return cacheable(
            request, {"score": round(p, 6), "label": int(p >= 0.5), "model_version": current["version"]}, MODEL_MAX_AGE
        )

    async def get_model(request: Request) -> Response:
        return cacheable(request, model(), MODEL_MAX_AGE)

    return [
        Route("/predict", predict, methods=["POST"]),
        Route("/predict", predict_get, methods=["GET"]),
        Route("/train", train, methods=["POST"]),
        Route("/model", get_model, methods=["GET"]),
    ]
