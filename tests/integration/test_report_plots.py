"""A small real run seen through `gnas report --plots`, TensorBoard and the report text."""
from __future__ import annotations

import json
import shutil
import sqlite3
import struct
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from helpers import TINY, gnas, report, state  # noqa: E402

pytestmark = pytest.mark.slow

EXPECTED_PIXELS = {"fitness": (800, 500), "pareto": (800, 500), "diversity": (1200, 400),
                   "chaos": (800, 500), "scoreboard": (1200, 450), "architecture": (1400, 500)}
TAGS = {"fitness/best", "fitness/mean", "error/best", "error/mean", "population/diversity",
        "population/entropy", "population/lambda", "evaluations/total", "evaluations/failures",
        "pruning/pruned_fraction"}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """Two generations of four networks, batch size chosen from memory."""
    path = tmp_path_factory.mktemp("plots") / "run"
    gnas("evolve", "--generations", "1", "--run-dir", path, "--lambda-c", "0.8",
         "--batch-size", "auto", *TINY)
    return path


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


def test_plots_are_non_empty_pngs_of_the_expected_size(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    sweep = [{"lambda": lam, "exponent": 2.0 * (lam - 0.7), "std": 0.1} for lam in np.linspace(0, 1, 6)]
    (copy / "chaos.json").write_text(json.dumps({"lambda_c": 0.7, "source": "measured", "sweep": sweep}))
    out = tmp_path / "plots"
    proc = gnas("report", copy, "--plots", "--out", out)
    written = sorted(p.stem for p in out.glob("*.png"))
    assert written == sorted(EXPECTED_PIXELS)  # competition is on by default: a scoreboard exists
    import matplotlib.image

    for name, pixels in EXPECTED_PIXELS.items():
        path = out / f"{name}.png"
        assert f"plot: {path}" in proc.stdout
        assert png_size(path) == pixels, name
        image = matplotlib.image.imread(path)
        assert image[..., :3].std() > 0.01, f"{name} is blank"


def test_plots_default_to_the_run_directory_and_skip_what_is_missing(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "best" / "architecture.json").unlink()  # decoded from the hall of fame instead
    rep = json.loads(gnas("report", copy, "--plots", "--json").stdout)
    names = sorted(Path(p).stem for p in rep["plots"])
    assert names == ["architecture", "diversity", "fitness", "pareto", "scoreboard"]
    assert all(Path(p).parent == copy / "plots" for p in rep["plots"])


def _events(logdir: Path) -> list[tuple[str, int, float]]:
    from gnas.backend.runtime import import_tensorflow

    tf = import_tensorflow()
    out = []
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                out.append((value.tag, int(event.step), float(tf.make_ndarray(value.tensor))))
    return out


def test_tensorboard_scalars_read_back_per_generation(run):
    events = _events(run / "tensorboard")
    tags = {tag for tag, _, _ in events}
    assert TAGS <= tags
    logbook = state(run)["logbook"]
    values = {(tag, step): v for tag, step, v in events}
    for record in logbook:
        g = record["generation"]
        assert values[("fitness/best", g)] == pytest.approx(record["best"], rel=1e-6)
        assert values[("fitness/mean", g)] == pytest.approx(record["mean"], rel=1e-6)
        assert values[("population/diversity", g)] == pytest.approx(record["diversity"], rel=1e-6)
        assert values[("population/lambda", g)] == pytest.approx(record["lambda"], rel=1e-6)
        assert values[("evaluations/total", g)] == record["evaluations"]
    assert {step for _, step, _ in events} == {0, 1}


def _hparams(logdir: Path) -> tuple[list[str], dict[str, dict], dict[str, dict[str, float]]]:
    """What TensorBoard's own reader finds: the experiment's columns, each session's
    hyper-parameters and metrics, by candidate key."""
    from tensorboard.backend.event_processing import plugin_event_multiplexer
    from tensorboard.plugins.hparams import metadata
    from tensorboard.util import tensor_util

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir / "hparams"))
    mux.Reload()
    columns, sessions, metrics = [], {}, {}
    for name, tags in mux.PluginRunToTagToContent("hparams").items():
        if metadata.EXPERIMENT_TAG in tags:
            experiment = metadata.parse_experiment_plugin_data(tags[metadata.EXPERIMENT_TAG])
            columns = [h.name for h in experiment.hparam_infos] + [m.name.tag for m in experiment.metric_infos]
        if metadata.SESSION_START_INFO_TAG in tags:
            key = name.split("/")[-1]
            info = metadata.parse_session_start_info_plugin_data(tags[metadata.SESSION_START_INFO_TAG])
            sessions[key] = {k: getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}
            metrics[key] = {tag: float(tensor_util.make_ndarray(mux.Tensors(name, tag)[-1].tensor_proto))
                            for tag in ("val_error", "fitness") if tag in mux.GetAccumulator(name).Tags()["tensors"]}
    return columns, sessions, metrics


