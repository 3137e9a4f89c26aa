"""Weight inheritance in a real run: children start from their parents' kept weights, the run
directory keeps only the population's, and a run killed mid-generation resumes identically."""
from __future__ import annotations

import json
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from helpers import TINY, gnas, start_gnas, state, wait_rows  # noqa: E402

pytestmark = pytest.mark.slow

ARGS = [*TINY, "--generations", "2", "--seed", "6", "--inherit", "parent",
        "--set", "train.group_size=4", "--set", "evolution.final_candidates=1"]


def search_rows(run: Path) -> list[tuple]:
    with sqlite3.connect(run / "evaluations.db") as db:
        rows = db.execute("SELECT genome_key, generation, val_error, metrics FROM evaluations "
                          "WHERE kind = 'search' ORDER BY id").fetchall()
    return [(k, g, e, json.loads(m).get("inherit_from"), json.loads(m).get("inherited_layers"))
            for k, g, e, m in rows]


def lineages(run: Path) -> list[dict]:
    """The metrics of every search or champion row that records what it could inherit."""
    with sqlite3.connect(run / "evaluations.db") as db:
        rows = [json.loads(m) for (m,) in db.execute(
            "SELECT metrics FROM evaluations WHERE kind IN ('search', 'champion')")]
    return [m for m in rows if "inheritable_layers" in m]


def test_children_inherit_and_a_run_killed_mid_generation_resumes_identically(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    gnas("evolve", *ARGS, "--run-dir", straight)
    rows = search_rows(straight)
    children = [r for r in rows if r[1] > 0]
    assert any(r[4] for r in children), "no child inherited a layer"
    assert all(r[3] for r in children), "a child's parents are not recorded"
    st = state(straight)
    kept = {p.stem for p in (straight / "weights").iterdir()}
    assert kept and kept <= set(st["keys"]), "weights of networks that cannot be parents are kept"
    section = json.loads(gnas("report", straight, "--json").stdout)["inheritance"]
    files = list((straight / "weights").iterdir())
    assert section["kept_networks"] == len(files) and section["kept_bytes"] == sum(f.stat().st_size for f in files)
    assert section["kept_bytes"] <= section["cap_bytes"] == 256 * 2**20
    lineage = lineages(straight)
    assert section["children"] == len(lineage) >= len(children) and 0 < section["inherited_share"] <= 1
    assert section["inherited_share"] == pytest.approx(
        sum(len(m.get("inherited_layers") or []) for m in lineage) / sum(m["inheritable_layers"] for m in lineage))
    assert "inheritance (parent):" in gnas("report", straight).stdout

    proc = start_gnas("evolve", *ARGS, "--run-dir", str(killed))
    wait_rows(proc, killed, len(rows) - 2)  # in the last generation, children still to train
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=300)
    gnas("resume", killed)
    assert search_rows(killed) == rows
    a, b = state(straight), state(killed)
    assert (a["population"], a["fitness"], a["hall_of_fame"]) == (b["population"], b["fitness"],
                                                                  b["hall_of_fame"])
    assert {p.stem for p in (killed / "weights").iterdir()} == kept
