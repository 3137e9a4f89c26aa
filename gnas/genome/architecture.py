"""Decoded architectures: what a chromosome builds, in plain data.

An :class:`Architecture` is the network a bit string describes after dead nodes
are removed (:func:`canonical_stage` states the rule) and each stage's DAG is put
in canonical form. Its key hashes
only what changes the trained network, so two bit strings that build the same
network share one cache entry and are trained once.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence

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

    def with_widths(self, widths: Mapping[int, int]) -> "Architecture":
        """This network with the stages named in ``widths`` (stage index -> units) narrowed.

        Unit cuts narrow a stage without touching the genome, so every network a
        pruning chain rebuilds takes its widths from here; other stages keep theirs.
        """
        return replace(self, stages=tuple(replace(st, width=int(widths.get(st.index, st.width)))
                                          for st in self.stages))

    def node_widths(self) -> list[list[int]]:
        """Units (filters) of every node, stage by stage: each node has its stage's width.

        A compacted export can narrow nodes of one stage differently; its widths
        come from the pruner's metrics, and this is what they default to.
        """
        return [[s.width] * s.nodes for s in self.stages]

    def describe(self, node_widths: Sequence[Sequence[int]] | None = None) -> str:
        """The architecture in words, for summaries.

        ``node_widths`` (as :meth:`node_widths` lays them out) describes a network
        whose nodes were narrowed one by one: a stage whose nodes differ lists
        every node's width, so the words match the exported file.
        """
        block = "Conv3x3-BN-ReLU" if self.family == "conv" else "Dense-ReLU"
        widths = node_widths if node_widths is not None else self.node_widths()
        parts = []
        for s, nodes in zip(self.stages, widths):
            wiring = ", ".join(f"{i}->{j}" for i, j in s.edges) or "single node"
            shown = ", ".join(str(int(w)) for w in nodes) if len(set(nodes)) > 1 \
                else str(int(nodes[0]) if len(nodes) else s.width)
            parts.append(f"stage {s.index}: {s.nodes} x {block}({shown}) [{wiring}]")
        sep = " | pool | " if self.family == "conv" else " | "
        return (f"{sep.join(parts)}; lr {self.learning_rate:.3g}, momentum {self.momentum:.2f}")


def _topological_ok(edges: tuple[Edge, ...]) -> bool:
    return all(i < j for i, j in edges)


def live_nodes(nodes: int, edges: Iterable[Edge], inputs: Iterable[int],
               outputs: Iterable[int]) -> frozenset[int]:
    """Nodes on some path from the stage input to the stage output (paper §III-B-1).

    ``inputs`` are the nodes the stage input feeds and ``outputs`` those that feed
    the stage output. A node with no incoming connection (no live predecessor and
    no input) or no outgoing one (no live successor and no output) is removed with
    its edges, and the rule is applied again until nothing changes: removing one
    node can strand its neighbours.
    """
    alive = set(range(nodes))
    edges = [(i, j) for i, j in edges if i in alive and j in alive]
    feeds_in, feeds_out = set(inputs), set(outputs)
    while True:
        has_in = feeds_in | {j for i, j in edges}
        has_out = feeds_out | {i for i, j in edges}
        dead = {n for n in alive if n not in has_in or n not in has_out}
        if not dead:
            return frozenset(alive)
        alive -= dead
        edges = [(i, j) for i, j in edges if i in alive and j in alive]


def genetic_cnn_terminals(nodes: int, edges: Iterable[Edge]) -> tuple[list[int], list[int]]:
    """Where the stage input enters and the stage output leaves, as the builder wires them.

    Genetic CNN: a node with at least one edge and no predecessor takes the stage
    input; one with at least one edge and no successor is summed into the output.
    An isolated node is attached to neither, so under this convention the dead
    nodes of :func:`live_nodes` are exactly the isolated ones.
    """
    edges = list(edges)
    targets, origins = {j for _, j in edges}, {i for i, _ in edges}
    connected = targets | origins
    return ([n for n in range(nodes) if n in connected and n not in targets],
            [n for n in range(nodes) if n in connected and n not in origins])


@lru_cache(maxsize=65536)
def canonical_labels(nodes: int, edges: tuple[Edge, ...]) -> tuple[int, tuple[Edge, ...], dict[int, int]]:
    """(live nodes, canonical edges, original node -> canonical label).

    Dead nodes are removed with :func:`live_nodes` on the Genetic-CNN terminals,
    then the live DAG is relabelled: the canonical labelling is the
    lexicographically smallest sorted edge list over all topological relabellings,
    which is the same for isomorphic DAGs. The label map lets weights follow their
    node when a cut relabels the stage. Do not mutate the returned dict (cached).
    """
    inputs, outputs = genetic_cnn_terminals(nodes, edges)
    used = sorted(live_nodes(nodes, edges, inputs, outputs))
    if not used:
        return 1, (), {}
    index = {n: k for k, n in enumerate(used)}
    relabelled = [(index[i], index[j]) for i, j in edges if i in index and j in index]
    best: tuple[Edge, ...] | None = None
    best_perm: tuple[int, ...] = tuple(range(len(used)))
    for perm in itertools.permutations(range(len(used))):
        candidate = tuple(sorted((perm[i], perm[j]) for i, j in relabelled))
        if _topological_ok(candidate) and (best is None or candidate < best):
            best, best_perm = candidate, perm
    assert best is not None  # the identity labelling is topological
    return len(used), best, {n: best_perm[index[n]] for n in used}


def canonical_stage(nodes: int, edges: tuple[Edge, ...]) -> tuple[int, tuple[Edge, ...]]:
    """Remove dead nodes and relabel the DAG canonically: (live nodes, edges).

    Dead-node rule (paper §III-B-1, made consistent with the builder): a node is
    live when it lies on a path from the stage input to the stage output, and dead
    nodes are removed recursively (:func:`live_nodes`). The builder feeds the stage
    input to every node without a predecessor and sums every node without a
    successor into the output (Genetic CNN), so only isolated nodes are dead; a
    stage whose nodes are all dead is one node fed by the input (Genetic CNN's
    default). Parameters and FLOPs (:func:`complexity`) count live nodes only.
    """
    n, canon, _ = canonical_labels(nodes, edges)
    return n, canon


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
