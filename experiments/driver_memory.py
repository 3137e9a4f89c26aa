"""Does a long run stay healthy? Driver memory per generation, run-directory size per evaluation.

Question: over a 30-generation ``gnas evolve`` on digits, does the driver's
resident memory (RSS) stay flat after warm-up, and does the run directory grow
linearly with the number of evaluations (no file rewritten ever larger)?

Method: run the real CLI as a subprocess; every time ``state.json`` reports a
new generation, sample the process' VmRSS from ``/proc`` and the size of every
file in the run directory, with the number of rows in ``evaluations.db``.
Fit straight lines: RSS against generation (after a warm-up of 5
generations), and run-directory bytes against evaluations.

Run:
    python experiments/driver_memory.py [--generations 30] [--population 4]

Prints one line per generation, then the fitted slopes.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WARM_UP = 5


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def generation(run: Path) -> int | None:
    try:
        return int(json.loads((run / "state.json").read_text())["generation"])
    except (OSError, ValueError, KeyError):
        return None


def rows(run: Path) -> int:
    try:
        with sqlite3.connect(f"{(run / 'evaluations.db').resolve().as_uri()}?mode=ro", uri=True) as c:
            return c.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    except sqlite3.Error:
        return 0


def sizes(run: Path) -> dict[str, int]:
    """Bytes per top-level entry of the run directory (directories summed)."""
    out: dict[str, int] = {}
    for p in run.rglob("*"):
        if p.is_file():
            top = p.relative_to(run).parts[0]
            top = "evaluations.db*" if top.startswith("evaluations.db") else top
            out[top] = out.get(top, 0) + p.stat().st_size
    return out


def fit(x: list[float], y: list[float]) -> tuple[float, float]:
    """Slope and R^2 of a least-squares line."""
    x_, y_ = np.asarray(x, float), np.asarray(y, float)
    slope, intercept = np.polyfit(x_, y_, 1)
    residual = y_ - (slope * x_ + intercept)
    total = ((y_ - y_.mean()) ** 2).sum()
    return float(slope), float(1 - (residual ** 2).sum() / total) if total else 1.0


def fit_two(a: list[float], b: list[float], y: list[float]) -> tuple[float, float, float]:
    """Least squares y = p*a + q*b + c; returns p, q and R^2."""
    design = np.column_stack([a, b, np.ones(len(a))])
    target = np.asarray(y, float)
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coef
    total = ((target - target.mean()) ** 2).sum()
    return float(coef[0]), float(coef[1]), float(1 - (residual ** 2).sum() / total) if total else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=30)
    parser.add_argument("--population", type=int, default=4)
    parser.add_argument("--indpb", type=float, default=0.08,
                        help="per-bit flip probability: high, so most offspring are new networks "
                        "(the worst case for memory and disk); growth off for the same reason")
    parser.add_argument("--run-dir", default="")
    args = parser.parse_args()
    run = Path(args.run_dir or tempfile.mkdtemp(prefix="gnas-memory-")) / "run"
    cmd = [sys.executable, "-m", "gnas", "evolve", "--dataset", "digits", "--generations",
           str(args.generations), "--population", str(args.population), "--epochs", "1",
           "--max-train-samples", "300", "--threads", "1", "--lambda-c", "0.8", "--seed", "1",
           "--init", "random", "--set", f"evolution.indpb={args.indpb}",
           "--set", "evolution.growth=false", "--run-dir", str(run)]
    print("command:", shlex.join(["python", *sys.argv]))
    print("runs:   ", shlex.join(cmd[1:]))
    env = dict(os.environ, GNAS_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: list[dict] = []
    seen = -2
    started = time.monotonic()
    while proc.poll() is None:
        g = generation(run)
        if g is not None and g > seen:
            seen = g
            try:
                mem = rss_mb(proc.pid)
            except OSError:
                break
            s = sizes(run)
            samples.append({"generation": g, "rss_mb": mem, "rows": rows(run), "bytes": sum(s.values()),
                            "parts": s, "t": time.monotonic() - started})
            print(f"gen {g:3d}  rss {mem:8.1f} MB  evaluations {samples[-1]['rows']:4d}  "
                  f"run dir {samples[-1]['bytes'] / 1024:8.1f} KiB  {samples[-1]['t']:6.1f} s", flush=True)
        time.sleep(0.05)
    if proc.wait() != 0:
        raise SystemExit(f"gnas evolve failed with status {proc.returncode}")
    report(samples, run)


def report(samples: list[dict], run: Path) -> None:
    steady = [s for s in samples if s["generation"] >= WARM_UP]
    slope, r2 = fit([s["generation"] for s in steady], [s["rss_mb"] for s in steady])
    print(f"\ndriver RSS: {steady[0]['rss_mb']:.1f} MB at generation {steady[0]['generation']}, "
          f"{steady[-1]['rss_mb']:.1f} MB at generation {steady[-1]['generation']}, "
          f"peak {max(s['rss_mb'] for s in samples):.1f} MB")
    print(f"driver RSS slope after warm-up: {slope * 1024:+.1f} KiB/generation (R^2 {r2:.2f})")
    final = sizes(run)
    grown = [s for s in samples if s["generation"] >= 0]
    per_eval, per_gen, r2 = fit_two([s["rows"] for s in grown], [s["generation"] for s in grown],
                                    [s["bytes"] for s in grown])
    print(f"run directory: {sum(final.values()) / 1024:.1f} KiB after {rows(run)} evaluations and "
          f"{samples[-1]['generation']} generations (best/ written at the end)")
    print(f"run directory growth: {per_eval / 1024:.2f} KiB per evaluation + {per_gen / 1024:.2f} KiB "
          f"per generation (linear fit R^2 {r2:.3f})")
    parts = ", ".join(f"{k} {v / 1024:.1f} KiB" for k, v in sorted(final.items(), key=lambda kv: -kv[1]))
    print(f"final parts: {parts}")


if __name__ == "__main__":
    main()
