"""The Ray pool's bookkeeping: its places (slots) and the tasks running on them (flights).

Plain records that ``gnas.execution.ray_pool`` keeps for each actor and each
evaluation in progress; they hold Ray handles but never import Ray.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gnas.records import EvalTask


@dataclass(eq=False)
class Slot:
    """One place in the pool and the actor currently filling it."""

    index: int
    incarnation: int = -1
    actor: Any = None
    starting: Any = None        # ObjectRef of info() until the actor is ready
    started_s: float = 0.0
    busy: bool = False
    done: int = 0               # evaluations since this actor started
    pid: int = 0
    node: str = ""

    @property
    def name(self) -> str:
        return f"ray{self.index}.{self.incarnation}"

    @property
    def idle(self) -> bool:
        return self.starting is None and not self.busy


@dataclass(eq=False)
class Flight:
    """A group of tasks (one task unless ``train.group_size`` > 1) running on a slot."""

    tasks: list[EvalTask]
    slot: Slot
    attempt: int
    started_s: float
