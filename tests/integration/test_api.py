"""The Python interface: real searches on in-memory arrays, resumed from the command line."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gnas
from gnas.errors import ConfigError, DataError, RunDirError

from helpers import gnas as gnas_cli  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FAST = {"generations": 1, "population": 4, "epochs": 1, "lambda_c": 0.786, "threads": 1,
        "config": {"evolution.final_seeds": 0, "final.max_epochs": 3}}


def readme_example() -> str:
    """The Python block of the README's "Quick start: Python" section."""
    section = (ROOT / "README.md").read_text().split("## Quick start: Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)\n```", section, flags=re.S)[0]


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    return load_digits(return_X_y=True)


def test_the_readme_example_runs(tmp_path):
    env = {**os.environ, "GNAS_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", readme_example()], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    score, evaluations = proc.stdout.splitlines()[0].split()
    assert float(score) > 50 and int(evaluations) >= 4
    pairs = [found for line in proc.stdout.splitlines() if len(found := re.findall(r"\[([\d ]+)\]", line)) == 2]
    predicted, actual = pairs[-1]
    assert sum(p == a for p, a in zip(predicted.split(), actual.split())) >= 3  # raw inputs, right mostly
    assert (tmp_path / "runs" / "api-digits" / "data.npz").is_file()


def test_a_search_on_arrays_uses_the_validation_split_given_and_resumes_from_the_cli(digits, tmp_path):
    x, y = digits
    seen, generations = [], []
    run = tmp_path / "run"
    result = gnas.evolve(x[:900], y[:900], validation_data=(x[900:950], y[900:950]),
                         test_data=(x[950:], y[950:]), run_dir=run, on_evaluation=seen.append,
                         on_generation=generations.append, **FAST)
    assert result.run_dir == run and (run / "data.npz").is_file()
    with np.load(run / "data.npz", allow_pickle=False) as stored:
        assert stored["x_val"].shape == (50, 64) and np.array_equal(stored["x_train"], x[:900])
    ok = [r for r in result.evaluations if r["status"] == "ok"]
    assert ok and all(abs(r["val_error"] * 50 - round(r["val_error"] * 50)) < 1e-6 for r in ok)
    trained = [r for r in seen if not r["cached"]]  # a cache hit is told too, but is no new row
    assert len(trained) == len(result.evaluations)
    assert {r["key"] for r in seen} == {r["key"] for r in result.evaluations}
    assert [g["generation"] for g in generations] == [0, 1]
    assert result.summary["test_samples"] == len(y) - 950 if "test_samples" in result.summary else True
    gnas_cli("resume", run, "--generations", "2")  # the command line finds the arrays in the run
    again = gnas.load(run)
    assert len(again.evaluations) > len(result.evaluations)


def test_bad_settings_and_arrays_raise_one_line_errors_and_write_nothing(digits, tmp_path):
    x, y = digits
    run = tmp_path / "never"
    cases = [
        (lambda: gnas.evolve(x, y, run_dir=run, generatoins=2), ConfigError, "unknown setting generatoins"),
        (lambda: gnas.evolve(x, y, run_dir=run, generations=-1), ConfigError, "generations"),
        (lambda: gnas.evolve(x, y[:10], run_dir=run), DataError, "one target per sample"),
        (lambda: gnas.evolve(x.astype(str), y, run_dir=run), DataError, "must be numeric"),
        (lambda: gnas.evolve(x, y, run_dir=run, validation_data=x), DataError, "must be a pair"),
        (lambda: gnas.evolve(x, y, run_dir=run, config={"data.dataset": "mnist"}), ConfigError, "data.dataset"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=re.escape(message)) as info:
            call()
        assert "\n" not in str(info.value)
        assert not run.exists()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep")
    with pytest.raises(RunDirError):
        gnas.evolve(x, y, run_dir=tmp_path / "taken", **FAST)
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["mine.txt"]
    assert not list(tmp_path.glob(".gnas-arrays-*"))


def test_without_test_data_a_fixed_stratified_share_is_held_out(digits, tmp_path):
    from gnas.api import _arrays
    from gnas.datasets.held_out import TEST_FRACTION

    x, y = digits
    a, b = _arrays(x, y, None, None), _arrays(x, y, None, None)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert len(a["y_test"]) == pytest.approx(TEST_FRACTION * len(y), abs=10)
    for c in range(10):  # every class keeps its share
        assert (a["y_test"] == c).sum() == pytest.approx(TEST_FRACTION * (y == c).sum(), abs=1)
    assert len(a["y_train"]) + len(a["y_test"]) == len(y)


def test_verbose_shows_gnas_messages_where_nothing_else_would_and_a_bad_budget_raises(digits, tmp_path,
                                                                                      capfd, monkeypatch):
    import logging

    x, y = digits
    monkeypatch.setenv("GNAS_CACHE_DIR", "off")
    logger = logging.getLogger("gnas")
    monkeypatch.setattr(logger, "handlers", [])  # as in a notebook: no command line configured it
    settings = {k: v for k, v in FAST.items() if k != "lambda_c"}
    result = gnas.evolve(x[:400], y[:400], validation_data=(x[400:450], y[400:450]),
                         test_data=(x[450:500], y[450:500]), run_dir=tmp_path / "run", verbose=True,
                         **settings)
    err = capfd.readouterr().err
    assert "gnas: calibrating lambda_c" in err and "gnas: lambda_c = " in err
    assert logger.handlers == []  # routed for the call only
    # the run's own splits, and a table of evaluations a user can read
    data = gnas.load(tmp_path / "run").data
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (400, 50, 50)
    assert np.array_equal(data.y_test, y[450:500]) and np.array_equal(data.y_val, y[400:450])
    rows = result.table()
    assert len(rows) == len(result.evaluations)
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(r["fitness"] >= r["val_error"] for r in ok)  # F = error + complexity term
    assert all(r["epochs"] == 1 and r["architecture"].startswith("stage 0:") for r in rows)
    assert all(0 < r["learning_rate"] < 1 and 0 <= r["momentum"] < 1 for r in rows)
    with pytest.raises(ConfigError, match="time_budget"):
        gnas.evolve(x[:400], y[:400], run_dir=tmp_path / "other", time_budget="soon", **FAST)
    assert not (tmp_path / "other").exists()
