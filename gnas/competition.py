"""Layer-wise competition (paper "Layer-wise Competition"; DESIGN.md, the search, step 2).

Every stage position of the chromosome is a layer, and the gene segments that
networks carry there are its competing variants. A variant is what the segment
builds: switched off, or an active stage with its canonical DAG and its width, so
two bit patterns that build the same stage are one variant. Each variant is
credited with the fitness of the evaluated networks that carry it (mean and
count). The credit is a pure function of the evaluation rows, so it can always be
recounted from ``evaluations.db``; it is summed with ``math.fsum`` over rows in key
order, so a resumed run credits exactly what an uninterrupted one does.

After every evaluation round the :class:`CompetitionHook` rebuilds the
scoreboard (``state.scoreboard``), assembles champion individuals from the best
variant of every layer, evaluates them (kind ``"champion"``) and lets each one
replace the worst non-elite individual it beats. The stage-wise crossover, which
exchanges whole stage segments, is mixed with single-point crossover half of the
time. ``evolution.competition = false`` (``--no-competition``) turns all of it off.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from gnas import report, session
from gnas.architecture import Edge
from gnas.callbacks import Callback
from gnas.config import RunConfig
from gnas.operators import Offspring, cx_one_point, cx_segments, sel_best
from gnas.search_space import Bits, SearchSpace, bits_to_str, str_to_bits

if TYPE_CHECKING:  # pragma: no cover
    from gnas.engine import GenerationInfo, Search
    from gnas.run_dir import RunDir, SearchState

OFF = "off"
CREDITED_KINDS = ("search", "champion")  # pruned networks are judged by the pruner, not here
STAGEWISE_PROBABILITY = 0.5              # share of crossovers that swap whole stage segments
STORED_VARIANTS = 25                     # variants kept per layer in state.json
CHAMPION_HISTORY = 100                   # champion records kept in state.json
REPORTED_VARIANTS = 5                    # variants per layer shown by `gnas report`


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
def credited_rows(rows: Iterable[Mapping[str, Any]], generation: int,
                  current_keys: Iterable[str] = ()) -> list[Mapping[str, Any]]:
    """The evaluation rows that take part in the competition at ``generation``.

    Networks evaluated in earlier generations, plus the networks of the current
    round (``current_keys``), whatever row they were first recorded in: a run
    resumed in the middle of a generation then credits exactly what an
    uninterrupted run does. One row per network (the latest, as the cache reads
    it), in key order.
    """
    wanted = set(current_keys)
    latest: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        if row["kind"] not in CREDITED_KINDS or row["fitness"] is None:
            continue
        if row["generation"] < generation or row["genome_key"] in wanted:
            if row["genome_key"] not in latest or row["id"] > latest[row["genome_key"]]["id"]:
                latest[row["genome_key"]] = row
    return [latest[k] for k in sorted(latest)]


def credit(space: SearchSpace, rows: Iterable[Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
    """Per layer, every variant with the mean fitness and count of its carriers.

    Variants are ranked by mean fitness (lower is better), then by count (more
    evidence first), then by name. Each keeps ``segment``: the genes of its best
    carrier, from which a champion can rebuild it.
    """
    n_stages = len(space.stage_nodes)
    tally: list[dict[str, dict[str, Any]]] = [{} for _ in range(n_stages)]
    for row in rows:
        bits = space.repair(space.check(str_to_bits(row["genome"])))
        fitness = float(row["fitness"])
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


def scoreboard(space: SearchSpace, rows: Iterable[Mapping[str, Any]], generation: int,
               population: Sequence[Bits] = ()) -> dict[str, Any]:
    """The JSON-ready scoreboard: ranked variants per layer, and how many the population holds."""
    rows = list(rows)
    layers = credit(space, rows)
    held: list[dict[str, int]] = [{} for _ in layers]
    for bits in population:
        for stage, variant in enumerate(stage_variants(space, bits)):
            held[stage][variant.name] = held[stage].get(variant.name, 0) + 1
    out = []
    for stage, variants in enumerate(layers):
        for entry in variants:
            entry["held"] = held[stage].get(entry["variant"], 0)
        out.append({"stage": stage, "n_variants": len(variants), "variants": variants[:STORED_VARIANTS]})
    return {"generation": generation, "credited": len(rows), "layers": out}


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


def protected_indices(info: "GenerationInfo", elite: int) -> set[int]:
    """Individuals a champion may never replace: this generation's elite."""
    marked = {i for i, o in enumerate(info.offspring) if o.operator == "elite"}
    return marked | set(sel_best(info.fitness, elite))


def worst_slot(fitness: Sequence[float], protected: set[int]) -> int | None:
    """The worst individual outside ``protected`` (the later one on ties), or None."""
    candidates = [i for i in range(len(fitness)) if i not in protected]
    return max(candidates, key=lambda i: (fitness[i], i)) if candidates else None


def place(info: "GenerationInfo", slot: int, champion: Bits, key: str, fitness: float,
          host: Bits) -> None:
    """Put ``champion`` into the population at ``slot``; its lineage parent is its host.

    The lineage entry is replaced only where offspring and population line up
    (unconditional replacement); after NSGA-II survival they do not.
    """
    aligned = slot < len(info.offspring) and info.offspring[slot].bits == info.population[slot]
    info.population[slot] = champion
    info.fitness[slot] = fitness
    info.keys[slot] = key
    if aligned:
        info.offspring[slot] = Offspring(champion, host, "champion")


