"""EvaluationStore: round trip, cache hit, WAL + per-evaluation commit, safe opening."""
from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gnas.errors import RunDirError
from gnas.records import EvalResult, StoredEvaluation
from gnas.runs.store import EvaluationStore


def result(key: str = "k1", **extra) -> EvalResult:
    base = dict(key=key, genome="0101", status="ok", val_error=0.125, val_loss=0.4, params=1234,
                flops=5678, seconds=1.5, worker="local", generation=2, metrics={"pid": 7})
    return EvalResult(**{**base, **extra})


def test_round_trip_and_cache_hit(tmp_path: Path):
    store = EvaluationStore(tmp_path / "e.db")
    assert store.lookup("k1") is None
    store.add(result(), fitness=0.2)
    store.add(result("k2", status="failed", val_error=1.0, message="NaN loss"), fitness=2.0)
    store.close()
    store = EvaluationStore(tmp_path / "e.db")
    assert store.lookup("k1") == result()
    assert store.lookup("k2").message == "NaN loss"
    assert store.count() == 2 and store.count("failed") == 1
    assert store.key_counts() == {"k1": 1, "k2": 1}
    assert [r["fitness"] for r in store.rows()] == [0.2, 2.0]
    assert [r.key for r in store.iter_results()] == ["k1", "k2"]


def test_typed_evaluations_are_the_rows_and_their_results(tmp_path: Path):
    store = EvaluationStore(tmp_path / "e.db")
    store.add(result(), fitness=0.2)
    store.add(result("k2", status="failed", val_error=1.0, message="NaN loss", kind="prune"), fitness=float("inf"))
    typed = store.evaluations()
    assert [e.id for e in typed] == [r["id"] for r in store.rows()] and typed[0].id < typed[1].id
    assert [e.result for e in typed] == list(store.iter_results())
    assert [e.fitness for e in typed] == [0.2, None]  # a non-finite fitness reads back as none
    assert typed[0].result == result() and typed[1].result.kind == "prune" and not typed[1].result.ok


def test_a_row_without_its_identity_is_refused_and_old_rows_get_defaults():
    old = {"id": 3, "genome_key": "k", "genome": "01", "status": "ok", "kind": "search", "generation": 1}
    e = StoredEvaluation.from_row(old)
    assert (e.fitness, e.result.params, e.result.metrics, e.result.attempts) == (None, 0, {}, 1)
    with pytest.raises(ValueError, match="lacks genome_key"):
        StoredEvaluation.from_row({k: v for k, v in old.items() if k != "genome_key"})


def test_contains_answers_membership_as_lookup_does(tmp_path: Path):
    store = EvaluationStore(tmp_path / "e.db")
    assert not store.contains("k1")
    store.add(result("k1", status="failed", val_error=1.0, message="NaN loss"), fitness=2.0)
    assert store.contains("k1") and store.lookup("k1") is not None
    assert not store.contains("k") and not store.contains("k1%")  # bound, not a pattern


def test_narrow_queries_read_what_the_rows_hold(tmp_path: Path):
    store = EvaluationStore(tmp_path / "e.db")
    store.add(result("a", genome="0011", generation=0), 0.5)
    store.add(result("b", genome="0111", generation=1), 0.25)
    store.add(result("c", genome="1111", generation=1, kind="prune"), 0.1)
    store.add(result("d", genome="0001", generation=2, status="failed", val_error=1.0), math.inf)
    assert store.keys_through(0) == {"a"} and store.keys_through(1) == {"a", "b", "c"}
    assert store.genome_fitness(generation=1) == [("0111", 0.25), ("1111", 0.1)]
    assert store.genome_fitness(through=1, kind="search") == [("0011", 0.5), ("0111", 0.25)]
    assert store.genome_fitness(generation=2) == [("0001", None)]  # a non-finite fitness is stored as null
    rows = store.rows()
    for g in range(3):
        assert store.keys_through(g) == {r["genome_key"] for r in rows if r["generation"] <= g}


