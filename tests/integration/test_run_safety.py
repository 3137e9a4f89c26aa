"""A received run directory cannot make gnas touch anything outside it, and a resumed run
is the uninterrupted run: real runs of the CLI, real ``sqlite3`` edits, real symlinks, real kills.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import TINY, committed_rows, gnas, start_gnas, wait_rows  # noqa: E402

SHA = ["--dataset", "digits", "--generations", "1", *TINY, "--seed", "5", "--fidelity", "sha",
       "--set", "fidelity.max_epochs=3", "--inherit", "parent"]


def tree(path: Path) -> dict[str, str]:
    """Every file's digest (SQLite's -wal / -shm side files aside)."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


def one_line_refusal(proc, *words: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def sha_run(tmp_path_factory) -> Path:
    """A finished ``--fidelity sha --inherit parent`` run: training states and kept weights on disk."""
    run = tmp_path_factory.mktemp("sha") / "run"
    gnas("evolve", *SHA, "--run-dir", run)
    return run


@pytest.fixture
def run(sha_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(sha_run, copy, symlinks=True)
    return copy


def set_first_key(run: Path, key: str) -> None:
    with sqlite3.connect(run / "evaluations.db") as conn:
        conn.execute("UPDATE evaluations SET genome_key = ? WHERE id = 1", (key,))
    conn.close()


# ------------------------------------------------------------------ class 1: keys from the database
@pytest.mark.parametrize("shape", ["absolute", "traversal", "not-a-digest", "another-digest"])
def test_an_edited_key_is_refused_before_anything_outside_is_touched(run: Path, tmp_path: Path, shape):
    victims = tmp_path / "V"
    victims.mkdir()
    (victims / "v-e1.npz").write_bytes(b"a user's file")
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "o-e1.npz").write_bytes(b"another user's file")
    key = {"absolute": str(victims / "v"), "traversal": "../../victim/o", "not-a-digest": "k1",
           "another-digest": "0123456789abcdef0123"}[shape]
    set_first_key(run, key)
    before = tree(run)
    proc = gnas("resume", run, "--generations", "2", check=False)
    one_line_refusal(proc, "the database was edited")
    assert (victims / "v-e1.npz").read_bytes() == b"a user's file"
    assert (tmp_path / "victim" / "o-e1.npz").read_bytes() == b"another user's file"
    assert tree(run) == before


def test_a_training_state_path_never_leaves_the_run(tmp_path: Path):
    """The schedule's own check, behind the store's: a traversal key cannot name a file outside."""
    from gnas.config import load_config
    from gnas.errors import RunDirError
    from gnas.runs.store import EvaluationStore
    from gnas.search.fidelity import SuccessiveHalving

    (tmp_path / "run").mkdir()
    cfg = load_config(overrides={"fidelity.schedule": "sha"})
    sha = SuccessiveHalving(cfg, EvaluationStore(tmp_path / "run" / "evaluations.db"), tmp_path / "run")
    assert Path(sha.checkpoint("0123456789abcdef0123", 0)).parent == (tmp_path / "run" / "fidelity").resolve()
    for key in ("../../x", str(tmp_path / "x"), "../x"):
        with pytest.raises(RunDirError, match="leads outside"):
            sha.checkpoint(key, 0)


# ------------------------------------------------------------------ class 1: symlinked folders
@pytest.mark.parametrize("entry", ["weights", "fidelity", "markov", "best"])
def test_a_managed_folder_linked_outside_is_refused(run: Path, tmp_path: Path, entry):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.npz").write_bytes(b"not gnas'")
    if (run / entry).exists():
        shutil.rmtree(run / entry)
    (run / entry).symlink_to(elsewhere, target_is_directory=True)
    before = tree(run)
    proc = gnas("resume", run, "--generations", "2", check=False)
    one_line_refusal(proc, str(run / entry), "outside the run directory")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["precious.npz"]
    assert (elsewhere / "precious.npz").read_bytes() == b"not gnas'"
    assert tree(run) == before


def test_a_link_inside_the_run_is_no_reason_to_refuse(run: Path):
    """Only links leading outside are refused: a folder linked within the run directory is fine."""
    (run / "best").rename(run / "best-real")
    (run / "best").symlink_to("best-real", target_is_directory=True)
    proc = gnas("report", run, check=False)
    assert proc.returncode == 0, proc.stderr


def test_gnas_deletes_only_the_weight_files_it_wrote(tmp_path: Path):
    from gnas.inheritance.weights import WeightStore

    store = WeightStore(tmp_path / "run" / "weights", 2**20)
    layer = {"dense": [np.ones((2, 2), np.float32)]}
    for key in ("0123456789abcdef0123", "aaaaaaaaaaaaaaaaaaaa"):
        assert store.save(key, layer)
    (store.path / "notes.npz").write_bytes(b"a user's file, not an npz gnas wrote")
    np.savez(store.path / "bbbbbbbbbbbbbbbbbbbb.npz", x=np.zeros(3))  # an npz gnas did not write
    store.keep_only(["aaaaaaaaaaaaaaaaaaaa"])
    assert sorted(p.name for p in store.path.iterdir()) == [
        "aaaaaaaaaaaaaaaaaaaa.npz", "bbbbbbbbbbbbbbbbbbbb.npz", "notes.npz"]


# ------------------------------------------------------------------ class 3: data and budgets
def test_a_resume_on_other_data_is_refused(tmp_path: Path):
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    x, y = rng.normal(size=(160, 6)).astype(np.float32), rng.integers(0, 3, 160)
    np.savez(data, x_train=x[:120], y_train=y[:120], x_test=x[120:], y_test=y[120:])
    run = tmp_path / "run"
    gnas("evolve", "--dataset", data, "--generations", "1", *TINY, "--run-dir", run)
    x[0, 0] += 1.0  # one value changed
    np.savez(data, x_train=x[:120], y_train=y[:120], x_test=x[120:], y_test=y[120:])
    before = tree(run)
    proc = gnas("resume", run, "--generations", "2", check=False)
    one_line_refusal(proc, "other data")
    assert tree(run) == before


BUDGET = ["--dataset", "digits", "--generations", "2", "--population", "4", "--epochs", "1",
          "--max-train-samples", "300", "--set", "final.max_epochs=2", "--seed", "3", "--budget", "8",
          "--threads", "1"]


def rows(run: Path) -> list[tuple]:
    with sqlite3.connect(f"{(run / 'evaluations.db').resolve().as_uri()}?mode=ro", uri=True) as conn:
        out = conn.execute("SELECT genome_key, kind, generation, status FROM evaluations "
                           "ORDER BY id").fetchall()
    conn.close()
    return out


def networks_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("networks:"))


