"""The calibration cache: where it lives, what its key depends on, what it keeps."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

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


# ------------------------------------------------- kept records are outside input
def sound_record(key: str = "k") -> dict:
    """A record as a run keeps it (every field :meth:`Calibration.to_dict` writes)."""
    return {"lambda_c": 0.881, "source": "preset", "reason": "no robust crossing", "weight_scale": 2.0,
            "samples": 32, "batch": 64, "seed": 3, "network": "search", "expected": None,
            "seconds": 18.5, "batches": 4, "crossing_at": 0.22, "lambda_c_ci": [0.2, 0.32],
            "robust": False, "crossing_share": 0.74, "chromosomes": "run",
            "sweep": [{"lambda": 0.0, "exponent": 0.003, "std": 0.03},
                      {"lambda": 1.0, "exponent": -0.5, "std": 0.1}],
            "crossing": False, "dataset": "digits", "space": "726bef5d2c1804db", "key": key}


def load_planted(tmp_path, monkeypatch, caplog, content) -> tuple[dict | None, str]:
    """Plant ``content`` (bytes, a record, or a callable making the file) as key k's record; load it."""
    monkeypatch.setenv("GNAS_CACHE_DIR", str(tmp_path))
    path = tmp_path / "k.json"
    if callable(content):
        content(path)
    else:
        path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    caplog.clear()
    with caplog.at_level("WARNING", logger="gnas.chaos.cache"):
        record = cache.load("k", "digits", "726bef5d2c1804db")
    return record, caplog.text


def test_a_sound_record_is_taken_whole(tmp_path, monkeypatch, caplog):
    record, log = load_planted(tmp_path, monkeypatch, caplog, sound_record())
    assert record == sound_record() and log == ""


def test_a_missing_record_is_silent(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("GNAS_CACHE_DIR", str(tmp_path))
    with caplog.at_level("WARNING"):
        assert cache.load("absent", "digits", "726bef5d2c1804db") is None
    assert caplog.text == ""


@pytest.mark.parametrize("change, why", [
    ({"lambda_c_ci": "0.2,0.3"}, "'lambda_c_ci'"),
    ({"lambda_c": True}, "'lambda_c'"),
    ({"lambda_c": 1.5}, "'lambda_c'"),
    ({"reason": "x" * 5_000_000}, "bytes"),
    ({"reason": "x" * 5000}, "'reason'"),
    ({"samples": 3.5}, "'samples'"),
    ({"robust": 1}, "'robust'"),
    ({"sweep": [{"lambda": 0.0, "exponent": 0.1, "std": 0.1, "note": "x"}]}, "sweep"),
    ({"png": "/elsewhere/chaos.png"}, "unknown field 'png'"),
    ({"payload": [1]}, "unknown field 'payload'"),
    ({"dataset": "mnist"}, "another data set"),
])
def test_a_record_with_a_field_of_the_wrong_type_or_range_is_measured_afresh(
        tmp_path, monkeypatch, caplog, change, why):
    record, log = load_planted(tmp_path, monkeypatch, caplog, {**sound_record(), **change})
    assert record is None
    assert "measuring lambda_c afresh" in log and str(tmp_path / "k.json") in log and why in log


def test_a_record_missing_a_field_is_measured_afresh(tmp_path, monkeypatch, caplog):
    for name in sound_record():
        broken = {k: v for k, v in sound_record().items() if k != name}
        record, log = load_planted(tmp_path, monkeypatch, caplog, broken)
        assert record is None and "afresh" in log, name


@pytest.mark.parametrize("content, why", [
    (b"[" * 100_000 + b"]" * 100_000, "not a JSON record"),   # RecursionError in json
    (b"{" * 200 + b"}", "not a JSON record"),
    (b"\xff\xfe not utf-8", "not a JSON record"),
    (b"", "not a JSON record"),
    (b"[1, 2]", "not a JSON object"),
])
def test_a_damaged_or_deeply_nested_file_is_measured_afresh(tmp_path, monkeypatch, caplog, content, why):
    record, log = load_planted(tmp_path, monkeypatch, caplog, content)
    assert record is None and why in log


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path, monkeypatch, caplog):
    # Nothing ever writes into this FIFO: a blocking open would wait forever.
    record, log = load_planted(tmp_path, monkeypatch, caplog, lambda p: os.mkfifo(p))
    assert record is None and "not a regular file" in log


def test_a_directory_or_a_device_in_its_place_is_refused(tmp_path, monkeypatch, caplog):
    record, log = load_planted(tmp_path, monkeypatch, caplog, lambda p: p.mkdir())
    assert record is None and "not a regular file" in log
    if os.path.exists("/dev/zero"):
        record, log = load_planted(tmp_path / "dev", monkeypatch, caplog,
                                   lambda p: (p.parent.mkdir(), p.symlink_to("/dev/zero")))
        assert record is None and "not a regular file" in log


def test_what_store_writes_load_takes_back(tmp_path, monkeypatch):
    """The round trip: a record kept by one run is the record the next run reads."""
    monkeypatch.setenv("GNAS_CACHE_DIR", str(tmp_path))
    record = {k: v for k, v in sound_record().items() if k != "key"}
    cache.store("k", {**record, "png": "/run/chaos.png"})
    assert cache.load("k", "digits", "726bef5d2c1804db") == sound_record()
