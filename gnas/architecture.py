"""Decoded architectures: what a chromosome builds, in plain data.

An :class:`Architecture` is the network a bit string describes after isolated
nodes are dropped and each stage's DAG is put in canonical form. Its key hashes
only what changes the trained network, so two bit strings that build the same
network share one cache entry and are trained once.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

Edge = tuple[int, int]


@dataclass(frozen=True)
class StageArch:
    """One active stage: ``nodes`` blocks of ``width`` units wired by ``edges`` (i < j)."""

    index: int
    nodes: int
    edges: tuple[Edge, ...]
    width: int

    def sources(self) -> list[int]:
        """Nodes fed by the stage input: those without a predecessor."""
        targets = {j for _, j in self.edges}
        return [n for n in range(self.nodes) if n not in targets]

    def sinks(self) -> list[int]:
        """Nodes summed into the stage output: those without a successor."""
        origins = {i for i, _ in self.edges}
        return [n for n in range(self.nodes) if n not in origins]

    def predecessors(self, node: int) -> list[int]:
        return [i for i, j in self.edges if j == node]


@dataclass(frozen=True)
class Architecture:
    """A network of the search space, ready to be built by any backend."""

    family: str                     # "conv" or "dense"
    input_shape: tuple[int, ...]
    n_outputs: int
    task: str                       # "classification" or "regression"
    stages: tuple[StageArch, ...]
    learning_rate: float
    momentum: float
    mutation_rate: float = 0.0      # search-time genes: do not change the network
    crossover_rate: float = 0.0

    def network_dict(self) -> dict[str, Any]:
        """What determines the trained network (and so the cache key)."""
        return {
            "family": self.family, "input_shape": list(self.input_shape),
            "n_outputs": self.n_outputs, "task": self.task,
            "stages": [{"nodes": s.nodes, "edges": [list(e) for e in s.edges], "width": s.width}
                       for s in self.stages],
            "learning_rate": round(self.learning_rate, 10), "momentum": round(self.momentum, 10),
        }

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["stages"] = [{**asdict(s), "edges": [list(e) for e in s.edges]} for s in self.stages]
        out["input_shape"] = list(self.input_shape)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Architecture":
        stages = tuple(StageArch(index=s["index"], nodes=s["nodes"], width=s["width"],
                                 edges=tuple(tuple(e) for e in s["edges"])) for s in data["stages"])
        return cls(**{**data, "stages": stages, "input_shape": tuple(data["input_shape"])})

    def key(self) -> str:
        """Cache key: a hash of the canonical network, not of the bit string."""
        blob = json.dumps(self.network_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    @property
    def total_nodes(self) -> int:
        """Units/filters over all nodes (the paper's 'nodes', bounded by max_nodes)."""
        return sum(s.nodes * s.width for s in self.stages)

    def describe(self) -> str:
        """The architecture in words, for summaries."""
        block = "Conv3x3-BN-ReLU" if self.family == "conv" else "Dense-ReLU"
        parts = []
        for s in self.stages:
            wiring = ", ".join(f"{i}->{j}" for i, j in s.edges) or "single node"
            parts.append(f"stage {s.index}: {s.nodes} x {block}({s.width}) [{wiring}]")
        sep = " | pool | " if self.family == "conv" else " | "
        return (f"{sep.join(parts)}; lr {self.learning_rate:.3g}, momentum {self.momentum:.2f}")


def _topological_ok(edges: tuple[Edge, ...]) -> bool:
    return all(i < j for i, j in edges)


@lru_cache(maxsize=65536)
def canonical_stage(nodes: int, edges: tuple[Edge, ...]) -> tuple[int, tuple[Edge, ...]]:
    """Drop isolated nodes and relabel the DAG canonically.

    Nodes without a predecessor take the stage input and nodes without a successor
    feed the stage output (Genetic-CNN), so a node is dead exactly when it has no
    edge at all. A stage without edges is one node. The canonical labelling is the
    lexicographically smallest sorted edge list over all topological relabellings,
    which is the same for isomorphic DAGs.
    """
    used = sorted({n for e in edges for n in e})
    if not used:
        return 1, ()
    index = {n: k for k, n in enumerate(used)}
    relabelled = [(index[i], index[j]) for i, j in edges]
    best: tuple[Edge, ...] | None = None
    for perm in itertools.permutations(range(len(used))):
        candidate = tuple(sorted((perm[i], perm[j]) for i, j in relabelled))
        if _topological_ok(candidate) and (best is None or candidate < best):
            best = candidate
    assert best is not None  # the identity labelling is topological
    return len(used), best


def _pooled(shape: tuple[int, ...], stage_index: int) -> tuple[int, int]:
    """Spatial size at a conv stage: 2x2 max-pool before every stage after the first."""
    h, w = shape[0], shape[1]
    for _ in range(stage_index):
        if h >= 2 and w >= 2:
            h, w = h // 2, w // 2
    return h, w


def node_input_widths(stage: StageArch, stage_in: int) -> list[int]:
    """Input width of each node: the stage input for sources, else the sum of predecessors."""
    return [stage_in if not stage.predecessors(n) else stage.width for n in range(stage.nodes)]


def complexity(arch: Architecture) -> tuple[int, int]:
    """(parameters, FLOPs of one forward pass of one sample), computed exactly.

    Parameters match Keras' ``count_params`` of the model the builder makes (BN's
    moving statistics included); FLOPs count a multiply-add as two operations.
    """
    params = flops = 0
    if arch.family == "conv":
        channels = arch.input_shape[-1]
        for pos, stage in enumerate(arch.stages):
            h, w = _pooled(arch.input_shape, pos)
            for cin in node_input_widths(stage, channels):
                params += 9 * cin * stage.width + 4 * stage.width
                flops += 2 * 9 * cin * stage.width * h * w
            channels = stage.width
        features = channels
    else:
        features = math.prod(arch.input_shape)
        for stage in arch.stages:
            for cin in node_input_widths(stage, features):
                params += cin * stage.width + stage.width
                flops += 2 * cin * stage.width
            features = stage.width
    params += features * arch.n_outputs + arch.n_outputs
    flops += 2 * features * arch.n_outputs
    return params, flops
