"""RunDir: atomic checkpoints, fallback, the lock, stale files, interrupts, fault points."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gnas.runs import directory as run_dir_lib
from gnas.runs import interrupts
from gnas.config import RunConfig
from gnas.errors import RunDirError
from gnas.runs.atomic import atomic_write_text
from gnas.runs.directory import RunDir
from gnas.runs.interrupts import deferred_interrupts
from gnas.runs.state import SearchState


def make_state(generation: int = 0, **extra) -> SearchState:
    return SearchState(generation=generation, population=["0101", "1100"], fitness=[[0.5], [0.25]],
                       rng_state={"bit_generator": "PCG64", "state": {"state": 1, "inc": 3}},
                       genome_length=4, l=2, hall_of_fame=[{"key": "k", "fitness": 0.25}],
                       logbook=[{"generation": generation, "best": 0.25}], **extra)


@pytest.fixture
def rd(tmp_path: Path) -> RunDir:
    r = RunDir(tmp_path / "run")
    r.create(RunConfig())
    return r


def test_save_load_round_trip(rd: RunDir):
    state = make_state(3, steps={"competition": {"2": {"a": 1}, "10": {"b": 2}}})
    rd.save_state(state)
    assert rd.load_state() == state


def test_previous_checkpoint_kept(rd: RunDir):
    rd.save_state(make_state(0))
    rd.save_state(make_state(1))
    assert json.loads(rd.state_path.read_text())["generation"] == 1
    assert json.loads(rd.prev_state_path.read_text())["generation"] == 0


def test_truncated_state_falls_back_with_one_warning(rd: RunDir):
    rd.save_state(make_state(0))
    rd.save_state(make_state(1))
    rd.state_path.write_text(rd.state_path.read_text()[:50])
    warnings: list[str] = []
    assert rd.load_state(warn=warnings.append).generation == 0
    assert len(warnings) == 1 and "state.prev.json" in warnings[0]


def test_checksum_catches_an_edit_that_is_still_valid_json(rd: RunDir):
    rd.save_state(make_state(0))
    rd.save_state(make_state(1))
    data = json.loads(rd.state_path.read_text())
    data["fitness"][0] = [0.0]
    rd.state_path.write_text(json.dumps(data))
    assert rd.load_state(warn=lambda m: None).generation == 0


@pytest.mark.parametrize("bad", [
    {"population": ["01"]},                   # wrong genome length
    {"population": ["0102", "1100"]},         # not bits
    {"fitness": [[0.5]]},                     # fitness count differs
    {"rng_state": None},
])
def test_inconsistent_state_is_not_a_checkpoint(rd: RunDir, bad: dict):
    rd.save_state(make_state(0))
    data = {k: v for k, v in json.loads(rd.state_path.read_text()).items() if k != "checksum"}
    rd.state_path.write_text(json.dumps({**data, **bad}))
    with pytest.raises(RunDirError, match="no usable checkpoint"):
        rd.load_state()


def test_both_damaged_raises_and_leaves_them(rd: RunDir):
    rd.state_path.write_text("{")
    rd.prev_state_path.write_bytes(b"\x80\x04garbage")
    with pytest.raises(RunDirError, match="no usable checkpoint"):
        rd.load_state()
    assert rd.state_path.read_text() == "{"
    assert rd.prev_state_path.read_bytes() == b"\x80\x04garbage"


def test_save_moves_a_damaged_checkpoint_aside(rd: RunDir):
    rd.save_state(make_state(0))
    rd.save_state(make_state(1))
    rd.state_path.write_text("{trunc")
    rd.save_state(make_state(2))
    damaged = list(rd.path.glob("state.damaged-*.json"))
    assert [p.read_text() for p in damaged] == ["{trunc"]
    assert rd.load_state().generation == 2
    assert json.loads(rd.prev_state_path.read_text())["generation"] == 0, "never the damaged one"


def test_no_checkpoint_yet(rd: RunDir):
    assert rd.load_state() is None


def test_newer_schema_is_refused(rd: RunDir):
    rd.save_state(make_state(0, schema_version=run_dir_lib.SCHEMA_VERSION + 1))
    with pytest.raises(RunDirError, match="newer gnas"):
        rd.load_state()


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path: Path):
    target = tmp_path / "f.json"
    target.write_text("old")

    def boom():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new", before_rename=boom)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_files_follow_the_umask(rd: RunDir):
    mode = rd.config_path.stat().st_mode & 0o777
    mask = os.umask(0)
    os.umask(mask)
    assert mode == 0o666 & ~mask


# ------------------------------------------------------------------ create
def test_create_refuses_non_empty_non_run(tmp_path: Path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(RunDirError, match="not a gnas run"):
        RunDir(tmp_path).create(RunConfig())
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_create_refuses_existing_run(rd: RunDir):
    with pytest.raises(RunDirError, match="gnas resume"):
        RunDir(rd.path).create(RunConfig())


def test_check_new_refuses_path_below_a_file(tmp_path: Path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunDirError, match="not a writable directory"):
        RunDir(tmp_path / "f" / "run").check_new()


def test_open_existing_checks_marker(tmp_path: Path, rd: RunDir):
    with pytest.raises(RunDirError, match="not a gnas run"):
        RunDir(tmp_path).open_existing()
    (rd.path / run_dir_lib.MARKER).write_text("not json")
    with pytest.raises(RunDirError, match="damaged"):
        rd.open_existing()


def test_stale_temp_files_removed(rd: RunDir):
    (rd.path / ".state.json.abc.tmp").write_text("x")
    (rd.markov_dir / "gen_0001.npz.tmp").write_text("x")
    (rd.best_dir / ".model.tmp.keras").write_text("x")
    removed = rd.remove_stale_temp_files()
    assert len(removed) == 3
    assert rd.config_path.exists()


# -------------------------------------------------------------------- lock
def test_lock_is_reentrant_and_removed(rd: RunDir):
    with rd.locked():
        with RunDir(rd.path).locked():
            assert json.loads(rd.lock_path.read_text())["pid"] == os.getpid()
        assert rd.lock_path.exists()
        assert rd.path.resolve() in [p.resolve() for p in run_dir_lib.held_runs()]
    assert not rd.lock_path.exists()


HOLD = textwrap.dedent("""
    import sys, time
    from gnas.runs.directory import RunDir
    RunDir(sys.argv[1]).lock()
    print("locked", flush=True)
    time.sleep(60)
