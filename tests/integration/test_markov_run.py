"""A small real search on digits, then its Markov records, `gnas markov` and gnas.report.analysis."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gnas.report import analysis

from gnas.markov import chain as markov
from gnas.config import load_config
from gnas.errors import GnasError
from gnas.runs.directory import RunDir

pytestmark = pytest.mark.slow  # a real (tiny) search on digits

GENERATIONS = 2
POPULATION = 4
PNG = b"\x89PNG\r\n\x1a\n"
# Same arguments as tests/integration/test_notebooks.py, so one session trains the run once.
RUN_ARGS = ("--population", str(POPULATION), "--generations", str(GENERATIONS), "--epochs", "1",
            "--max-train-samples", "300", "--threads", "1", "--lambda-c", "0.786", "--seed", "3",
            "--set", "evolution.final_seeds=0", "--set", "final.max_epochs=3")


def gnas(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gnas", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def shared_run(tmp_path_factory) -> Path:
    """One real run per test session: 4 networks x 3 generations, 1 epoch, 300 samples."""
    path = tmp_path_factory.getbasetemp() / "markov-digits-run"
    if not (path / "best" / "summary.json").is_file():
        shutil.rmtree(path, ignore_errors=True)
        done = gnas("evolve", *RUN_ARGS, "--run-dir", str(path))
        assert done.returncode == 0, done.stderr[-3000:]
    return path


@pytest.fixture(scope="module")
def run_path(tmp_path_factory) -> Path:
    return shared_run(tmp_path_factory)


@pytest.fixture(scope="module")
def records(run_path):
    return markov.load_run(run_path / "markov")


@pytest.fixture(scope="module")
def state(run_path):
    return json.loads((run_path / "state.json").read_text())


def rows(bits: np.ndarray) -> Counter:
    return Counter(map(tuple, np.asarray(bits).tolist()))


# ----------------------------------------------------------- the records ---
def test_one_record_per_generation(run_path, records, state):
    names = sorted(p.name for p in (run_path / "markov").iterdir())
    assert names == [f"gen_{g:04d}.npz" for g in range(GENERATIONS + 1)]
    assert [int(r["generation"]) for r in records] == list(range(GENERATIONS + 1))
    assert {int(r["l"]) for r in records} == {state["l"]} and state["l"] == 17


def test_counts_equal_a_brute_force_recount_of_the_stored_lineage(records):
    for r in records:
        l = int(r["l"])
        recount = [[0] * (l + 1) for _ in range(l + 1)]
        for parent, child in zip(r["parent_bits"].tolist(), r["child_bits"].tolist()):
            recount[sum(parent)][sum(child)] += 1
        assert r["counts"].tolist() == recount
        observed = r["observed"]
        assert observed.tolist() == [sum(row) > 0 for row in recount]
        np.testing.assert_allclose(r["empirical"][observed].sum(axis=1), 1.0)
        assert np.isnan(r["empirical"][~observed]).all()


def test_lineage_is_the_generations_own(records, state):
    cfg = load_config(None, {})
    assert int(records[0]["counts"].sum()) == 0 and records[0]["parent_bits"].shape == (0, 17)
    for prev, r in zip(records, records[1:]):
        moves, excluded = r["child_bits"].shape[0], r["excluded"].tolist()
        assert moves + len(excluded) == POPULATION and moves == len(r["operators"])
        assert excluded.count("elite") == cfg.evolution.elite and set(excluded) <= {"elite", "champion"}
        assert set(r["operators"].tolist()) <= {"copy", "crossover", "mutation", "crossover+mutation"}
        previous = rows(prev["population_bits"])
        assert all(previous[p] for p in rows(r["parent_bits"]))  # parents come from generation g-1
        rest = rows(r["population_bits"]) - rows(r["child_bits"])  # children are this population
        assert sum(rest.values()) == len(excluded)
        assert sum(min(n, previous[row]) for row, n in rest.items()) >= excluded.count("elite")
    last = records[-1]
    expected = [[int(c) for c in genome[:17]] for genome in state["population"]]
    assert last["population_bits"].tolist() == expected
    np.testing.assert_allclose(last["fitness"], [f[0] for f in state["fitness"]])


def test_theory_is_recomputed_from_the_stored_population(records, state):
    for r, entry in zip(records, state["logbook"]):
        pop, fit = r["population_bits"], r["fitness"]
        assert entry["best"] == pytest.approx(fit.min())
        f1, f0 = markov.allele_fitness(pop, fit)
        P = markov.theoretical_matrix(17, f1, f0)
        np.testing.assert_allclose(r["theoretical"], P)
        np.testing.assert_allclose(r["theoretical"].sum(axis=1), 1.0)
        np.testing.assert_allclose(r["absorption_times"], markov.absorption_times(P))
        np.testing.assert_allclose(r["gene_survival"], markov.gene_survival(pop, fit))
        assert 0 < float(r["predicted_generations_to_absorption"]) < 1e6


# ------------------------------------------------------------ gnas markov ---
def test_markov_json_shape(run_path, records, state):
    done = gnas("markov", str(run_path), "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == {"l", "generations", "observed_generations_to_convergence", "predicted_convergence",
                        "predicted_from_generation", "observed_convergence", "observed_best_fitness_convergence",
                        "mutated_share", "definition", "models"} and out["l"] == 17
    assert out["observed_best_fitness_convergence"] == out["observed_generations_to_convergence"]
    predicted = out["predicted_convergence"]
    assert predicted["wright_fisher"] == pytest.approx(
        float(records[0]["predicted_generations_to_absorption"]))
    assert predicted["operators_mixing"] is not None and predicted["operators_mixing"] >= 0
    # two generations hold no plateau: the shared definition gives neither figure
    assert out["observed_convergence"] is None and predicted["operators"] is None
    assert predicted["wright_fisher_settling"] is None
    assert predicted["operators_without_selection"] is None and predicted["operators_hindsight"] is None
    assert {"operators", "operators_without_selection", "operators_hindsight"} <= set(out["models"])
    moves = [str(x) for r in records[1:] for x in r["operators"]]
    assert out["mutated_share"]["run"] == pytest.approx(
        sum(x in ("mutation", "crossover+mutation") for x in moves) / len(moves))
    assert 0 < out["mutated_share"]["forecast"] <= 1
    assert [g["generation"] for g in out["generations"]] == list(range(GENERATIONS + 1))
    for entry, r in zip(out["generations"], records):
        assert {"generation", "predicted_generations_to_absorption", "rows_observed"} <= set(entry)
        assert entry["rows_observed"] == int(r["observed"].sum())
        assert entry["predicted_generations_to_absorption"] == pytest.approx(
            float(r["predicted_generations_to_absorption"]))
    best = [e["best"] for e in state["logbook"]]
    assert out["observed_generations_to_convergence"] == markov.observed_generations_to_convergence(best)
    report = json.loads(gnas("report", str(run_path), "--json").stdout)
    assert report["markov"] == {k: out[k] for k in report["markov"]}


def test_markov_text_and_plots(run_path, tmp_path):
    done = gnas("markov", str(run_path), "--plots", "--out", str(tmp_path / "png"))
    assert done.returncode == 0, done.stderr
    assert "observed generations to convergence" in done.stdout and "l = 17" in done.stdout
    names = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert names == ["convergence.png"] + [f"gen_{g:04d}.png" for g in range(GENERATIONS + 1)]
    assert all((tmp_path / "png" / n).read_bytes()[:8] == PNG for n in names)
    assert all(str(tmp_path / "png" / n) in done.stdout for n in names)


def _copy_run(run_path: Path, dest: Path) -> Path:
    shutil.copytree(run_path, dest, ignore=shutil.ignore_patterns("best", "plots"))
    return dest


def _unfinished_run(tmp_path: Path, run_path: Path) -> Path:
    """A run whose initial population was saved but not yet evaluated (generation -1)."""
    path = _copy_run(run_path, tmp_path / "unfinished")
    state = json.loads((path / "state.json").read_text())
    state.update(generation=-1, logbook=[], fitness=[None] * len(state["fitness"]))
    (path / "state.json").write_text(json.dumps(state))
    (path / "state.prev.json").unlink()
    return path


@pytest.mark.parametrize("case", ["missing", "plain dir", "file", "new run", "unfinished",
                                  "no records", "corrupt record"])
def test_bad_inputs_exit_2_with_one_line(case, run_path, tmp_path):
    if case == "missing":
        target = tmp_path / "nope"
    elif case == "plain dir":
        target = tmp_path
    elif case == "file":
        target = tmp_path / "a.txt"
        target.write_text("x")
    elif case == "new run":
        target = tmp_path / "new"
        RunDir(target).create(load_config(None, {}))
    elif case == "unfinished":
        target = _unfinished_run(tmp_path, run_path)
    else:
        target = _copy_run(run_path, tmp_path / "copy")
        if case == "no records":
            shutil.rmtree(target / "markov")
        else:
            (target / "markov" / "gen_0001.npz").write_bytes(b"PK\x03\x04 broken")
    for extra in ((), ("--json",), ("--plots",)) if case in ("plain dir", "unfinished") else ((),):
        done = gnas("markov", str(target), *extra)
        assert done.returncode == 2, (case, done.stderr)
        assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith("gnas: error: ") and "Traceback" not in done.stderr


def test_report_survives_a_corrupt_record(run_path, tmp_path):
    target = _copy_run(run_path, tmp_path / "copy")
    (target / "markov" / "gen_0000.npz").write_bytes(b"garbage")
    report = json.loads(gnas("report", str(target), "--json").stdout)
    assert "corrupt" in report["markov"]["error"]


# --------------------------------------------------------------- analysis ---
def test_find_run_prefers_env_then_newest(run_path, tmp_path, monkeypatch):
    monkeypatch.delenv(analysis.RUN_DIR_ENV, raising=False)
    root = tmp_path / "runs"
    old, new = _copy_run(run_path, root / "old"), _copy_run(run_path, root / "new")
    (root / "not-a-run").mkdir()
    os.utime(old / "state.json", (1e9, 1e9))
    assert analysis.find_run(roots=[root]).path == new
    monkeypatch.setenv(analysis.RUN_DIR_ENV, str(old))
    assert analysis.find_run(roots=[root]).path == old
    monkeypatch.setenv(analysis.RUN_DIR_ENV, str(root / "not-a-run"))
    with pytest.raises(GnasError):
        analysis.find_run(roots=[root])
    monkeypatch.delenv(analysis.RUN_DIR_ENV)
    with pytest.raises(GnasError, match="no gnas run"):
        analysis.find_run(roots=[tmp_path / "empty"])


def test_logbook_convergence_table_and_top_architectures(run_path, records, state):
    run_dir = analysis.open_run(run_path)
    book = analysis.logbook(run_dir)
    assert book["generation"].tolist() == list(range(GENERATIONS + 1))
    np.testing.assert_allclose(book["best"], [e["best"] for e in state["logbook"]])
    table = analysis.convergence_table(run_dir)
    assert [r["generation"] for r in table] == book["generation"].tolist()
    for row, r in zip(table, records):
        assert row["predicted_convergence"] == pytest.approx(
            row["generation"] + float(r["predicted_generations_to_absorption"]))
        expected_tv = 0.5 * np.abs(r["empirical"] - r["theoretical"])[r["observed"]].sum(axis=1).mean() \
            if r["observed"].any() else None
        assert (np.isnan(row["tv_distance"]) if expected_tv is None
                else row["tv_distance"] == pytest.approx(expected_tv))
    top = analysis.top_architectures(run_dir, k=3)
    assert 1 <= len(top) <= 3 and [t["fitness"] for t in top] == sorted(t["fitness"] for t in top)
    assert top[0]["fitness"] == pytest.approx(state["hall_of_fame"][0]["fitness"])
    assert top[0]["description"].startswith("stage 0:")
    generations, p1 = analysis.gene_survival(run_dir)
    assert p1.shape == (GENERATIONS + 1, 17) and ((0 <= p1) & (p1 <= 1)).all()


def test_chaos_file_absent_present_and_damaged(run_path, tmp_path):
    run_dir = analysis.open_run(_copy_run(run_path, tmp_path / "copy"))
    assert analysis.load_chaos(run_dir) is None
    sweep = [{"lambda": 0.9, "exponent": 0.2, "std": 0.05}, {"lambda": 0.1, "exponent": -1.0, "std": 0.1},
             {"lambda": 0.5, "exponent": -0.3, "std": None}]
    (run_dir.path / "chaos.json").write_text(json.dumps({"lambda_c": 0.78, "sweep": sweep,
                                                         "source": "measured"}))
    chaos = analysis.load_chaos(run_dir)
    assert chaos["lambda_c"] == 0.78 and chaos["source"] == "measured"
    assert chaos["sweep"]["lambda"].tolist() == [0.1, 0.5, 0.9]
    assert chaos["sweep"]["exponent"].tolist() == [-1.0, -0.3, 0.2] and np.isnan(chaos["sweep"]["std"][1])
    out = analysis.save_figure(analysis.chaos_figure(chaos), tmp_path / "chaos.png")
    assert out.read_bytes()[:8] == PNG
    (run_dir.path / "chaos.json").write_text('{"sweep": [{"exponent": 1}]}')
    with pytest.raises(GnasError, match="chaos"):
        analysis.load_chaos(run_dir)


def test_format_table():
    text = analysis.format_table([{"a": 1, "b": 0.123456}, {"a": 22, "b": None}], ["a", "b"])
    assert text.splitlines() == [" a       b", " 1  0.1235", "22       -"]


def test_resume_rebuilds_a_lost_record_without_inventing_moves(run_path, records, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(run_path, target)
    (target / "markov" / f"gen_{GENERATIONS:04d}.npz").unlink()
    done = gnas("resume", str(target))
    assert done.returncode == 0, done.stderr[-2000:]
    rebuilt, original = markov.load_generation(target / "markov" / f"gen_{GENERATIONS:04d}.npz"), records[-1]
    assert int(rebuilt["counts"].sum()) == 0 and not rebuilt["observed"].any()
    for key in ("population_bits", "fitness", "theoretical", "gene_survival", "absorption_times"):
        np.testing.assert_allclose(rebuilt[key], original[key])
    assert int(markov.load_generation(target / "markov" / "gen_0001.npz")["counts"].sum()) > 0


def test_real_chain_absorption_times_match_monte_carlo(records):
    P = records[-1]["theoretical"]
    t = markov.absorption_times(P)
    rng = np.random.default_rng(11)
    for start in sorted(set(records[-1]["population_bits"].sum(axis=1).tolist()) | {1, 8}):
        sim = markov.simulate_absorption_times(P, start, 3000, rng, max_steps=100_000)
        assert not np.isnan(sim).any()
        assert abs(sim.mean() - t[start]) / t[start] < 0.05, (start, sim.mean(), t[start])
