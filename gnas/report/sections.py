"""The sections of ``gnas report`` beyond the summary, listed in one place.

Each section reads what its part of the search left (a step's state, the Markov
records, the evaluation store) and returns a JSON-ready value, or None when the
run has nothing to show for it. :data:`SECTIONS` is the explicit list the report
builds; nothing adds itself to it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Collection, Iterable

from gnas.config import RunConfig
from gnas.errors import GnasError
from gnas.inheritance.weights import WeightStore
from gnas.markov import chain as markov
from gnas.tabular.summary import pick_details
from gnas.pruning import masks
from gnas.pruning.step import row_summary
from gnas.records import EvalResult, Kind
from gnas.runs.atomic import read_json
from gnas.runs.directory import RunDir
from gnas.runs.state import SearchState
from gnas.runs.store import EvaluationStore
from gnas.search.pareto import front_of

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
    front = front_of(store.evaluations(), complexity)
    if not front:
        return None
    return [{"key": e.key, "val_error": e.result.val_error, "params": e.result.params,
             "flops": e.result.flops, "fitness": e.fitness, "generation": e.result.generation,
             "kind": str(e.result.kind), "objective": complexity} for e in front]


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
    """The final best network before and after pruning: params, FLOPs, file size, val and test score.

    Both sides always describe one network: the final best and its own unpruned
    base. When the final best is not a pruned network, "before" and "after" are
    that same network (pruned fraction 0), and ``best_pruned`` with ``note`` say
    what the best pruned candidate reached, so that no figure of the table
    compares two different networks.
    """
    book = state.steps.get("pruning", {})
    if not book:
        return None
    out: dict[str, Any] = {"phase": str(state.phase), "target": book.get("target"),
                           "settings": book.get("settings"), "started": book.get("started")}
    fields = ("base", "key_after", "genome_after", "cuts", "pruned_fraction", "gene_fraction", "reason",
              "fitness_before", "fitness_after", "generation", "before", "after")
    by_base = book.get("chains", {})
    chains = list(by_base.values())
    out["chains"] = [{k: c.get(k) for k in fields} | {"attempts": len(c.get("attempts", []))}
                     for c in chains]
    after = _pruned_best(run_dir, store)
    out["after"] = after
    if after is None:
        out["before"] = book.get("before_model")
        return out
    if after["is_pruned"]:
        out["before"] = _base_of(after, book.get("before_model"), chains, store)
        settings = book.get("settings") or {}
        after["storage"] = masks.storage_note(settings.get("mask"), settings.get("nm", "2:4"),
                                              float(settings.get("sparsity") or 0.5),
                                              int(after.get("params") or 0), int(after.get("params_stored") or 0))
    else:
        after.update(pruned_fraction=0.0, gene_fraction=0.0, params_unpruned=after.get("params"),
                     flops_unpruned=after.get("flops"))
        out["before"] = {**after, "model_file": str(run_dir.best_dir / "model.keras")}
        out["best_pruned"] = best_pruned_candidate(by_base, store, book.get("before_model"))
        out["note"] = not_pruned_note(out["best_pruned"], chains)
    before = out["before"] or {}
    if before.get("test_score") is not None and after.get("test_score") is not None:
        out["test_score_change"] = after["test_score"] - before["test_score"]
    _latency(before, after, run_dir)
    return out


def _base_of(after: dict[str, Any], before_model: dict[str, Any] | None, chains: list[dict[str, Any]],
             store: EvaluationStore) -> dict[str, Any] | None:
    """The unpruned base of the pruned final best: retrained and tested when the step did, else its row."""
    row = store.lookup(after["key"])
    base_key = row.metrics.get("base_key") if row is not None else None
    if before_model and (base_key is None or before_model.get("key") == base_key):
        return before_model
    chain = next((c for c in chains if c.get("key_after") == after["key"]), None)
    base = store.lookup(base_key) if base_key else None
    if base is None and chain is None:
        return None
    side = row_summary(base) if base is not None else dict(chain.get("before") or {})
    side["note"] = "the unpruned base was not retrained on the test split: no test score, file or latency"
    return side


def best_pruned_candidate(chains: dict[str, dict[str, Any]], store: EvaluationStore,
                          before_model: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The pruned network with the best fitness over every chain, against its own base (None: none).

    ``chains`` maps each base's key (its search evaluation) to its chain; a chain
    counts when it cut something or its masks removed parameters.
    """
    pruned = [(k, c) for k, c in chains.items() if c.get("fitness_after") is not None and is_pruned_chain(c)]
    if not pruned:
        return None
    base_key, best = min(pruned, key=lambda kc: (kc[1]["fitness_after"], kc[1].get("key_after", "")))
    after = best.get("after") or {}
    base = store.lookup(base_key)
    out = {"key": best.get("key_after"), "base": best.get("base"), "base_key": base_key,
           "cuts": len(best.get("cuts") or []), "pruned_fraction": after.get("pruned_fraction"),
           "params": after.get("params"), "params_unpruned": after.get("params_unpruned"),
           "flops": after.get("flops"), "flops_unpruned": after.get("flops_unpruned"),
           "val_error": after.get("val_error"), "fitness": best["fitness_after"],
           "val_error_unpruned": base.val_error if base is not None and base.ok else None}
    if before_model and before_model.get("key") == base_key:
        out["test_score_unpruned"] = before_model.get("test_score")
    return out


