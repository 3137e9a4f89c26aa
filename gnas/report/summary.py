"""What a run found, as one JSON-ready dict and as text (``gnas report``)."""
from __future__ import annotations

from typing import Any, Mapping

from gnas.errors import RunDirError
from gnas.report.sections import SECTIONS, layers_lines
from gnas.runs.atomic import read_json
from gnas.runs.directory import RunDir
from gnas.runs.store import EvaluationStore
from gnas.search.fidelity import epoch_line, run_epochs
from gnas.tabular.summary import pick_lines


def build_report(run_dir: RunDir) -> dict[str, Any]:
    """The run's summary: data set, progress, initialisation and the best network."""
    run_dir.open_existing()
    state = run_dir.load_state(warn=lambda m: None)
    if state is None:
        raise RunDirError(f"{run_dir.path} has no finished generation yet; nothing to report.")
    cfg = run_dir.load_config()
    store = EvaluationStore(run_dir.db_path, read_only=True)
    try:
        report: dict[str, Any] = {
            "dataset": cfg.data.dataset, "generation": state.generation,
            "evaluations": store.count(), "failed_evaluations": store.count("failed"),
            "trained": state.trained, "reused": state.reused, "final": state.final,
            "init": state.init, "lambda_c": state.lambda_c,
            "lambda_c_source": state.lambda_c_source or None, "finished": state.finished,
            "best": _best(run_dir, state, store), "top": _top(state, store),
            "logbook": state.logbook,
        }
        if trains(cfg):
            report["epochs_spent"] = run_epochs(store.iter_results(), cfg)
        for name, section in SECTIONS:
            value = section(run_dir, state, store, cfg)
            if value is not None:
                report[name] = value
    finally:
        store.close()
    return report


def trains(cfg) -> bool:
    """Whether the run's evaluations train networks (not a table lookup, not one's own space)."""
    return cfg.space.kind != "nb201" and not cfg.plugs.space


def _read_summary(path) -> dict[str, Any] | None:
    """best/summary.json, or None when missing or damaged (the hall of fame stands in)."""
    data = read_json(path)
    return data if isinstance(data, dict) else None


def _best(run_dir: RunDir, state, store: EvaluationStore) -> dict[str, Any] | None:
    summary_path = run_dir.best_dir / "summary.json"
    s = _read_summary(summary_path)
    if s is not None:
        row = store.lookup(s["key"]) if s.get("key") else None
        best = {k: s.get(k) for k in ("genome", "fitness", "val_error", "test_score", "test_scores",
                                      "test_score_mean", "test_score_std", "params",
                                      "params_stored", "params_unpruned", "flops", "flops_unpruned",
                                      "pruned_fraction", "architecture", "description", "final_epochs")}
        return {**best, "memory": memory_of(row.metrics) if row else None}
    if not state.hall_of_fame:
        return None
    top = state.hall_of_fame[0]
    row = store.lookup(top["key"])
    return {"genome": top["genome"], "fitness": top["fitness"],
            "val_error": row.val_error if row else None, "test_score": None,
            "params": row.params if row else None, "flops": row.flops if row else None,
            "pruned_fraction": row.pruned_fraction if row else 0.0, "architecture": None,
            "description": None, "memory": memory_of(row.metrics) if row else None}


def _top(state, store: EvaluationStore, k: int = 5) -> list[dict[str, Any]]:
    """The best distinct networks: error, parameters, FLOPs, memory and evaluation count.

    Every number comes from one row, the network's best evaluation; ``evaluations``
    counts all of the network's rows (retries and re-evaluations included).
    """
    return [{**{k: row[k] for k in ("key", "fitness", "val_error", "params", "flops",
                                     "pruned_fraction", "generation", "evaluations")},
             "memory": memory_of(row["metrics"])} for row in store.top_networks(k)]


