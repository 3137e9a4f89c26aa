"""The lambda sweep, the zero crossing, the preset fallback, the run cache and the probe."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from gnas.chaos import bootstrap, calibration
from gnas.chaos.calibration import SweepPoint
from gnas.config import load_config
from gnas.datasets import load_dataset
from gnas.errors import ConfigError, DataError
from gnas.runs.directory import RunDir
from gnas.genome.factory import make_space


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", max_train_samples=200, val_fraction=0.2)


@pytest.fixture(scope="module")
def space(digits):
    return make_space(load_config(), digits)


def test_importing_calibration_does_not_import_tensorflow():
    code = "import sys, gnas.chaos.calibration; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- zero crossing
def test_zero_crossing_is_interpolated():
    assert calibration.zero_crossing([0.0, 0.5, 1.0], [-0.2, -0.1, 0.3]) == pytest.approx(0.625)


def test_zero_crossing_takes_the_last_crossing_from_below():
    lam = [0.0, 0.25, 0.5, 0.75, 1.0]
    assert calibration.zero_crossing(lam, [-1.0, 1.0, -1.0, 1.0, 2.0]) == pytest.approx(0.625)


def test_zero_crossing_counts_an_exact_zero():
    assert calibration.zero_crossing([0.0, 0.5, 1.0], [-0.2, 0.0, 0.3]) == pytest.approx(0.5)


@pytest.mark.parametrize("values", [[0.1, 0.2, 0.3], [-0.3, -0.2, -0.1], [0.2, -0.1, -0.3]])
def test_no_zero_crossing_gives_none(values):
    assert calibration.zero_crossing([0.0, 0.5, 1.0], values) is None


def _sweep(values):
    lam = np.linspace(0, 1, len(values))
    return [SweepPoint(float(a), float(b), 0.01) for a, b in zip(lam, values)]


@pytest.mark.parametrize("kind, preset", [("image", 0.881), ("text", 0.786), ("vector", 0.786)])
def test_without_crossing_the_paper_preset_is_used_and_said(kind, preset):
    result = calibration.conclude(_sweep([0.1, 0.2, 0.3]), kind, weight_scale=2.0, samples=8,
                                  batch=64, seed=0)
    assert (result.lambda_c, result.source) == (preset, "preset")
    assert "no zero crossing" in result.reason and "weight_scale" in result.reason
    assert result.to_dict()["crossing"] is False


def test_with_crossing_the_result_is_measured():
    tables = [np.full((4, 2), v) for v in (-0.4, -0.2, 0.2)]  # no spread: every replicate agrees
    result = calibration.conclude(_sweep([-0.4, -0.2, 0.2]), "image", tables, weight_scale=2.0,
                                  samples=8, batch=64, seed=0)
    assert result.source == "measured" and result.lambda_c == pytest.approx(0.75)
    assert result.lambda_c_ci == pytest.approx([0.75, 0.75]) and result.robust


def test_a_bare_curve_is_not_robust():
    result = calibration.conclude(_sweep([-0.4, -0.2, 0.2]), "image", weight_scale=2.0, samples=8,
                                  batch=64, seed=0)
    assert result.source == "preset" and result.crossing_at == pytest.approx(0.75)
    assert "no bootstrap interval" in result.reason and result.lambda_c_ci is None
    record = result.to_dict()
    assert record["sweep"][0] == {"lambda": 0.0, "exponent": -0.4, "std": 0.01}
    json.dumps(record)


# ---------------------------------------------------------------- arguments
@pytest.mark.parametrize("points", [2, 0, -5, 2.5, True])
def test_sweep_needs_three_points(points):
    with pytest.raises(ConfigError):
        calibration.sweep_lambdas(points)


def test_sweep_points_span_zero_to_one():
    assert list(calibration.sweep_lambdas(11)) == pytest.approx([k / 10 for k in range(11)])


@pytest.mark.parametrize("values", [[0, 0.5, 1.2], [-0.1, 0.5, 1.0], [0.0, 1.0], [0.5, 0.5, 1.0]])
def test_explicit_lambdas_are_checked(values):
    with pytest.raises(ConfigError):
        calibration.check_lambdas(values)


def test_input_batch_refuses_a_data_set_too_small(digits):
    with pytest.raises(DataError) as info:
        calibration.input_batch(digits, len(digits.x_train) + 1)
    assert "\n" not in str(info.value)
    a = calibration.input_batch(digits, 16, seed=3)
    assert a.shape == (16, 8, 8, 1) and np.array_equal(a, calibration.input_batch(digits, 16, seed=3))


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
def test_sampled_connection_genes_are_bernoulli_lambda(space, lam):
    rng = np.random.default_rng(0)
    bits = np.array(calibration.sample_chromosomes(space, lam, 200, rng))
    edges = bits[:, space.active_slice.stop:space.l]  # repair never touches edge genes
    assert edges.mean() == pytest.approx(lam, abs=0.03)
    assert all(space.is_valid(b) for b in bits[:20])


def test_run_sampler_draws_generation_0_as_the_run_does(digits, space):
    from gnas.chaos.population import initial_population

    cfg = load_config()
    draw = calibration.run_sampler(cfg, space)
    got = draw(0.6, 5, np.random.default_rng(4))
    import dataclasses
    want = initial_population(dataclasses.replace(cfg, evolution=dataclasses.replace(
        cfg.evolution, population=5)), space, np.random.default_rng(4), lambda: (0.6, "x")).genomes
    assert got == list(want) and len(got) == 5
    assert all(space.is_valid(b) for b in got)


# ---------------------------------------------------------------- the bootstrap
def _tables(means, noise, rows=16, cols=4, seed=0):
    rng = np.random.default_rng(seed)
    return [m + noise * rng.standard_normal((rows, cols)) for m in means]


LINE = np.linspace(-0.2, 0.3, 11)  # crosses zero at lambda = 0.4


def test_clear_crossing_is_robust_with_a_narrow_interval():
    sweep = calibration.summarise(np.linspace(0, 1, 11), _tables(LINE, 0.02))
    result = calibration.conclude(sweep, "image", _tables(LINE, 0.02), weight_scale=2.0, samples=16,
                                  batch=64, seed=0)
    assert result.source == "measured" and result.robust
    lo, hi = result.lambda_c_ci
    assert lo <= result.lambda_c <= hi and hi - lo <= 0.1
    assert result.lambda_c == pytest.approx(0.4, abs=0.03)
    assert result.to_dict()["lambda_c_ci"] == [lo, hi]


def test_noisy_crossing_is_not_robust_and_the_preset_says_why():
    tables = _tables(LINE * 0.1, 0.3)
    result = calibration.conclude(calibration.summarise(np.linspace(0, 1, 11), tables), "image", tables,
                                  weight_scale=2.0, samples=16, batch=64, seed=0)
    assert result.source == "preset" and result.lambda_c == 0.881 and not result.robust
    assert result.reason.startswith("no robust crossing")
    assert result.to_dict()["crossing"] is False


def test_bootstrap_interval_narrows_with_more_samples():
    wide = bootstrap.crossing_interval(np.linspace(0, 1, 11), _tables(LINE, 0.1, rows=4),
                                       calibration.zero_crossing)
    narrow = bootstrap.crossing_interval(np.linspace(0, 1, 11), _tables(LINE, 0.1, rows=64),
                                         calibration.zero_crossing)
    assert narrow.width < wide.width / 2


def test_bootstrap_resamples_rows_and_columns():
    table = np.array([[0.0, 1.0], [10.0, 11.0]])
    curves = bootstrap.replicate_curves([table], 500, np.random.default_rng(0))
    # row and column choices are both resampled: all of 0.5 ... 10.5 in steps of 0.25 occur
    assert {0.0, 11.0} <= set(np.round(curves[:, 0], 6)) and len(set(np.round(curves[:, 0], 6))) > 5


def test_a_curve_without_crossing_has_no_interval():
    verdict = bootstrap.crossing_interval(np.linspace(0, 1, 11), _tables(LINE + 1.0, 0.01),
                                          calibration.zero_crossing)
    assert verdict.lo is None and verdict.share == 0.0 and not verdict.robust


# ---------------------------------------------------------------- the run cache
def test_run_calibration_is_reused_when_data_and_space_match(tmp_path, digits, space):
    cfg = load_config()
    run_dir = RunDir(tmp_path / "run")
    run_dir.create(cfg)
    fingerprint = calibration.space_fingerprint(space, cfg.train.weight_scale)
    record = {"lambda_c": 0.4321, "sweep": [], "source": "measured", "dataset": "digits",
              "space": fingerprint}
    (run_dir.path / "chaos.json").write_text(json.dumps(record))
    assert calibration.calibrate_for_run(cfg, digits, space, run_dir) == (0.4321, "measured")


def test_cache_is_ignored_for_another_space_or_a_damaged_file(tmp_path, space):
    path = tmp_path / "chaos.json"
    good = {"lambda_c": 0.5, "source": "preset", "dataset": "digits",
            "space": calibration.space_fingerprint(space, 2.0)}
    path.write_text(json.dumps(good))
    assert calibration.load_cached(path, "digits", good["space"]) is not None
    assert calibration.load_cached(path, "mnist", good["space"]) is None
    assert calibration.load_cached(path, "digits", calibration.space_fingerprint(space, 1.5)) is None
    path.write_text(json.dumps({**good, "lambda_c": 1.5}))
    assert calibration.load_cached(path, "digits", good["space"]) is None
    path.write_text("{not json")
    assert calibration.load_cached(path, "digits", good["space"]) is None


# ---------------------------------------------------------------- the probe (TensorFlow)
@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_linear_chain_grows_by_half_log_sigma_squared_per_layer(digits, scale):
    from gnas.backend import probe

    x = calibration.input_batch(digits, 32)
    arch = probe.chain_architecture(12, 96, x.shape[1:])
    probe.reset()
    values = probe.probe_many([arch] * 3, x, weight_scale=scale, seeds=[0, 1, 2], linear=True)
    assert np.mean(values) == pytest.approx(0.5 * math.log(scale), abs=0.04)


def test_probe_is_deterministic_whatever_was_probed_before(digits, space):
    from gnas.backend import probe

    x = calibration.input_batch(digits, 16)
    archs = [space.decode(b) for b in calibration.sample_chromosomes(space, 0.7, 2, np.random.default_rng(1))]
    probe.reset()
    first = probe.probe_many(archs, x, weight_scale=2.0, seeds=[7, 8])
    again = probe.probe_many(archs[::-1], x, weight_scale=2.0, seeds=[8, 7])
    assert first == again[::-1]
    assert probe.network_depth(archs[0]) >= len(archs[0].stages)


def test_probe_table_rows_are_networks_and_columns_batches(digits, space):
    from gnas.backend import probe

    xs = calibration.input_batches(digits, 3, 16)
    archs = [space.decode(b) for b in calibration.sample_chromosomes(space, 0.7, 2, np.random.default_rng(1))]
    probe.reset()
    table = probe.probe_table(archs, xs, weight_scale=2.0, seeds=[7, 8])
    assert table.shape == (2, 3)
    # the first batch of a row sees the same weights and perturbation as a single probe
    assert table[:, 0] == pytest.approx(probe.probe_many(archs, xs[0], weight_scale=2.0, seeds=[7, 8]))
    assert len({round(v, 9) for v in table[0]}) == 3  # other batches, other exponents


def test_batches_in_one_forward_pass_equal_one_pass_per_batch(digits, space):
    """The sweep pushes a network's batches through at once; each exponent is unchanged."""
    from gnas.backend import probe

    xs = calibration.input_batches(digits, 3, 16)
    arch = space.decode(calibration.sample_chromosomes(space, 0.9, 1, np.random.default_rng(2))[0])
    probe.reset()
    model = probe.probe_model(arch, 2.0, linear=False)
    depth = probe.network_depth(arch)
    rng = np.random.default_rng(3)
    one_by_one = [probe.perturbation_exponent(model, x, depth, rng) for x in xs]
    together = probe.perturbation_exponents(model, xs, depth, np.random.default_rng(3))
    assert together == pytest.approx(one_by_one, rel=1e-6, abs=1e-9)


