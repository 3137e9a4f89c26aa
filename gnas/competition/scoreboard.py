"""Layer-wise competition: variants, their credit and the scoreboard, as pure functions.

Every stage position of the chromosome is a layer, and the gene segments that
networks carry there are its competing variants. A variant is what the segment
builds: switched off, or an active stage with its canonical DAG and its width, so
two bit patterns that build the same stage are one variant. Each variant is
credited with the fitness of the evaluated networks that carry it (mean and
count). The credit is a pure function of the stored evaluations, so it can always be
recounted from ``evaluations.db``; it is summed with ``math.fsum`` over them in key
order, so a resumed run credits exactly what an uninterrupted one does.

The step that acts on them each generation is :mod:`gnas.competition.step`.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from gnas.genome.architecture import Edge
from gnas.genome.space import Bits, SearchSpace, bits_to_str, str_to_bits
from gnas.records import Kind, StoredEvaluation
from gnas.search.operators import Crossover, cx_one_point, cx_segments, sel_best

OFF = "off"
CREDITED_KINDS = (Kind.SEARCH, Kind.CHAMPION)  # pruned networks are judged by the pruner, not here
STAGEWISE_PROBABILITY = 0.5              # share of crossovers that swap whole stage segments
STORED_VARIANTS = 25                     # variants kept per layer in state.json


# ------------------------------------------------------------------ variants
@dataclass(frozen=True)
class Variant:
    """What one stage position builds in one network."""

    active: bool
    nodes: int = 0
    edges: tuple[Edge, ...] = ()
    width: int = 0

    @property
    def name(self) -> str:
        """A readable identity, e.g. ``w64 n3 [0>1 0>2]`` or ``off``."""
        if not self.active:
            return OFF
        wiring = " ".join(f"{i}>{j}" for i, j in self.edges) or "single"
        return f"w{self.width} n{self.nodes} [{wiring}]"


def stage_variants(space: SearchSpace, bits: Sequence[int]) -> list[Variant]:
    """The variant of every stage position, as the (repaired) bits decode."""
    arch = space.decode(bits)
    by_index = {s.index: s for s in arch.stages}
    out = []
    for stage in range(len(space.stage_nodes)):
        s = by_index.get(stage)
        out.append(Variant(True, s.nodes, s.edges, s.width) if s else Variant(False))
    return out


def segment(space: SearchSpace, bits: Sequence[int], stage: int) -> str:
    """The genes of one stage position (active bit, edges, width) as a 0/1 string."""
    return "".join(bits_to_str(bits[sl]) for sl in space.stage_slices(stage))


def with_segment(space: SearchSpace, bits: Sequence[int], stage: int, genes: str) -> Bits:
    """``bits`` with the genes of one stage position replaced by ``genes``."""
    out, pos = list(bits), 0
    for sl in space.stage_slices(stage):
        width = sl.stop - sl.start
        out[sl] = str_to_bits(genes[pos:pos + width])
        pos += width
    return tuple(out)


# --------------------------------------------------------------------- credit
def credited(evaluations: Iterable[StoredEvaluation], generation: int,
             current_keys: Iterable[str] = ()) -> list[StoredEvaluation]:
    """The evaluations that take part in the competition at ``generation``.

    Networks evaluated in earlier generations, plus the networks of the current
    round (``current_keys``), whatever generation they were first recorded in: a
    run resumed in the middle of a generation then credits exactly what an
    uninterrupted run does. One evaluation per network (the latest row, as the
    cache reads it), in key order.
    """
    wanted = set(current_keys)
    latest: dict[str, StoredEvaluation] = {}
    for e in evaluations:
        if e.result.kind not in CREDITED_KINDS or e.fitness is None:
            continue
        if e.result.generation < generation or e.key in wanted:
            if e.key not in latest or e.id > latest[e.key].id:
                latest[e.key] = e
    return [latest[k] for k in sorted(latest)]


def credit(space: SearchSpace, evaluations: Iterable[StoredEvaluation]) -> list[list[dict[str, Any]]]:
    """Per layer, every variant with the mean fitness and count of its carriers.

    Variants are ranked by mean fitness (lower is better), then by count (more
    evidence first), then by name. Each keeps ``segment``: the genes of its best
    carrier, from which a champion can rebuild it.
    """
    n_stages = len(space.stage_nodes)
    tally: list[dict[str, dict[str, Any]]] = [{} for _ in range(n_stages)]
    for e in evaluations:
        if e.fitness is None:
            raise ValueError(f"a failed evaluation of {e.key} cannot be credited")
        bits = space.repair(space.check(str_to_bits(e.result.genome)))
        fitness = e.fitness
        for stage, variant in enumerate(stage_variants(space, bits)):
            entry = tally[stage].setdefault(variant.name, {"variant": variant, "fitness": []})
            entry["fitness"].append(fitness)
            carrier = (fitness, bits_to_str(bits))
            if "carrier" not in entry or carrier < entry["carrier"]:
                entry["carrier"] = carrier
                entry["segment"] = segment(space, bits, stage)
    return [sorted((_entry(e) for e in layer.values()), key=rank_key) for layer in tally]


def _entry(tallied: dict[str, Any]) -> dict[str, Any]:
    v: Variant = tallied["variant"]
    values = tallied["fitness"]
    return {"variant": v.name, "active": v.active, "nodes": v.nodes,
            "edges": [list(e) for e in v.edges], "width": v.width,
            "mean": math.fsum(values) / len(values), "count": len(values),
            "best": min(values), "segment": tallied["segment"], "held": 0}


def rank_key(entry: Mapping[str, Any]) -> tuple[float, int, str]:
    """Lower mean fitness first; on ties the variant with more carriers, then by name."""
    return (entry["mean"], -entry["count"], entry["variant"])


def scoreboard(space: SearchSpace, evaluations: Iterable[StoredEvaluation], generation: int,
               population: Sequence[Bits] = ()) -> dict[str, Any]:
    """The JSON-ready scoreboard: ranked variants per layer, and how many the population holds."""
    evaluations = list(evaluations)
    layers = credit(space, evaluations)
    held: list[dict[str, int]] = [{} for _ in layers]
    for bits in population:
        for stage, variant in enumerate(stage_variants(space, bits)):
            held[stage][variant.name] = held[stage].get(variant.name, 0) + 1
    out = []
    for stage, variants in enumerate(layers):
        for entry in variants:
            entry["held"] = held[stage].get(entry["variant"], 0)
        out.append({"stage": stage, "n_variants": len(variants), "variants": variants[:STORED_VARIANTS]})
    return {"generation": generation, "credited": len(evaluations), "layers": out}


def best_variants(board: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The leading variant of every layer."""
    return [layer["variants"][0] for layer in board["layers"]]


