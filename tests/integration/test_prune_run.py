"""A real pruning run on digits through the CLI, its report, its export, and bad input."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

TINY = ["--population", "4", "--generations", "1", "--epochs", "1", "--max-train-samples", "300",
        "--lambda-c", "0.881", "--threads", "1", "--set", "prune.cycles=10"]


def gnas(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gnas", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("prune") / "run"
    done = gnas("evolve", "--run-dir", str(run_dir), "--prune", "0.5", "--mask", "nm", "--nm", "2:4", *TINY,
                "--set", "evolution.final_seeds=1")  # the final pick re-trains unpruned networks only
    assert done.returncode == 0, done.stderr[-3000:]
    assert "gnas: pruning starts at generation 1" in done.stderr
    summary = json.loads((run_dir / "best" / "summary.json").read_text())
    said = "after pruning, P =" if summary["pruned_fraction"] > 0 else "the final best is not a pruned network"
    assert said in next(line for line in done.stdout.splitlines() if line.startswith("parameters:"))
    return run_dir


@pytest.fixture(scope="module")
def column_run(tmp_path_factory) -> Path:
    """A column-masked run whose final best is its pruned network (no final pick over seeds)."""
    run_dir = tmp_path_factory.mktemp("column") / "run"
    done = gnas("evolve", "--run-dir", str(run_dir), "--prune", "0.3", "--mask", "column", *TINY,
                "--population", "2", "--set", "prune.cycles=40", "--set", "evolution.final_seeds=0")
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


# Saved models read with plain Keras in one fresh process: per model its parameter count, the
# units or filters of every kernel layer, and whether each dense kernel holds 2:4 in every group.
LOAD_MODELS = (
    "import json, sys, keras, numpy as np\n"
    "out = []\n"
    "for path in sys.argv[1:]:\n"
    "    m = keras.models.load_model(path, compile=False)\n"
    "    m = m.get_layer('network') if 'network' in [l.name for l in m.layers] else m  # inside the raw-input wrapper\n"
    "    nm = [bool(((np.moveaxis(l.kernel.numpy(), -2, -1).reshape(-1, 4) != 0).sum(axis=1) <= 2).all())\n"
    "          for l in m.layers if isinstance(l, keras.layers.Dense) and l.kernel.shape[0] % 4 == 0]\n"
    "    w = {l.name: int(l.kernel.shape[-1]) for l in m.layers if hasattr(l, 'kernel')}\n"
    "    out.append({'params': m.count_params(), 'nm': nm, 'widths': w})\n"
    "print(json.dumps({'models': out, 'gnas': 'gnas' in sys.modules}))\n")


@pytest.fixture(scope="module")
def saved(pruned_run, column_run) -> dict[str, dict]:
    """best/model.keras of both runs, as plain Keras loads them."""
    paths = [str(r / "best" / "model.keras") for r in (pruned_run, column_run)]
    out = subprocess.run([sys.executable, "-c", LOAD_MODELS, *paths], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["gnas"] is False
    return dict(zip(("nm", "column"), got["models"]))


def check_same_network(section: dict, text: str) -> None:
    """Before and after are one network: the final best's own base, or the final best itself."""
    before, after = section["before"], section["after"]
    if after["is_pruned"]:
        assert after["params_unpruned"] == before["params_total"]
        assert after["flops_unpruned"] == before["flops"]
        assert "note" not in section and "best_pruned" not in section
        assert f"parameters:   {after['params']:,} after pruning, P = {after['pruned_fraction']:.3f}" in text
        return
    # not pruned: "before" is the same network, nothing in the table compares two networks
    assert before["key"] == after["key"] and after["pruned_fraction"] == 0 == before["pruned_fraction"]
    for field in ("params", "params_total", "flops", "model_bytes", "val_error", "test_score"):
        assert before[field] == after[field], field
    assert after["params_unpruned"] == after["params"] and after["flops_unpruned"] == after["flops"]
    assert section["test_score_change"] == 0 and before["latency_ms"] == after["latency_ms"]
    assert section["note"].startswith("the final best is not a pruned network; ")
    assert section["note"] in text and "pruned:" not in text
    assert f"parameters:   {after['params']:,}, the final best is not a pruned network" in text
    candidate = section["best_pruned"]
    if candidate is not None:  # what the best pruned network reached, against its own base
        assert candidate["pruned_fraction"] == pytest.approx(
            1 - candidate["params"] / candidate["params_unpruned"])
        assert f"P = {candidate['pruned_fraction']:.3f}" in section["note"]
        pruned = [c["fitness_after"] for c in section["chains"] if c["cuts"] or c["pruned_fraction"] > 0]
        assert candidate["fitness"] == min(pruned)


