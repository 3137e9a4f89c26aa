"""Helpers shared by the integration tests: run the real CLI as a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Small but real: digits, 1 epoch, a few hundred samples, one TensorFlow thread
# (identical thread settings make results comparable across runs).
TINY = ["--population", "4", "--epochs", "1", "--max-train-samples", "300", "--threads", "1"]


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
