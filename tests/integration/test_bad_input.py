"""Bad input through the real CLI: exit 2, one line, no traceback, nothing touched.

Every case runs ``python -m gnas`` as a subprocess. Each must exit with status 2
and write exactly one non-empty line to stderr (``gnas: error: ...``) and no
traceback; where a directory already existed, every byte of it is unchanged
afterwards. The "safe to open" cases plant pickle payloads that would create a
marker file if anything unpickled them, first proving the payload is live.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TINY = ["--population", "4", "--epochs", "1", "--max-train-samples", "300", "--threads", "1",
        "--lambda-c", "0.8", "--seed", "2"]
TIMEOUT_S = 300


def gnas(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, GNAS_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    full_env.pop("GNAS_FAULT_AT", None)
    return subprocess.run([sys.executable, "-m", "gnas", *map(str, args)], env=full_env, text=True,
                          capture_output=True, timeout=TIMEOUT_S)


def assert_user_error(res: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, exactly one non-empty stderr line starting ``gnas: error:``, no traceback."""
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2, res.stderr
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert lines[0].startswith("gnas: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def refused_untouched(run: Path, args: list, *needles: str) -> str:
    """The command is refused in one line and every byte of ``run`` is as it was."""
    before = tree(run)
    line = assert_user_error(gnas(*args), *needles)
    assert tree(run) == before, "a refused command changed the run directory"
    return line


def tree(path: Path) -> dict[str, str]:
    """Every file under ``path`` (hidden ones too) -> SHA-256 of its bytes."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


class Payload:
    """Unpickling this creates ``marker``: proof that something executed a pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def live_payload(tmp_path: Path, marker: Path) -> bytes:
    """A pickle that creates ``marker``; checked live on a control path first."""
    control = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(Payload(control))).close()
    assert control.exists(), "the payload must be live, or the safety tests prove nothing"
    return pickle.dumps(Payload(marker))


# ------------------------------------------------------------ gnas evolve
def _npz(path: Path, drop: str | None = None, **changes) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.random((40, 8)).astype("float32"), "y_train": rng.integers(0, 3, 40),
              "x_test": rng.random((10, 8)).astype("float32"), "y_test": rng.integers(0, 3, 10)}
    arrays.update(changes)
    arrays.pop(drop, None)
    np.savez(path, **arrays)
    return path


def _nan_x() -> np.ndarray:
    x = np.random.default_rng(0).random((40, 8)).astype("float32")
    x[3, 2] = np.nan
    return x


NPZ_CASES = {
    "missing_array": (dict(drop="y_test"), "y_test"),
    "mismatched_lengths": (dict(y_train=np.zeros(30, dtype=int)), "y_train"),
    "labels_out_of_range": (dict(y_train=np.r_[-3, np.zeros(39, dtype=int)]), "y_train"),
    "nan": (dict(x_train=_nan_x()), "NaN"),
}


@pytest.mark.parametrize("case", sorted(NPZ_CASES))
def test_bad_npz(tmp_path: Path, case: str):
    kwargs, needle = NPZ_CASES[case]
    data = _npz(tmp_path / f"{case}.npz", **kwargs)
    res = gnas("evolve", "--dataset", data, "--run-dir", tmp_path / "run")
    assert_user_error(res, needle)
    assert not (tmp_path / "run").exists(), "a run directory was made for data that cannot be used"