@pytest.mark.slow
def test_prune_run_reaches_target_or_says_why(pruned_run):
    report = json.loads(gnas("report", str(pruned_run), "--json").stdout)
    section = report["pruning"]
    assert section["phase"] == "prune" and section["started"]["generation"] == 1
    chain = section["chains"][0]
    assert chain["pruned_fraction"] >= 0.5 or chain["reason"]
    assert chain["reason"]  # every chain states why it stopped
    before, after = section["before"], section["after"]
    for side in (before, after):
        assert side["params_total"] > 0 and side["flops"] > 0 and side["model_bytes"] > 0
        assert side["val_error"] is not None and side["test_score"] is not None
    assert section["test_score_change"] == pytest.approx(after["test_score"] - before["test_score"])
    if after["is_pruned"]:
        assert after["params_nonzero"] < after["params_total"]  # 2:4 masks removed weights
        # P is measured on the network, against the unpruned base the report shows as "before"
        assert after["pruned_fraction"] == pytest.approx(1 - after["params"] / after["params_unpruned"])
        assert after["params_unpruned"] == before["params_total"]
        assert after["flops_unpruned"] == before["flops"]
        assert after["storage"].startswith("2:4: 50 % zeros, stored dense; no speed-up without sparse kernels")
        assert f"{after['params']:,} non-zero" in after["storage"]
    for side in (before, after):
        assert side["latency_ms"] > 0  # both timed in the report's process
    if after["params_total"] < before["params_total"]:  # files hold the network only
        assert after["model_bytes"] < before["model_bytes"]
    best = report["best"]
    assert best["pruned_fraction"] == pytest.approx(1 - best["params"] / best["params_unpruned"])
    from gnas.report.summary import format_report  # the text `gnas report` prints, from the same dict

    text = format_report(report)
    assert "latency ms" in text and ("stored dense" in text or not after["is_pruned"])
    check_same_network(section, text)
    assert best["pruned_fraction"] == after["pruned_fraction"]


@pytest.mark.slow
def test_every_attempt_is_an_evaluation_row(pruned_run):
    state = json.loads((pruned_run / "state.json").read_text())
    attempts = sum(len(c["attempts"]) for c in state["steps"]["pruning"]["chains"].values())
    with sqlite3.connect(pruned_run / "evaluations.db") as db:
        rows = db.execute("SELECT genome_key, pruned_fraction, metrics FROM evaluations "
                          "WHERE kind = 'prune'").fetchall()
    assert len(rows) == attempts == len({r[0] for r in rows})  # none trained twice
    for _, fraction, metrics in rows:
        m = json.loads(metrics)
        assert fraction == pytest.approx(1 - m["params"] / m["params_unpruned"]) and bool(m["nm_holds"])
        assert m["params"] == m["params_nonzero"] and m["params_stored"] == m["params_total"]
        assert m["final_options"]["mask"] == "nm"