def is_pruned_chain(chain: dict[str, Any]) -> bool:
    """Whether a chain ended on a pruned network: it cut something, or its masks removed parameters."""
    return bool(chain.get("cuts")) or (chain.get("pruned_fraction") or 0.0) > 0.0


def not_pruned_note(candidate: dict[str, Any] | None, chains: list[dict[str, Any]]) -> str:
    """One sentence: the final best is not pruned, and what the best pruned candidate reached."""
    if candidate is None:
        reasons = sorted({c.get("reason") for c in chains if c.get("reason")})
        why = f" ({'; '.join(reasons)})" if reasons else ""
        return f"the final best is not a pruned network; no pruned network was kept{why}"
    p = candidate.get("pruned_fraction")
    return (f"the final best is not a pruned network; the best pruned candidate reached "
            f"P = {'-' if p is None else format(p, '.3f')}, val error "
            f"{_error(candidate.get('val_error'))} vs {_error(candidate.get('val_error_unpruned'))} "
            f"for its unpruned base")


def _error(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


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

    same = files[0].resolve() == files[1].resolve()  # an unpruned final best: one network, timed once
    timed = median_latency(files[1:] if same else files)
    for side, figures in zip((before, after), timed * 2 if same else timed):
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


def lineage_counts(results: Iterable[EvalResult],
                   kinds: Collection[Kind] = (Kind.SEARCH, Kind.CHAMPION)) -> dict[str, Any]:
    """Over the rows of ``kinds`` that record a lineage: how many, the share of their
    inheritable layers they inherited, and why some trained from scratch (note: count)."""
    children = taken = total = 0
    notes: dict[str, int] = {}
    for r in results:
        if r.kind not in kinds or "inheritable_layers" not in r.metrics:
            continue
        children += 1
        taken += len(r.metrics.get("inherited_layers") or [])
        total += int(r.metrics["inheritable_layers"])
        if r.metrics.get("inherit_note"):
            note = str(r.metrics["inherit_note"])
            notes[note] = notes.get(note, 0) + 1
    return {"children": children, "inherited_share": taken / total if total else 0.0,
            "from_scratch": dict(sorted(notes.items(), key=lambda kv: -kv[1]))}


def inheritance_section(run_dir: RunDir, state: SearchState, store: EvaluationStore,
                        cfg: RunConfig) -> dict[str, Any] | None:
    """What the children inherited, and what the kept weights take against their cap.

    A child whose parent file was missing or damaged trained from scratch, and
    its note says why.
    """
    if cfg.evolution.inherit == "none":
        return None
    kept = WeightStore(run_dir.weights_dir, cfg.evolution.inherit_max_mb * 2**20)
    return {"mode": cfg.evolution.inherit, **lineage_counts(store.iter_results()),
            "kept_networks": len(kept.files()), "kept_bytes": kept.bytes(), "cap_bytes": kept.max_bytes}


#: The report's sections, in the order they are built.
def nb201_section(run_dir: RunDir, state: SearchState, store: EvaluationStore,
                  cfg: RunConfig) -> dict[str, Any] | None:
    """A NAS-Bench-201 run's pick as the table sees it (:func:`gnas.tabular.summary.pick_details`).

    Read from the store and the hall of fame, so an unfinished run shows its best so far.
    """
    if cfg.space.kind != "nb201" or cfg.plugs.space or not state.hall_of_fame:
        return None
    key = state.hall_of_fame[0]["key"]
    row = store.lookup(key)
    if row is None or not row.ok:
        return None
    try:
        return pick_details(cfg.data.dataset, key, row.metrics["val_acc"], store.iter_results())
    except GnasError as exc:
        return {"error": str(exc)}


SECTIONS: tuple[tuple[str, Section], ...] = (
    ("nb201", nb201_section),
    ("pareto_front", pareto_section),
    ("markov", markov_section),
    ("layers", layers_section),
    ("pruning", pruning_section),
    ("inheritance", inheritance_section),
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
