"""What a run found, as one JSON-ready dict and as text (``gnas report``)."""
from __future__ import annotations

import json
from typing import Any

from gnas import extensions
from gnas.errors import RunDirError
from gnas.run_dir import RunDir
from gnas.store import EvaluationStore

# Sections other modules add to the report: name -> function(run_dir, state) -> value or None.
SECTIONS: dict[str, Any] = {}


def build_report(run_dir: RunDir) -> dict[str, Any]:
    """The run's summary: data set, progress, initialisation and the best network."""
    run_dir.open_existing()
    state = run_dir.load_state(warn=lambda m: None)
    if state is None:
        raise RunDirError(f"{run_dir.path} has no finished generation yet; nothing to report.")
    cfg = run_dir.load_config()
    store = EvaluationStore(run_dir.db_path)
    try:
        report: dict[str, Any] = {
            "dataset": cfg.data.dataset, "generation": state.generation,
            "evaluations": store.count(), "failed_evaluations": store.count("failed"),
            "init": state.init, "lambda_c": state.lambda_c,
            "lambda_c_source": state.lambda_c_source or None, "finished": state.finished,
            "best": _best(run_dir, state, store), "top": _top(state, store),
            "logbook": state.logbook,
        }
    finally:
        store.close()
    extensions.load()
    for name, section in SECTIONS.items():
        value = section(run_dir, state)
        if value is not None:
            report[name] = value
    return report


def _best(run_dir: RunDir, state, store: EvaluationStore) -> dict[str, Any] | None:
    summary_path = run_dir.best_dir / "summary.json"
    if summary_path.is_file():
        s = json.loads(summary_path.read_text())
        return {k: s.get(k) for k in ("genome", "fitness", "val_error", "test_score", "params",
                                      "flops", "pruned_fraction", "architecture", "description")}
    if not state.hall_of_fame:
        return None
    top = state.hall_of_fame[0]
    row = store.lookup(top["key"])
    return {"genome": top["genome"], "fitness": top["fitness"],
            "val_error": row.val_error if row else None, "test_score": None,
            "params": row.params if row else None, "flops": row.flops if row else None,
            "pruned_fraction": row.pruned_fraction if row else 0.0, "architecture": None,
            "description": None}


def _top(state, store: EvaluationStore, k: int = 5) -> list[dict[str, Any]]:
    """The best distinct architectures with error, parameters, FLOPs and evaluation count."""
    rows = store.conn.execute(
        "SELECT genome_key, MIN(fitness), MIN(val_error), MAX(params), MAX(flops), COUNT(*) "
        "FROM evaluations WHERE status = 'ok' GROUP BY genome_key ORDER BY MIN(fitness), genome_key "
        "LIMIT ?", (k,)).fetchall()
    return [{"key": r[0], "fitness": r[1], "val_error": r[2], "params": r[3], "flops": r[4],
             "evaluations": r[5]} for r in rows]


def format_report(report: dict[str, Any]) -> str:
    lines = [f"data set:     {report['dataset']}",
             f"generation:   {report['generation']}{' (finished)' if report['finished'] else ''}",
             f"evaluations:  {report['evaluations']} ({report['failed_evaluations']} failed)",
             f"init:         {report['init']}  lambda_c = {report['lambda_c']}"]
    best = report.get("best")
    if best:
        lines.append(f"best fitness: {best['fitness']:.4f}  val error {best['val_error']}")
        if best.get("test_score") is not None:
            lines.append(f"test score:   {best['test_score']:.2f}")
        if best.get("description"):
            lines.append(f"architecture: {best['description']}")
    lines.append("top architectures:")
    lines.append("  fitness   val_error   params      flops  evals  key")
    for t in report["top"]:
        lines.append(f"  {t['fitness']:.4f}   {t['val_error']:.4f}   {t['params']:>8,} {t['flops']:>10,}"
                     f"  {t['evaluations']:>5}  {t['key']}")
    for name, value in report.items():
        if name in SECTIONS and isinstance(value, str):
            lines.append(value)
    return "\n".join(lines)
