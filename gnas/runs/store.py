"""The SQLite evaluation store: one row per evaluation, also the cache.

Each evaluation is committed as soon as it ends (WAL mode), so a killed run loses
only what was in flight, and a resumed run finds every finished network here
instead of training it again. Queries use bound parameters only.
"""
from __future__ import annotations

import errno
import json
import numbers
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from gnas.errors import InvalidGenomeError, RunDirError
from gnas.records import EvalResult, StoredEvaluation
from gnas.runs.interrupts import deferred_interrupts

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


def _database_error(path: Path, exc: sqlite3.DatabaseError) -> Exception:
    """A full disk or a read-only mount is the machine's fault, not the file's.

    Those become OSError, for which the CLI advises freeing space and continuing;
    only a database that is really damaged gets the advice to restore it.
    """
    text = str(exc)
    if "full" in text or "readonly" in text:
        return OSError(errno.ENOSPC if "full" in text else errno.EROFS, f"{path}: {text}")
    return RunDirError(f"{path} is not a usable evaluation database ({text}); "
                       "restore it from a backup or start a new run.")


class EvaluationStore:
    """Append-only table of evaluations in ``evaluations.db``.

    Args:
        path: The database file; created (with its table) unless ``read_only``.
        read_only: Open without writing to the database, not even the WAL switch,
            for readers such as reports (SQLite may still create its -wal/-shm files).

    Raises:
        RunDirError: The file is not an SQLite database, or not one of gnas.
    """

    def __init__(self, path: str | Path, read_only: bool = False, durable: bool = True) -> None:
        self.path = Path(path)
        try:
            if read_only:
                self.conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                            timeout=30.0)
            else:
                self.conn = sqlite3.connect(str(self.path), timeout=30.0)
                # The columns are checked before anything is created: a foreign
                # database is refused as it is, never given a gnas table.
                self._check_foreign()
                # WAL + FULL: a commit survives a killed process and a power cut alike;
                # one fsync per evaluation is nothing next to training a network.
                # WAL + NORMAL (``durable=False``, a run of table lookups): a commit
                # survives a killed process; a power cut may cost the last ones.
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self.conn.executescript(_SCHEMA)
                self.conn.commit()
            self._check_columns()
        except sqlite3.DatabaseError as exc:
            raise _database_error(self.path, exc) from None

    @staticmethod
    def check_file(path: str | Path, key_of: Callable[[str], str] | None = None) -> None:
        """Refuse a file that is not gnas' evaluation database, writing nothing in the run.

        Opening a WAL database, even read-only, creates SQLite's side files, so the
        database (and its WAL) is checked on a copy in a temporary directory: the
        header, the integrity, the columns and the keys (:meth:`check_keys`, and
        with ``key_of`` :meth:`check_digests`). ``gnas resume`` calls this before
        it writes anything, so a foreign, damaged or edited file is refused as it is.
        """
        path = Path(path)
        try:
            with open(path, "rb") as fh:
                head = fh.read(16)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise RunDirError(f"{path} cannot be read ({exc.strerror}).") from None
        if not head:
            return
        if head != b"SQLite format 3\x00":
            raise RunDirError(f"{path} is not an SQLite database; restore it from a backup "
                              "or start a new run.")
        with tempfile.TemporaryDirectory(prefix="gnas-db-check-") as tmp:
            copy = Path(tmp) / path.name
            try:
                shutil.copyfile(path, copy)
                wal = path.with_name(path.name + "-wal")
                if wal.is_file():
                    shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
            except OSError as exc:
                raise RunDirError(f"{path} cannot be checked ({exc.strerror}); free space in "
                                  f"{tempfile.gettempdir()} and try again.") from None
            store = EvaluationStore.__new__(EvaluationStore)
            store.path = path
            try:
                store.conn = sqlite3.connect(str(copy), timeout=30.0)
                try:
                    if store.conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                        raise sqlite3.DatabaseError("integrity check failed")
                    store._check_foreign()
                    store.check_keys()
                    if key_of is not None:
                        store.check_digests(key_of)
                finally:
                    store.conn.close()
            except sqlite3.DatabaseError as exc:
                raise _database_error(path, exc) from None

    def _check_foreign(self) -> None:
        """Refuse a database that holds tables but not gnas' evaluations table."""
        tables = {row[0] for row in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        if tables and "evaluations" not in tables:
            self.conn.close()
            raise RunDirError(f"{self.path} is not a gnas evaluation database (it holds "
                              f"{', '.join(sorted(tables))}); restore it from a backup or start a new run.")
        if tables:
            self._check_columns()

    def _check_columns(self) -> None:
        found = {row[1] for row in self.conn.execute("PRAGMA table_info(evaluations)")}
        missing = [c for c in _COLUMNS if c not in found]
        if missing:
            self.conn.close()
            raise RunDirError(f"{self.path} is not a gnas evaluation database (no column(s) "
                              f"{', '.join(missing)}); restore it from a backup or start a new run.")

    def check_keys(self) -> None:
        """Refuse a database holding a key gnas did not make: 1 to 64 lowercase hex digits
        (a digest, or a table space's cell code).

        Keys name files of the run (parent weights, training states), so a key
        written by hand could otherwise steer a write or a deletion anywhere.
        """
        row = self.conn.execute(
            "SELECT id, genome_key FROM evaluations WHERE typeof(genome_key) != 'text' "
            "OR length(genome_key) NOT BETWEEN 1 AND 64 OR genome_key GLOB '*[^0-9a-f]*' LIMIT 1").fetchone()
        if row is not None:
            raise RunDirError(f"{self.path}: row {row[0]} has the key {str(row[1])[:60]!r}, which gnas "
                              "never makes; the database was edited. Restore it from a backup or start "
                              "a new run.")

    def check_digests(self, key_of: Callable[[str], str]) -> None:
        """Refuse a search row whose key is not ``key_of`` its genome (the network's digest).

        Only ``search`` rows are checked: pruning attempts and re-trainings have
        keys derived from a variant that their row does not hold.
        """
        cur = self.conn.execute("SELECT id, genome_key, genome FROM evaluations WHERE kind = 'search'")
        for row_id, key, genome in cur:
            try:
                same = isinstance(genome, str) and key_of(genome) == key
            except (ValueError, TypeError, KeyError, IndexError, InvalidGenomeError):
                same = False
            if not same:
                raise RunDirError(f"{self.path}: row {row_id} has the key {str(key)[:60]!r}, which is not "
                                  "the digest of its genome; the database was edited. Restore it from a "
                                  "backup or start a new run.")

    def close(self) -> None:
        self.conn.close()

    def add(self, result: EvalResult, fitness: float, commit: bool = True) -> None:
        """Record one evaluation and commit at once (a Ctrl-C waits for the commit).

        ``commit=False`` leaves the row to the next :meth:`commit`: a round of
        lookups that cost nothing to repeat is one transaction, and a kill in the
        middle of it loses only rows that a resume reproduces.
        """
        row = (result.key, result.genome, result.kind, result.generation, result.status,
               _finite(result.val_error), _finite(result.val_loss), _finite(fitness), result.params,
               result.flops, result.pruned_fraction, result.seconds, result.attempts,
               result.worker, result.node, result.message,
               json.dumps(_plain(result.metrics), allow_nan=False, default=float), time.time())
        with deferred_interrupts():
            self.conn.execute(f"INSERT INTO evaluations ({', '.join(_COLUMNS)}) "
                              f"VALUES ({', '.join('?' * len(_COLUMNS))})", row)
            if commit:
                self.conn.commit()

    def commit(self) -> None:
        """Commit the rows added with ``commit=False`` (one transaction, one fsync)."""
        with deferred_interrupts():
            self.conn.commit()

    def key_counts(self, kind: str | None = None) -> dict[str, int]:
        """How many rows each genome key has (each finished evaluation is one row)."""
        sql = "SELECT genome_key, COUNT(*) FROM evaluations"
        cur = (self.conn.execute(sql + " GROUP BY genome_key") if kind is None else
               self.conn.execute(sql + " WHERE kind = ? GROUP BY genome_key", (kind,)))
        return dict(cur.fetchall())

    def lookup(self, key: str) -> EvalResult | None:
        """The latest finished evaluation of a network, or None (cache miss)."""
        cur = self.conn.execute("SELECT * FROM evaluations WHERE genome_key = ? "
                                "ORDER BY id DESC LIMIT 1", (key,))
        row = cur.fetchone()
        return _to_result(cur.description, row) if row else None

    def contains(self, key: str, before_generation: int | None = None) -> bool:
        """Whether a finished evaluation of ``key`` is stored (no row is decoded).

        ``before_generation`` counts only rows of earlier generations: what the
        search had seen when that generation began, whatever a killed or
        budget-stopped attempt at it trained since.
        """
        if before_generation is None:
            row = self.conn.execute("SELECT 1 FROM evaluations WHERE genome_key = ? LIMIT 1", (key,))
        else:
            row = self.conn.execute("SELECT 1 FROM evaluations WHERE genome_key = ? AND generation < ? "
                                    "LIMIT 1", (key, int(before_generation)))
        return row.fetchone() is not None

    def keys_through(self, generation: int) -> set[str]:
        """Keys evaluated in generations up to ``generation`` (a row without one counts as 0)."""
        cur = self.conn.execute("SELECT DISTINCT genome_key FROM evaluations "
                                "WHERE COALESCE(generation, 0) <= ?", (int(generation),))
        return {row[0] for row in cur.fetchall() if row[0]}

    def keys_of(self, generation: int) -> set[str]:
        """Keys with a row of exactly ``generation`` (what a killed attempt at it trained)."""
        cur = self.conn.execute("SELECT DISTINCT genome_key FROM evaluations WHERE generation = ?",
                                (int(generation),))
        return {row[0] for row in cur.fetchall() if row[0]}

    def genome_fitness(self, *, generation: int | None = None, through: int | None = None,
                       kind: str | None = None) -> list[tuple[str, float | None]]:
        """``(genome, fitness)`` of the rows with a genome, in insertion order, no other column read.

        ``generation`` keeps one generation's rows, ``through`` those up to a
        generation (a row without one counts as 0), ``kind`` one kind of evaluation.
        """
        sql, args = "SELECT genome, fitness FROM evaluations WHERE genome IS NOT NULL AND genome != ''", []
        if generation is not None:
            sql, args = sql + " AND generation = ?", args + [int(generation)]
        if through is not None:
            sql, args = sql + " AND COALESCE(generation, 0) <= ?", args + [int(through)]
        if kind is not None:
            sql, args = sql + " AND kind = ?", args + [kind]
        return [(g, f) for g, f in self.conn.execute(sql + " ORDER BY id", args).fetchall()]

    def rows(self) -> list[dict]:
        """Every row as a dict, in insertion order."""
        cur = self.conn.execute("SELECT * FROM evaluations ORDER BY id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def evaluations(self) -> list[StoredEvaluation]:
        """Every row as a typed record, in insertion order: what steps and strategies read."""
        return [StoredEvaluation.from_row(row) for row in self.rows()]

    def iter_results(self) -> Iterator[EvalResult]:
        cur = self.conn.execute("SELECT * FROM evaluations ORDER BY id")
        for row in cur.fetchall():
            yield _to_result(cur.description, row)

    def top_networks(self, k: int) -> list[dict[str, Any]]:
        """The ``k`` best distinct networks: each one's best successful row and its row count.

        Every number comes from one row, the network's best evaluation (the earliest
        on ties); ``evaluations`` counts all of the network's rows (retries and
        re-evaluations included).
        """
        keys = self.conn.execute(
            "SELECT genome_key FROM evaluations WHERE status = 'ok' AND fitness IS NOT NULL "
            "AND kind != 'reseed' "
            "GROUP BY genome_key ORDER BY MIN(fitness), genome_key LIMIT ?", (int(k),)).fetchall()
        out = []
        for (key,) in keys:
            cur = self.conn.execute(
                "SELECT * FROM evaluations WHERE genome_key = ? AND status = 'ok' AND fitness IS NOT NULL "
                "ORDER BY fitness, id LIMIT 1", (key,))
            row = dict(zip([d[0] for d in cur.description], cur.fetchone()))
            count = self.conn.execute("SELECT COUNT(*) FROM evaluations WHERE genome_key = ?",
                                      (key,)).fetchone()[0]
            out.append({"key": key, "genome": row["genome"], "fitness": row["fitness"],
                        "val_error": row["val_error"], "params": row["params"], "flops": row["flops"],
                        "pruned_fraction": row["pruned_fraction"], "generation": row["generation"],
                        "kind": row["kind"], "evaluations": count,
                        "metrics": json.loads(row["metrics"] or "{}")})
        return out

    def count(self, status: str | None = None, kind: str | None = None) -> int:
        """Rows (each one training), optionally of one status and one kind."""
        sql, args = "SELECT COUNT(*) FROM evaluations WHERE 1", []
        if status is not None:
            sql, args = sql + " AND status = ?", args + [status]
        if kind is not None:
            sql, args = sql + " AND kind = ?", args + [kind]
        return self.conn.execute(sql, args).fetchone()[0]


def _plain(value):
    """Metrics as strict JSON: non-finite numbers become null instead of failing the commit."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return _finite(float(value))
    return value


def _finite(value: float | None) -> float | None:
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return float(value)


def _to_result(description, row) -> EvalResult:
    return StoredEvaluation.from_row(dict(zip([c[0] for c in description], row))).result
