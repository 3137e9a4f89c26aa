"""The search state (``state.json``): what it holds, and how a checkpoint is checked on reading.

A checkpoint carries the SHA-256 of its own content and is only ever parsed as
JSON; :func:`readable_state` accepts a file only when it is complete and
consistent, so a truncated, edited or foreign file is never taken for one.
Writing and replacing it safely is the run directory's job (``gnas.runs.directory``).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gnas.version import __version__
from gnas.records import Phase
from gnas.runs.atomic import read_json

SCHEMA_VERSION = 2
# 1: gnas 0.1 (steps' state as top-level fields, pruned evaluations keyed "key:tag").


@dataclass
class SearchState:
    """Everything needed to continue a search exactly where it stopped."""

    generation: int                      # last completed generation; -1 = initial population not evaluated
    population: list[str]                # genomes as 0/1 strings
    fitness: list[list[float] | None]    # fitness values per individual (None = not evaluated)
    rng_state: dict[str, Any]            # numpy bit-generator state
    genome_length: int
    l: int
    keys: list[str] = field(default_factory=list)   # evaluation key of each individual
    hall_of_fame: list[dict[str, Any]] = field(default_factory=list)
    logbook: list[dict[str, Any]] = field(default_factory=list)
    init: str = "coe"
    lambda_c: float | None = None
    lambda_c_source: str = ""
    phase: Phase = Phase.GROW
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)   # each step's own state, by name
    pareto_front: list[dict[str, Any]] = field(default_factory=list)  # NSGA-II's front
    finished: bool = False
    trained: int = 0                     # networks trained by this run (every kind)
    final_trained: int = 0               # of which by final picks (extra seeds of the best few)
    reused: int = 0                      # children accepted as a network already seen
    final: list[dict[str, Any]] = field(default_factory=list)  # final candidates over seeds
    schema_version: int = SCHEMA_VERSION
    gnas_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchState":
        known = set(cls.__dataclass_fields__)
        state = cls(**{k: v for k, v in data.items() if k in known})
        state.phase = Phase(state.phase)
        return state


def checksum(data: dict[str, Any]) -> str:
    body = json.dumps({k: v for k, v in data.items() if k != "checksum"}, sort_keys=True,
                      allow_nan=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


def with_checksum(data: dict[str, Any]) -> str:
    """The state as JSON text carrying the SHA-256 of its own content.

    The checksum is taken over the JSON round trip of ``data`` (what a reader
    will parse), so keys and numbers hash the same when the file is loaded.
    """
    plain = json.loads(json.dumps(data, allow_nan=False))
    return json.dumps({**plain, "checksum": checksum(plain)}, indent=1, allow_nan=False)


_BITS = re.compile(r"[01]+")


def readable_state(path: Path) -> dict[str, Any] | None:
    """The checkpoint's content when it is complete and consistent, else None.

    Only JSON is parsed; the checksum (when present) and the shapes are checked,
    so a truncated, edited or foreign file is never taken for a checkpoint.
    """
    data = read_json(path)
    # A file without its checksum is not taken on trust: gnas always writes one.
    try:
        if not isinstance(data, dict) or data.get("checksum") != checksum(data):
            return None
    except (TypeError, ValueError):
        return None
    try:
        n, gen = int(data["genome_length"]), int(data["generation"])
        population, fitness = data["population"], data["fitness"]
        ok = (gen >= -1 and isinstance(data["rng_state"], dict) and isinstance(population, list)
              and isinstance(fitness, list) and len(fitness) == len(population) > 0
              and all(isinstance(g, str) and len(g) == n and _BITS.fullmatch(g) for g in population)
              and all(f is None or isinstance(f, list) for f in fitness))
    except (KeyError, TypeError, ValueError):
        return None
    return data if ok else None
