"""The calibration cache: where it lives, what its key depends on, what it keeps."""
from __future__ import annotations

import json

import numpy as np

from gnas.chaos import cache

BATCHES = [np.zeros((4, 8), dtype=np.float32), np.ones((4, 8), dtype=np.float32)]


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GNAS_CACHE_DIR", str(tmp_path / "c"))
    assert cache.cache_dir() == tmp_path / "c"
    for off in ("off", "", "0"):
        monkeypatch.setenv("GNAS_CACHE_DIR", off)
        assert cache.cache_dir() is None and cache.path_for("k") is None
        assert cache.store("k", {"lambda_c": 0.5}) is None
    monkeypatch.delenv("GNAS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "gnas" / "chaos"


def test_key_changes_with_everything_the_sweep_depends_on():
    base = cache.calibration_key("f" * 16, seed=0, growth=True, inputs=BATCHES)
    assert base == cache.calibration_key("f" * 16, seed=0, growth=True, inputs=[b.copy() for b in BATCHES])
    other_inputs = [BATCHES[0], BATCHES[1] * 2]
    assert len({base,
                cache.calibration_key("e" * 16, seed=0, growth=True, inputs=BATCHES),
                cache.calibration_key("f" * 16, seed=1, growth=True, inputs=BATCHES),
                cache.calibration_key("f" * 16, seed=0, growth=False, inputs=BATCHES),
                cache.calibration_key("f" * 16, seed=0, growth=True, inputs=other_inputs),
                cache.calibration_key("f" * 16, seed=0, growth=True, inputs=BATCHES[:1])}) == 6


def test_store_keeps_the_record_without_its_runs_figure(tmp_path, monkeypatch):
    monkeypatch.setenv("GNAS_CACHE_DIR", str(tmp_path / "deep" / "cache"))
    path = cache.store("abc", {"lambda_c": 0.5, "source": "preset", "png": "/run/chaos.png"})
    assert path == tmp_path / "deep" / "cache" / "abc.json"
    assert json.loads(path.read_text()) == {"lambda_c": 0.5, "source": "preset", "key": "abc"}


def test_an_unwritable_cache_costs_nothing(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("GNAS_CACHE_DIR", str(blocker / "cache"))
    assert cache.store("abc", {"lambda_c": 0.5}) is None


def test_a_kept_record_is_used_only_when_its_key_and_sweep_are_sound():
    point = {"lambda": 0.5, "exponent": -0.1, "std": 0.02}
    assert cache.usable({"key": "k", "sweep": [point]}, "k")
    assert not cache.usable({"key": "other", "sweep": [point]}, "k")
    assert not cache.usable({"key": "k", "sweep": []}, "k")
    assert not cache.usable({"key": "k", "sweep": [{**point, "exponent": "x"}]}, "k")
    assert not cache.usable({"key": "k", "sweep": [{**point, "std": float("nan")}]}, "k")
    assert not cache.usable(["k"], "k")