# ------------------------------------------------------------------ champions
def build_champion(space: SearchSpace, host: Bits, board: Mapping[str, Any]) -> Bits:
    """``host`` with every layer set to its best recorded variant, then repaired.

    The host contributes the genes that are not layers (learning rate, momentum,
    the self-adaptive rates). Repair switches deep layers off again when the
    winners together break max_depth, max_nodes or C_max_allowed.
    """
    bits = tuple(host)
    for stage, best in enumerate(best_variants(board)):
        bits = with_segment(space, bits, stage, best["segment"])
    return space.repair(bits)


def host_indices(fitness: Sequence[float], keys: Sequence[str], k: int) -> list[int]:
    """The ``k`` best individuals with distinct networks: the champions' hosts."""
    out: list[int] = []
    seen: set[str] = set()
    for i in sel_best(fitness, len(fitness)):
        if keys[i] not in seen:
            seen.add(keys[i])
            out.append(i)
    return out[:k]


# ------------------------------------------------------------------ crossover
def cx_stagewise_or_one_point(a: Bits, b: Bits, rng: np.random.Generator, *,
                              segments: Sequence[Sequence[slice]],
                              p_stagewise: float = STAGEWISE_PROBABILITY) -> tuple[Bits, Bits]:
    """Stage-wise crossover with probability ``p_stagewise``, else single-point."""
    if rng.random() < p_stagewise:
        return cx_segments(a, b, segments, rng)
    return cx_one_point(a, b, rng)




def crossover_of(space: SearchSpace, competition: bool) -> Crossover:
    """Stage-wise crossover goes with the layer-wise competition; single-point otherwise.

    The run and the Markov forecast of its operators both ask here, so the
    forecast follows the crossover the run really uses.
    """
    return stagewise_crossover(space) if competition else cx_one_point


def stagewise_crossover(space: SearchSpace) -> Crossover:
    """The crossover a run with layer-wise competition uses: stage-wise half of the time."""
    segments = [space.stage_slices(s) for s in range(len(space.stage_nodes))]
    return functools.partial(cx_stagewise_or_one_point, segments=segments)
