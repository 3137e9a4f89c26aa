"""The pruning phase of the search (DESIGN.md, "The search", step 3), as a step hook.

With ``prune.fraction > 0`` the hook watches each generation's end. Growth turns
into pruning once the best validation error is at most ``prune.threshold`` or the
growth budget is spent (``prune.growth_generations``, or every generation when
that is 0); the switch is printed on one line and kept in ``state.pruning``.
From then on, each generation prunes the best ``prune.candidates`` networks not
pruned yet (:func:`gnas.pruning.prune_chain`): every attempt is an evaluation of
kind ``"prune"`` whose key carries a hash of the base genome, the cuts and the
settings, so a resumed run finds it in the store instead of training it again.
Pruned networks replace the worst individuals they beat. At the last generation
the best network before pruning is retrained and scored on the test split too,
for the report's before/after comparison (``gnas report --json``, "pruning").
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from gnas import markov, masks, pruning, report, session
from gnas.config import RunConfig
from gnas.results import derive_seed
from gnas.search_space import SearchSpace, bits_to_str, str_to_bits


def settings_of(cfg: RunConfig) -> dict[str, Any]:
    """What shapes every attempt (and so belongs in its tag and final options)."""
    p = cfg.prune
    return {"cycles": int(p.cycles), "mask": p.mask, "nm": p.nm,
            "sparsity": float(p.mask_sparsity or p.fraction), "mask_score": p.mask_score}


def validate(cfg: RunConfig, space: SearchSpace) -> None:
    """Refuse mask settings the search space cannot hold (one line, exit 2)."""
    if cfg.prune.mask != "nm":
        return
    n, m = masks.parse_nm(cfg.prune.nm)
    for width in sorted(set(space.widths)):
        masks.check_nm(n, m, width, f"of width {width} (space widths {list(space.widths)})")


class PruningHook:
    """Switches the search to pruning and prunes the best networks each generation."""

    def __init__(self, cfg: RunConfig, space: SearchSpace) -> None:
        self.cfg = cfg
        self.space = space
        self.settings = settings_of(cfg)
        self.max_rejections = cfg.prune.max_rejections
        self.p1_weight = cfg.prune.p1_weight

    def __call__(self, search, info) -> None:
        book = search.state.pruning
        book.setdefault("target", self.cfg.prune.fraction)
        book.setdefault("settings", self.settings)
        if search.state.phase != "prune":
            reason = self.switch_reason(search, info)
            if reason is None:
                return
            search.state.phase = "prune"
            book["started"] = {"generation": info.generation, "reason": reason}
            print(f"gnas: pruning starts at generation {info.generation}: {reason}", file=sys.stderr)
        self.keep_pruned(book, info)
        self.prune_generation(search, info)
        if info.generation >= self.cfg.evolution.generations:
            self.score_before(search)

    # --------------------------------------------------------------- phase
    def switch_reason(self, search, info) -> str | None:
        best = int(np.argmin(info.fitness))
        row = search.store.lookup(info.keys[best])
        error = row.val_error if row is not None and row.ok else None
        p = self.cfg.prune
        if error is not None and error <= p.threshold:
            return f"best validation error {error:.4f} <= threshold {p.threshold:g}"
        budget = p.growth_generations or self.cfg.evolution.generations
        if info.generation >= budget:
            return f"growth budget of {budget} generations spent (best error {error})"
        return None

    # ------------------------------------------------------------- pruning
    def prune_generation(self, search, info) -> None:
        book = search.state.pruning
        chains = book.setdefault("chains", {})
        p1 = self.survival(info)
        order = sorted(range(len(info.population)), key=lambda i: (info.fitness[i], info.keys[i]))
        picked: list[str] = []
        for i in order:  # the best networks of this generation that are not pruned results
            key = info.keys[i]
            row = search.store.lookup(key)
            if ":" in key or key in picked or row is None or not row.ok:
                continue
            picked.append(key)
            if key not in chains:
                chains[key] = self.run_chain(search, info.population[i], info.generation, p1)
            if len(picked) >= self.cfg.prune.candidates:
                break
        for key in picked:
            self.insert(search, info, chains[key], protect=set(picked))

    def survival(self, info) -> dict[int, float]:
        conn = np.asarray([self.space.connection_genes(b) for b in info.population])
        values = markov.gene_survival(conn, np.asarray(info.fitness, dtype=float))
        return {g: float(v) for g, v in enumerate(values)}

    def run_chain(self, search, base, generation: int, p1: dict[int, float]) -> dict[str, Any]:
        def scorer(cuts: tuple[int, ...]) -> pruning.Attempt:
            options = {**self.settings, "base": bits_to_str(base), "cuts": list(cuts),
                       "tag": pruning.attempt_tag(base, cuts, self.settings)}
            bits = pruning.apply_cuts(base, cuts)
            r = search.evaluate_results([bits], generation, kind="prune", options=options)[0]
            sal = {int(g): float(v) for g, v in r.metrics.get("saliency", {}).items()}
            return pruning.Attempt(ok=r.ok, fitness=search.fitness_model.fitness(r),
                                   pruned_fraction=r.pruned_fraction, saliency=sal, key=r.key,
                                   message=r.message)

        result = pruning.prune_chain(self.space, base, scorer, self.cfg.prune.fraction, p1,
                                     self.max_rejections, self.p1_weight)
        out = result.to_dict()
        out.update(generation=generation, genome_after=bits_to_str(pruning.apply_cuts(base, result.cuts)))
        for side in ("before", "after"):
            row = search.store.lookup(out[f"key_{side}"]) if out[f"key_{side}"] else None
            out[side] = _row_summary(row)
        return out

    def insert(self, search, info, chain: dict[str, Any], protect: set[str]) -> None:
        """Put the pruned network in place of the worst individual it beats."""
        if chain["fitness_after"] is None or chain["key_after"] in info.keys:
            return
        slots = [i for i in range(len(info.population)) if info.keys[i] not in protect]
        if not slots:
            return
        worst = max(slots, key=lambda i: (info.fitness[i], info.keys[i]))
        if chain["fitness_after"] < info.fitness[worst]:
            info.population[worst] = str_to_bits(chain["genome_after"])
            info.fitness[worst] = chain["fitness_after"]
            info.keys[worst] = chain["key_after"]

    def keep_pruned(self, book: dict[str, Any], info) -> None:
        """An individual whose bits are a pruned network keeps that network's evaluation.

        Copies made by elitism or selection are evaluated again from scratch under
        the plain architecture key; the pruned (fine-tuned) evaluation of the same
        bits is the better realisation when it has the better fitness.
        """
        pruned = {c["genome_after"]: c for c in book.get("chains", {}).values()
                  if c.get("fitness_after") is not None and c.get("cuts")}
        for i, bits in enumerate(info.population):
            chain = pruned.get(bits_to_str(bits))
            if chain and ":" not in info.keys[i] and chain["fitness_after"] < info.fitness[i]:
                info.fitness[i], info.keys[i] = chain["fitness_after"], chain["key_after"]

    # -------------------------------------------------------------- report
    def score_before(self, search) -> None:
        """Retrain the base of the best pruned network and score it on val and test once."""
        chains = [c for c in search.state.pruning.get("chains", {}).values() if c["fitness_after"] is not None]
        if not chains:
            return
        best = min(chains, key=lambda c: (c["fitness_after"], c["key_after"]))
        base_key = self.space.key(str_to_bits(best["base"]))
        known = search.state.pruning.get("before_model")
        if known and known.get("key") == base_key:
            return
        out_dir = Path(search.run_dir.path) / "pruning" / "before"
        metrics = search.executor.final(best["base"], derive_seed(self.cfg.evolution.seed, base_key),
                                        out_dir, {})
        row = search.store.lookup(base_key)
        summary = {"key": base_key, "genome": best["base"], **_row_summary(row),
                   "val_error": metrics["val_error"], "test_error": metrics["test_error"],
                   "test_score": metrics["test_score"], "model_file": str(out_dir / "model.keras"),
                   "model_bytes": _size(out_dir / "model.keras")}
        search.state.pruning["before_model"] = summary


def _row_summary(row) -> dict[str, Any]:
    if row is None:
        return {}
    total = row.metrics.get("params_total", row.params)
    return {"key": row.key, "ok": row.ok, "val_error": row.val_error if row.ok else None,
            "val_score": 100.0 * (1.0 - row.val_error) if row.ok else None,
            "params_total": total, "params_nonzero": row.metrics.get("params_nonzero", total),
            "flops": row.flops, "pruned_fraction": row.pruned_fraction}


def _size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def make_hook(cfg: RunConfig, space: SearchSpace) -> PruningHook | None:
    """The pruning hook when ``prune.fraction > 0``; mask settings are checked first."""
    if cfg.prune.fraction <= 0:
        return None
    validate(cfg, space)
    return PruningHook(cfg, space)


def report_section(run_dir, state) -> dict[str, Any] | None:
    """Best model before and after pruning: params, FLOPs, file size, val and test score."""
    book = state.pruning
    if not book:
        return None
    out: dict[str, Any] = {"phase": state.phase, "target": book.get("target"),
                           "settings": book.get("settings"), "started": book.get("started"),
                           "before": book.get("before_model")}
    out["chains"] = [{k: c.get(k) for k in ("base", "genome_after", "cuts", "pruned_fraction", "reason",
                                            "fitness_before", "fitness_after", "generation", "before", "after")}
                     | {"attempts": len(c.get("attempts", []))}
                     for c in book.get("chains", {}).values()]
    out["after"] = _after(run_dir)
    before, after = out["before"] or {}, out["after"] or {}
    if before.get("test_score") is not None and after.get("test_score") is not None:
        out["test_score_change"] = after["test_score"] - before["test_score"]
    return out


def _after(run_dir) -> dict[str, Any] | None:
    """The run's final best network (best/), with its store row's parameter counts."""
    summary_path = run_dir.best_dir / "summary.json"
    if not summary_path.is_file():
        return None
    s = json.loads(summary_path.read_text())
    from gnas.store import EvaluationStore

    store = EvaluationStore(run_dir.db_path)
    try:
        row = store.lookup(s["key"])
    finally:
        store.close()
    return {**_row_summary(row), "key": s["key"], "is_pruned": ":" in s["key"],
            "val_error": s.get("val_error"), "test_error": s.get("test_error"),
            "test_score": s.get("test_score"), "pruned_fraction": s.get("pruned_fraction"),
            "model_bytes": _size(run_dir.best_dir / "model.keras")}


session.HOOK_FACTORIES.append(make_hook)
session.CHECKS.append(validate)
report.SECTIONS["pruning"] = report_section