def memory_of(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The memory estimates an evaluation recorded (gnas.genome.memory), or None for older rows."""
    wanted = ("model_bytes", "operational_bytes", "batch_size", "activations_per_sample")
    if "model_bytes" not in metrics:
        return None
    return {k: metrics.get(k) for k in wanted}


def _bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{int(value)} B"


def parameters_text(best: Mapping[str, Any], pruning: bool) -> str:
    """The best network's parameter count, saying whether pruning shrank it.

    With pruning on, the final best is often an unpruned network (the final pick
    re-trains unpruned candidates only), and its count then equals the unpruned
    one; a reader of one line must not take it for a pruned export.
    """
    params = best.get("params") or 0
    fraction = best.get("pruned_fraction") or 0.0
    if fraction > 0:
        return f"{params:,} after pruning, P = {fraction:.3f} of {best.get('params_unpruned') or 0:,}"
    if pruning:
        return f"{params:,}, the final best is not a pruned network (`gnas report` shows the best pruned one)"
    return f"{params:,}"


def _final_epochs(report: dict[str, Any]) -> list[int]:
    """The final trainings' epochs, from the best network's summary when it has them."""
    best = report.get("best") or {}
    return list(best.get("final_epochs") or [])


def _number(value: float | None, fmt: str = ".4f") -> str:
    return "-" if value is None else format(value, fmt)


def format_report(report: dict[str, Any]) -> str:
    """The report as text: progress, the best network, the top five, the Pareto front."""
    lines = [f"data set:     {report['dataset']}",
             f"generation:   {report['generation']}{' (finished)' if report['finished'] else ''}",
             f"evaluations:  {report['evaluations']} ({report['failed_evaluations']} failed)",
             f"networks:     {report['trained']} trained, {report['reused']} reused",
             *([f"epochs:       {epoch_line(report['epochs_spent'], _final_epochs(report))}"]
               if "epochs_spent" in report else []),
             *[f"{'final pick:' if i == 0 else 'candidate:':<14}val error {c['mean_val_error']:.4f} ± "
               f"{c['std_val_error']:.4f} over {len(c['val_errors'])} seeds"
               for i, c in enumerate(report.get("final") or []) if c.get("mean_val_error") is not None],
             f"init:         {report['init']}  lambda_c = {report['lambda_c']}"]
    lines += _best_lines(report.get("best"), bool(report.get("pruning")))
    if report.get("nb201") and "error" not in report["nb201"]:
        lines += pick_lines(report["nb201"])
    lines += _top_lines(report["top"])
    lines += _pareto_lines(report.get("pareto_front"))
    lines += _pruning_lines(report.get("pruning"))
    lines += layers_lines(report.get("layers"))
    lines += _inheritance_lines(report.get("inheritance"))
    return "\n".join(lines)


def _best_lines(best: dict[str, Any] | None, pruning: bool) -> list[str]:
    if not best:
        return []
    lines = [f"best fitness: {best['fitness']:.4f}  val error {_number(best['val_error'])}",
             f"parameters:   {parameters_text(best, pruning)}"]
    if best.get("test_score") is not None:
        lines.append(f"test score:   {best['test_score']:.2f}")
    if len(best.get("test_scores") or []) > 1:
        lines.append(f"over seeds:   {best['test_score_mean']:.2f} ± {best['test_score_std']:.2f} "
                     f"({len(best['test_scores'])} trainings)")
    if best.get("description"):
        lines.append(f"architecture: {best['description']}")
    mem = best.get("memory")
    if mem:
        lines.append(f"memory:       model {_bytes(mem['model_bytes'])}, training step "
                     f"{_bytes(mem['operational_bytes'])} at batch {mem['batch_size']}")
    return lines


def _top_lines(top: list[dict[str, Any]]) -> list[str]:
    lines = [f"top {len(top)} architectures:",
             "  fitness  val_error    params       flops  model mem  train mem (batch)  evals  key"]
    for t in top:
        mem = t.get("memory") or {}
        train = f"{_bytes(mem.get('operational_bytes'))} ({mem.get('batch_size', '-')})"
        lines.append(f"  {t['fitness']:.4f}   {_number(t['val_error'])}  {t['params'] or 0:>8,} "
                     f"{t['flops'] or 0:>11,}  {_bytes(mem.get('model_bytes')):>9}  {train:>17}  "
                     f"{t['evaluations']:>5}  {t['key']}")
    return lines


def _pruning_lines(book: dict[str, Any] | None) -> list[str]:
    """Before and after pruning: parameters, FLOPs, file size, validation and test score."""
    if not book or not book.get("before"):
        return []
    lines = [f"pruning (target {book.get('target')}; {book.get('started', {}).get('reason', '')}):",
             "           params (nonzero / stored)       flops   file size  latency ms (batch / one)"
             "  us/sample  val score  test score"]
    for name in ("before", "after"):
        m = book.get(name)
        if not m:
            continue
        latency = "-" if m.get("latency_ms") is None else f"{m['latency_ms']:.2f} / {m['latency_ms_one']:.2f}"
        per_sample = "-" if m.get("latency_us_per_sample") is None else f"{m['latency_us_per_sample']:.1f}"
        lines.append(f"  {name:<7}  {m.get('params_nonzero') or 0:>10,} / {m.get('params_total') or 0:>10,}"
                     f"  {m.get('flops') or 0:>10,}  {_bytes(m.get('model_bytes')):>10}  {latency:>24}"
                     f"  {per_sample:>9}  {_number(m.get('val_score'))}  {_number(m.get('test_score'))}")
    before, after = book.get("before") or {}, book.get("after") or {}
    if before.get("latency_measure"):
        lines.append(f"  latency: {before['latency_measure']}")
    if after.get("is_pruned") and before.get("params_total") and before.get("flops"):
        lines.append(f"  pruned: {after.get('pruned_fraction') or 0:.1%} of the parameters "
                     f"(1 - {after.get('params') or 0:,} / {after.get('params_unpruned') or 0:,}), "
                     f"{1 - (after.get('flops') or 0) / (after.get('flops_unpruned') or 1):.1%} of the FLOPs, "
                     f"{after.get('gene_fraction') or 0:.1%} of the connection genes")
    if after.get("storage"):
        lines.append(f"  {after['storage']}")
    if before.get("note"):
        lines.append(f"  before: {before['note']}")
    if book.get("note"):
        lines.append(f"  {book['note']}")
    if book.get("test_score_change") is not None:
        lines.append(f"  test score change: {book['test_score_change']:+.2f}")
    return lines


def _inheritance_lines(section: dict[str, Any] | None) -> list[str]:
    """What the children inherited and the kept weights against their cap."""
    if section is None:
        return []
    lines = [f"inheritance ({section['mode']}): {section['children']} children inherited "
             f"{section['inherited_share']:.0%} of their matching layers; weights of "
             f"{section['kept_networks']} networks kept, {_bytes(section['kept_bytes'])} of "
             f"{_bytes(section['cap_bytes'])}"]
    lines += [f"  from scratch ({n}): {note}" for note, n in section["from_scratch"].items()]
    return lines


def _pareto_lines(front: list[dict[str, Any]] | None) -> list[str]:
    if not front:
        return []
    measure = front[0].get("objective", "params")
    lines = [f"Pareto front (validation error vs {measure}, {len(front)} networks):",
             f"  val_error  {measure:>11}  generation  key"]
    for p in front:
        lines.append(f"  {_number(p['val_error'])}     {p[measure] or 0:>11,}  {p['generation']:>10}  {p['key']}")
    return lines