def test_latest_row_wins(tmp_path: Path):
    store = EvaluationStore(tmp_path / "e.db")
    store.add(result(val_error=0.5), 0.5)
    store.add(result(val_error=0.25), 0.25)
    assert store.lookup("k1").val_error == 0.25
    assert store.key_counts() == {"k1": 2}


def test_wal_and_full_sync(tmp_path: Path):
    store = EvaluationStore(tmp_path / "e.db")
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_non_finite_values_are_stored_as_null(tmp_path: Path):
    store = EvaluationStore(tmp_path / "e.db")
    store.add(result(val_loss=float("nan"), metrics={"loss": float("inf"), "curve": [1.0, float("nan")]}),
              fitness=float("nan"))
    row = store.rows()[0]
    assert row["val_loss"] is None and row["fitness"] is None
    got = store.lookup("k1")
    assert math.isnan(got.val_loss)
    assert got.metrics == {"loss": None, "curve": [1.0, None]}


KILLED = textwrap.dedent("""
    import os, signal, sys
    from gnas.records import EvalResult
    from gnas.runs.store import EvaluationStore
    store = EvaluationStore(sys.argv[1])
    store.add(EvalResult(key="kept", genome="01", status="ok"), 0.5)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_commit_survives_sigkill(tmp_path: Path):
    db = tmp_path / "e.db"
    proc = subprocess.run([sys.executable, "-c", KILLED, str(db)], timeout=60)
    assert proc.returncode == -9
    assert EvaluationStore(db).lookup("kept") is not None


def test_read_only_writes_nothing(tmp_path: Path):
    db = tmp_path / "e.db"
    EvaluationStore(db).close()
    before = db.read_bytes()
    store = EvaluationStore(db, read_only=True)
    assert store.count() == 0
    with pytest.raises(sqlite3.OperationalError):
        store.conn.execute("DELETE FROM evaluations")
    store.close()
    assert db.read_bytes() == before


def test_check_file_reads_only_the_header(tmp_path: Path):
    EvaluationStore.check_file(tmp_path / "missing.db")  # a run killed before its first row
    EvaluationStore(tmp_path / "ok.db").close()
    EvaluationStore.check_file(tmp_path / "ok.db")
    (tmp_path / "bad.db").write_bytes(b"\x80\x04\x95pickle")
    with pytest.raises(RunDirError, match="not an SQLite database"):
        EvaluationStore.check_file(tmp_path / "bad.db")


def test_garbage_file_is_refused(tmp_path: Path):
    db = tmp_path / "e.db"
    db.write_bytes(b"\x80\x04\x95 this is a pickle, not a database" * 20)
    with pytest.raises(RunDirError, match="not a usable evaluation database"):
        EvaluationStore(db)


def test_foreign_database_is_refused(tmp_path: Path):
    db = tmp_path / "e.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE evaluations (id INTEGER, note TEXT)")
    with pytest.raises(RunDirError, match="evaluation database"):
        EvaluationStore(db)


def test_keys_are_bound_not_interpolated(tmp_path: Path):
    store = EvaluationStore(tmp_path / "e.db")
    nasty = "x'; DROP TABLE evaluations; --"
    store.add(result(nasty), 0.1)
    assert store.lookup(nasty).key == nasty
    assert store.count() == 1


def test_foreign_database_is_refused_unchanged(tmp_path: Path):
    path = tmp_path / "evaluations.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(RunDirError, match="notes"):
        EvaluationStore.check_file(path)
    with pytest.raises(RunDirError, match="notes"):
        EvaluationStore(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evaluations.db"]


def test_disk_full_is_not_called_a_damaged_database(tmp_path: Path, monkeypatch):
    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(sqlite3, "connect", full)
    with pytest.raises(OSError, match="disk is full") as info:
        EvaluationStore(tmp_path / "evaluations.db")
    assert not isinstance(info.value, RunDirError)