def test_plot_is_written_by_the_report(tmp_path):
    from gnas.report.analysis import write_chaos_plot

    result = calibration.conclude(_sweep([-0.4, -0.2, 0.2]), "image", weight_scale=2.0, samples=8,
                                  batch=64, seed=0)
    (tmp_path / "sub").mkdir()
    path = write_chaos_plot(result.to_dict(), tmp_path / "sub" / "chaos.png", "title")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "sub").glob(".*"))


def test_a_bounded_sweep_keeps_to_its_time_and_still_spans_lambda_from_0_to_1(digits, space):
    import time

    unbounded_began = time.perf_counter()
    full = calibration.calibrate(digits, space, weight_scale=2.0, samples=8, batches=2, batch=32,
                                 threads=1, progress=None)
    full_s = time.perf_counter() - unbounded_began
    bound = full_s / 3
    began = time.perf_counter()
    short = calibration.calibrate(digits, space, weight_scale=2.0, samples=8, batches=2, batch=32,
                                  threads=1, progress=None, max_seconds=bound)
    took = time.perf_counter() - began
    lams = [p.lam for p in short.sweep]
    assert len(lams) >= calibration.MIN_POINTS and lams == sorted(lams)
    assert lams[0] == 0.0 and lams[-1] == 1.0  # coarse to fine: both ends first
    assert len(short.sweep) < len(full.sweep) or short.samples < full.samples
    assert took <= bound * 1.5 + 1.0, (took, bound)
