"""NLP: language detection by stop words, word-by-word translation, batches."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..app import BadRequest, field, json_body, user_of
from ..caching import cacheable
from ..store import Store

NAME = "nlp"
ENDPOINTS = ["POST /detect", "POST /translate", "POST /batch", "GET /languages"]
MAX_TEXT = 10_000
MAX_BATCH = 100
# The languages change with a deployment only: five minutes in any cache.
LANGUAGES_MAX_AGE = 300

STOP_WORDS = {
    "en": {"the", "and", "is", "of", "to", "in", "it", "you", "that", "hello", "world", "good", "morning"},
    "es": {"el", "la", "y", "es", "de", "que", "en", "los", "hola", "mundo", "buenos", "días"},
    "fr": {"le", "la", "et", "est", "de", "que", "les", "des", "bonjour", "monde", "un", "une"},
    "de": {"der", "die", "und", "ist", "das", "nicht", "ein", "eine", "hallo", "welt", "guten", "morgen"},
}
# English pivot dictionary; other pairs translate through English.
LEXICON = {
    "hello": {"es": "hola", "fr": "bonjour", "de": "hallo"},
    "world": {"es": "mundo", "fr": "monde", "de": "welt"},
    "good": {"es": "buenos", "fr": "bon", "de": "guten"},
    "morning": {"es": "días", "fr": "matin", "de": "morgen"},
    "the": {"es": "el", "fr": "le", "de": "der"},
    "and": {"es": "y", "fr": "et", "de": "und"},
    "is": {"es": "es", "fr": "est", "de": "ist"},
    "cat": {"es": "gato", "fr": "chat", "de": "katze"},
    "dog": {"es": "perro", "fr": "chien", "de": "hund"},
    "thanks": {"es": "gracias", "fr": "merci", "de": "danke"},
}
TO_ENGLISH = {lang: {words[lang]: en for en, words in LEXICON.items()} for lang in ("es", "fr", "de")}
WORD = re.compile(r"\w+", re.UNICODE)


def words_of(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def detect(text: str) -> dict:
    words = words_of(text)
    hits = {lang: sum(w in stop for w in words) for lang, stop in STOP_WORDS.items()}
    best = max(sorted(hits), key=lambda lang: hits[lang])
    total = sum(hits.values())
    if total == 0:
        return {"language": "und", "confidence": 0.0}
    return {"language": best, "confidence": round(hits[best] / total, 3)}


def translate(text: str, target: str, source: str | None) -> dict:
    if target not in STOP_WORDS:
        raise BadRequest(f"target must be one of {sorted(STOP_WORDS)}")
    source = source or detect(text)["language"]
    if source not in STOP_WORDS:
        raise BadRequest("source language could not be detected; pass source")
    out, unknown = [], []
    for word in words_of(text):
        english = word if source == "en" else TO_ENGLISH[source].get(word)
        translated = english if target == "en" else LEXICON.get(english or "", {}).get(target)
        if translated is None:
            unknown.append(word)
            translated = word
        out.append(translated)
    return {"translation": " ".join(out), "source": source, "target": target, "unknown_words": unknown}


def text_of(body: dict, name: str = "text") -> str:
    text = field(body, name, str)
    if not 0 < len(text) <= MAX_TEXT:
        raise BadRequest(f"{name} must be 1..{MAX_TEXT} characters")
    return text


def run(op: dict) -> dict:
    if op.get("op") == "detect":
        return detect(text_of(op))
    if op.get("op") == "translate":
        return translate(text_of(op), field(op, "target", str), field(op, "source", str, None))
    raise BadRequest("op must be detect or translate")


def routes(store: Store) -> list[Route]:
    async def detect_route(request: Request) -> JSONResponse:
        result = detect(text_of(await json_body(request)))
        store.add(user_of(request), "detection", result)
        return JSONResponse(result)

    async def translate_route(request: Request) -> JSONResponse:
        body = await json_body(request)
        result = translate(text_of(body), field(body, "target", str), field(body, "source", str, None))
        store.add(user_of(request), "translation", {"text": body["text"], **result})
        return JSONResponse(result)

    async def batch(request: Request) -> JSONResponse:
        items = field(await json_body(request), "items", list)
        if not 0 < len(items) <= MAX_BATCH:
            raise BadRequest(f"items must hold 1..{MAX_BATCH} operations")
        results = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise BadRequest(f"items[{i}] must be an object")
            try:
                results.append(run(item))
            except BadRequest as err:
                results.append({"error": f"items[{i}]: {err.detail}"})
        store.add(user_of(request), "batch", {"items": len(items)})
        return JSONResponse({"results": results})

    async def languages(request: Request) -> Response:
        return cacheable(request, {"languages": sorted(STOP_WORDS)}, LANGUAGES_MAX_AGE)

    return [
        Route("/detect", detect_route, methods=["POST"]),
        Route("/translate", translate_route, methods=["POST"]),
        Route("/batch", batch, methods=["POST"]),
        Route("/languages", languages, methods=["GET"]),
    ]
