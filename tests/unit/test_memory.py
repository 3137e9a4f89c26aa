"""Memory estimates against real Keras models: parameters and layer outputs, exactly."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gnas.genome.architecture import Architecture, StageArch
from gnas.config import SpaceConfig
from gnas.genome.memory import (estimate, largest_batch, layer_output_sizes, system_memory_bytes,
                         trainable_params)
from gnas.genome.space import SearchSpace

keras = pytest.importorskip("keras")
from gnas.backend.builder import build_model  # noqa: E402 - after the Keras check


def _arch(family: str, input_shape, stages, n_outputs=10, momentum=0.5) -> Architecture:
    return Architecture(family=family, input_shape=tuple(input_shape), n_outputs=n_outputs,
                        task="classification", learning_rate=0.01, momentum=momentum,
                        stages=tuple(StageArch(index=i, nodes=n, edges=tuple(e), width=w)
                                     for i, (n, e, w) in stages))


ARCHS = {
    "dense_chain": _arch("dense", (8, 8, 1), [(0, (3, [(0, 1), (1, 2)], 32))]),
    "dense_dag": _arch("dense", (64,), [(0, (4, [(0, 2), (1, 2), (0, 3)], 16)),
                                        (2, (3, [(0, 2), (1, 2)], 8))]),
    "conv_three_stages": _arch("conv", (8, 8, 3), [(0, (1, [], 4)),
                                                   (1, (4, [(0, 1), (0, 2), (1, 3), (2, 3)], 8)),
                                                   (2, (3, [(0, 2), (1, 2)], 6))]),
    "conv_pool_stops": _arch("conv", (2, 2, 1), [(0, (2, [(0, 1)], 4)), (1, (1, [], 4)),
                                                 (2, (3, [(0, 1), (0, 2)], 5))], momentum=0.0),
}


def _decoded(family: str, count: int) -> list[Architecture]:
    """Random architectures of a real search space (both families)."""
    shape = (8, 8, 1) if family == "conv" else (20,)
    space = SearchSpace(SpaceConfig(stage_nodes=(3, 4, 4), conv_widths=(4, 8), dense_widths=(8, 16)),
                        shape, 5, family=family)
    rng = np.random.default_rng(7)
    return [space.decode(space.random_bits(rng)) for _ in range(count)]


def _all_archs() -> list[Architecture]:
    return list(ARCHS.values()) + _decoded("conv", 3) + _decoded("dense", 3)


def _forward_sizes(model, arch: Architecture, batch: int = 3) -> dict[str, int]:
    """Values per sample of every layer's output in a real forward pass."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    probe = keras.Model(model.input, [layer.output for layer in layers])
    x = np.random.default_rng(0).normal(size=(batch, *arch.input_shape)).astype("float32")
    outputs = probe(x, training=True)
    sizes = {}
    for layer, out in zip(layers, outputs):
        assert out.shape[0] == batch
        sizes[layer.name] = math.prod(out.shape[1:])
    return sizes


@pytest.mark.parametrize("arch", _all_archs(), ids=lambda a: f"{a.family}-{a.key()[:6]}")
def test_parameters_match_keras_count_params(arch):
    model = build_model(arch)
    est = estimate(arch)
    assert est.params == model.count_params()
    assert est.trainable_params == sum(math.prod(w.shape) for w in model.trainable_weights)
    assert trainable_params(arch) == est.trainable_params
    assert est.model_bytes == 4 * model.count_params()


@pytest.mark.parametrize("arch", _all_archs(), ids=lambda a: f"{a.family}-{a.key()[:6]}")
def test_layer_outputs_match_a_real_forward_pass(arch):
    model = build_model(arch)
    assert layer_output_sizes(arch) == _forward_sizes(model, arch)
    assert estimate(arch).activation_values == sum(_forward_sizes(model, arch).values())


def test_operational_memory_is_model_gradients_slots_and_batch():
    arch = ARCHS["conv_three_stages"]
    est = estimate(arch)
    per_sample = (8 * 8 * 3 + 2 * est.activation_values) * 4
    assert est.sample_bytes == per_sample
    assert est.operational_bytes(16) == (est.params + 2 * est.trainable_params) * 4 + 16 * per_sample
    no_momentum = estimate(ARCHS["conv_pool_stops"])
    assert no_momentum.optimizer_slots == 0
    assert no_momentum.fixed_bytes == (no_momentum.params + no_momentum.trainable_params) * 4
    half = estimate(arch, bytes_per_value=2)
    assert 2 * half.operational_bytes(16) == est.operational_bytes(16)
    metrics = est.metrics(16)
    assert metrics["operational_bytes"] == est.operational_bytes(16)
    assert metrics["model_bytes"] == est.model_bytes and metrics["batch_size"] == 16


@pytest.mark.parametrize("device_bytes", [10**6, 3 * 10**7, 8 * 2**30])
def test_largest_batch_is_the_last_that_fits_in_80_percent(device_bytes):
    arch = ARCHS["conv_three_stages"]
    est = estimate(arch)
    batch = largest_batch(arch, device_bytes)
    assert batch >= 1
    assert est.operational_bytes(batch) <= 0.8 * device_bytes < est.operational_bytes(batch + 1)
    assert largest_batch(arch, device_bytes, fraction=0.4) <= batch


def test_largest_batch_is_zero_when_the_model_alone_does_not_fit():
    arch = ARCHS["conv_three_stages"]
    assert largest_batch(arch, estimate(arch).fixed_bytes) == 0


def test_system_memory_reads_memtotal(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16303424 kB\nMemFree:         1000 kB\nMemAvailable: 9 kB\n")
    assert system_memory_bytes(meminfo) == 16303424 * 1024
    assert system_memory_bytes(tmp_path / "missing") == 0
    assert system_memory_bytes() > 0  # this machine's own /proc/meminfo


def _gpus() -> list:
    from gnas.backend.runtime import import_tensorflow

    return import_tensorflow().config.list_physical_devices("GPU")


def test_auto_batch_plans_with_a_share_of_system_ram_without_a_gpu():
    from gnas.config import load_config
    from gnas.backend.evaluator import device_memory_bytes

    if _gpus():
        pytest.skip("a GPU is visible: its memory is planned with instead")
    assert device_memory_bytes(load_config()) == system_memory_bytes()
    four = load_config(None, {"parallel.workers": 4})
    assert device_memory_bytes(four) == system_memory_bytes() // 4


@pytest.mark.gpu
def test_auto_batch_plans_with_gpu_memory():
    from gnas.config import load_config
    from gnas.backend.evaluator import device_memory_bytes

    if not _gpus():
        pytest.skip("no GPU visible")
    whole = device_memory_bytes(load_config())
    assert whole > 2**30
    assert device_memory_bytes(load_config(None, {"parallel.gpus_per_worker": 0.5})) == int(whole * 0.5)
