"""Which parent each of a child's layers comes from, and the room's inheritance plug.

A mutant has one parent. A crossover child has two, and each of its stage positions
came from one of them: the parent whose genes at that position (active bit, edges,
width) agree with the child's in the most places, the lineage parent on a tie.
The head comes from the lineage parent (the one that contributed the first
segment). ``first`` inherits stage 0 only, the layers seed 004 finds most general;
``parent`` every matching layer. Which layers actually match (same shapes) is for the
backend to decide; the row records the parents and what was taken.
"""
from __future__ import annotations

import dataclasses
import re
import zipfile
import zlib
from enum import Enum
from typing import Any, Sequence

import numpy as np

from gnas.genome.space import Bits, SearchSpace, str_to_bits
from gnas.inheritance.weights import LayerWeights, WeightStore, WeightsUnreadable, log
from gnas.records import EvalResult, EvalTask, Kind

_STAGE = re.compile(r"^s(\d+)_")

#: What reading a damaged ``.npz`` can raise beyond :class:`WeightsUnreadable` (a truncated
#: archive, a cut-off member, a corrupt deflate stream, a meta record nested too deep).
DAMAGED = (WeightsUnreadable, zipfile.BadZipFile, EOFError, zlib.error, RecursionError,
           OSError, ValueError, KeyError, TypeError)


class InheritMode(str, Enum):
    """The values of ``evolution.inherit``."""

    NONE = "none"
    PARENT = "parent"
    FIRST = "first"


@dataclasses.dataclass(frozen=True)
class Parent:
    """A parent of a child: its genes and its evaluation key (where its weights are kept)."""

    bits: Bits
    key: str


def stage_sources(child: Bits, parents: Sequence[Parent], space: SearchSpace) -> list[int]:
    """For each stage position, the index in ``parents`` of the parent it came from."""
    out = []
    for stage in range(len(space.edge_slices)):
        slices = space.stage_slices(stage)
        agree = [sum(int(np.sum(np.asarray(child[s]) == np.asarray(p.bits[s]))) for s in slices)
                 for p in parents]
        out.append(int(np.argmax(agree)))  # the first (lineage) parent on a tie
    return out


def inherited_weights(child: Bits, parents: Sequence[Parent], loaded: Sequence[LayerWeights],
                      space: SearchSpace, mode: InheritMode) -> dict[str, list[np.ndarray]]:
    """The layers a child may start from: each stage's from its source parent, the head from the
    lineage parent; ``first``: stage 0 only."""
    sources = stage_sources(child, parents, space)
    out: dict[str, list[np.ndarray]] = {}
    for name in {n for layers in loaded for n in layers}:
        match = _STAGE.match(name)
        stage = int(match.group(1)) if match else -1
        if mode == InheritMode.FIRST and stage != 0:
            continue
        source = loaded[sources[stage]] if 0 <= stage < len(sources) else loaded[0]
        if name in source:
            out[name] = list(source[name])
    return out


class Inheritance:
    """The evaluation room's plug: tasks get their parents' weights, results leave theirs.

    With ``none`` tasks and results pass untouched.
    """

    def __init__(self, mode: str, space: SearchSpace, store: WeightStore | None) -> None:
        self.mode = InheritMode(mode)
        self.space = space
        self.store = store
        self._lineage: dict[str, dict[str, Any]] = {}

    @property
    def on(self) -> bool:
        return self.mode != InheritMode.NONE and self.store is not None

    def attach(self, task: EvalTask, parents: Sequence[Parent]) -> EvalTask:
        """``task`` keeping its trained weights and starting from what its parents left."""
        if not self.on or task.kind not in (Kind.SEARCH, Kind.CHAMPION):
            return task
        parents = [p for p in parents if p.key != task.key]
        if not parents:
            return dataclasses.replace(task, keep_weights=True)
        record: dict[str, Any] = {"inherit_from": [p.key for p in parents]}
        loaded: list[LayerWeights] = []
        for p in parents:
            try:
                loaded.append(self.store.load(p.key) if self.store.has(p.key) else {})
            except DAMAGED as exc:  # the documented fallback: those layers train from scratch
                note = str(exc) if isinstance(exc, WeightsUnreadable) else \
                    f"cannot read the parent weights {self.store.file(p.key)}: {exc}"
                note = " ".join(note.split())[:500]
                log.warning("%s; the child %s trains those layers from scratch", note, task.key)
                record["inherit_note"] = note
                loaded.append({})
        if not any(loaded):
            record.setdefault("inherit_note", "no parent weights kept")
        self._lineage[task.key] = record
        weights = inherited_weights(str_to_bits(task.genome), parents, loaded, self.space, self.mode) \
            if any(loaded) else {}
        return dataclasses.replace(task, keep_weights=True, inherit=weights)

    def keep(self, result: EvalResult) -> EvalResult:
        """Keep ``result``'s trained weights (a possible parent); the row without them, with its lineage."""
        if result.weights is not None and result.ok and self.store is not None:
            self.store.save(result.key, result.weights)
        lineage = self._lineage.pop(result.key, {})
        if result.weights is None and not lineage:
            return result
        return dataclasses.replace(result, weights=None, metrics={**result.metrics, **lineage})

    def keep_only(self, keys: Sequence[str]) -> None:
        """Forget the weights of networks that are no longer in the population."""
        if self.on:
            self.store.keep_only(keys)