def delivered(run: Path) -> tuple:
    summary = json.loads((run / "best" / "summary.json").read_text())
    return summary["key"], summary["test_score"], summary["params"]


@pytest.mark.slow
@pytest.mark.parametrize("extra,kill_at", [([], 6), (["--fidelity", "sha", "--inherit", "parent",
                                                      "--budget", "12"], 9)], ids=["plain", "sha-inherit"])
def test_a_budget_killed_mid_generation_resumes_to_the_uninterrupted_run(tmp_path: Path, extra, kill_at):
    args = [*BUDGET, *extra]
    whole = tmp_path / "whole"
    whole_out = gnas("evolve", *args, "--run-dir", whole).stdout
    run = tmp_path / "killed"
    proc = start_gnas("evolve", *args, "--run-dir", run)
    wait_rows(proc, run, kill_at)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert committed_rows(run) < len(rows(whole)), "the kill must land before the run's end"
    resumed_out = gnas("resume", run).stdout
    assert rows(run) == rows(whole)
    assert networks_line(resumed_out) == networks_line(whole_out)
    assert delivered(run) == delivered(whole)


# ------------------------------------------------------------------ stray temporary files
KILLED_WRITE = """
import os, signal, sys
from pathlib import Path
from gnas.runs.atomic import atomic_write_text
atomic_write_text(Path(sys.argv[1]), "{}", before_rename=lambda: os.kill(os.getpid(), signal.SIGKILL))
"""


def test_a_killed_cache_write_leaves_nothing_after_the_next_write(tmp_path: Path, monkeypatch):
    import subprocess

    from gnas.chaos import cache

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(tmp_path / "cache" / "a.json")],
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL
    [left] = list((tmp_path / "cache").iterdir())
    assert left.name.startswith(".a.json.") and left.name.endswith(".tmp")
    mine = tmp_path / "cache" / ".b.json.notes.tmp"  # a name gnas never makes
    mine.write_text("kept")
    live = tmp_path / "cache" / f".c.json.{os.getpid()}-abc.tmp"  # a write still in progress
    live.write_text("")
    assert cache.store("k" * 32, {"sweep": []}) is not None
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        [mine.name, live.name, "k" * 32 + ".json"])


def test_resume_removes_the_temporary_files_of_killed_writes_everywhere(run: Path):
    key = rows(run)[0][0]
    planted = [run / "fidelity" / f".{key}-e1.npz.tmp-99999", run / "weights" / f".{key}.npz.tmp-99999",
               run / f".state.json.99999-abcd.tmp"]
    for path in planted:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"")
    (run / "fidelity" / "notes.txt").write_text("not gnas'")
    gnas("resume", run)
    assert not any(p.exists() for p in planted)
    assert (run / "fidelity" / "notes.txt").read_text() == "not gnas'"
