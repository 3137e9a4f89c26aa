"""Helpers shared by the integration tests: run the real CLI as a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Small but real: digits, 1 epoch, a few hundred samples, one TensorFlow thread
# (identical thread settings make results comparable across runs). lambda_c is given:
# the calibration has its own tests (tests/integration/test_chaos_cli.py).
# A short final training (3 epochs at most) keeps every such run's end real and quick.
TINY = ["--population", "4", "--epochs", "1", "--max-train-samples", "300", "--threads", "1",
        "--lambda-c", "0.786", "--set", "evolution.final_seeds=0", "--set", "final.max_epochs=3"]


def gnas(*args: str, cwd: str | Path | None = None, env: dict | None = None,
         timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m gnas ARGS`` and return the finished process."""
    full_env = {**os.environ, "GNAS_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "gnas", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"gnas {' '.join(map(str, args))} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def state(run_dir: str | Path) -> dict:
    return json.loads((Path(run_dir) / "state.json").read_text())


def report(run_dir: str | Path) -> dict:
    return json.loads(gnas("report", str(run_dir), "--json").stdout)


def start_gnas(*args: str, fault: str | None = None, env: dict | None = None) -> subprocess.Popen:
    """Start ``python -m gnas ARGS`` without waiting; ``fault`` sets ``GNAS_FAULT_AT``."""
    env = dict(os.environ, GNAS_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    env.pop("GNAS_FAULT_AT", None)
    if fault:
        env["GNAS_FAULT_AT"] = fault
    return subprocess.Popen([sys.executable, "-m", "gnas", *map(str, args)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def committed_rows(run: Path) -> int:
    """Committed evaluations, read the way any other process would (read-only)."""
    import sqlite3

    db = Path(run) / "evaluations.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def wait_rows(proc: subprocess.Popen, run: Path, k: int, timeout: float = 300) -> None:
    """Return as soon as ``k`` evaluations are committed (the run is training the next)."""
    import time

    deadline = time.monotonic() + timeout
    while committed_rows(run) < k:
        assert proc.poll() is None, f"the run ended before {k} evaluations: {proc.communicate()}"
        assert time.monotonic() < deadline
        time.sleep(0.02)


def one_stage_evaluator(epochs: int, samples: int):
    """A real Evaluator on digits with one 3-node dense stage of width 32 (one thread)."""
    from gnas.backend import runtime

    runtime.configure(1)
    from gnas.backend.evaluator import Evaluator
    from gnas.config import load_config
    from gnas.datasets import load_for_run

    cfg = load_config(None, {"train.epochs": epochs, "data.max_train_samples": samples,
                             "space.stage_nodes": (3,), "space.max_depth": 1,
                             "space.dense_widths": (32, 32, 32, 32)})
    return Evaluator(cfg, load_for_run(cfg))
