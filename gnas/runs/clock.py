"""The wall clock of a run with a time budget (``evolution.max_seconds``).

The command sets the moment its run must end; the search asks how much is left
before it starts a generation, and the final training stops at the deadline
with the best epoch it has (``gnas.backend.trainer.StopAtDeadline``). Without a
budget there is no deadline and every question answers "no limit".
"""
from __future__ import annotations

import time

_clock: dict[str, float | None] = {"deadline": None, "started": None, "command": None}


def mark_command_start() -> None:
    """The command starts now: a budget counts from here (the CLI calls it first thing)."""
    _clock["command"] = time.monotonic()


def since_command_start() -> float:
    """Seconds since :func:`mark_command_start` (0 when it was not called)."""
    began = _clock["command"]
    return 0.0 if began is None else time.monotonic() - began


def start(budget_s: float, spent_s: float = 0.0) -> None:
    """The run has ``budget_s`` seconds in all; ``spent_s`` were spent by earlier commands, and
    this command's own seconds count from :func:`mark_command_start`."""
    began = time.monotonic() - since_command_start() - spent_s
    _clock["started"] = began
    _clock["deadline"] = began + budget_s if budget_s > 0 else None


def stop() -> None:
    """No deadline from now on (the command ended)."""
    _clock["deadline"] = _clock["started"] = None


def left() -> float:
    """Seconds until the deadline (may be negative); infinity without one."""
    deadline = _clock["deadline"]
    return float("inf") if deadline is None else deadline - time.monotonic()


def spent() -> float:
    """Seconds the run has spent, earlier commands included (0 without a budget)."""
    started = _clock["started"]
    return 0.0 if started is None else time.monotonic() - started


def passed() -> bool:
    """Whether the run is past its deadline."""
    return left() <= 0


CLOCK_NAME = "clock.json"
"""In a run directory: the seconds a budgeted run has spent and keeps for its final training."""


def save(run_path, reserve_s: float) -> None:
    """Record the seconds spent so far (a resume counts on from them) and the final training's share."""
    import json
    from pathlib import Path

    from gnas.runs.atomic import atomic_write_text

    atomic_write_text(Path(run_path) / CLOCK_NAME,
                      json.dumps({"spent_s": round(spent(), 3), "reserve_s": round(reserve_s, 3)}))


def load(run_path) -> tuple[float, float]:
    """(seconds spent, seconds kept for the final training) of a run; zeros when it has no record."""
    from pathlib import Path

    from gnas.runs.atomic import read_json

    data = read_json(Path(run_path) / CLOCK_NAME)
    if not isinstance(data, dict):
        return 0.0, 0.0
    values = [data.get("spent_s"), data.get("reserve_s")]
    return tuple(float(v) if isinstance(v, (int, float)) and v >= 0 else 0.0 for v in values)  # type: ignore[return-value]
