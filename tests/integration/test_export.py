"""`gnas export` round trip: the .keras file scores the same in a process without gnas."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import TINY, gnas, start_gnas  # noqa: E402

ONNX_PACKAGES = ("tf2onnx", "onnx", "onnxruntime")
HAVE_ONNX = all(importlib.util.find_spec(name) is not None for name in ONNX_PACKAGES)

pytestmark = pytest.mark.slow

# Runs in a fresh interpreter: plain Keras only, and it proves gnas was never imported.
LOAD_AND_SCORE = """
import json, sys
import numpy as np
import keras
model = keras.models.load_model(sys.argv[1])
x = np.load(sys.argv[2], allow_pickle=False)
y = np.load(sys.argv[3], allow_pickle=False)
pred = model.predict(x, verbose=0)
correct = int((pred.argmax(axis=1) == y).sum())
print(json.dumps({"correct": correct, "score": 100.0 * correct / len(y),
                  "gnas_imported": any(m == "gnas" or m.startswith("gnas.") for m in sys.modules)}))
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("export") / "run"
    gnas("evolve", "--generations", "1", "--run-dir", path, "--lambda-c", "0.8", *TINY)
    return path


@pytest.fixture(scope="module")
def test_arrays(tmp_path_factory) -> tuple[Path, Path]:
    """The run's raw test split (scikit-learn's 0..16 images), as the .npy files the fresh process reads."""
    from gnas.datasets.readers import _read_digits

    data = _read_digits()
    folder = tmp_path_factory.mktemp("arrays")
    np.save(folder / "x.npy", data.x_test)
    np.save(folder / "y.npy", data.y_test)
    return folder / "x.npy", folder / "y.npy"


