"""Kill -9 at several moments of a real run; ``gnas resume`` must end identical.

One uninterrupted run is the reference. A second run of the same seed is killed
with SIGKILL again and again, each time at a different moment, and resumed after
every kill:

1. while the initial population's checkpoint is written (before any state.json),
2. during training in generation 0 (two evaluations committed, a third in flight),
3. while generation 0's checkpoint is written (temporary file, no rename yet),
4. between generations (right after generation 1's checkpoint).

The final resume must reproduce the reference's population, fitness, hall of
fame and logbook, train every network exactly as many times as the reference
(nothing finished is trained again, nothing is lost) and report the same test
score. ``--threads 1`` everywhere: floating-point results depend on it.
"""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import committed_rows as rows  # noqa: E402
from helpers import start_gnas as gnas  # noqa: E402
from helpers import wait_rows  # noqa: E402

pytestmark = pytest.mark.slow

ARGS = ["--dataset", "digits", "--population", "4", "--epochs", "1", "--max-train-samples", "300",
        "--generations", "3", "--threads", "1", "--seed", "4", "--lambda-c", "0.8",
        "--set", "evolution.final_seeds=0", "--set", "final.max_epochs=3"]
TIMEOUT_S = 300


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=TIMEOUT_S)
    return proc.returncode, out, err


def key_counts(run: Path) -> dict[str, int]:
    with sqlite3.connect(run / "evaluations.db") as conn:
        return dict(conn.execute("SELECT genome_key || '/' || kind, COUNT(*) FROM evaluations "
                                 "GROUP BY genome_key, kind").fetchall())


def kill_at_rows(proc: subprocess.Popen, run: Path, k: int) -> None:
    """SIGKILL ``proc`` as soon as ``k`` evaluations are committed (it is training the next)."""
    wait_rows(proc, run, k, TIMEOUT_S)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=TIMEOUT_S)


def state(run: Path, name: str = "state.json") -> dict:
    return json.loads((run / name).read_text())


def comparable(st: dict) -> dict:
    logbook = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in st["logbook"]]
    return {"generation": st["generation"], "population": st["population"],
            "fitness": st["fitness"], "hall_of_fame": st["hall_of_fame"], "logbook": logbook,
            "finished": st["finished"]}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("kill") / "reference"
    code, _, err = finish(gnas("evolve", *ARGS, "--run-dir", str(run)))
    assert code == 0, err[-3000:]
    return run


def test_killed_four_times_then_resumed_equals_uninterrupted_run(reference: Path, tmp_path: Path):
    run = tmp_path / "killed"
    ref_counts = key_counts(reference)
    # every row of generation 0, a champion's included: they all precede its checkpoint
    gen0_rows = sum(1 for r in sqlite3.connect(reference / "evaluations.db").execute(
        "SELECT generation FROM evaluations") if r[0] == 0)
    assert gen0_rows >= 4, "the reference must train at least 4 networks in generation 0"

    # 1. SIGKILL while the initial population's checkpoint is being written.
    code, _, _ = finish(gnas("evolve", *ARGS, "--run-dir", str(run), fault="checkpoint:1"))
    assert code == -signal.SIGKILL
    assert not (run / "state.json").exists() and rows(run) == 0
    assert list(run.glob(".state.json.*.tmp")), "the kill should have left the unrenamed temp file"

    # 2. SIGKILL during training: 2 evaluations committed, the third in flight.
    kill_at_rows(gnas("resume", str(run)), run, 2)
    assert state(run)["generation"] == -1
    assert 2 <= rows(run) < gen0_rows  # 3 only if a commit slipped in before the kill landed
    assert not list(run.glob(".state.json.*.tmp")), "resume removes stale temporary files"

    # 3. SIGKILL while generation 0's checkpoint is written (2nd save of this process).
    code, _, _ = finish(gnas("resume", str(run), fault="checkpoint:2"))
    assert code == -signal.SIGKILL
    assert state(run)["generation"] == -1, "the unfinished checkpoint must not be visible"
    assert rows(run) == gen0_rows, "generation 0 was trained once: the 2 earlier rows were reused"

    # 4. SIGKILL between generations: right after generation 1's checkpoint (3rd save).
    code, _, _ = finish(gnas("resume", str(run), fault="checkpointed:3"))
    assert code == -signal.SIGKILL
    assert state(run)["generation"] == 1
    assert state(run, "state.prev.json")["generation"] == 0

    # Resume to the end.
    code, out, err = finish(gnas("resume", str(run)))
    assert code == 0, err[-3000:]
    assert comparable(state(run)) == comparable(state(reference))
    assert key_counts(run) == ref_counts, "a finished evaluation was trained again, or one was lost"
    ours = json.loads((run / "best" / "summary.json").read_text())
    theirs = json.loads((reference / "best" / "summary.json").read_text())
    assert ours["genome"] == theirs["genome"]
    assert ours["test_score"] == pytest.approx(theirs["test_score"], abs=1e-9)
    assert not (run / "gnas.lock").exists()


def test_resume_of_a_finished_run_trains_nothing(reference: Path, tmp_path: Path):
    """Resuming a complete run (e.g. after a kill during the final save) only re-reports."""
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(reference, run)
    before = key_counts(run)
    code, out, err = finish(gnas("resume", str(run)))
    assert code == 0, err[-3000:]
    assert key_counts(run) == before
    assert "test score" in out
