"""A saved model is right on raw inputs: images, vectors, text and regression.

Each kind runs a real (tiny) search and `gnas export`; a fresh interpreter that
never imports gnas loads the file with plain Keras, predicts the *raw* test
split (pixels as the file has them, features unstandardised, word indices
padded with 0, targets in their own units) and must reproduce the test score
that the run's summary and the export report.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import TINY, gnas  # noqa: E402

pytestmark = pytest.mark.slow

SCORE_RAW = """
import json, sys
import numpy as np
import keras
out = {}
for name, model_path, arrays in json.loads(sys.argv[1]):
    model = keras.saving.load_model(model_path)
    data = np.load(arrays, allow_pickle=False)
    pred = model.predict(data["x"], verbose=0)
    if data["task"] == "classification":
        out[name] = {"correct": int((pred.argmax(axis=1) == data["y"]).sum())}
    else:
        out[name] = {"mae": float(np.abs(pred.reshape(-1) - data["y"]).mean())}
out["gnas_imported"] = any(m == "gnas" or m.startswith("gnas.") for m in sys.modules)
print(json.dumps(out))
"""


def _digits(folder: Path) -> tuple[list[str], dict]:
    """The built-in digits: raw test images are scikit-learn's own 0..16 arrays."""
    from gnas.datasets.readers import _read_digits

    raw = _read_digits()
    return ["--dataset", "digits"], {"x": raw.x_test, "y": raw.y_test, "task": "classification"}


def _wine(folder: Path) -> tuple[list[str], dict]:
    """A user .npz of raw chemical measurements (scales from 0.1 to 1,600), with its own validation split."""
    from sklearn.datasets import load_wine

    x, y = load_wine(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    np.savez(folder / "wine.npz", x_train=x[:120], y_train=y[:120], x_val=x[120:140], y_val=y[120:140],
             x_test=x[140:], y_test=y[140:])
    return ["--dataset", folder / "wine.npz"], {"x": x[140:], "y": y[140:], "task": "classification"}


def _wine_csv(folder: Path) -> tuple[list[str], dict]:
    """A CSV with a header, the target named and first, its classes words; 20 % of rows held out."""
    import csv

    from sklearn.datasets import load_wine

    from gnas.datasets.user_csv import _read_user_csv

    wine = load_wine()
    words = ["barolo", "grignolino", "barbera"]
    with open(folder / "wine.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["cultivar", *wine.feature_names])
        writer.writerows([words[t], *(repr(float(v)) for v in row)] for row, t in zip(wine.data, wine.target))
    raw, _ = _read_user_csv(folder / "wine.csv", "cultivar")
    return ["--dataset", f"{folder / 'wine.csv'}:cultivar"], {"x": raw.x_test, "y": raw.y_test,
                                                            "task": "classification"}


def _digit_folder(folder: Path) -> tuple[list[str], dict]:
    """An image folder of 8-bit PNGs, train/ and test/ with one sub-folder per class."""
    from PIL import Image
    from sklearn.datasets import load_digits

    from gnas.datasets.image_folder import _read_image_folder

    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images[:500], digits.target[:500])):
        part = folder / "digits" / ("test" if i % 5 == 0 else "train") / f"digit_{label}"
        part.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 15.9).astype(np.uint8)).save(part / f"{i}.png")
    raw, _ = _read_image_folder(folder / "digits")
    return ["--dataset", folder / "digits"], {"x": raw.x_test, "y": raw.y_test, "task": "classification"}


def _imdb(folder: Path) -> tuple[list[str], dict]:
    """Keras' imdb.npz: ragged word ranks; the model reads them padded with 0."""
    rng = np.random.default_rng(1)

    def reviews(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, n)
        seqs = np.empty(n, dtype=object)
        for i in range(n):  # words 1..40 lean negative, 41..80 positive; some past the vocabulary
            words = rng.integers(1, 41, rng.integers(3, 12)) + 40 * y[i]
            seqs[i] = list(words) + [int(rng.integers(9990, 12000))]
        return seqs, y

    (x_train, y_train), (x_test, y_test) = reviews(80), reviews(40)
    np.savez(folder / "imdb.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    width = max(len(s) for s in x_test)
    padded = np.zeros((len(x_test), width), np.int32)
    for i, s in enumerate(x_test):
        padded[i, : len(s)] = s
    return (["--dataset", "imdb", "--data-dir", folder],
            {"x": padded, "y": y_test, "task": "classification"})


def _diabetes(folder: Path) -> tuple[list[str], dict]:
    """A user .npz regression: disease progression in tenths, targets 2.5..34.6.

    (Integral targets with few distinct values would be read as classes.)
    """
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True, scaled=False)
    y = y / 10.0
    np.savez(folder / "diabetes.npz", x_train=x[:350], y_train=y[:350], x_test=x[350:], y_test=y[350:])
    return ["--dataset", folder / "diabetes.npz"], {"x": x[350:], "y": y[350:], "task": "regression"}