def score_in_fresh_process(model: Path, arrays: tuple[Path, Path], cwd: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    proc = subprocess.run([sys.executable, "-c", LOAD_AND_SCORE, str(model), *map(str, arrays)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_export_keeps_the_search_weights_and_scores_the_same_without_gnas(run, test_arrays, tmp_path):
    out = tmp_path / "best.keras"
    proc = gnas("export", run, "--out", out)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    summary = json.loads((run / "best" / "summary.json").read_text())
    assert sidecar["weights"] == "search weights (best/model.keras)"
    assert sidecar["metrics"]["test_score"] == pytest.approx(summary["test_score"], abs=1e-4)
    assert sidecar["key"] == summary["key"] and sidecar["genome"] == summary["genome"]
    assert sidecar["architecture"] == summary["architecture"]
    assert sidecar["dataset"]["name"] == "digits" and sidecar["gnas_version"]
    assert sidecar["metrics"]["params"] == summary["params"]
    assert f"test score:  {sidecar['metrics']['test_score']:.2f}" in proc.stdout
    fresh = score_in_fresh_process(out, test_arrays, tmp_path)
    assert fresh["gnas_imported"] is False
    assert fresh["correct"] == sidecar["metrics"]["test_correct"]
    assert fresh["score"] == pytest.approx(sidecar["metrics"]["test_score"], abs=1e-9)


def test_export_rebuilds_the_search_network_when_the_run_kept_no_model(run, test_arrays, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "best" / "model.keras").unlink()
    out = tmp_path / "rebuilt.keras"
    gnas("export", copy, "--out", out)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    summary = json.loads((run / "best" / "summary.json").read_text())
    assert sidecar["weights"] == "search weights (retrained as in the search)"
    # training is seeded per genome: the rebuilt network is the one the search scored
    assert sidecar["metrics"]["test_score"] == pytest.approx(summary["test_score"], abs=1e-4)
    assert score_in_fresh_process(out, test_arrays, tmp_path)["correct"] == sidecar["metrics"]["test_correct"]


def test_export_retrain_on_train_and_val(run, test_arrays, tmp_path):
    out = tmp_path / "retrained.keras"
    gnas("export", run, "--out", out, "--retrain", "--epochs", "2")
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["weights"] == "retrained on train+val for 2 epochs"
    assert sidecar["retrain_epochs"] == 2
    fresh = score_in_fresh_process(out, test_arrays, tmp_path)
    assert fresh["gnas_imported"] is False
    assert fresh["correct"] == sidecar["metrics"]["test_correct"]


# A TFLite and a SavedModel artifact, scored on the raw test split in a process without gnas.
SCORE_ARTIFACTS = """
import json, sys
import numpy as np
import tensorflow as tf
x = np.load(sys.argv[3], allow_pickle=False).astype("float32")
y = np.load(sys.argv[4], allow_pickle=False)
interpreter = tf.lite.Interpreter(model_path=sys.argv[1])
interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], x.shape)
interpreter.allocate_tensors()
interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
interpreter.invoke()
lite = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
loaded = tf.saved_model.load(sys.argv[2])  # kept referenced: its variables live as long as it does
saved = loaded.serve(tf.constant(x)).numpy()
print(json.dumps({"tflite": int((lite.argmax(1) == y).sum()), "saved_model": int((saved.argmax(1) == y).sum()),
                  "gnas_imported": any(m == "gnas" or m.startswith("gnas.") for m in sys.modules)}))
"""


def test_export_to_tflite_and_saved_model_takes_raw_inputs(run, test_arrays, tmp_path):
    lite, saved = tmp_path / "best.tflite", tmp_path / "best_saved_model"
    gnas("export", run, "--out", lite, "--format", "tflite")
    gnas("export", run, "--out", saved, "--format", "saved_model")
    sidecar = json.loads(lite.with_suffix(".json").read_text())
    assert sidecar["format"] == "tflite" and sidecar["metrics"]["file_bytes"] == lite.stat().st_size
    assert json.loads(saved.with_suffix(".json").read_text())["format"] == "saved_model"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    proc = subprocess.run([sys.executable, "-c", SCORE_ARTIFACTS, str(lite), str(saved), *map(str, test_arrays)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    assert fresh["gnas_imported"] is False
    assert fresh["saved_model"] == sidecar["metrics"]["test_correct"]
    # LiteRT's kernels round differently from TensorFlow's: allow one test sample in a hundred
    assert abs(fresh["tflite"] - sidecar["metrics"]["test_correct"]) <= sidecar["metrics"]["test_samples"] // 100


@pytest.mark.parametrize("args,message", [
    pytest.param(["--out", "m.onnx", "--format", "onnx"], "pip install",
                 marks=pytest.mark.skipif(HAVE_ONNX, reason="tf2onnx and onnx are installed")),
    (["--out", "m.tflite", "--format", "tflite2"], "expected one of keras, saved_model, tflite, onnx"),
    (["--out", "m.keras", "--format", "tflite"], "ending in .tflite"),
    (["--out", ".", "--format", "saved_model"], "exists"),
    (["--out", "model.h5"], "ending in .keras"),
    (["--out", "missing-dir/model.keras"], "does not exist"),
    (["--out", "m.keras", "--epochs", "2"], "--epochs applies to --retrain"),
])
def test_export_refuses_bad_arguments_in_one_line(run, tmp_path, args, message):
    proc = gnas("export", run, *args, cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.keras").exists()


def test_export_of_a_directory_that_is_not_a_run(tmp_path):
    proc = gnas("export", tmp_path, "--out", tmp_path / "m.keras", check=False)
    assert proc.returncode == 2 and "not a gnas run" in proc.stderr


def tree(path: Path) -> dict[str, str]:
    """Every file's digest (SQLite's -wal / -shm side files aside)."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


@pytest.mark.skipif(not HAVE_ONNX, reason="needs tf2onnx, onnx and onnxruntime")
def test_export_to_onnx_scores_what_the_sidecar_says_in_onnxruntime(run, test_arrays, tmp_path):
    import onnxruntime

    out = tmp_path / "m.onnx"
    gnas("export", run, "--out", out, "--format", "onnx")
    sidecar = json.loads(out.with_suffix(".json").read_text())
    summary = json.loads((run / "best" / "summary.json").read_text())
    assert sidecar["format"] == "onnx"
    assert sidecar["metrics"]["test_score"] == pytest.approx(summary["test_score"], abs=1e-4)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.load(test_arrays[0], allow_pickle=False).astype("float32")  # raw 0..16 pixels
    y = np.load(test_arrays[1], allow_pickle=False)
    pred = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert int((pred.argmax(axis=1) == y).sum()) == sidecar["metrics"]["test_correct"]


def test_export_without_out_goes_into_the_run_and_touches_nothing_else(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = tree(copy)
    proc = gnas("export", copy, cwd=tmp_path)
    out = copy / "export" / "best.keras"
    assert f"model:       {out}" in proc.stdout and f"sidecar:     {out.with_suffix('.json')}" in proc.stdout
    after = tree(copy)
    assert {k: v for k, v in after.items() if not k.startswith("export/")} == before
    assert sorted(k for k in after if k.startswith("export/")) == ["export/best.json", "export/best.keras"]
    gnas("export", copy, cwd=tmp_path)  # an earlier export of its own is replaced
    assert json.loads(out.with_suffix(".json").read_text())["metrics"]["file_bytes"] == out.stat().st_size


@pytest.mark.parametrize("name", ["state.keras", "state.prev.keras", "gnas-run.keras", "best/model.keras",
                                  "best/summary.keras", "weights"])
def test_export_never_lands_on_a_file_of_the_run(run, tmp_path, name):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = tree(copy)
    fmt = ["--format", "saved_model"] if name == "weights" else []
    proc = gnas("export", copy, "--out", copy / name, *fmt, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert tree(copy) == before


@pytest.mark.parametrize("fmt,out", [("keras", "m.keras"), ("saved_model", "m")])
def test_export_leaves_a_users_files_as_they_are(run, tmp_path, fmt, out):
    (tmp_path / "m.json").write_text('{"mine": true}')
    proc = gnas("export", run, "--out", tmp_path / out, "--format", fmt, check=False)
    assert proc.returncode == 2 and "was not written by `gnas export`" in proc.stderr
    assert (tmp_path / "m.json").read_text() == '{"mine": true}'
    (tmp_path / "m.json").unlink()
    (tmp_path / "m.keras").write_bytes(b"a user's model")
    proc = gnas("export", run, "--out", tmp_path / "m.keras", check=False)
    assert proc.returncode == 2 and "was not written by `gnas export`" in proc.stderr
    assert (tmp_path / "m.keras").read_bytes() == b"a user's model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


def test_a_saved_model_export_killed_midway_is_exported_again(run, tmp_path):
    out = tmp_path / "sm"
    proc = start_gnas("export", run, "--out", out, "--format", "saved_model")
    deadline = time.monotonic() + 300
    while not out.with_suffix(".json").exists():  # written first, just before the model
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    gnas("export", run, "--out", out, "--format", "saved_model")
    assert json.loads(out.with_suffix(".json").read_text())["format"] == "saved_model"
    assert (out / "saved_model.pb").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sm", "sm.json"]  # no temporary folder left
    gnas("export", run, "--out", out, "--format", "saved_model")  # and again, over its own export
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sm", "sm.json"]


def test_retraining_a_pruned_network_does_not_first_train_it_to_convergence(monkeypatch):
    """``export --retrain`` of a pruned network takes only its structure and zeros from the replay."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from helpers import one_stage_evaluator

    from gnas.backend import export
    from gnas.backend.evaluator import Evaluator
    from gnas.genome.space import bits_to_str

    evaluator = one_stage_evaluator(epochs=1, samples=200)
    assert evaluator.cfg.final.max_epochs > 0
    genome = bits_to_str(evaluator.space.repair([1] * evaluator.space.length))
    options = {"base": genome, "mask": "nm", "nm": "2:4", "sparsity": 0.5, "cycles": 1}

    def converge(*args, **kwargs):
        raise AssertionError("trained to convergence, then thrown away")

    monkeypatch.setattr(Evaluator, "_converge", converge)
    model = export.retrained_model(evaluator, genome, seed=3, options=options, epochs=1)
    kernels = [layer.kernel.numpy() for layer in model.layers if getattr(layer, "kernel", None) is not None]
    assert any((k == 0).mean() >= 0.45 for k in kernels), "the 2:4 mask's zeros are kept"