# ------------------------------------------------------------------ crossover
def cx_stagewise_or_one_point(a: Bits, b: Bits, rng: np.random.Generator, *,
                              segments: Sequence[Sequence[slice]],
                              p_stagewise: float = STAGEWISE_PROBABILITY) -> tuple[Bits, Bits]:
    """Stage-wise crossover with probability ``p_stagewise``, else single-point."""
    if rng.random() < p_stagewise:
        return cx_segments(a, b, segments, rng)
    return cx_one_point(a, b, rng)


def install_crossover(search: "Search") -> None:
    """Make the search mix stage-wise crossover into its variation."""
    segments = [search.space.stage_slices(s) for s in range(len(search.space.stage_nodes))]
    search.crossover = functools.partial(cx_stagewise_or_one_point, segments=segments)


# ----------------------------------------------------------------- the hook
class CompetitionHook:
    """Scoreboard, champions and stage-wise crossover, after every evaluation round."""

    def __init__(self, cfg: RunConfig, space: SearchSpace) -> None:
        self.cfg = cfg
        self.space = space

    def __call__(self, search: "Search", info: "GenerationInfo") -> None:
        install_crossover(search)
        g = info.generation
        rows = search.store.rows()
        keys = set(info.keys)
        board = scoreboard(self.space, credited_rows(rows, g, keys), g)
        history = list(search.state.scoreboard.get("champions", []))
        records = self.champions(search, info, board)
        keys |= {r["key"] for r in records}
        board = scoreboard(self.space, credited_rows(search.store.rows(), g, keys), g,
                           info.population)
        board["champions"] = (history + records)[-CHAMPION_HISTORY:]
        search.state.scoreboard = board

    def champions(self, search: "Search", info: "GenerationInfo",
                  board: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Build, evaluate and insert this round's champions; one record each."""
        g, present = info.generation, set(info.keys)
        built: dict[str, tuple[Bits, Bits]] = {}
        for i in host_indices(info.fitness, info.keys, self.cfg.evolution.champions):
            bits = build_champion(self.space, info.population[i], board)
            built.setdefault(search.task_key(bits), (bits, info.population[i]))
        fresh = [k for k in built if k not in present]
        results = search.evaluate_results([built[k][0] for k in fresh], g, kind="champion")
        scores = {k: search.fitness_model.fitness(r) for k, r in zip(fresh, results)}
        protected = protected_indices(info, self.cfg.evolution.elite)
        records = []
        for key in sorted(built, key=lambda k: (scores.get(k, math.inf), k)):
            bits, host = built[key]
            record = {"generation": g, "key": key, "genome": bits_to_str(bits),
                      "variants": [v.name for v in stage_variants(self.space, bits)],
                      "fitness": scores.get(key), "outcome": "in population", "replaced": None}
            if key in scores:
                slot = worst_slot(info.fitness, protected)
                if slot is not None and scores[key] < info.fitness[slot]:
                    record.update(outcome="accepted", replaced=info.keys[slot])
                    place(info, slot, bits, key, scores[key], host)
                    protected.add(slot)
                else:
                    record["outcome"] = "rejected"
            records.append(record)
        return records


# ----------------------------------------------------------- registration
def _hook_factory(cfg: RunConfig, space: SearchSpace) -> CompetitionHook | None:
    return CompetitionHook(cfg, space) if cfg.evolution.competition else None


class CrossoverInstaller(Callback):
    """Installs the stage-wise crossover before the first variation of a run or a resume."""

    def on_search_begin(self, search: "Search") -> None:
        install_crossover(search)


def _callback_factory(cfg: RunConfig, run_dir: "RunDir") -> Callback | None:
    return CrossoverInstaller() if cfg.evolution.competition else None


# ------------------------------------------------------------------ report
def layers_section(run_dir: "RunDir", state: "SearchState") -> dict[str, Any] | None:
    """``gnas report --json`` ``layers``: the top variants per layer, fitness and count."""
    board = state.scoreboard
    if not board.get("layers"):
        return None
    keep = ("variant", "mean", "count", "best", "held")
    return {"generation": board["generation"], "credited": board["credited"],
            "layers": [{"stage": layer["stage"], "n_variants": layer["n_variants"],
                        "variants": [{k: v[k] for k in keep}
                                     for v in layer["variants"][:REPORTED_VARIANTS]]}
                       for layer in board["layers"]],
            "champions": [c for c in board.get("champions", []) if c["generation"] == board["generation"]]}


def layers_text(run_dir: "RunDir", state: "SearchState") -> str | None:
    """The scoreboard as text lines for ``gnas report``."""
    section = layers_section(run_dir, state)
    if section is None:
        return None
    lines = [f"layer-wise competition (generation {section['generation']}, "
             f"{section['credited']} networks credited):",
             "  layer  mean F   best F   count  held  variant"]
    for layer in section["layers"]:
        for rank, v in enumerate(layer["variants"]):
            label = f"{layer['stage']:>5}" if rank == 0 else " " * 5
            lines.append(f"  {label}  {v['mean']:.4f}   {v['best']:.4f}   {v['count']:>5}  "
                         f"{v['held']:>4}  {v['variant']}")
    for c in section["champions"]:
        fitness = "-" if c["fitness"] is None else f"{c['fitness']:.4f}"
        lines.append(f"  champion {c['key']}: F {fitness}, {c['outcome']}")
    return "\n".join(lines)


session.HOOK_FACTORIES.append(_hook_factory)
session.CALLBACK_FACTORIES.append(_callback_factory)
report.SECTIONS["layers"] = layers_section
report.SECTIONS["layers_text"] = layers_text