KINDS = {"image": _digits, "vector": _wine, "text": _imdb, "regression": _diabetes, "csv": _wine_csv,
         "image_folder": _digit_folder}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, dict]:
    """Per kind: a tiny run, its export, and the raw test split, then one fresh scoring process."""
    jobs, found = [], {}
    for name, make in KINDS.items():
        folder = tmp_path_factory.mktemp(name)
        args, raw = make(folder)
        run = folder / "run"
        gnas("evolve", *args, "--generations", "1", "--run-dir", run, *TINY)
        out = folder / "model.keras"
        gnas("export", run, "--out", out)
        np.savez(folder / "raw_test.npz", **raw)
        jobs.append([name, str(out), str(folder / "raw_test.npz")])
        found[name] = {"summary": json.loads((run / "best" / "summary.json").read_text()),
                       "sidecar": json.loads(out.with_suffix(".json").read_text()),
                       "best_model": str(run / "best" / "model.keras"), "raw": str(folder / "raw_test.npz")}
    jobs += [[f"{name}/best", found[name]["best_model"], found[name]["raw"]] for name in KINDS]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    proc = subprocess.run([sys.executable, "-c", SCORE_RAW, json.dumps(jobs)], capture_output=True,
                          text=True, env=env, timeout=600, cwd=tmp_path_factory.getbasetemp())
    assert proc.returncode == 0, proc.stderr
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    assert fresh.pop("gnas_imported") is False
    for name in KINDS:
        found[name]["fresh"], found[name]["fresh_best"] = fresh[name], fresh[f"{name}/best"]
    return found


@pytest.mark.parametrize("kind", ["image", "vector", "text", "csv", "image_folder"])
def test_a_classifier_scores_on_raw_inputs_what_the_run_reports(exported, kind):
    run = exported[kind]
    m = run["sidecar"]["metrics"]
    for fresh in (run["fresh"], run["fresh_best"]):  # the export and best/model.keras alike
        assert fresh["correct"] == m["test_correct"]
        assert 100.0 * fresh["correct"] / m["test_samples"] == pytest.approx(run["summary"]["test_score"], abs=1e-4)


def test_a_regression_predicts_in_the_targets_own_units(exported):
    run = exported["regression"]
    std = run["sidecar"]["dataset"]["target_std"]
    assert std > 5  # the targets are not standardised: a model predicting z-scores would be off by far
    for fresh in (run["fresh"], run["fresh_best"]):
        # the report's error is the MAE in standardised units; de-standardising in float32 rounds
        assert fresh["mae"] / std == pytest.approx(run["sidecar"]["metrics"]["test_error"], rel=1e-5)
        assert fresh["mae"] / std == pytest.approx(run["summary"]["test_error"], rel=1e-5)


def test_the_sidecar_records_the_preparation(exported):
    vector = exported["vector"]["sidecar"]["preprocessing"]
    assert vector["input"]["kind"] == "vector" and len(vector["input"]["mean"]) == 13
    assert min(vector["input"]["std"]) > 0 and vector["output"] is None
    image = exported["image"]["sidecar"]["preprocessing"]["input"]
    assert image == {"kind": "image", "scale": 1 / 16, "raw_shape": [8, 8], "shape": [8, 8, 1]}
    text = exported["text"]["sidecar"]["preprocessing"]["input"]
    assert text["kind"] == "text" and text["pad"] == 0 and text["num_words"] == 10_000
    out = exported["regression"]["sidecar"]["preprocessing"]["output"]
    assert out["std"] == pytest.approx(exported["regression"]["sidecar"]["dataset"]["target_std"])


def test_own_data_keeps_its_splits_and_class_names(exported):
    wine = exported["vector"]["sidecar"]
    assert wine["dataset"]["val_samples"] == 20 and wine["dataset"]["train_samples"] == 120
    assert wine["preprocessing"]["classes"] is None
    csv = exported["csv"]["sidecar"]
    assert csv["preprocessing"]["classes"] == ["barbera", "barolo", "grignolino"]
    assert csv["dataset"]["test_samples"] == 36 and len(csv["preprocessing"]["input"]["mean"]) == 13
    folder = exported["image_folder"]["sidecar"]
    assert folder["preprocessing"]["classes"] == [f"digit_{d}" for d in range(10)]
    assert folder["preprocessing"]["input"] == {"kind": "image", "scale": 1 / 255, "raw_shape": [8, 8],
                                                "shape": [8, 8, 1]}
    assert folder["dataset"]["test_samples"] == 100
