"""``gnas report RUN --evaluations``: every evaluation of the store as CSV, failures with their reason."""
from __future__ import annotations

import csv
import hashlib
import io
import sqlite3
import sys
from pathlib import Path

import pytest

from helpers import TINY, gnas  # noqa: E402

from gnas.config import RunConfig
from gnas.records import EvalResult, Kind, Status
from gnas.report.evaluations import COLUMNS
from gnas.runs.directory import RunDir
from gnas.runs.store import EvaluationStore

REASON = 'Traceback (most recent call last):\n  File "x.py", line 1\nEvaluationFailed: out of memory, "big"'


def tree(path: Path) -> dict[str, str]:
    """Every file's digest, but SQLite's -wal / -shm side files (a read-only open may create them)."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


@pytest.fixture
def stored_run(tmp_path: Path) -> Path:
    """A run directory whose real evaluation store holds one good and one failed evaluation."""
    run = RunDir(tmp_path / "run")
    run.create(RunConfig())
    store = EvaluationStore(run.db_path)
    store.add(EvalResult(key="k1", genome="0110", status=Status.OK, val_error=0.125, val_loss=0.4,
                         params=1234, flops=5678, seconds=1.5, worker="w0", generation=0), fitness=0.13)
    store.add(EvalResult(key="k2", genome="1001", status=Status.FAILED, message=REASON, worker="w1",
                         kind=Kind.SEARCH, generation=1), fitness=1.0)
    store.close()
    return run.path


def parse(text: str) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and list(rows[0]) == list(COLUMNS)
    return rows


def test_every_evaluation_on_stdout_with_the_failure_reason(stored_run: Path):
    before = tree(stored_run)
    proc = gnas("report", stored_run, "--evaluations")
    good, bad = parse(proc.stdout)
    assert (good["key"], good["genome"], good["status"], good["generation"]) == ("k1", "0110", "ok", "0")
    assert float(good["val_error"]) == 0.125 and float(good["fitness"]) == 0.13
    assert (good["params"], good["flops"], good["worker"], good["error"]) == ("1234", "5678", "w0", "")
    assert bad["status"] == "failed" and bad["error"] == REASON and bad["generation"] == "1"
    assert tree(stored_run) == before, "the report reads the store read-only"


def test_evaluations_into_a_file_equal_to_stdout(stored_run: Path, tmp_path: Path):
    out = tmp_path / "evals.csv"
    proc = gnas("report", stored_run, "--evaluations", out)
    assert proc.stdout == f"evaluations: {out} (2 rows)\n"
    assert out.read_text() == gnas("report", stored_run, "--evaluations", "-").stdout
    assert len(parse(out.read_text())) == 2


def test_evaluations_cannot_mix_with_json_or_an_unwritable_file(stored_run: Path, tmp_path: Path):
    proc = gnas("report", stored_run, "--evaluations", "--json", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "writes only the CSV" in proc.stderr
    proc = gnas("report", stored_run, "--evaluations", tmp_path / "missing" / "e.csv", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "cannot write" in proc.stderr


def test_a_run_without_evaluations_has_only_the_header(tmp_path: Path):
    run = RunDir(tmp_path / "run")
    run.create(RunConfig())
    assert gnas("report", run.path, "--evaluations").stdout == ",".join(COLUMNS) + "\n"


@pytest.mark.slow
def test_a_real_run_lists_every_row_of_its_store(tmp_path: Path):
    run = tmp_path / "run"
    gnas("evolve", "--generations", "1", "--run-dir", run, *TINY)
    rows = parse(gnas("report", run, "--evaluations").stdout)
    with sqlite3.connect(run / "evaluations.db") as db:
        keys = [k for (k,) in db.execute("SELECT genome_key FROM evaluations ORDER BY id")]
    assert [r["key"] for r in rows] == keys
    assert all(r["status"] in ("ok", "failed") and (r["status"] == "ok") == (r["error"] == "") for r in rows)


@pytest.mark.parametrize("target", ["evaluations.db", "state.json", "gnas-run.json", "config.toml",
                                    "markov", "best/summary.json", "link-to-db.csv"])
def test_the_csv_never_lands_on_a_file_of_the_run(stored_run: Path, target: str):
    (stored_run / "link-to-db.csv").symlink_to("evaluations.db")
    before = tree(stored_run)
    proc = gnas("report", stored_run, "--evaluations", stored_run / target, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "the run's own files" in proc.stderr
    assert tree(stored_run) == before
    assert len(parse(gnas("report", stored_run, "--evaluations").stdout)) == 2  # the run still reads


def test_the_csv_replaces_an_earlier_csv_but_no_other_file(stored_run: Path, tmp_path: Path):
    mine = tmp_path / "notes.csv"
    mine.write_text("name,phone\nann,123\n")
    proc = gnas("report", stored_run, "--evaluations", mine, check=False)
    assert proc.returncode == 2 and "not an evaluations CSV" in proc.stderr
    assert mine.read_text() == "name,phone\nann,123\n"
    out = stored_run / "evaluations.csv"  # a new name beside the run's files is fine
    gnas("report", stored_run, "--evaluations", out)
    gnas("report", stored_run, "--evaluations", out)  # and so is replacing it
    assert len(parse(out.read_text())) == 2
