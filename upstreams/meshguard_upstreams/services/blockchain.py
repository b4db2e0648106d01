"""Blockchain: EVM bytecode analysis, sandwich (MEV) detection, wallet clustering."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..app import BadRequest, field, json_body, user_of
from ..store import Store

NAME = "blockchain"
ENDPOINTS = ["POST /contracts/analyze", "POST /mev/detect", "POST /wallets/cluster"]
HEX = re.compile(r"^(0x)?([0-9a-fA-F]{2})*$")
MAX_CODE_BYTES = 48 * 1024  # EIP-3860 initcode limit
MAX_ITEMS = 10_000
# Opcodes worth a reviewer's attention, with why.
FINDINGS = {
    0xFF: ("SELFDESTRUCT", "high", "contract can be destroyed"),
    0xF4: ("DELEGATECALL", "high", "runs foreign code in this contract's storage"),
    0xF2: ("CALLCODE", "high", "deprecated delegate call"),
    0x32: ("ORIGIN", "medium", "tx.origin used (phishable authorization)"),
    0xF5: ("CREATE2", "low", "deploys contracts at predictable addresses"),
    0xF1: ("CALL", "low", "external call (check reentrancy)"),
}
PUSH1, PUSH32 = 0x60, 0x7F


def opcodes(code: bytes) -> list[int]:
    """The opcodes of ``code``, skipping PUSH immediates (they are data)."""
    ops, i = [], 0
    while i < len(code):
        op = code[i]
        ops.append(op)
        i += 1 + (op - PUSH1 + 1 if PUSH1 <= op <= PUSH32 else 0)
    return ops


def analyze(bytecode: str) -> dict:
    if not HEX.match(bytecode):
        raise BadRequest("bytecode must be hex")
    code = bytes.fromhex(bytecode.removeprefix("0x"))
    if not 0 < len(code) <= MAX_CODE_BYTES:
        raise BadRequest(f"bytecode must be 1..{MAX_CODE_BYTES} bytes")
    ops = opcodes(code)
    found = sorted({op for op in ops if op in FINDINGS})
    findings = [{"opcode": FINDINGS[op][0], "severity": FINDINGS[op][1], "why": FINDINGS[op][2]} for op in found]
    severities = {f["severity"] for f in findings}
    risk = next((s for s in ("high", "medium", "low") if s in severities), "none")
    return {"bytes": len(code), "opcodes": len(ops), "risk": risk, "findings": findings}


def sandwiches(txs: list) -> list[dict]:
    """Attacker buys before a victim's buy in the same pool and sells after it."""
    for i, tx in enumerate(txs):
        if not isinstance(tx, dict) or not all(isinstance(tx.get(k), str) for k in ("hash", "from", "pool")):
            raise BadRequest(f"transactions[{i}] needs string hash, from and pool")
        if tx.get("side") not in ("buy", "sell"):
            raise BadRequest(f"transactions[{i}].side must be buy or sell")
    found = []
    for v, victim in enumerate(txs):
        if victim["side"] != "buy":
            continue
        for f in range(v):
            front = txs[f]
            if front["pool"] != victim["pool"] or front["side"] != "buy" or front["from"] == victim["from"]:
                continue
            back = next(
                (t for t in txs[v + 1 :] if t["from"] == front["from"] and t["pool"] == victim["pool"] and t["side"] == "sell"),
                None,
            )
            if back is not None:
                found.append({"attacker": front["from"], "victim": victim["hash"], "front_run": front["hash"], "back_run": back["hash"]})
                break
    return found


def clusters(transfers: list, min_size: int) -> list[list[str]]:
    """Wallets linked by transfers, by union-find."""
    parent: dict[str, str] = {}

    def root(a: str) -> str:
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, t in enumerate(transfers):
        if not isinstance(t, dict) or not isinstance(t.get("from"), str) or not isinstance(t.get("to"), str):
            raise BadRequest(f"transfers[{i}] needs string from and to")
        parent[root(t["from"])] = root(t["to"])
    groups: dict[str, list[str]] = {}
    for wallet in list(parent):
        groups.setdefault(root(wallet), []).append(wallet)
    return sorted((sorted(g) for g in groups.values() if len(g) >= min_size), key=lambda g: (-len(g), g))


def bounded(body: dict, name: str) -> list:
    items = field(body, name, list)
    if not 0 < len(items) <= MAX_ITEMS:
        raise BadRequest(f"{name} must hold 1..{MAX_ITEMS} items")
    return items


def routes(store: Store) -> list[Route]:
    async def analyze_route(request: Request) -> JSONResponse:
        result = analyze(field(await json_body(request), "bytecode", str))
        store.add(user_of(request), "contract_analysis", {"risk": result["risk"], "bytes": result["bytes"]})
        return JSONResponse(result)

    async def mev(request: Request) -> JSONResponse:
        found = sandwiches(bounded(await json_body(request), "transactions"))
        store.add(user_of(request), "mev_detection", {"sandwiches": len(found)})
        return JSONResponse({"sandwiches": found})

    async def cluster(request: Request) -> JSONResponse:
        body = await json_body(request)
        min_size = field(body, "min_size", int, 2)
        if min_size < 1:
            raise BadRequest("min_size must be >= 1")
        result = clusters(bounded(body, "transfers"), min_size)
        store.add(user_of(request), "wallet_clustering", {"clusters": len(result)})
        return JSONResponse({"clusters": result})

    return [
        Route("/contracts/analyze", analyze_route, methods=["POST"]),
        Route("/mev/detect", mev, methods=["POST"]),
        Route("/wallets/cluster", cluster, methods=["POST"]),
    ]