EVOLVE_CASES = {
    "unknown_dataset": (["--dataset", "no_such_set"], "no_such_set"),
    "unknown_key": (["--set", "evolution.popsize=8"], "evolution.popsize"),
    "wrong_type": (["--set", "evolution.population=many"], "evolution.population"),
    "wrong_type_flag": (["--population", "many"], "--population"),
    "rate_out_of_range": (["--set", "evolution.indpb=1.5"], "[0.0, 1.0]"),
    "val_fraction_out_of_range": (["--set", "data.val_fraction=0.9"], "data.val_fraction"),
    "population_1": (["--population", "1"], "evolution.population=1"),
    "generations_0": (["--generations", "0"], "evolution.generations=0"),
    "unknown_preset": (["--preset", "huge"], "huge"),
    "elite_not_below_population": (["--population", "2", "--set", "evolution.elite=2"], "elite"),
    "data_dir_missing_for_digits": (["--data-dir", "/nonexistent/gnas-data"], "--data-dir"),
    "unknown_strategy": (["--strategy", "foo"], "'foo'"),
    "budget_0": (["--budget", "0"], "--budget"),
    "budget_negative_key": (["--set", "evolution.max_trainings=-1"], "evolution.max_trainings"),
    "unknown_strategy_key": (["--set", "evolution.strategy=foo"], "ga, random, aging"),
    "unknown_fidelity": (["--fidelity", "hyperband"], "'hyperband'"),
    "first_rung_above_last": (["--fidelity", "sha", "--set", "fidelity.min_epochs=20"],
                              "fidelity.min_epochs=20 exceeds fidelity.max_epochs=9"),
    "eta_below_2": (["--fidelity", "sha", "--set", "fidelity.eta=1"], "fidelity.eta=1"),
    "epoch_budget_below_one_rung": (["--fidelity", "sha", "--budget-epochs", "150"],
                                    "--budget-epochs 150 leaves no epochs for the search"),
    "epoch_budget_zero": (["--budget-epochs", "0"], "expected a positive integer"),
    "unknown_inherit": (["--inherit", "grandparent"], "'grandparent'"),
    "unknown_inherit_key": (["--set", "evolution.inherit=all"], "none, parent, first"),
}


@pytest.mark.parametrize("case", sorted(EVOLVE_CASES))
def test_bad_evolve_arguments(tmp_path: Path, case: str):
    args, needle = EVOLVE_CASES[case]
    res = gnas("evolve", *args, "--run-dir", tmp_path / "run")
    assert_user_error(res, needle)
    assert not (tmp_path / "run").exists()


def test_missing_data_files(tmp_path: Path):
    (tmp_path / "keras").mkdir()
    res = gnas("evolve", "--dataset", "mnist", "--run-dir", tmp_path / "run",
               env={"KERAS_HOME": str(tmp_path / "keras")})
    assert_user_error(res, "mnist.npz")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text,needle", [("[evolution\npopulation = 3\n", "not valid TOML"),
                                         ("[evolution]\npopsize = 3\n", "evolution.popsize"),
                                         ("[evolution]\npopulation = \"x\"\n", "expected int"),
                                         ("[evolution]\nmutpb = 1.5\n", "evolution.mutpb"),
                                         ("[train]\nepochs = 0\n", "train.epochs=0")])
def test_bad_config_file(tmp_path: Path, text: str, needle: str):
    config = tmp_path / "gnas.toml"
    config.write_text(text)
    assert_user_error(gnas("evolve", "--config", config, "--run-dir", tmp_path / "run"), needle)
    assert not (tmp_path / "run").exists()


def test_run_dir_that_is_not_a_run_is_refused_and_untouched(tmp_path: Path):
    target = tmp_path / "thesis"
    (target / "chapters").mkdir(parents=True)
    (target / "chapters" / "one.tex").write_text("precious")
    (target / "notes.txt").write_text("keep me")
    before = tree(target)
    assert_user_error(gnas("evolve", "--run-dir", target), "not a gnas run")
    assert tree(target) == before


@pytest.mark.parametrize("where", ["below_a_file", "proc"])
def test_unwritable_run_dir_is_detected_at_start(tmp_path: Path, where: str):
    """Root ignores chmod, so the paths are ones nobody can create: under a file, in /proc."""
    (tmp_path / "file.txt").write_text("x")
    target = tmp_path / "file.txt" / "run" if where == "below_a_file" else Path("/proc/gnas-run")
    res = gnas("evolve", "--run-dir", target)
    assert_user_error(res, str(target))
    assert (tmp_path / "file.txt").read_text() == "x"


def test_resume_of_a_directory_that_is_not_a_run(tmp_path: Path):
    (tmp_path / "data.csv").write_text("a,b\n")
    before = tree(tmp_path)
    assert_user_error(gnas("resume", tmp_path), "not a gnas run")
    assert_user_error(gnas("resume", tmp_path / "missing"), "does not exist")
    assert tree(tmp_path) == before


# ------------------------------------------------------ safe to open: data
def test_pickle_inside_an_npz_data_set_is_refused(tmp_path: Path):
    marker = tmp_path / "PWNED"
    live_payload(tmp_path, marker)
    labels = np.empty(40, dtype=object)
    labels[:] = [Payload(marker) for _ in range(40)]
    data = _npz(tmp_path / "evil.npz", y_train=labels)
    assert_user_error(gnas("evolve", "--dataset", data, "--run-dir", tmp_path / "run"), "objects")
    assert not marker.exists()


