"""Real tiny searches with layer-wise competition on and off: growth, determinism, resume, report."""
from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from helpers import gnas, report, state  # noqa: E402

from gnas.competition.scoreboard import credited, scoreboard, stage_variants  # noqa: E402
from gnas.config import load_config  # noqa: E402
from gnas.genome.space import SearchSpace, str_to_bits  # noqa: E402
from gnas.records import StoredEvaluation  # noqa: E402

# digits, population 4, 1 epoch, stages of 3 nodes, 300 training samples, one thread,
# the paper's lambda_c for images (no calibration)
ARGS = ["--preset", "tiny", "--seed", "11", "--max-train-samples", "300", "--threads", "1",
        "--lambda-c", "0.881", "--set", "evolution.final_seeds=0"]
SAME = ("population", "fitness", "hall_of_fame", "rng_state", "steps", "generation")


def rows(run: Path) -> list[dict]:
    with sqlite3.connect(run / "evaluations.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM evaluations ORDER BY id")]


def space_of(run: Path) -> SearchSpace:
    cfg = load_config(run / "config.toml")
    return SearchSpace(cfg.space, (8, 8, 1), 10, family="dense")


@pytest.fixture(scope="module", params=["on", "off"])
def runs(request, tmp_path_factory):
    """A straight 2-generation run and one stopped after 1 generation, then resumed to 2."""
    flags = [] if request.param == "on" else ["--no-competition"]
    base = tmp_path_factory.mktemp(f"competition-{request.param}")
    straight, split = base / "straight", base / "split"
    gnas("evolve", "--generations", "2", "--run-dir", straight, *ARGS, *flags)
    gnas("evolve", "--generations", "1", "--run-dir", split, *ARGS, *flags)
    after_one = state(split)
    gnas("resume", split, "--generations", "2")
    return request.param, straight, split, after_one


@pytest.mark.slow
def test_same_seed_and_resume_give_the_same_search(runs):
    mode, straight, split, after_one = runs
    a, b = state(straight), state(split)
    assert after_one["generation"] == 1 and b["generation"] == 2
    for name in SAME:
        assert a[name] == b[name], name
    keys = [r["genome_key"] for r in rows(split) if r["kind"] in ("search", "champion")]
    assert len(keys) == len(set(keys)), "resume trained a network twice"
    # the split run also re-trained its final candidates when it first ended (kind "reseed")
    searched = [[r["genome_key"] for r in rows(run) if r["kind"] != "reseed"] for run in (straight, split)]
    assert searched[0] == searched[1]


@pytest.mark.slow
def test_growth_starts_from_the_draw_with_a_wide_first_stage(runs):
    _, straight, _, _ = runs
    space = space_of(straight)
    first = [str_to_bits(r["genome"]) for r in rows(straight)
             if r["generation"] == 0 and r["kind"] == "search"]
    assert first and all(space.width_of(b, 0) >= space.widths[len(space.widths) // 2] for b in first)
    assert len({space.key(b) for b in first}) == len(first)  # no network twice in generation 0
    assert all(not space.violations(str_to_bits(r["genome"])) for r in rows(straight))


@pytest.mark.slow
def test_scoreboard_is_a_recount_of_the_run_rows(runs):
    mode, straight, _, _ = runs
    s = state(straight)
    if mode == "off":
        assert "competition" not in s["steps"]
        assert not [r for r in rows(straight) if r["kind"] == "champion"]
        return
    space = space_of(straight)
    population = [str_to_bits(g) for g in s["population"]]
    recount = scoreboard(space, credited(map(StoredEvaluation.from_row, rows(straight)), generation=3), 2, population)
    board = s["steps"]["competition"]
    assert board["layers"] == recount["layers"] and board["credited"] == recount["credited"]
    champions = board["champions"]
    assert {c["generation"] for c in champions} == {0, 1, 2}
    for c in champions:
        names = [v.name for v in stage_variants(space, str_to_bits(c["genome"]))]
        assert names == c["variants"]
        for layer, name in zip(board["layers"], names):
            recorded = {v["variant"] for v in layer["variants"]}
            assert name in recorded or name == "off"
        if c["outcome"] == "accepted":
            assert c["genome"] in s["population"] or c["generation"] < 2


@pytest.mark.slow
def test_report_shows_the_layers(runs):
    mode, straight, _, _ = runs
    rep = report(straight)
    if mode == "off":
        assert "layers" not in rep
        return
    layers = rep["layers"]["layers"]
    assert [layer["stage"] for layer in layers] == [0, 1]
    top = layers[0]["variants"][0]
    assert {"variant", "mean", "count", "best", "held"} <= set(top)
    assert top["count"] >= 1
    text = gnas("report", straight).stdout
    assert "layer-wise competition" in text and top["variant"] in text
