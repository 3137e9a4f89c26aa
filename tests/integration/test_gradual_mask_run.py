"""``--prune 0.5 --mask column``: the mask grows step by step and the export shrinks.

Each mask step is kept only when F does not rise against a control fine-tuned
as long without it, like any cut; so the pruned network keeps its validation
accuracy (within 1 point of its unpruned base), and ``best/model.keras`` is
physically smaller (the columns the mask zeroed are removed from the file).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import gnas  # noqa: E402

pytestmark = pytest.mark.slow

ARGS = ["--dataset", "digits", "--generations", "2", "--population", "4", "--epochs", "1",
        "--prune", "0.5", "--mask", "column", "--lambda-c", "0.8", "--threads", "1",
        "--set", "evolution.final_seeds=0", "--set", "final.max_epochs=3", "-q"]


def test_a_column_mask_exports_a_smaller_network_within_one_point(tmp_path):
    run = tmp_path / "run"
    gnas("evolve", *ARGS, "--run-dir", str(run))
    summary = json.loads((run / "best" / "summary.json").read_text())
    state = json.loads((run / "state.json").read_text())
    chains = state["steps"]["pruning"]["chains"].values()
    pruned = [c for c in chains if c["cuts"]]
    assert pruned, "no chain kept a cut"
    assert any(c[0] == "mask" for chain in pruned for c in chain["cuts"] if isinstance(c, list))
    for chain in pruned:
        # kept mask steps and cuts never cost more than a point of validation accuracy
        assert chain["after"]["val_error"] <= chain["before"]["val_error"] + 0.01
        # every kept mask step was tried against its round's control
        for attempt in chain["attempts"]:
            if attempt["accepted"] and attempt["cuts"]:
                assert attempt["cuts"][-1] != -1
    # the delivered network is the pruned one, and its file is smaller than its base's
    assert summary["pruned_fraction"] >= 0.5 and summary["params"] < summary["params_unpruned"]
    before = run / "pruning" / "before" / "model.keras"
    assert (run / "best" / "model.keras").stat().st_size < 0.6 * before.stat().st_size
    report = json.loads(gnas("report", str(run), "--json").stdout)["pruning"]
    assert report["after"]["params_stored"] < report["before"]["params_stored"]
    assert report["after"]["val_score"] >= report["before"]["val_score"] - 1.0
