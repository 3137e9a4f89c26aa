"""Fault injection for tests: ``GNAS_FAULT_AT`` kills or stalls a process at a named point.

The crash-safety tests need a process to die at a precise moment (mid
checkpoint, between generations, after an interrupt); :func:`fault_point` marks
those moments in the code and does nothing unless the variable is set.
"""
from __future__ import annotations

import os
import signal
import time

FAULT_ENV = "GNAS_FAULT_AT"

_fault_counts: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Test hook: kill or stall this process at a precise moment, when asked to.

    ``GNAS_FAULT_AT=POINT:N[:ACTION]`` acts at the N-th time this process passes
    ``POINT``; ACTION is ``kill`` (SIGKILL, the default) or ``stall`` (sleep ten
    minutes, so a test can deliver a signal there). Points:

    - ``checkpoint``: state.json's temporary file is written and fsynced, not yet
      renamed (a kill here is a kill during the checkpoint write);
    - ``checkpointed``: state.json has just been replaced (between generations);
    - ``interrupted``: the first Ctrl-C / SIGTERM has been handled and the resume
      command printed (a second signal sent now tests the immediate exit).

    Unset in normal use, this costs one dictionary lookup.
    """
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    point, _, rest = spec.partition(":")
    if point != name:
        return
    count_text, _, action = rest.partition(":")
    _fault_counts[name] = _fault_counts.get(name, 0) + 1
    if _fault_counts[name] != int(count_text or 1):
        return
    if action == "stall":
        time.sleep(600)
    else:
        os.kill(os.getpid(), signal.SIGKILL)
