"""gnas.runs.paths: the one check for what gnas writes or deletes in a run, and for its outputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gnas.errors import ConfigError, RunDirError
from gnas.runs.data_digest import data_digest
from gnas.runs.paths import check_managed_entries, check_output, inside, is_key


def test_inside_keeps_paths_in_the_run_and_refuses_the_rest(tmp_path: Path):
    run = tmp_path / "run"
    (run / "weights").mkdir(parents=True)
    assert inside(run, "weights/a.npz") == run.resolve() / "weights" / "a.npz"
    for bad in ("../x", "weights/../../x", str(tmp_path / "x"), "/etc/passwd", "weights/.."):
        with pytest.raises(RunDirError, match="leads outside"):
            inside(run, bad)
    with pytest.raises(RunDirError, match="leads outside"):
        inside(run, "a.npz", "fidelity")  # in the run, but not in its folder


def test_inside_follows_links_above_the_name_but_not_the_name(tmp_path: Path):
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    run.mkdir()
    elsewhere.mkdir()
    (run / "weights").symlink_to(elsewhere)
    with pytest.raises(RunDirError):
        inside(run, "weights/a.npz")
    (run / "link.npz").symlink_to(elsewhere / "f.npz")
    assert inside(run, "link.npz") == run.resolve() / "link.npz"  # unlinking it removes the link only


def test_only_links_leading_outside_are_refused(tmp_path: Path):
    run = tmp_path / "run"
    (run / "real").mkdir(parents=True)
    (run / "best").symlink_to("real")
    check_managed_entries(run)
    (run / "markov").symlink_to(tmp_path)
    with pytest.raises(RunDirError, match="markov is a symlink"):
        check_managed_entries(run)


def test_outputs_never_land_on_a_runs_own_files(tmp_path: Path):
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    (run / "evaluations.db").write_bytes(b"")
    (tmp_path / "alias.csv").symlink_to(run / "evaluations.db")
    for bad in (run / "evaluations.db", run / "state.json", run / "best" / "x.keras", tmp_path / "alias.csv",
                run / "state.prev.json"):
        with pytest.raises(ConfigError, match="one of the run's own files"):
            check_output(run, bad, "--out")
    for fine in (tmp_path / "m.keras", run / "export" / "best.keras", run / "new.csv"):
        assert check_output(run, fine, "--out") == fine


def test_keys_and_the_data_digest():
    assert is_key("0123456789abcdef0123") and not is_key("../x") and not is_key("0123456789ABCDEF0123")
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert data_digest([x, np.arange(3)]) == data_digest([x.copy(), np.arange(3)])
    assert data_digest([x]) != data_digest([x.reshape(4, 3)])
    changed = x.copy()
    changed[0, 0] += 1
    assert data_digest([x]) != data_digest([changed])
    assert data_digest([np.array(["a", "b"], dtype=object)]) != data_digest([np.array(["a", "c"], dtype=object)])
