"""The typed records at the pruning seams: options, chains and network sizes read back from JSON."""
from __future__ import annotations

import json

import pytest

from gnas.config import load_config
from gnas.pruning import cuts as pruning
from gnas.pruning.records import SETTINGS, ChainRecord, PruneOptions
from gnas.records import EvalResult, NetworkSize, Status


def test_options_survive_json_and_an_old_row_gets_the_defaults():
    opts = PruneOptions(cycles=7, tune_lr_scale=0.25, mask="nm", nm="2:4", sparsity=0.5,
                        mask_score="saliency").attempt((1, 0, 1, 1), ((1, 2), 3, (pruning.UNITS, 0, 6)))
    back = PruneOptions.from_dict(json.loads(json.dumps(opts.to_dict())))
    assert back == opts and back.cuts == ((1, 2), 3, (pruning.UNITS, 0, 6))
    assert opts.variant == pruning.attempt_tag((1, 0, 1, 1), opts.cuts, opts.settings())
    assert "variant" not in opts.final() and PruneOptions.from_dict(opts.final()).variant == ""
    old = PruneOptions.from_dict({"base": "1011", "cuts": [3], "cycles": 5, "mask": "column"})
    assert (old.tune_lr_scale, old.nm, old.sparsity, old.mask_score) == (1.0, "2:4", 0.5, "magnitude")
    assert PruneOptions.from_dict({}).mask == "none"


def test_a_run_s_settings_are_the_variant_digest_s():
    cfg = load_config(None, {"prune.fraction": 0.3, "prune.mask": "nm", "prune.cycles": 9})
    opts = PruneOptions.for_run(cfg)
    assert tuple(opts.settings()) == SETTINGS
    assert opts.settings() == {"cycles": 9, "tune_lr_scale": float(cfg.prune.tune_lr_scale), "mask": "nm",
                               "nm": cfg.prune.nm, "sparsity": 0.3, "mask_score": cfg.prune.mask_score}
    assert list(opts.attempt((1, 1), ()).to_dict())[:len(SETTINGS)] == list(SETTINGS)


def test_a_chain_reads_back_from_the_step_state_with_defaults():
    result = pruning.ChainResult(base="1011", cuts=[(1, 2), 3], fitness_before=0.3, fitness_after=0.2,
                                 key_before="a", key_after="b", reason="target fraction 0.5 reached")
    record = ChainRecord.from_dict({**result.to_dict(), "generation": 2, "genome_after": "1001"})
    again = ChainRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record and again.pruned and again.cuts == ((1, 2), 3)
    old = ChainRecord.from_dict({"base": "1011", "fitness_after": None, "unknown": 1})
    assert old.genome_after == "1011" and not old.pruned and old.before == {}


def _row(status=Status.OK, **metrics) -> EvalResult:
    return EvalResult(key="k", genome="1", status=status, params=60, flops=500, metrics=metrics)


def test_network_size_of_a_pruned_row_an_unpruned_row_and_no_row():
    pruned = NetworkSize.from_row(_row(params_total=100, params_stored=100, params_unpruned=120,
                                       flops_unpruned=900, gene_fraction=0.25), 1, 1)
    assert (pruned.params, pruned.params_total, pruned.params_unpruned, pruned.flops) == (60, 100, 120, 500)
    assert pruned.flops_unpruned == 900 and pruned.pruned_fraction == pytest.approx(0.5)
    plain = NetworkSize.from_row(_row(), 1, 1)
    assert plain.params_unpruned == plain.params_stored == plain.params == 60 and plain.pruned_fraction == 0
    assert NetworkSize.from_row(_row().to_dict(), 1, 1) == plain
    for missing in (None, {}, _row(Status.FAILED)):
        size = NetworkSize.from_row(missing, 42, 7)
        assert (size.params, size.params_unpruned, size.flops, size.flops_unpruned) == (42, 42, 7, 7)
    assert plain.before_pruning() == {"params_stored": 60, "params_unpruned": 60, "flops_unpruned": 500}
