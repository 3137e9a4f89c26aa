"""Connection-gene pruning (paper Algorithm 1, §III-B-1): ranking, accept/reject, P.

Pure functions over bit strings; the training behind every attempt is injected
as a scorer, so the chain is the same whether it runs against real Keras
training (``gnas.backend.prune_eval``) or a fake in a test.

Ranking score of an expressed connection gene ``g`` (lowest is cut first)::

    score_g = w * p1_g + (1 - w) * S_g / max_h S_h

* ``S_g`` is the first-order Taylor saliency of the gene: the sum of
  ``|w * dL/dw|`` over the weights the gene expresses (an edge: its share of the
  target node's kernel; a stage: every weight of the stage), measured on the
  trained network. Dividing by the largest saliency puts it on [0, 1].
* ``p1_g`` is the Markov per-gene survival probability
  (:func:`gnas.markov.chain.gene_survival`): the share of the population's fitness
  held by carriers of the gene, also on [0, 1].
* ``w`` weighs the two (:data:`P1_WEIGHT`); without ``p1`` the score is the
  normalised saliency alone.

Cut units. A Genetic-CNN node sums its inputs, so an edge carries no weights of
its own: cutting one often re-routes (a node that loses its last predecessor
reads the wider stage input) instead of shrinking. Beside single genes the chain
therefore offers *node* cuts: every expressed edge gene of one node switched off
at once, which removes the node with its kernel (:func:`node_units`), and *unit*
cuts ``("units", stage, kept)``: the stage keeps only its ``kept`` most salient
units or filters (the backend chooses them and rebuilds the smaller layers). A
cut is a gene index, a tuple of gene indices or a unit cut; with ``structured``
(the default) only cuts that lower the parameter count of the network are tried
(:func:`parameter_drop`), so every accepted cut makes the network smaller, and
once a stage has been narrowed only unit cuts follow (a gene cut would rebuild
the stage at its gene width).

Mask steps. Under a row, column or block mask the mask itself is cut gradually:
a *mask step* ``("mask", k)`` raises the mask's sparsity to ``k`` times the
run's step (:attr:`gnas.pruning.records.PruneOptions.mask_step`), the masked
network is fine-tuned, and the step is kept by the same rule as any other cut
(F must not rise against the control), so a mask only grows while the network
keeps up. Its saliency is that of the rows, columns or blocks it would zero.

Pruned fraction ``P`` of a network (the ``P`` of fitness eq. 3) is measured on
the network: ``1 - params / params_unpruned``, the share of the base network's
parameters that are gone (the scorer reports it; ``gnas.backend.prune_eval``
counts the non-zero parameters of the rebuilt model). The gene-level share
(:func:`pruned_fraction`) is kept as a secondary figure: the share of the base
network's expressed connection genes that are no longer expressed. A connection
gene is expressed when it is 1 and acts on the network: the active bit of an
active stage, or an edge bit of an active stage.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from gnas.genome.architecture import Architecture, canonical_labels, complexity
from gnas.genome.space import Bits, SearchSpace, bits_to_str, stage_edge_pairs

P1_WEIGHT = 0.5
TUNE_ONLY = -1  # a step of the chain that fine-tunes without cutting (the control)
ACCEPT_TOLERANCE = 1e-12  # F computed twice from stored numbers may differ in the last bit

UNITS = "units"  # tag of a unit cut: ("units", stage index, units kept)
MASK = "mask"    # tag of a mask step: ("mask", k), the mask's sparsity raised to k steps
# one gene, the edge genes of one node switched off together, a unit cut or a mask step
Cut = int | tuple[int, ...] | tuple[str, int, int] | tuple[str, int]


# ------------------------------------------------------------------ genes ---
def expressed_genes(space: SearchSpace, bits: Sequence[int]) -> list[int]:
    """Indices of the connection genes that are 1 and act on the network, in order."""
    return [unit.gene for unit in gene_units(space, bits)]


def is_unit_cut(cut: Any) -> bool:
    """Whether ``cut`` narrows a stage (``("units", stage, kept)``) instead of switching genes off."""
    return isinstance(cut, (list, tuple)) and len(cut) == 3 and cut[0] == UNITS


def is_mask_cut(cut: Any) -> bool:
    """Whether ``cut`` is a mask step (``("mask", k)``), which switches no gene off."""
    return isinstance(cut, (list, tuple)) and len(cut) == 2 and cut[0] == MASK


def mask_steps(cuts: Iterable[Cut]) -> int:
    """The mask steps taken by ``cuts``: the largest ``k`` of its mask steps (0: none)."""
    return max((int(c[1]) for c in cuts if is_mask_cut(c)), default=0)


def cut_genes(cut: Cut | Sequence[int]) -> tuple[int, ...]:
    """The genes one cut switches off (none for the control step, a unit cut or a mask step)."""
    if is_unit_cut(cut) or is_mask_cut(cut):
        return ()
    if isinstance(cut, (list, tuple)):
        return tuple(int(g) for g in cut)
    return () if int(cut) == TUNE_ONLY else (int(cut),)


def as_cut(value: Any) -> Cut:
    """A cut read back from JSON (a list for a node or unit cut) in its hashable form."""
    if is_unit_cut(value):
        return (UNITS, int(value[1]), int(value[2]))
    if is_mask_cut(value):
        return (MASK, int(value[1]))
    return tuple(int(g) for g in value) if isinstance(value, (list, tuple)) else int(value)


def cut_architecture(space: SearchSpace, base: Sequence[int], cuts: Sequence[Cut]) -> Architecture:
    """The network ``base`` becomes after ``cuts``: genes off, then stages narrowed by unit cuts."""
    arch = space.decode(space.repair(apply_cuts(base, cuts)))
    return arch.with_widths({int(c[1]): int(c[2]) for c in cuts if is_unit_cut(c)})


def apply_cuts(bits: Sequence[int], cuts: Iterable[Cut]) -> Bits:
    """The bits with every gene of every cut in ``cuts`` switched off."""
    out = [int(b) for b in bits]
    for cut in cuts:
        for g in cut_genes(cut):
            out[g] = 0
    return tuple(out)


def parameter_drop(space: SearchSpace, base: Sequence[int], cuts: Sequence[Cut], cut: Cut) -> int:
    """How many parameters the network of ``base + cuts`` loses with ``cut`` (negative: it grows)."""
    before = complexity(cut_architecture(space, base, cuts))[0]
    after = complexity(cut_architecture(space, base, [*cuts, cut]))[0]
    return before - after


def node_units(space: SearchSpace, bits: Sequence[int]) -> dict[tuple[int, ...], str]:
    """Node cuts: the expressed edge genes of each live node -> its layer-name prefix.

    Switching all of a node's edges off leaves it isolated, and an isolated node
    is dead (``canonical_stage``), so the cut removes the node and its weights.
    A stage's only node is removed by its stage gene instead.
    """
    bits = space.repair(space.check(bits))
    names = node_names(space, bits)
    out: dict[tuple[int, ...], str] = {}
    for s in space.active_stages(bits):
        sl = space.edge_slices[s]
        pairs = stage_edge_pairs(space.stage_nodes[s])
        for node in range(space.stage_nodes[s]):
            genes = tuple(sl.start + k for k, (i, j) in enumerate(pairs)
                          if bits[sl.start + k] and node in (i, j))
            if len(genes) > 1 and (s, node) in names:
                out[genes] = names[(s, node)]
    return out


def pruned_fraction(space: SearchSpace, base: Sequence[int], bits: Sequence[int]) -> float:
    """``P``: share of the base's expressed connection genes no longer expressed in ``bits``."""
    before = set(expressed_genes(space, base))
    if not before:
        return 0.0
    return len(before - set(expressed_genes(space, bits))) / len(before)