def test_every_trained_candidate_is_an_hparams_session(run):
    from gnas.config import load_config
    from gnas.datasets import load_for_run
    from gnas.genome.factory import make_space
    from gnas.genome.space import str_to_bits

    columns, sessions, metrics = _hparams(run / "tensorboard")
    assert columns == ["learning_rate", "momentum", "stages", "widths", "params", "status",
                       "val_error", "fitness"]
    with sqlite3.connect(run / "evaluations.db") as db:
        rows = db.execute("SELECT genome_key, genome, status, val_error, fitness, params FROM evaluations "
                          "WHERE kind = 'search'").fetchall()
    assert set(sessions) == {r[0] for r in rows} and len(sessions) >= 4
    cfg = load_config(run / "config.toml")
    space = make_space(cfg, load_for_run(cfg))
    for key, genome, status, val_error, fitness, params in rows:
        arch = space.decode(str_to_bits(genome))
        h = sessions[key]
        assert h["learning_rate"] == pytest.approx(arch.learning_rate)
        assert (h["momentum"], h["stages"], h["params"], h["status"]) == \
            (pytest.approx(arch.momentum), len(arch.stages), params, status)
        assert h["widths"] == "-".join(str(s.width) for s in arch.stages)
        if status == "ok":
            assert metrics[key] == {"val_error": pytest.approx(val_error), "fitness": pytest.approx(fitness)}


def test_resume_adds_steps_without_duplicates(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    gnas("resume", copy, "--generations", "2", "--threads", "1")
    events = _events(copy / "tensorboard")
    assert {step for _, step, _ in events} == {0, 1, 2}
    counts = Counter((tag, step) for tag, step, _ in events)
    assert max(counts.values()) == 1, [k for k, c in counts.items() if c > 1]
    assert len(list((copy / "tensorboard").glob("events.out.tfevents.*"))) == 2
    sessions = [d for d in (copy / "tensorboard" / "hparams").iterdir() if d.is_dir()]
    with sqlite3.connect(copy / "evaluations.db") as db:
        keys = {k for (k,) in db.execute("SELECT genome_key FROM evaluations WHERE kind = 'search'")}
    assert {d.name for d in sessions} == keys, "every candidate, the resumed generation's too"
    assert all(len(list(d.glob("events.out.tfevents.*"))) == 1 for d in sessions), "one session per key"
    from gnas.backend.tensorboard import read_scalars

    assert read_scalars(copy / "tensorboard")["fitness/best"][2] == pytest.approx(
        state(copy)["logbook"][-1]["best"], rel=1e-6)


def test_report_lists_top_architectures_with_memory_and_the_front(run):
    text = gnas("report", run).stdout
    rep = report(run)
    top = rep["top"]
    assert 1 <= len(top) <= 5
    assert f"top {len(top)} architectures:" in text
    assert [t["fitness"] for t in top] == sorted(t["fitness"] for t in top)
    for t in top:
        assert t["key"] in text
        assert t["params"] > 0 and t["flops"] > 0 and t["evaluations"] >= 1
        assert t["memory"]["operational_bytes"] > t["memory"]["model_bytes"] == 4 * t["params"]
    assert "Pareto front (validation error vs params" in text
    front = rep["pareto_front"]
    points = [(p["val_error"], p["params"]) for p in front]
    for e, c in points:  # nothing on the front is dominated by another evaluation
        assert not any(e2 <= e and c2 <= c and (e2, c2) != (e, c) for e2, c2 in points)
    assert "memory:       model" in text


def test_evaluation_rows_record_memory_and_the_auto_batch(run):
    from gnas.config import load_config
    from gnas.datasets import load_dataset
    from gnas.genome.memory import estimate
    from gnas.genome.factory import make_space
    from gnas.genome.space import str_to_bits

    cfg = load_config(None, {"data.max_train_samples": 300})
    data = load_dataset("digits", max_train_samples=300, val_fraction=cfg.data.val_fraction, seed=0)
    space = make_space(cfg, data)
    with sqlite3.connect(run / "evaluations.db") as conn:
        rows = conn.execute("SELECT genome, metrics FROM evaluations WHERE kind = 'search'").fetchall()
    assert rows
    for genome, metrics in rows:
        m = json.loads(metrics)
        arch = space.decode(str_to_bits(genome))
        # this machine has far more than enough memory: the whole training split is one batch
        assert m["batch_size"] == len(data.x_train)
        assert m == {**m, **estimate(arch).metrics(m["batch_size"])}


def test_scoreboard_in_a_generic_format_and_architecture_layout(tmp_path):
    from gnas.genome.architecture import StageArch
    from gnas.report.figures import SIZES, node_positions, save, scoreboard_figure, scoreboard_layers

    board = {"stage 0": [{"name": "a", "fitness": 0.4, "count": 3}, {"name": "b", "fitness": 0.2, "count": 1}],
             "stage 1": [{"name": "off", "fitness": 0.3}], "notes": "ignored"}
    layers = scoreboard_layers(board)
    assert layers == [("stage 0", [("b", 0.2, 1), ("a", 0.4, 3)]), ("stage 1", [("off", 0.3, 1)])]
    assert scoreboard_layers({}) == [] and scoreboard_layers({"layers": []}) == []
    path = save(scoreboard_figure(layers), tmp_path / "s.png", SIZES["scoreboard"])
    assert png_size(path) == EXPECTED_PIXELS["scoreboard"]
    stage = StageArch(index=0, nodes=4, edges=((0, 1), (0, 2), (1, 3), (2, 3), (0, 3)), width=8)
    assert node_positions(stage) == {0: (0, 0), 1: (1, 0), 2: (1, 1), 3: (2, 0)}
