"""More bad input through the real CLI and API: what is read from outside a run is checked.

Each refusal is one line on stderr (``gnas: error: ...``), exit status 2, no
traceback, and no run directory left behind; each documented fallback (a kept
calibration measured afresh, a damaged weights file trained from scratch)
finishes the run with the reason said.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_bad_input import TINY, assert_user_error, gnas  # noqa: E402


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    return load_digits(return_X_y=True)


def save_npz(path: Path, x: np.ndarray, y: np.ndarray, n_test: int = 100) -> Path:
    np.savez(path, x_train=x[n_test:], y_train=y[n_test:], x_test=x[:n_test], y_test=y[:n_test])
    return path


def refused_nothing_written(tmp_path: Path, args: list, *needles: str) -> str:
    """``gnas evolve ARGS`` is refused in one line and no run directory appears."""
    run = tmp_path / "run"
    line = assert_user_error(gnas("evolve", *args, *TINY, "--run-dir", str(run)), *needles)
    assert not run.exists(), "a refused command left a run directory"
    return line


# ------------------------------------------------------------ the calibration cache
TINY_CALIBRATED = ["--preset", "tiny", "--generations", "1", "--population", "2", "--epochs", "1",
                   "--max-train-samples", "100", "--threads", "1", "--set", "evolution.final_seeds=0",
                   "--set", "final.max_epochs=1", "-q"]


def kept_path(cache_dir: Path) -> Path:
    """Where the run of TINY_CALIBRATED looks for its kept calibration."""
    from gnas.chaos.calibration import run_cache_key
    from gnas.config import load_config
    from gnas.datasets import load_for_run
    from gnas.genome.factory import make_space

    cfg = load_config(None, {"data.max_train_samples": 100, "evolution.population": 2,
                             "evolution.generations": 1, "train.epochs": 1}, preset="tiny")
    dataset = load_for_run(cfg)
    return cache_dir / f"{run_cache_key(cfg, dataset, make_space(cfg, dataset))}.json"


@pytest.mark.slow
@pytest.mark.parametrize("plant, why", [
    (lambda p: os.mkfifo(p), "not a regular file"),
    (lambda p: p.write_text("[" * 100_000 + "]" * 100_000), "not a JSON record"),
])
def test_a_fifo_or_deep_nesting_in_the_calibration_cache_is_measured_afresh(tmp_path, plant, why):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    kept = kept_path(cache_dir)
    plant(kept)
    run = tmp_path / "run"
    proc = gnas("evolve", *TINY_CALIBRATED, "--run-dir", str(run), env={"GNAS_CACHE_DIR": str(cache_dir)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"the kept calibration {kept} is not used ({why})" in proc.stderr
    chaos = json.loads((run / "chaos.json").read_text())
    assert chaos["source"] in ("measured", "preset") and 0.0 <= chaos["lambda_c"] <= 1.0


@pytest.mark.slow
def test_a_kept_record_with_a_string_interval_and_a_huge_reason_is_not_copied_into_the_run(tmp_path):
    """Variant: the right key, fields of the wrong type (and a 5 MB reason) -> measured afresh;
    the run's chaos.json is the sweep it measured, and the run reports and resumes."""
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    kept = kept_path(cache_dir)

    record = {"key": kept.stem, "lambda_c": True, "lambda_c_ci": "0.1,0.2", "reason": "x" * 5_000_000,
              "source": "measured", "sweep": [{"lambda": 0.5, "exponent": 0.0, "std": 0.0}]}
    kept.write_text(json.dumps(record))
    run = tmp_path / "run"
    env = {"GNAS_CACHE_DIR": str(cache_dir)}
    proc = gnas("evolve", *TINY_CALIBRATED, "--run-dir", str(run), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "measuring lambda_c afresh" in proc.stderr
    chaos = json.loads((run / "chaos.json").read_text())
    assert len(chaos["reason"]) < 1000 and isinstance(chaos["lambda_c"], float)
    assert chaos["lambda_c_ci"] is None or isinstance(chaos["lambda_c_ci"], list)
    assert gnas("report", str(run), "--json", env=env).returncode == 0
    assert gnas("resume", str(run), env=env).returncode == 0
    assert (run / "chaos.json").stat().st_size < 10_000


# ------------------------------------------------------------ damaged parent weights
INHERIT = [*TINY, "--generations", "1", "--inherit", "parent", "--set", "evolution.final_seeds=0",
           "--set", "final.max_epochs=1", "-q"]


def child_notes(run: Path, generation: int) -> list[str]:
    import sqlite3

    with sqlite3.connect(run / "evaluations.db") as db:
        rows = [json.loads(m) for (m,) in db.execute(
            "SELECT metrics FROM evaluations WHERE generation = ? AND kind IN ('search', 'champion')",
            (generation,))]
    return [m["inherit_note"] for m in rows if "inherit_note" in m]


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "not a zip"])
def test_damaged_parent_weights_train_the_child_from_scratch_with_the_reason(tmp_path, damage):
    run = tmp_path / "run"
    proc = gnas("evolve", *INHERIT, "--run-dir", str(run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    kept = sorted((run / "weights").glob("*.npz"))
    assert kept, "the run kept no parent weights"
    for f in kept:
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\0" * 64)
    proc = gnas("resume", str(run), "--generations", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "trains those layers from scratch" in proc.stderr
    notes = child_notes(run, 2)
    assert notes and all(n.startswith("cannot read the parent weights ") for n in notes)
    assert json.loads((run / "state.json").read_text())["generation"] == 2
    assert (run / "best" / "model.keras").is_file()


# ------------------------------------------------------------ data gnas refuses
@pytest.fixture(scope="module")
def digits():
    return digits_arrays()


@pytest.mark.parametrize("scale, dtype", [(1e30, np.float32), (1e300, np.float64), (1e20, np.float64),
                                          (10 ** 18, np.uint64)])
def test_features_float32_training_cannot_square_are_refused(tmp_path, digits, scale, dtype):
    x, y = digits
    big = x.astype(dtype) * dtype(scale) if dtype == np.uint64 else (x * scale).astype(dtype)
    data = save_npz(tmp_path / "big.npz", big, y)
    line = refused_nothing_written(tmp_path, ["--dataset", data], "x_train holds values as large as",
                                   "rescale")
    assert "e+" in line  # the magnitude in exponent form, not hundreds of digits


def test_features_just_within_float32_training_are_taken(tmp_path, digits):
    """The bound is not a blanket refusal of large numbers: 1e17 trains and exports sound."""
    from gnas.datasets import load_dataset

    x, y = digits
    data = load_dataset(str(save_npz(tmp_path / "ok.npz", x * 1e17, y)))
    assert np.all(np.isfinite(data.input_std)) and np.all(np.isfinite(data.input_std.astype(np.float32) ** 2))


def test_regression_targets_beyond_float32_are_refused(tmp_path, digits):
    x, y = digits
    data = save_npz(tmp_path / "reg.npz", x, y * 1e300 + 0.5)
    refused_nothing_written(tmp_path, ["--dataset", data], "y_train holds values as large as")


@pytest.mark.parametrize("labels", ["int", "float"])
def test_labels_that_would_need_trillions_of_outputs_are_refused(tmp_path, digits, labels):
    x, y = digits
    big = y.astype(np.int64) * 10 ** 12 if labels == "int" else y.astype(np.float64) * 1e12
    data = save_npz(tmp_path / "labels.npz", x, big)
    refused_nothing_written(tmp_path, ["--dataset", data], "10 distinct values", "0..K-1",
                            "np.unique(y, return_inverse=True)")


def test_negative_labels_are_told_so(tmp_path, digits):
    x, y = digits
    data = save_npz(tmp_path / "neg.npz", x, y - 5)
    line = refused_nothing_written(tmp_path, ["--dataset", data], "negative class labels",
                                   "received -5 to 4")
    assert "must lie in 0..4" not in line


@pytest.mark.parametrize("source", ["npz", "csv"])
def test_a_conv_search_of_vectors_is_refused(tmp_path, digits, source):
    x, y = digits
    if source == "npz":
        data = str(save_npz(tmp_path / "vectors.npz", x, y))
    else:
        data = str(tmp_path / "vectors.csv")
        np.savetxt(data, np.column_stack([x[:300], y[:300]]), delimiter=",", fmt="%g")
    refused_nothing_written(tmp_path, ["--dataset", data, "--family", "conv"],
                            "space.family = conv needs images", "--family dense")


@pytest.mark.parametrize("text", ["a,b,target\n", "a;b;target\r\n\r\n"])
def test_a_header_only_csv_says_no_data_rows(tmp_path, text):
    data = tmp_path / "header.csv"
    data.write_text(text)
    line = refused_nothing_written(tmp_path, ["--dataset", data], "no data rows")
    assert "holds" not in line


@pytest.mark.parametrize("value", ["1e300", "1e40"])
def test_a_huge_setting_is_shown_in_exponent_form(tmp_path, value):
    line = refused_nothing_written(tmp_path, ["--set", f"evolution.inherit_max_mb={value}"],
                                   "evolution.inherit_max_mb=", "out of range")
    assert len(line) < 200 and "e+" in line


# ------------------------------------------------------------ the Python interface
API = {"generations": 1, "population": 2, "epochs": 1, "lambda_c": 0.8, "threads": 1}


@pytest.mark.parametrize("x, y, name", [
    ([[1.0, 2.0], [3.0]] * 10, [0, 1] * 10, "x_train"),
    ([[1.0, 2.0]] * 20, [[0], [1, 2]] * 10, "y_train"),
])
def test_a_ragged_list_is_a_data_error(tmp_path, x, y, name):
    import gnas
    from gnas.errors import DataError

    with pytest.raises(DataError, match=f"^{name} is not a rectangular array"):
        gnas.evolve(x, y, run_dir=tmp_path / "run", **API)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("change, needle", [
    (lambda x, y: (np.where(np.arange(len(x))[:, None] == 7, np.nan, x), y), "x_train contains NaN"),
    (lambda x, y: (x * 1e300, y), "x_train holds values as large as"),
    (lambda x, y: (x, y - 5), "y_train holds negative class labels"),
    (lambda x, y: (x, y * 10 ** 12), "10 distinct values"),
])
def test_api_errors_name_what_the_caller_passed_not_a_file_of_gnas(tmp_path, digits, change, needle):
    import gnas
    from gnas.errors import DataError

    x, y = change(*digits)
    with pytest.raises(DataError) as err:
        gnas.evolve(x, y, run_dir=tmp_path / "run", **API)
    message = str(err.value)
    assert needle in message and message.startswith("gnas.evolve: ")
    assert "data.npz" not in message and ".gnas-arrays-" not in message
    assert not (tmp_path / "run").exists()
    assert not list(tmp_path.glob(".gnas-arrays-*"))


def test_api_validation_data_is_named_too(tmp_path, digits):
    import gnas
    from gnas.errors import DataError

    x, y = digits
    with pytest.raises(DataError, match=r"^gnas.evolve: x_val contains NaN"):
        gnas.evolve(x[:900], y[:900], validation_data=(x[900:] * np.nan, y[900:]),
                    run_dir=tmp_path / "run", **API)