def target_reached(fraction: float, target: float) -> bool:
    return fraction + 1e-9 >= target


@dataclass(frozen=True)
class GeneUnit:
    """What one expressed gene switches on in the built network (canonical labels)."""

    gene: int
    stage: int                          # stage index (layer names s{stage}_...)
    edge: tuple[int, int] | None = None  # canonical (from, to); None = the whole stage


def gene_units(space: SearchSpace, bits: Sequence[int]) -> list[GeneUnit]:
    """Every expressed gene with the part of the built network it expresses."""
    bits = space.repair(space.check(bits))
    units: list[GeneUnit] = []
    for s in space.active_stages(bits):
        if s > 0:
            units.append(GeneUnit(space.active_slice.start + s - 1, s))
        sl = space.edge_slices[s]
        pairs = stage_edge_pairs(space.stage_nodes[s])
        raw = tuple(p for p, b in zip(pairs, bits[sl]) if b)
        _, _, labels = canonical_labels(space.stage_nodes[s], raw)
        for offset, (i, j) in enumerate(pairs):
            if bits[sl.start + offset]:
                units.append(GeneUnit(sl.start + offset, s, (labels[i], labels[j])))
    return sorted(units, key=lambda u: u.gene)


def node_names(space: SearchSpace, bits: Sequence[int]) -> dict[tuple[int, int], str]:
    """(stage, node of the chromosome) -> layer-name prefix ``s{stage}_n{label}`` in the build."""
    bits = space.repair(space.check(bits))
    out: dict[tuple[int, int], str] = {}
    for s in space.active_stages(bits):
        pairs = stage_edge_pairs(space.stage_nodes[s])
        raw = tuple(p for p, b in zip(pairs, bits[space.edge_slices[s]]) if b)
        _, _, labels = canonical_labels(space.stage_nodes[s], raw)
        out.update({(s, n): f"s{s}_n{k}" for n, k in labels.items()} or {(s, 0): f"s{s}_n0"})
    return out


