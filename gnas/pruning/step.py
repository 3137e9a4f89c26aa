"""The pruning phase of the search (DESIGN.md, "The search", step 3), as a step.

With ``prune.fraction > 0`` the step watches each generation's end. Growth turns
into pruning once the best validation error is at most ``prune.threshold`` or the
growth budget is spent (``prune.growth_generations``, or half the generations
when that is 0); the switch is reported on one line (the ``report`` callback)
and kept in the step's state.
From then on, each generation prunes the best ``prune.candidates`` networks not
pruned yet (:func:`gnas.pruning.cuts.prune_chain`): every attempt is an evaluation
of kind ``prune`` whose options name the base genome, the cuts and a variant digest
of the settings, so a resumed run finds it in the store instead of training it
again. Pruned networks replace the worst individuals they beat. At the last
generation the step asks for the best pruned network's base to be trained to the
end and scored on the test split too (:meth:`PruningStep.before_training`, its
scores back through :meth:`PruningStep.on_trained`), for the report's
before/after comparison (``gnas report --json``, "pruning").
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from gnas.config import RunConfig
from gnas.genome.architecture import Architecture
from gnas.genome.space import Bits, SearchSpace, bits_to_str, str_to_bits
from gnas.markov import chain as markov
from gnas.pruning import cuts as pruning
from gnas.pruning import masks
from gnas.pruning.records import ChainRecord, PruneOptions
from gnas.records import EvalResult, Kind, NetworkSize, Operator, Phase
from gnas.search.step import GenerationView, Replacement, StepDecision, TrainRequest, replace_worst


def validate(cfg: RunConfig, space: SearchSpace) -> None:
    """Refuse mask settings the search space cannot hold (one line, exit 2)."""
    if cfg.prune.fraction <= 0 or cfg.prune.mask != "nm":
        return
    n, m = masks.parse_nm(cfg.prune.nm)
    for width in sorted(set(space.widths)):
        masks.check_nm(n, m, width, f"of width {width} (space widths {list(space.widths)})")


def is_pruned(result: EvalResult | None) -> bool:
    """Whether an evaluation is a pruning attempt (a fact of its row, not of its key)."""
    return result is not None and result.kind == Kind.PRUNE


def _silent(message: str) -> None:
    """The report of a step nobody listens to (a test's, say)."""


class PruningStep:
    """Switches the search to pruning and prunes the best networks each generation.

    Args:
        before_dir: Where the best network's unpruned base is retrained, for the
            before/after comparison (see :meth:`before_training`).
        report: Called with each line the step has to say (the switch to pruning).
    """

    name = "pruning"

    def __init__(self, cfg: RunConfig, space: SearchSpace, before_dir: Path,
                 report: Callable[[str], None] = _silent) -> None:
        self.cfg = cfg
        self.space = space
        self.before_dir = before_dir
        self.report = report
        self.options = PruneOptions.for_run(cfg)
        self.book: dict[str, Any] = {}
        self._base_row: dict[str, Any] = {}

    def get_state(self) -> dict[str, Any]:
        return self.book

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.book = dict(state)

    def after_evaluation(self, view: GenerationView) -> StepDecision:
        book = self.book
        book.setdefault("target", self.cfg.prune.fraction)
        book.setdefault("settings", self.options.settings())
        phase = None
        if view.phase != Phase.PRUNE:
            reason = self.switch_reason(view)
            if reason is None:
                return StepDecision()
            phase = Phase.PRUNE
            book["started"] = {"generation": view.generation, "reason": reason}
            self.report(f"pruning starts at generation {view.generation}: {reason}")
        kept = self.keep_pruned(view)
        replacements = self.prune_generation(view, kept)
        request = self.before_training(view) if view.is_last else None
        return StepDecision(tuple(kept) + tuple(replacements), phase, (request,) if request else ())

    # --------------------------------------------------------------- phase
    def switch_reason(self, view: GenerationView) -> str | None:
        best = int(np.argmin(view.fitness))
        row = view.lookup(view.keys[best])
        error = row.val_error if row is not None and row.ok else None
        p = self.cfg.prune
        if error is not None and error <= p.threshold:
            return f"best validation error {error:.4f} <= threshold {p.threshold:g}"
        budget = growth_budget(self.cfg)
        if view.generation >= budget:
            shown = "none" if error is None else f"{error:.4f}"
            return f"growth budget of {budget} generations spent (best error {shown})"
        return None

    # ------------------------------------------------------------- pruning
    def prune_generation(self, view: GenerationView, kept: list[Replacement]) -> list[Replacement]:
        """Prune this generation's best unpruned networks; the pruned ones that win a slot."""
        chains = self.book.setdefault("chains", {})
        keys, fitness = list(view.keys), list(view.fitness)
        for r in kept:
            keys[r.slot], fitness[r.slot] = r.key, r.fitness
        p1 = self.survival(view)
        order = sorted(range(len(view.population)), key=lambda i: (fitness[i], keys[i]))
        picked: list[str] = []
        for i in order:  # the best networks of this generation that are not pruned results
            key = keys[i]
            row = view.lookup(key)
            if is_pruned(row) or key in picked or row is None or not row.ok:
                continue
            picked.append(key)
            if key not in chains:
                chains[key] = self.run_chain(view, view.population[i], p1)
            if len(picked) >= self.cfg.prune.candidates:
                break
        protected = {i for i, k in enumerate(keys) if k in picked}
        ends = [ChainRecord.from_dict(chains[k]) for k in picked]
        candidates = [(str_to_bits(c.genome_after), c.key_after, c.fitness_after)
                      for c in ends if c.fitness_after is not None]
        replacements, _ = replace_worst(fitness, keys, protected, candidates, operator=Operator.PRUNED)
        return replacements

    def survival(self, view: GenerationView) -> dict[int, float]:
        conn = np.asarray([self.space.connection_genes(b) for b in view.population])
        values = markov.gene_survival(conn, np.asarray(view.fitness, dtype=float))
        return {g: float(v) for g, v in enumerate(values)}

    def run_chain(self, view: GenerationView, base: Bits, p1: dict[int, float]) -> dict[str, Any]:
        def scorer(cuts: tuple[int, ...]) -> pruning.Attempt:
            options = self.options.attempt(base, cuts).to_dict()
            bits = pruning.apply_cuts(base, cuts)
            r = view.evaluate([bits], Kind.PRUNE, options)[0]
            sal: dict[pruning.Cut, float] = {int(g): float(v) for g, v in r.metrics.get("saliency", {}).items()}
            for name in ("node_saliency", "unit_saliency", "mask_saliency"):
                sal.update({pruning.as_cut(g): float(v) for g, v in r.metrics.get(name, [])})
            return pruning.Attempt(ok=r.ok, fitness=view.fitness_of(r),
                                   pruned_fraction=r.pruned_fraction, saliency=sal, key=r.key,
                                   message=r.message)

        p = self.cfg.prune
        result = pruning.prune_chain(self.space, base, scorer, p.fraction, p1, p.max_rejections,
                                     p.p1_weight)
        sides = {side: row_summary(view.lookup(key) if key else None)
                 for side, key in (("before", result.key_before), ("after", result.key_after))}
        return ChainRecord.from_dict({**result.to_dict(), "generation": view.generation,
                                      "genome_after": bits_to_str(pruning.apply_cuts(base, result.cuts)),
                                      **sides}).to_dict()

    def keep_pruned(self, view: GenerationView) -> list[Replacement]:
        """An individual whose bits are a pruned network keeps that network's evaluation.

        Copies made by elitism or selection are evaluated again from scratch under
        the plain architecture key; the pruned (fine-tuned) evaluation of the same
        bits is the better realisation when it has the better fitness.
        """
        pruned = {c.genome_after: c for c in self.chains() if c.pruned}
        out = []
        for i, bits in enumerate(view.population):
            chain = pruned.get(bits_to_str(bits))
            if (chain and not is_pruned(view.lookup(view.keys[i]))
                    and chain.fitness_after < view.fitness[i]):
                out.append(Replacement(i, bits, chain.key_after, chain.fitness_after))
        return out

    def chains(self) -> list[ChainRecord]:
        """The chains run so far, one per pruned base, in the order they ran."""
        return [ChainRecord.from_dict(c) for c in self.book.get("chains", {}).values()]

    # -------------------------------------------------------------- report
    def before_training(self, view: GenerationView) -> TrainRequest | None:
        """What must be trained to the end for the before/after comparison, if anything.

        The base of the best pruned network (lowest fitness after pruning, ties
        by key), once: None when no chain reached a fitness or when that base's
        scores are already recorded (a resumed run). The base's row is summarised
        now, for :meth:`on_trained`.
        """
        chains = [c for c in self.chains() if c.fitness_after is not None]
        if not chains:
            return None
        best = min(chains, key=lambda c: (c.fitness_after, c.key_after))
        key = self.space.key(str_to_bits(best.base))
        known = self.book.get("before_model")
        if known and known.get("key") == key:
            return None
        self._base_row = row_summary(view.lookup(key))
        return TrainRequest(genome=best.base, key=key, out_dir=self.before_dir)

    def on_trained(self, request: TrainRequest, metrics: Mapping[str, Any]) -> None:
        """Keep the scores of a carried-out :meth:`before_training` as ``before_model``."""
        model = request.out_dir / "model.keras"
        self.book["before_model"] = {
            "key": request.key, "genome": request.genome, **self._base_row,
            "val_error": metrics["val_error"], "test_error": metrics["test_error"],
            "test_score": metrics["test_score"], "model_file": str(model),
            "model_bytes": model.stat().st_size if model.is_file() else None}


def growth_budget(cfg: RunConfig) -> int:
    """Generations of growth before pruning (Algorithm 1): the setting, or half the run when 0.

    Half, so that a default-length run with ``--prune`` has generations left in
    which pruned networks compete with grown ones.
    """
    return cfg.prune.growth_generations or max(1, cfg.evolution.generations // 2)


def row_summary(row: EvalResult | None) -> dict[str, Any]:
    """Parameters, FLOPs, scores and pruned fraction of one evaluation, for reports.

    ``params`` counts non-zero parameters, ``params_stored`` what a file of the
    network holds (they differ only under irregular or N:M masks, stored dense).
    """
    if row is None:
        return {}
    size = NetworkSize.from_row(row, row.params, row.flops)
    return {"key": row.key, "ok": row.ok, "val_error": row.val_error if row.ok else None,
            "val_score": 100.0 * (1.0 - row.val_error) if row.ok else None,
            "params": row.params, "params_stored": size.params_stored,
            "params_unpruned": size.params_unpruned,
            "flops": row.flops, "flops_unpruned": size.flops_unpruned,
            "params_total": size.params_total, "params_nonzero": size.params_nonzero,
            "pruned_fraction": row.pruned_fraction, "gene_fraction": size.gene_fraction}


def narrowed(arch: Architecture, metrics: Mapping[str, Any] | None) -> Architecture:
    """``arch`` with the stage widths a unit cut left (``metrics["widths"]``), else unchanged."""
    widths = (metrics or {}).get("widths")
    if not widths:
        return arch
    return arch.with_widths({st.index: int(w) for st, w in zip(arch.stages, widths)})


def node_widths(arch: Architecture, metrics: Mapping[str, Any] | None) -> list[list[int]]:
    """Units (filters) of every node of the saved network: after compaction, or the stage widths."""
    saved = (metrics or {}).get("node_widths")
    return [[int(w) for w in nodes] for nodes in saved] if saved else narrowed(arch, metrics).node_widths()


def exported_architecture(arch: Architecture, metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """``arch`` as the saved network has it: stage widths after unit cuts, per-node widths after compaction.

    A unit cut narrows a whole stage (``metrics["widths"]``); compacting a row,
    column or block mask then removes positions per group of summed nodes, so
    nodes of one stage can end up with different widths
    (``metrics["node_widths"]``). Each stage's ``node_widths`` lists the units
    (filters) of its nodes' layers in the exported model, so architecture.json
    describes the file and not the genome; a network that was not compacted has
    its stage width for every node.
    """
    out = narrowed(arch, metrics).to_dict()
    for stage, nodes in zip(out["stages"], node_widths(arch, metrics)):
        stage["node_widths"] = nodes
    return out


def exported_description(arch: Architecture, metrics: Mapping[str, Any] | None) -> str:
    """:meth:`Architecture.describe` of the saved network (see :func:`exported_architecture`)."""
    return narrowed(arch, metrics).describe(node_widths(arch, metrics))