""")


def test_lock_held_by_a_live_process_is_refused_then_taken_over_when_it_dies(rd: RunDir):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(rd.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match=f"in use by process {holder.pid}"):
            rd.lock()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert json.loads(rd.lock_path.read_text())["pid"] == holder.pid  # stale file left by SIGKILL
    with rd.locked():
        assert json.loads(rd.lock_path.read_text())["pid"] == os.getpid()


def test_lock_is_the_same_lock_as_filelock_s(rd: RunDir):
    """The run lock is filelock's native lock (flock, or LockFileEx on Windows) on gnas.lock."""
    from filelock import FileLock

    other = FileLock(str(rd.lock_path))
    other.acquire(timeout=0)
    try:
        with pytest.raises(RunDirError, match="is in use by .*; wait for it to finish"):
            rd.lock()
    finally:
        other.release()
    with rd.locked():
        assert json.loads(rd.lock_path.read_text())["pid"] == os.getpid()


# -------------------------------------------------------------- interrupts
def test_interrupt_waits_for_the_end_of_a_deferred_block():
    from gnas.cli.main import Interrupts

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM)}
    hook = sys.unraisablehook
    Interrupts().install()
    done = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with deferred_interrupts():
                os.kill(os.getpid(), signal.SIGINT)
                done.append("after the signal, inside the block")
        assert done == ["after the signal, inside the block"]
    finally:
        interrupts.acknowledge_interrupt()
        interrupts._deferral["acknowledged"] = False
        for s, handler in saved.items():
            signal.signal(s, handler)
        sys.unraisablehook = hook


FAULT = textwrap.dedent("""
    from gnas.runs.faults import fault_point
    for i in range(1, 4):
        fault_point("x")
        print(i, flush=True)
""")


@pytest.mark.parametrize("spec,printed,code", [("x:2", "1\n", -signal.SIGKILL), ("", "1\n2\n3\n", 0),
                                               ("y:1", "1\n2\n3\n", 0)])
def test_fault_point(spec: str, printed: str, code: int):
    env = dict(os.environ, GNAS_FAULT_AT=spec)
    res = subprocess.run([sys.executable, "-c", FAULT], env=env, capture_output=True, text=True, timeout=60)
    assert (res.stdout, res.returncode) == (printed, code)


def test_a_run_of_the_previous_schema_is_refused_in_one_line(rd: RunDir):
    """Runs of gnas 0.1 (schema 1) key pruned evaluations differently: refused, not misread."""
    marker = rd.path / run_dir_lib.MARKER
    marker.write_text(json.dumps({"schema_version": 1, "gnas_version": "0.1.0"}) + "\n")
    before = marker.read_bytes()
    with pytest.raises(RunDirError, match="gnas 0.1") as err:
        rd.open_existing()
    assert "\n" not in str(err.value) and marker.read_bytes() == before


def test_a_checkpoint_without_its_checksum_is_not_trusted(rd: RunDir):
    rd.save_state(make_state(0))
    rd.save_state(make_state(1))
    data = json.loads(rd.state_path.read_text())
    data.pop("checksum")
    rd.state_path.write_text(json.dumps(data))
    warnings: list[str] = []
    assert rd.load_state(warn=warnings.append).generation == 0
    assert len(warnings) == 1


def test_hand_edited_search_key_is_named_and_resumable_keys_pass(rd: RunDir):
    from gnas.config import apply_overrides
    from gnas.errors import ConfigError

    rd.check_config(apply_overrides(RunConfig(), {"evolution.generations": 50, "train.threads": 2}))
    with pytest.raises(ConfigError, match=r"train\.epochs was changed by hand"):
        rd.check_config(apply_overrides(RunConfig(), {"train.epochs": 7}))


def test_a_half_made_run_directory_is_taken_back(tmp_path: Path, monkeypatch):
    import errno

    def full(path, text, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_dir_lib, "atomic_write_text", full)
    with pytest.raises(OSError):
        RunDir(tmp_path / "new").create(RunConfig())
    assert not (tmp_path / "new").exists()  # so running the command again just works


def test_generations_below_those_done_are_refused():
    from gnas.errors import ConfigError
    from gnas.config import apply_overrides
    from gnas.session import check_generations

    cfg = apply_overrides(RunConfig(), {"evolution.generations": 1})
    check_generations(make_state(1), cfg)
    with pytest.raises(ConfigError, match="below the 2 generations"):
        check_generations(make_state(2), cfg)