def test_pickle_in_the_keras_cache_is_refused(tmp_path: Path):
    """CIFAR batches are pickles by format; only NumPy arrays may come out of them."""
    marker = tmp_path / "PWNED"
    live_payload(tmp_path, marker)
    batches = tmp_path / "data" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (batches / name).write_bytes(pickle.dumps({"data": Payload(marker), "labels": [0]}))
    res = gnas("evolve", "--dataset", "cifar10", "--data-dir", tmp_path / "data",
               "--run-dir", tmp_path / "run")
    assert_user_error(res, "refusing")
    assert not marker.exists()


# ------------------------------------------------------------ gnas resume
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A real, complete run: initial population + 1 generation on digits."""
    run = tmp_path_factory.mktemp("bad-input") / "run"
    res = gnas("evolve", *TINY, "--generations", "1", "--run-dir", run)
    assert res.returncode == 0, res.stderr[-3000:]
    return run


@pytest.fixture
def run(finished_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def test_evolve_into_an_existing_run_is_refused(run: Path):
    before = tree(run)
    assert_user_error(gnas("evolve", *TINY, "--run-dir", run), "gnas resume")
    assert tree(run) == before


def test_both_checkpoints_damaged(run: Path):
    (run / "state.json").write_bytes((run / "state.json").read_bytes()[:100])
    (run / "state.prev.json").write_text("{\"generation\": ")
    before = tree(run)
    assert_user_error(gnas("resume", run), "no usable checkpoint")
    assert tree(run) == before, "a damaged checkpoint was overwritten or something else was touched"


def test_newer_schema_in_the_marker(run: Path):
    marker = json.loads((run / "gnas-run.json").read_text())
    (run / "gnas-run.json").write_text(json.dumps({**marker, "schema_version": 99}))
    before = tree(run)
    assert_user_error(gnas("resume", run), "newer gnas")
    assert tree(run) == before


def test_newer_schema_in_the_checkpoint(run: Path):
    from gnas.runs.state import with_checksum as _with_checksum

    state = json.loads((run / "state.json").read_text())
    state.pop("checksum")
    (run / "state.json").write_text(_with_checksum({**state, "schema_version": 99}))
    before = tree(run)
    assert_user_error(gnas("resume", run), "newer gnas")
    assert tree(run) == before


@pytest.mark.parametrize("args,needle", [
    (["--set", "space.stage_nodes=[3,3,3,3]"], "space.stage_nodes cannot change on resume"),
    (["--population", "6"], "evolution.population cannot change"),
    (["--set", "data.dataset=\"boston_housing\""], "data.dataset cannot change"),
    (["--set", "evolution.sed=1"], "evolution.sed"),
    (["--set", "fidelity.schedule=\"sha\""], "fidelity.schedule cannot change"),
    (["--set", "evolution.inherit=\"parent\""], "evolution.inherit cannot change"),
    (["--generations", "0"], "evolution.generations=0"),
])
def test_resume_refuses_changing_the_search(run: Path, args: list[str], needle: str):
    before = tree(run)
    assert_user_error(gnas("resume", run, *args), needle)
    assert tree(run) == before


def test_resume_with_a_different_chromosome_length(run: Path):
    """A hand-edited config.toml whose search space no longer fits the checkpoint."""
    config = run / "config.toml"
    config.write_text(config.read_text().replace("stage_nodes = [\n    3,\n    4,\n    4,\n]",
                                                 "stage_nodes = [3, 4, 4, 5]"))
    assert "[3, 4, 4, 5]" in config.read_text()
    refused_untouched(run, ["resume", run], "space.stage_nodes was changed by hand")


def test_pickled_checkpoints_are_never_unpickled(run: Path, tmp_path: Path):
    marker = tmp_path / "PWNED"
    payload = live_payload(tmp_path, marker)
    (run / "state.json").write_bytes(payload)
    (run / "state.prev.json").write_bytes(payload)
    before = tree(run)
    assert_user_error(gnas("resume", run), "no usable checkpoint")
    assert not marker.exists()
    assert tree(run) == before


@pytest.mark.parametrize("name", ["evaluations.db", "config.toml"])
def test_pickled_database_or_config_is_refused(run: Path, tmp_path: Path, name: str):
    marker = tmp_path / "PWNED"
    (run / name).write_bytes(live_payload(tmp_path, marker))
    for side in ("evaluations.db-wal", "evaluations.db-shm"):
        (run / side).unlink(missing_ok=True)
    before = tree(run)
    assert_user_error(gnas("resume", run))
    assert_user_error(gnas("report", run))
    assert not marker.exists()
    assert tree(run) == before


def test_pickled_markov_record_is_refused(run: Path, tmp_path: Path):
    marker = tmp_path / "PWNED"
    live_payload(tmp_path, marker)
    records = sorted((run / "markov").glob("gen_*.npz"))
    if not records:
        pytest.skip("this build writes no Markov records")
    evil = np.empty(3, dtype=object)
    evil[:] = [Payload(marker)] * 3
    with open(records[-1], "wb") as fh:
        np.savez(fh, **{k: evil for k in ("generation", "l", "empirical")})
    assert_user_error(gnas("markov", run))
    assert not marker.exists()


@pytest.mark.slow
def test_truncated_checkpoint_falls_back_to_the_previous_one(run: Path):
    original = json.loads((run / "state.json").read_text())
    damaged = (run / "state.json").read_bytes()[:200]
    (run / "state.json").write_bytes(damaged)
    counts_before = _key_counts(run)
    res = gnas("resume", run)
    assert res.returncode == 0, res.stderr[-3000:]
    warnings = [line for line in res.stderr.splitlines() if line.startswith("gnas: warning")]
    assert len(warnings) == 1 and "state.prev.json" in warnings[0]
    moved = list(run.glob("state.damaged-*.json"))
    assert len(moved) == 1 and moved[0].read_bytes() == damaged, "the damaged file must be kept as is"
    resumed = json.loads((run / "state.json").read_text())
    for key in ("generation", "population", "fitness", "hall_of_fame"):
        assert resumed[key] == original[key]
    assert _key_counts(run) == counts_before, "generation 1 was replayed from the cache, not retrained"


def _key_counts(run: Path) -> dict[str, int]:
    import sqlite3

    with sqlite3.connect(run / "evaluations.db") as conn:
        return dict(conn.execute("SELECT genome_key || kind, COUNT(*) FROM evaluations "
                                 "GROUP BY genome_key, kind").fetchall())


# ------------------------------------- the run directory's own files, user paths
def _drop_db_side_files(run: Path) -> None:
    for side in ("evaluations.db-wal", "evaluations.db-shm"):
        (run / side).unlink(missing_ok=True)


def test_foreign_sqlite_database_is_refused_before_anything_is_created(run: Path):
    import sqlite3

    (run / "evaluations.db").unlink()
    _drop_db_side_files(run)
    with sqlite3.connect(run / "evaluations.db") as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('mine')")
    conn.close()
    refused_untouched(run, ["resume", run], "not a gnas evaluation database", "notes")


def test_damaged_database_refused_before_config_toml_is_rewritten(run: Path):
    _drop_db_side_files(run)
    db = run / "evaluations.db"
    body = bytearray(db.read_bytes())
    body[100:] = b"\x5a" * (len(body) - 100)   # the SQLite header stays, the pages are gone
    db.write_bytes(bytes(body))
    refused_untouched(run, ["resume", run, "--generations", "2"], "evaluations.db")


@pytest.mark.parametrize("key,old,new", [("population", "population = 4", "population = 6"),
                                         ("epochs", "epochs = 1", "epochs = 3")])
def test_hand_edit_of_a_search_defining_key_is_refused(run: Path, key: str, old: str, new: str):
    config = run / "config.toml"
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new, 1))
    refused_untouched(run, ["resume", run], f".{key} was changed by hand")


def test_checkpoints_without_their_checksum_are_not_trusted(run: Path):
    for name in ("state.json", "state.prev.json"):
        state = json.loads((run / name).read_text())
        state.pop("checksum")
        (run / name).write_text(json.dumps(state))
    refused_untouched(run, ["resume", run], "no usable checkpoint")


@pytest.mark.parametrize("text", ["[2]", "{\"schema_version\": 2, \"search_config\": []}", "\"run\""])
def test_marker_of_another_shape_is_refused(run: Path, text: str):
    (run / "gnas-run.json").write_text(text)
    refused_untouched(run, ["resume", run], "gnas-run.json is damaged")


def test_damaged_best_summary_is_one_line_on_export(run: Path, tmp_path: Path):
    (run / "best" / "summary.json").write_bytes(b"\xff\xfe{not json")
    line = refused_untouched(run, ["export", run, "--out", tmp_path / "best.keras"], "summary.json")
    assert f"gnas resume {run}" in line
    assert not (tmp_path / "best.keras").exists()


def test_export_to_an_unwritable_place_advises_another_out(run: Path, tmp_path: Path):
    from gnas.report.export import check_out

    line = refused_untouched(run, ["export", run, "--out", "/proc/best.keras"], "/proc")
    assert "resume" not in line and "choose an --out in a writable directory" in line
    assert check_out(tmp_path / "best.keras") == tmp_path / "best.keras"  # the advice, followed
    assert list(tmp_path.iterdir()) == [run]  # the check leaves nothing behind


_DISK_FULL = """
import sqlite3, sys
from gnas.cli.main import main
def full(*a, **k):
    raise sqlite3.OperationalError("database or disk is full")
