"""Per-user records in SQLite, shared by the instances of one service.

Both instances of a service open the same database file (WAL mode), so an
erasure through either instance removes the user's records everywhere.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS records_user ON records (user_id);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The event loop thread and Starlette's thread pool may both use it.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA busy_timeout = 2000")
            self._open_shared()

    def _open_shared(self) -> None:
        # Both instances of a service share the file. Switching to WAL takes an
        # exclusive lock that SQLite does not wait for (busy_timeout is not
        # consulted), so two instances starting together retry here.
        deadline = time.monotonic() + 10
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.executescript(SCHEMA)
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def add(self, user_id: str | None, kind: str, data: dict[str, Any]) -> None:
        """Keeps a record for an identified user; anonymous calls keep nothing."""
        if not user_id:
            return
        with self._lock:
            self._db.execute(
                "INSERT INTO records (user_id, kind, data, created_at) VALUES (?, ?, ?, ?)",
                (user_id, kind, json.dumps(data, sort_keys=True), time.time()),
            )

    def export(self, user_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, data, created_at FROM records WHERE user_id = ? ORDER BY id",
                (user_id,),
            ).fetchall()
        return [{"kind": kind, "data": json.loads(data), "created_at": created} for kind, data, created in rows]

    def erase(self, user_id: str) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM records WHERE user_id = ?", (user_id,)).rowcount

    def get(self, key: str) -> Any | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value, sort_keys=True)),
            )
