"""Ctrl-C and SIGTERM stop a real run within a bounded time, keep it, say how to resume.

One run on digits is interrupted four ways in a row: SIGINT during training
(exit 130), SIGTERM during training of a resumed run (exit 143), a second resume
refused while the first holds the run's lock, and a double Ctrl-C that exits at
once (exit 130). A last resume then finishes it; no network is trained twice.
In-flight evaluations are abandoned: the row count never grows after a signal.
"""
from __future__ import annotations

import json
import re
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import committed_rows as rows  # noqa: E402
from helpers import start_gnas as gnas  # noqa: E402
from helpers import wait_rows  # noqa: E402

pytestmark = pytest.mark.slow

ARGS = ["--dataset", "digits", "--population", "4", "--epochs", "1", "--max-train-samples", "300",
        "--generations", "2", "--threads", "1", "--seed", "5", "--lambda-c", "0.8",
        "--set", "evolution.final_seeds=0", "--set", "final.max_epochs=3"]
TIMEOUT_S = 300
STOP_WITHIN_S = 30  # generous: the shared CI machine may be loaded; typical is well under 2 s


def stop(proc: subprocess.Popen, signum: int) -> tuple[int, str, float]:
    """Send ``signum``; returns (exit status, stderr, seconds until the process was gone)."""
    sent = time.monotonic()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=TIMEOUT_S)
    return proc.returncode, err, time.monotonic() - sent


def assert_resumable(run: Path, err: str) -> None:
    assert f"Resume with: gnas resume {run}" in err
    assert "Traceback" not in err
    json.loads((run / "state.json").read_text())  # a complete checkpoint
    assert not (run / "gnas.lock").exists(), "a clean stop releases the lock"


def test_sigint_sigterm_lock_and_double_ctrl_c(tmp_path: Path):
    run = tmp_path / "run"

    # Ctrl-C during training of the initial population.
    proc = gnas("evolve", *ARGS, "--run-dir", str(run))
    wait_rows(proc, run, 1)
    code, err, took = stop(proc, signal.SIGINT)
    assert code == 130, err[-2000:]
    assert took < STOP_WITHIN_S
    assert_resumable(run, err)
    assert "in-flight evaluations were abandoned" in err
    kept = rows(run)

    # SIGTERM during a resumed run; a second resume meanwhile is refused by the lock.
    proc = gnas("resume", str(run))
    wait_rows(proc, run, kept + 1)
    lock = json.loads((run / "gnas.lock").read_text())
    assert lock["pid"] == proc.pid
    second = subprocess.run([sys.executable, "-m", "gnas", "resume", str(run)], text=True,
                            capture_output=True, timeout=TIMEOUT_S, env=dict(os.environ, GNAS_OFFLINE="1"))
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [second.stderr.strip()]
    assert f"in use by process {proc.pid}" in second.stderr
    code, err, took = stop(proc, signal.SIGTERM)
    assert code == 143, err[-2000:]
    assert took < STOP_WITHIN_S
    assert_resumable(run, err)
    kept = rows(run)

    # Double Ctrl-C: the first one's clean-up is stalled (test hook); the second exits at once.
    proc = gnas("resume", str(run), fault="interrupted:1:stall")
    wait_rows(proc, run, kept + 1)
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + TIMEOUT_S
    while "Resume with" not in (first := _stderr_so_far(proc)):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    code, err, took = stop(proc, signal.SIGINT)
    assert code == 130, first + err
    assert took < 5
    assert "stopped at once" in err and f"gnas resume {run}" in err
    json.loads((run / "state.json").read_text())
    after_double = rows(run)

    # And it still finishes, training nothing twice.
    proc = gnas("resume", str(run))
    _, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 0, err[-3000:]
    assert rows(run) >= after_double
    with sqlite3.connect(run / "evaluations.db") as conn:
        twice = conn.execute("SELECT genome_key, kind, COUNT(*) FROM evaluations "
                             "GROUP BY genome_key, kind HAVING COUNT(*) > 1").fetchall()
    assert twice == []
    assert json.loads((run / "state.json").read_text())["finished"] is True


