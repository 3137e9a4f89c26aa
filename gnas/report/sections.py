"""The sections of ``gnas report`` beyond the summary, listed in one place.

Each section reads what its part of the search left (a step's state, the Markov
records, the evaluation store) and returns a JSON-ready value, or None when the
run has nothing to show for it. :data:`SECTIONS` is the explicit list the report
builds; nothing adds itself to it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from gnas.config import RunConfig
from gnas.errors import GnasError
from gnas.markov import chain as markov
from gnas.pruning import masks
from gnas.pruning.step import row_summary
from gnas.records import Kind
from gnas.runs.atomic import read_json
from gnas.runs.directory import RunDir
from gnas.runs.state import SearchState
from gnas.runs.store import EvaluationStore
from gnas.search.pareto import front_of_rows

REPORTED_VARIANTS = 5                    # variants per layer shown by `gnas report`

Section = Callable[[RunDir, SearchState, EvaluationStore, RunConfig], Any]


def complexity_measure(cfg: RunConfig) -> str:
    """flops when the run optimised error against FLOPs, else parameters."""
    ev = cfg.evolution
    if ev.objectives == "error,flops" or (ev.objectives == "error" and cfg.space.complexity == "flops"):
        return "flops"
    return "params"


def pareto_section(run_dir: RunDir, state: SearchState, store: EvaluationStore,
                   cfg: RunConfig) -> list[dict[str, Any]] | None:
    """The front of every evaluation (error vs the run's complexity)."""
    complexity = complexity_measure(cfg)
    front = front_of_rows(store.rows(), complexity)
    if not front:
        return None
    return [{"key": r["genome_key"], "val_error": r["val_error"], "params": r["params"],
             "flops": r["flops"], "fitness": r["fitness"], "generation": r["generation"],
             "kind": r["kind"], "objective": complexity} for r in front]


def markov_section(run_dir: RunDir, state: SearchState, store: EvaluationStore,
                   cfg: RunConfig) -> dict[str, Any] | None:
    """:func:`gnas.markov.chain.summarise`, or None without records.

    A damaged record does not sink the whole report: the section then holds
    the one-line reason under ``error``.
    """
    if not any(run_dir.markov_dir.glob("gen_*.npz")):
        return None
    try:
        return markov.summarise(run_dir.markov_dir, markov.best_fitness_curve(state.logbook))
    except GnasError as exc:
        return {"error": str(exc)}


def layers_section(run_dir: RunDir, state: SearchState, store: EvaluationStore,
                   cfg: RunConfig) -> dict[str, Any] | None:
    """``layers``: the top variants per layer, fitness and count, and this round's champions."""
    board = state.steps.get("competition", {})
    if not board.get("layers"):
        return None
    keep = ("variant", "mean", "count", "best", "held")
    return {"generation": board["generation"], "credited": board["credited"],
            "layers": [{"stage": layer["stage"], "n_variants": layer["n_variants"],
                        "variants": [{k: v[k] for k in keep}
                                     for v in layer["variants"][:REPORTED_VARIANTS]]}
                       for layer in board["layers"]],
            "champions": [c for c in board.get("champions", []) if c["generation"] == board["generation"]]}


def pruning_section(run_dir: RunDir, state: SearchState, store: EvaluationStore,
                    cfg: RunConfig) -> dict[str, Any] | None:
    """Best model before and after pruning: params, FLOPs, file size, val and test score."""
    book = state.steps.get("pruning", {})
    if not book:
        return None
    out: dict[str, Any] = {"phase": str(state.phase), "target": book.get("target"),
                           "settings": book.get("settings"), "started": book.get("started"),
                           "before": book.get("before_model")}
    fields = ("base", "genome_after", "cuts", "pruned_fraction", "gene_fraction", "reason", "fitness_before",
              "fitness_after", "generation", "before", "after")
    out["chains"] = [{k: c.get(k) for k in fields} | {"attempts": len(c.get("attempts", []))}
                     for c in book.get("chains", {}).values()]
    out["after"] = _pruned_best(run_dir, store)
    before, after = out["before"] or {}, out["after"] or {}
    if before.get("test_score") is not None and after.get("test_score") is not None:
        out["test_score_change"] = after["test_score"] - before["test_score"]
    settings = book.get("settings") or {}
    if after.get("is_pruned"):
        after["storage"] = masks.storage_note(settings.get("mask"), settings.get("nm", "2:4"),
                                              float(settings.get("sparsity") or 0.5),
                                              int(after.get("params") or 0), int(after.get("params_stored") or 0))
    _latency(before, after, run_dir)
    return out


def _latency(before: dict[str, Any], after: dict[str, Any], run_dir: RunDir) -> None:
    """CPU inference latency of both saved models, timed in this one process, alternating.

    Medians of the traced forward pass (:mod:`gnas.backend.latency`): per call
    of a batch, per sample, and per one-sample call; ``latency_measure`` says so
    in words for whoever reads the JSON.
    """
    files = [Path(before.get("model_file") or ""), run_dir.best_dir / "model.keras"]
    if not before or not after or not all(f.is_file() for f in files):
        return
    from gnas.backend import runtime

    runtime.configure(1, use_gpu=False)  # CPU latency, one thread: the figure a small deployment sees
    from gnas.backend.latency import median_latency

    for side, figures in zip((before, after), median_latency(files)):
        side.update(figures)
        side["latency_measure"] = latency_measure(figures)


def latency_measure(figures: dict[str, Any]) -> str:
    """What the latency figures are, in one sentence."""
    return (f"CPU, one thread, median of {figures['latency_rounds']} rounds alternating before/after in "
            f"one process; the model's call traced with tf.function (no predict() overhead): "
            f"ms per call of a {figures['latency_batch']}-sample batch, µs per sample of that batch, "
            "ms per call of one sample")


def _pruned_best(run_dir: RunDir, store: EvaluationStore) -> dict[str, Any] | None:
    """The run's final best network (best/), with its store row's parameter counts."""
    s = read_json(run_dir.best_dir / "summary.json")
    if not isinstance(s, dict) or "key" not in s:
        return None
    row = store.lookup(s["key"])
    model = run_dir.best_dir / "model.keras"
    return {**row_summary(row), "key": s["key"], "is_pruned": row is not None and row.kind == Kind.PRUNE,
            "val_error": s.get("val_error"), "test_error": s.get("test_error"),
            "test_score": s.get("test_score"), "pruned_fraction": s.get("pruned_fraction"),
            "model_bytes": model.stat().st_size if model.is_file() else None}


#: The report's sections, in the order they are built.
SECTIONS: tuple[tuple[str, Section], ...] = (
    ("pareto_front", pareto_section),
    ("markov", markov_section),
    ("layers", layers_section),
    ("pruning", pruning_section),
)


def layers_lines(section: dict[str, Any] | None) -> list[str]:
    """The scoreboard as text lines for ``gnas report``."""
    if section is None:
        return []
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
    return lines