@pytest.mark.slow
def test_exported_pruned_model_loads_with_plain_keras(pruned_run, saved):
    summary = json.loads((pruned_run / "best" / "summary.json").read_text())
    got = saved["nm"]
    kind = sqlite3.connect(pruned_run / "evaluations.db").execute(
        "SELECT kind FROM evaluations WHERE genome_key = ?", (summary["key"],)).fetchone()[0]
    assert got["params"] == summary["params_stored"]  # the file holds what the report claims
    assert got["params"] == summary["params"] or kind == "prune"
    if ":" in summary["key"]:  # the best is a pruned, masked network: 2:4 in every group of four
        assert got["nm"] and all(got["nm"])
    check_widths(pruned_run, got["widths"])


@pytest.mark.slow
def test_gnas_export_writes_the_network_the_report_describes(pruned_run, tmp_path):
    out = tmp_path / "best.keras"
    done = gnas("export", str(pruned_run), "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    side = json.loads(out.with_suffix(".json").read_text())["metrics"]
    summary = json.loads((pruned_run / "best" / "summary.json").read_text())
    assert side["params"] == summary["params_stored"] and side["params_nonzero"] == summary["params"]
    assert side["params_unpruned"] == summary["params_unpruned"]
    assert side["pruned_fraction"] == pytest.approx(summary["pruned_fraction"])
    assert side["file_bytes"] == out.stat().st_size
    # the same correct count (one test image is ~0.3 points); float32 vs float64 sums differ at 1e-6
    assert side["test_score"] == pytest.approx(summary["test_score"], abs=0.01)
    if side["params_nonzero"] < side["params"]:
        assert "stored dense" in side["storage"]


@pytest.mark.parametrize("args,msg", [
    (["--prune", "1.0"], "prune.fraction"),
    (["--prune", "-0.1"], "prune.fraction"),
    (["--prune", "0.5", "--mask", "nm", "--nm", "4:4"], "prune.nm"),
    (["--prune", "0.5", "--mask", "nm", "--nm", "3:5"], "does not divide"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, args, msg):
    done = gnas("evolve", "--run-dir", str(tmp_path / "r"), *args, *TINY, timeout=300)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and msg in lines[0], done.stderr


@pytest.mark.slow
def test_column_mask_exports_the_smaller_network_the_report_describes(column_run, saved):
    report = json.loads(gnas("report", str(column_run), "--json").stdout)
    section, best = report["pruning"], report["best"]
    assert section["after"]["is_pruned"]  # without a final pick over seeds the pruned network wins
    from gnas.report.summary import format_report

    check_same_network(section, format_report(report))
    model = saved["column"]
    # the file is the compacted network: what the report counts, smaller than the unpruned base
    assert model["params"] == best["params_stored"] == section["after"]["params_stored"]
    assert best["params"] <= model["params"] < best["params_unpruned"] == section["before"]["params_total"]
    assert best["flops"] < best["flops_unpruned"]
    assert best["pruned_fraction"] == pytest.approx(1 - best["params"] / best["params_unpruned"])
    check_widths(column_run, model["widths"])


def check_widths(run_dir: Path, saved: dict[str, int]) -> None:
    """architecture.json gives every node the units (filters) its layer has in the saved model."""
    arch = json.loads((run_dir / "best" / "architecture.json").read_text())
    kind = "conv" if arch["family"] == "conv" else "dense"
    described = {f"s{st['index']}_n{n}_{kind}": w for st in arch["stages"]
                 for n, w in enumerate(st["node_widths"])}
    assert described == {name: w for name, w in saved.items() if name != "head"}
    # the words of the summary and the architecture figure show those widths too
    summary = json.loads(gnas("report", str(run_dir), "--json").stdout)["best"]
    for st in arch["stages"]:
        widths = st["node_widths"]
        shown = ", ".join(map(str, widths)) if len(set(widths)) > 1 else str(widths[0])
        assert f"stage {st['index']}: {st['nodes']} x " in summary["description"]
        assert f"({shown}) " in summary["description"], (shown, summary["description"])
    from gnas.report.figures import best_architecture
    from gnas.runs.directory import RunDir

    figure_arch, figure_widths = best_architecture(RunDir(run_dir), None)
    assert figure_widths == [st["node_widths"] for st in arch["stages"]]
