"""The SQLite evaluation store: one row per evaluation, also the cache.

Each evaluation is committed as soon as it ends (WAL mode), so a killed run loses
only what was in flight, and a resumed run finds every finished network here
instead of training it again. Queries use bound parameters only.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Iterator

from gnas.errors import RunDirError
from gnas.results import EvalResult

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    genome_key TEXT NOT NULL,
    genome TEXT NOT NULL,
    kind TEXT NOT NULL,
    generation INTEGER NOT NULL,
    status TEXT NOT NULL,
    val_error REAL,
    val_loss REAL,
    fitness REAL,
    params INTEGER,
    flops INTEGER,
    pruned_fraction REAL,
    seconds REAL,
    attempts INTEGER,
    worker TEXT,
    node TEXT,
    error TEXT,
    metrics TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS evaluations_key ON evaluations (genome_key);
"""

_COLUMNS = ("genome_key", "genome", "kind", "generation", "status", "val_error", "val_loss",
            "fitness", "params", "flops", "pruned_fraction", "seconds", "attempts", "worker",
            "node", "error", "metrics", "created")


class EvaluationStore:
    """Append-only table of evaluations in ``evaluations.db``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=30.0)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(_SCHEMA)
            self.conn.commit()
        except sqlite3.DatabaseError as exc:
            raise RunDirError(f"{self.path} is not a usable evaluation database ({exc}); "
                              "restore it from a backup or start a new run.") from None

    def close(self) -> None:
        self.conn.close()

    def add(self, result: EvalResult, fitness: float) -> None:
        """Record one evaluation and commit at once."""
        row = (result.key, result.genome, result.kind, result.generation, result.status,
               _finite(result.val_error), _finite(result.val_loss), _finite(fitness), result.params,
               result.flops, result.pruned_fraction, result.seconds, result.attempts,
               result.worker, result.node, result.message,
               json.dumps(result.metrics, allow_nan=False, default=float), time.time())
        self.conn.execute(f"INSERT INTO evaluations ({', '.join(_COLUMNS)}) "
                          f"VALUES ({', '.join('?' * len(_COLUMNS))})", row)
        self.conn.commit()

    def lookup(self, key: str) -> EvalResult | None:
        """The latest finished evaluation of a network, or None (cache miss)."""
        cur = self.conn.execute("SELECT * FROM evaluations WHERE genome_key = ? "
                                "ORDER BY id DESC LIMIT 1", (key,))
        row = cur.fetchone()
        return _to_result(cur.description, row) if row else None

    def rows(self) -> list[dict]:
        """Every row as a dict, in insertion order."""
        cur = self.conn.execute("SELECT * FROM evaluations ORDER BY id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def iter_results(self) -> Iterator[EvalResult]:
        cur = self.conn.execute("SELECT * FROM evaluations ORDER BY id")
        for row in cur.fetchall():
            yield _to_result(cur.description, row)

    def count(self, status: str | None = None) -> int:
        if status is None:
            return self.conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
        return self.conn.execute("SELECT COUNT(*) FROM evaluations WHERE status = ?",
                                 (status,)).fetchone()[0]


def _finite(value: float | None) -> float | None:
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return float(value)


def _to_result(description, row) -> EvalResult:
    d = dict(zip([c[0] for c in description], row))
    return EvalResult(key=d["genome_key"], genome=d["genome"], status=d["status"],
                      val_error=d["val_error"] if d["val_error"] is not None else 1.0,
                      val_loss=d["val_loss"] if d["val_loss"] is not None else float("nan"),
                      params=d["params"] or 0, flops=d["flops"] or 0, seconds=d["seconds"] or 0.0,
                      message=d["error"] or "", worker=d["worker"] or "", node=d["node"] or "",
                      kind=d["kind"], generation=d["generation"], attempts=d["attempts"] or 1,
                      pruned_fraction=d["pruned_fraction"] or 0.0,
                      metrics=json.loads(d["metrics"] or "{}"))