def layer_map(space: SearchSpace, old: Sequence[int], new: Sequence[int]) -> dict[str, str]:
    """Old layer-name prefix -> new one, for every node that survives a cut.

    A cut can relabel a stage's nodes (canonical form), so weights are carried
    over by the node's identity in the chromosome, not by its label.
    """
    before, after = node_names(space, old), node_names(space, new)
    return {before[k]: after[k] for k in before if k in after}


# ---------------------------------------------------------------- ranking ---
def ranking_scores(saliency: Mapping[Cut, float], p1: Mapping[int, float] | None = None,
                   weight: float = P1_WEIGHT) -> dict[Cut, float]:
    """``w * p1 + (1 - w) * S / max S`` per cut (module docstring); lowest is cut first.

    A node cut's ``p1`` is the mean survival of its edge genes; a unit cut, which
    no gene carries, gets the mean over all genes (neutral).
    """
    top = max((abs(v) for v in saliency.values()), default=0.0)
    norm = {g: (abs(v) / top if top > 0 else 0.0) for g, v in saliency.items()}
    if p1 is None:
        return norm

    neutral = sum(float(v) for v in p1.values()) / len(p1) if p1 else 0.0

    def survival(cut: Cut) -> float:
        genes = cut_genes(cut)
        return sum(float(p1.get(g, 0.0)) for g in genes) / len(genes) if genes else neutral

    return {g: weight * survival(g) + (1.0 - weight) * s for g, s in norm.items()}


def rank(scores: Mapping[Cut, float]) -> list[Cut]:
    """Cuts from the first to the last (ties: lower genes first, a gene before a node)."""
    return sorted(scores, key=lambda g: (scores[g], str(g) if is_unit_cut(g) or is_mask_cut(g) else "",
                                         cut_genes(g)))


def is_accepted(new_fitness: float, current_fitness: float) -> bool:
    """Keep a cut when the fitness F (minimised) does not rise."""
    return new_fitness <= current_fitness + ACCEPT_TOLERANCE


# ------------------------------------------------------------------ chain ---
@dataclass(frozen=True)
class Attempt:
    """What the scorer reports for one state of the chain (the base, or base + cuts)."""

    ok: bool
    fitness: float
    pruned_fraction: float = 0.0
    saliency: dict[Cut, float] = field(default_factory=dict)
    key: str = ""
    message: str = ""


@dataclass
class ChainResult:
    """The outcome of pruning one network; JSON-ready through :meth:`to_dict`."""

    base: str
    cuts: list[Cut] = field(default_factory=list)
    fitness_before: float | None = None
    fitness_after: float | None = None
    pruned_fraction: float = 0.0   # measured on the network: 1 - params / params_unpruned
    gene_fraction: float = 0.0     # secondary: share of expressed connection genes cut
    key_before: str = ""
    key_after: str = ""
    reason: str = ""
    attempts: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


Scorer = Callable[[tuple[int, ...]], Attempt]


