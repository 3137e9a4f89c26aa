"""Latency of saved models: the traced forward pass, per batch call, per sample and per one-sample call."""
from __future__ import annotations

import pytest

from gnas.genome.architecture import Architecture, StageArch


def test_latency_figures_for_each_model_in_order(tmp_path):
    from gnas.backend.builder import build_model
    from gnas.backend.export import save_model
    from gnas.backend.latency import median_latency

    paths = []
    raw = {"input": {"kind": "vector", "features": 12, "mean": [0.0] * 12, "std": [1.0] * 12}, "output": None}
    for width in (4, 64):
        arch = Architecture("dense", (12,), 3, "classification", (StageArch(0, 1, (), width),), 0.05, 0.9)
        paths.append(tmp_path / f"w{width}.keras")
        save_model(build_model(arch), paths[-1], raw)
    figures = median_latency(paths, batch=32, rounds=5)
    assert len(figures) == 2
    for f in figures:
        assert f["latency_ms"] > 0 and f["latency_ms_one"] > 0 and f["latency_batch"] == 32
        assert f["latency_us_per_sample"] == pytest.approx(1000.0 * f["latency_ms"] / 32)
        assert f["latency_rounds"] == 5


def test_a_text_model_is_timed_on_word_indices(tmp_path):
    """A saved text model reads padded word indices (int32), not floats."""
    from gnas.backend.builder import build_model
    from gnas.backend.export import save_model
    from gnas.backend.latency import median_latency

    arch = Architecture("dense", (10_000,), 2, "classification", (StageArch(0, 1, (), 4),), 0.05, 0.9)
    text = {"input": {"kind": "text", "num_words": 10_000, "index_from": 3, "start_char": 1, "pad": 0},
            "output": None}
    save_model(build_model(arch), tmp_path / "text.keras", text)
    (figures,) = median_latency([tmp_path / "text.keras"], batch=8, rounds=5)
    assert figures["latency_ms"] > 0 and figures["latency_batch"] == 8