sqlite3.connect = full
sys.exit(main(sys.argv[1:]))
"""


def test_disk_full_advice_is_a_plain_resume_that_works(run: Path):
    env = dict(os.environ, GNAS_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3")
    before = tree(run)
    res = subprocess.run([sys.executable, "-c", _DISK_FULL, "resume", str(run)], env=env, text=True,
                         capture_output=True, timeout=TIMEOUT_S)
    line = assert_user_error(res, "disk is full", "free space")
    assert tree(run) == before
    advised = line.split("`")[1]
    assert advised == f"gnas resume {run}"
    follow = gnas(*advised.split()[1:])  # space is free again: the advice works
    assert follow.returncode == 0, follow.stderr[-2000:]


def test_disk_full_in_a_new_run_advises_its_resume_for_run_dir_with_equals(tmp_path: Path):
    """``--run-dir=X`` names the run as ``--run-dir X`` does (tests/unit/test_supervisor.py)."""
    env = dict(os.environ, GNAS_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3")
    run = tmp_path / "new run"
    res = subprocess.run([sys.executable, "-c", _DISK_FULL, "evolve", *TINY, f"--run-dir={run}"],
                         env=env, text=True, capture_output=True, timeout=TIMEOUT_S)
    line = assert_user_error(res, "disk is full", "free space")
    assert line.split("`")[1] == f"gnas resume '{run}'"


def test_resume_with_fewer_generations_than_done_is_refused(run: Path):
    """A checkpoint at generation 2 (as a longer run leaves it) cannot be cut to 1."""
    from gnas.runs.state import with_checksum as _with_checksum

    state = json.loads((run / "state.json").read_text())
    state.pop("checksum")
    (run / "state.json").write_text(_with_checksum({**state, "generation": 2}))
    refused_untouched(run, ["resume", run, "--generations", "1"], "below the 2 generations",
                      "give 2 or more")


def test_report_into_a_pipe_whose_reader_left_exits_0_in_silence(run: Path):
    """``gnas report RUN | head -0``: nothing is wrong, so no traceback and no error."""
    read, write = os.pipe()
    os.close(read)
    try:
        res = subprocess.run([sys.executable, "-m", "gnas", "report", str(run)], stdout=write,
                             stderr=subprocess.PIPE, text=True, timeout=TIMEOUT_S,
                             env=dict(os.environ, GNAS_OFFLINE="1"))
    finally:
        os.close(write)
    assert (res.returncode, res.stderr) == (0, "")


def test_odd_data_dir_round_trips_and_nothing_to_do_keeps_the_checkpoints(run: Path, tmp_path: Path):
    """A newline, quotes, a tab and unicode in --data-dir; a finished run resumed as it is."""
    import tomllib

    odd = tmp_path / 'da"ta\n\tdir \'ü\''
    odd.mkdir()
    checkpoints = {n: (run / n).read_bytes() for n in ("state.json", "state.prev.json")}
    res = gnas("resume", run, "--data-dir", odd)
    assert res.returncode == 0, res.stderr[-2000:]
    assert tomllib.loads((run / "config.toml").read_text(encoding="utf-8"))["data"]["data_dir"] == str(odd)
    assert {n: (run / n).read_bytes() for n in checkpoints} == checkpoints
    res = gnas("report", run)
    assert res.returncode == 0, res.stderr[-2000:]
