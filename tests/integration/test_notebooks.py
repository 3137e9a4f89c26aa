"""Both notebooks, executed cell by cell in a real Python kernel against a small real run."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

pytestmark = pytest.mark.slow  # a real (tiny) search, then two kernels

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
KERNEL = "gnas-test-python"
# Same arguments as tests/integration/test_markov_run.py, so one session trains the run once.
RUN_ARGS = ("--population", "4", "--generations", "2", "--epochs", "1", "--max-train-samples", "300",
            "--threads", "1", "--lambda-c", "0.786", "--seed", "3",
            "--set", "final.max_epochs=3")


@pytest.fixture(scope="module")
def run_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.getbasetemp() / "markov-digits-run"
    if not (path / "best" / "summary.json").is_file():
        shutil.rmtree(path, ignore_errors=True)
        done = subprocess.run([sys.executable, "-m", "gnas", "evolve", *RUN_ARGS, "--run-dir", str(path)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    return path


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A kernelspec for this very interpreter, found first through JUPYTER_PATH."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "gnas tests", "language": "python"}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(root))
        yield mp


def execute(name: str, cwd: Path, parameters: str | None = None):
    """Run every cell (nbclient raises CellExecutionError on the first failing one); ``parameters``
    replaces the parameters cell, as papermill does."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    if parameters is not None:
        nb.cells[0].source = parameters
    nbclient.NotebookClient(nb, timeout=300, kernel_name=KERNEL,
                            resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def outputs(nb, kind: str) -> list:
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if kind == "png" and "image/png" in out.get("data", {}):
                found.append(out["data"]["image/png"])
            elif kind == "stdout" and out.get("name") == "stdout":
                found.append(out["text"])
            elif kind == "error" and out.get("output_type") == "error":
                found.append(out)
    return found


@pytest.mark.parametrize("name", ["transition_matrices", "run_overview"])
def test_notebooks_are_stored_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert nb.cells[0].cell_type == "code" and "parameters" in nb.cells[0].metadata.get("tags", [])
    assert nb.cells[0].source.rstrip().endswith("run = None")
    assert "analysis.find_run(run)" in nb.cells[1].source
    assert not any("def " in c.source or "class " in c.source for c in code)  # analysis lives in gnas


def test_transition_matrices_notebook(run_path, kernel_env, tmp_path):
    kernel_env.setenv("GNAS_RUN_DIR", str(run_path))
    nb = execute("transition_matrices", tmp_path)
    text = "".join(outputs(nb, "stdout"))
    assert not outputs(nb, "error") and str(run_path) in text
    assert "observed generations to convergence" in text and "l = 17" in text
    assert "Wright-Fisher (paper's model, fixation)" in text and "operators' chain (gnas)" in text
    assert "observed, mean state settles" in text
    # one heat-map pair per generation (0..2), the convergence plot and the survival heat map
    assert len(outputs(nb, "png")) == 3 + 2


def test_run_overview_notebook_with_env(run_path, kernel_env, tmp_path):
    kernel_env.setenv("GNAS_RUN_DIR", str(run_path))
    nb = execute("run_overview", tmp_path)
    text = "".join(outputs(nb, "stdout"))
    assert not outputs(nb, "error") and str(run_path) in text
    assert "no calibration sweep" in text and "stage 0:" in text
    assert len(outputs(nb, "png")) == 2  # fitness, diversity


def test_run_overview_notebook_finds_newest_run_and_plots_chaos(run_path, kernel_env, tmp_path):
    kernel_env.delenv("GNAS_RUN_DIR", raising=False)
    copy = tmp_path / "runs" / "digits-copy"
    shutil.copytree(run_path, copy)
    sweep = [{"lambda": x / 10, "exponent": x / 10 - 0.8, "std": 0.05} for x in range(1, 10)]
    (copy / "chaos.json").write_text(json.dumps({"lambda_c": 0.8, "sweep": sweep, "source": "measured"}))
    (tmp_path / "notebooks").mkdir()
    nb = execute("run_overview", tmp_path / "notebooks")  # finds ../runs/digits-copy
    text = "".join(outputs(nb, "stdout"))
    assert not outputs(nb, "error") and "digits-copy" in text
    assert len(outputs(nb, "png")) == 3  # fitness, diversity, chaos sweep


def test_run_overview_takes_a_relative_run_from_where_jupyter_started(run_path, kernel_env, tmp_path):
    kernel_env.delenv("GNAS_RUN_DIR", raising=False)
    shutil.copytree(run_path, tmp_path / "runs" / "chosen")
    (tmp_path / "notebooks").mkdir()
    # the kernel starts in notebooks/; the path is given from the folder above, as a user started there
    nb = execute("run_overview", tmp_path / "notebooks", parameters='run = "runs/chosen"')
    text = "".join(outputs(nb, "stdout"))
    assert not outputs(nb, "error") and "chosen" in text


def test_the_newest_finished_run_is_shown_and_a_newer_unfinished_one_named(run_path, tmp_path, monkeypatch):
    import os
    import time

    from gnas.report import analysis

    monkeypatch.delenv("GNAS_RUN_DIR", raising=False)
    shutil.copytree(run_path, tmp_path / "runs" / "done")
    shutil.copytree(run_path, tmp_path / "runs" / "running")
    (tmp_path / "runs" / "running" / "state.json").unlink()  # no checkpoint yet: not finished
    later = time.time() + 60
    os.utime(tmp_path / "runs" / "running" / "gnas-run.json", (later, later))
    monkeypatch.chdir(tmp_path)
    assert analysis.find_run().path.name == "done"
    assert analysis.find_run("runs/running").path.name == "running"
