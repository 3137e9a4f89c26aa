"""The wall clock of a run with a time budget (``evolution.max_seconds``).

The command sets the moment its run must end; the search asks how much is left
before it starts a generation, and the final training stops at the deadline
with the best epoch it has (``gnas.backend.trainer.StopAtDeadline``). Without a
budget there is no deadline and every question answers "no limit".
"""
from __future__ import annotations

import time

_clock: dict[str, float | None] = {"deadline": None, "started": None, "command": None, "margin": 0.0}


def mark_command_start() -> None:
    """The command starts now: a budget counts from here (the CLI calls it first thing)."""
    _clock["command"] = time.monotonic()


def since_command_start() -> float:
    """Seconds since :func:`mark_command_start` (0 when it was not called)."""
    began = _clock["command"]
    return 0.0 if began is None else time.monotonic() - began


def start(budget_s: float, spent_s: float = 0.0, margin_s: float = 0.0) -> None:
    """The run has ``budget_s`` seconds in all; ``spent_s`` were spent by earlier commands, and
    this command's own seconds count from :func:`mark_command_start`. ``margin_s``: what the
    end of the run needs after its last training (scoring the delivered model, saving it)."""
    began = time.monotonic() - since_command_start() - spent_s
    _clock["started"] = began
    _clock["deadline"] = began + budget_s if budget_s > 0 else None
    _clock["margin"] = margin_s


def set_margin(margin_s: float) -> None:
    """What the end of the run needs after its last training (see :func:`start`)."""
    _clock["margin"] = max(0.0, margin_s)


def margin() -> float:
    return float(_clock["margin"] or 0.0)


def training_passed() -> bool:
    """Whether a training must stop now to leave the end of the run its :func:`margin`."""
    return left() <= margin()


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
    """Record the seconds spent so far (a resume counts on from them), the final training's share
    and the end's :func:`margin`."""
    import json
    from pathlib import Path

    from gnas.runs.atomic import atomic_write_text

    atomic_write_text(Path(run_path) / CLOCK_NAME,
                      json.dumps({"spent_s": round(spent(), 3), "reserve_s": round(reserve_s, 3),
                                  "margin_s": round(margin(), 3)}))


def load(run_path) -> tuple[float, float, float]:
    """(seconds spent, seconds kept for the final training, the end's margin) of a run; zeros
    when it has no record."""
    from pathlib import Path

    from gnas.runs.atomic import read_json

    data = read_json(Path(run_path) / CLOCK_NAME)
    if not isinstance(data, dict):
        return 0.0, 0.0, 0.0
    values = [data.get("spent_s"), data.get("reserve_s"), data.get("margin_s")]
    return tuple(float(v) if isinstance(v, (int, float)) and v >= 0 else 0.0 for v in values)  # type: ignore[return-value]