_buffers: dict[int, str] = {}


def _stderr_so_far(proc: subprocess.Popen) -> str:
    """Read what ``proc`` wrote to stderr so far without blocking."""
    import select

    buf = _buffers.get(proc.pid, "")
    fd = proc.stderr.fileno()
    while select.select([fd], [], [], 0)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk.decode(errors="replace")
    _buffers[proc.pid] = buf
    return buf


# A fused group of conv networks (exact graphs in one traced step) with a batch of
# 1: an epoch is over a thousand steps, longer than the time a signal may take.
FUSED = ["--dataset", "digits", "--family", "conv", "--population", "4", "--epochs", "3",
         "--batch-size", "1", "--threads", "1", "--seed", "3", "--generations", "1",
         "--set", "evolution.final_seeds=0"]
ACT_WITHIN_S = 5.0


def _signal_at(marker: str, signum: int, args: list[str], env: dict | None = None
               ) -> tuple[int, str, float]:
    """Start ``gnas evolve ARGS``, send ``signum`` a second after ``marker`` shows on stderr;
    (exit status, stderr, seconds from the signal to the process' end)."""
    proc = gnas("evolve", *args, env=env)
    deadline = time.monotonic() + TIMEOUT_S
    while marker not in _stderr_so_far(proc):
        assert proc.poll() is None, _stderr_so_far(proc)[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.0)
    assert proc.poll() is None
    code, err, took = stop(proc, signum)
    return code, _buffers.get(proc.pid, "") + err, took


def test_a_signal_acts_within_seconds_in_a_fused_training(tmp_path: Path):
    run = tmp_path / "run"
    code, err, took = _signal_at("networks: epoch 1/3", signal.SIGTERM,
                                 [*FUSED, "--lambda-c", "0.8", "--run-dir", str(run)])
    assert code == 143, err[-2000:]
    assert took <= ACT_WITHIN_S, f"SIGTERM took {took:.1f} s during a fused epoch"
    assert_resumable(run, err)


def test_a_signal_acts_within_seconds_in_the_calibration(tmp_path: Path):
    run = tmp_path / "run"
    code, err, took = _signal_at("calibrating lambda_c", signal.SIGINT, [*FUSED, "--run-dir", str(run)],
                                 env={"GNAS_CACHE_DIR": "off"})
    assert code == 130, err[-2000:]
    assert took <= ACT_WITHIN_S, f"Ctrl-C took {took:.1f} s during the calibration"
    assert f"gnas resume {run}" in err and "Traceback" not in err


def test_a_signal_acts_within_seconds_in_the_final_training(tmp_path: Path):
    run = tmp_path / "run"
    args = [*FUSED, "--lambda-c", "0.8", "--epochs", "1", "--population", "2",
            "--max-train-samples", "300", "--set", "final.max_epochs=50", "--run-dir", str(run)]
    code, err, took = _signal_at("final training 1/1", signal.SIGINT, args)
    assert code == 130, err[-2000:]
    assert took <= ACT_WITHIN_S, f"Ctrl-C took {took:.1f} s during the final training"
    assert_resumable(run, err)


def test_a_resume_after_a_kill_says_what_it_found_in_one_line(tmp_path: Path):
    run = tmp_path / "run"
    proc = gnas("evolve", *ARGS, "--run-dir", str(run))
    wait_rows(proc, run, 1)
    proc.kill()  # SIGKILL: its lock file stays behind
    proc.communicate(timeout=TIMEOUT_S)
    killed = proc.pid
    kept = rows(run)
    proc = gnas("resume", str(run))
    _, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 0, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith(f"gnas: resuming {run}")]
    assert len(lines) == 1, err[-3000:]
    assert f"{kept} evaluations kept" in lines[0]
    assert "no generation completed" in lines[0] or "generation 0 of 2 completed" in lines[0]
    assert re.search(rf"stale lock of process {killed} on .* cleared", lines[0]), lines[0]