def prune_chain(space: SearchSpace, base: Sequence[int], scorer: Scorer, target: float,
                p1: Mapping[int, float] | None = None, max_rejections: int = 3,
                weight: float = P1_WEIGHT, structured: bool = True) -> ChainResult:
    """Algorithm 1's pruning loop for one network.

    Rank the expressed genes, switch the lowest off, let ``scorer`` fine-tune and
    score the result, keep the cut when F does not rise, otherwise restore it and
    try the next-lowest. Stops at the target fraction, when nothing is left to
    cut, or when none of the ``max_rejections`` lowest-ranked cuts is accepted.

    Fine-tuning is extra training, so "F does not rise" is judged against a
    control: the current network fine-tuned the same number of steps without the
    cut (``cuts + (TUNE_ONLY,)``, one per round). A cut is kept when the network
    without that connection does at least as well as the same network with it.

    ``P`` is the scorer's measured fraction. With ``structured``, the ranked
    cuts are the genes and node cuts the scorer gave a saliency for, keeping
    only those that lower the network's parameter count.
    """
    base = space.repair(space.check(base))
    result = ChainResult(base=bits_to_str(base))
    current = scorer(())
    result.attempts.append(_log((), current, True))
    result.key_before = result.key_after = current.key
    if not current.ok:
        result.reason = f"the base network failed to train ({current.message.splitlines()[0] if current.message else 'no reason'})"
        return result
    result.fitness_before = result.fitness_after = current.fitness
    result.pruned_fraction = current.pruned_fraction
    while True:
        if target_reached(result.pruned_fraction, target):
            result.reason = f"target fraction {target:g} reached"
            return result
        order = rank(ranking_scores(current.saliency, p1, weight))
        if structured:
            if any(is_unit_cut(c) for c in result.cuts):  # widths are the last thing cut
                order = [c for c in order if is_unit_cut(c) or is_mask_cut(c)]
            # a mask step shrinks what the backend measures, not the genome's architecture
            order = [c for c in order if is_mask_cut(c) or parameter_drop(space, base, result.cuts, c) > 0]
        if not order:
            result.reason = ("no cut left that removes weights" if structured and current.saliency
                             else "no expressed connection gene left to cut")
            return result
        tried = order[:max_rejections]
        control = scorer(tuple(result.cuts) + (TUNE_ONLY,))
        result.attempts.append(_log(tuple(result.cuts) + (TUNE_ONLY,), control, False))
        bar = control.fitness if control.ok else current.fitness
        for gene in tried:
            attempt = scorer(tuple(result.cuts) + (gene,))
            kept = attempt.ok and is_accepted(attempt.fitness, bar)
            result.attempts.append(_log(tuple(result.cuts) + (gene,), attempt, kept))
            if kept:
                result.cuts.append(gene)
                current = attempt
                result.fitness_after, result.key_after = attempt.fitness, attempt.key
                result.pruned_fraction = attempt.pruned_fraction
                result.gene_fraction = pruned_fraction(space, base, apply_cuts(base, result.cuts))
                break
        else:
            result.reason = (f"no cut accepted: each of the {len(tried)} lowest-ranked cuts "
                             f"{tried} raised F above the uncut control {bar:.4f} "
                             f"(P = {result.pruned_fraction:.3f})")
            return result


def _log(cuts: tuple[Cut, ...], attempt: Attempt, kept: bool) -> dict:
    return {"cuts": cuts_to_json(cuts), "key": attempt.key, "ok": attempt.ok,
            "fitness": attempt.fitness if attempt.ok else None,
            "pruned_fraction": attempt.pruned_fraction, "accepted": kept}


def cuts_to_json(cuts: Iterable[Cut]) -> list:
    """Cuts as JSON values (a node or unit cut as a list); :func:`as_cut` reads them back."""
    return [list(c) if isinstance(c, tuple) else c for c in cuts]


def attempt_tag(base: Sequence[int], cuts: Sequence[Cut], settings: Mapping[str, object]) -> str:
    """Deterministic tag of one attempt: the same attempt always maps to one store row."""
    blob = json.dumps({"base": bits_to_str(base), "cuts": list(cuts), **settings},
                      sort_keys=True, separators=(",", ":"))
    return "prune-" + hashlib.sha256(blob.encode()).hexdigest()[:16]
