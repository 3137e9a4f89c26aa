"""Memory and compute of a network before it is built (seed 002), in pure Python.

Two memories matter when a network trains (seed 002, "space complexity"):

* **model memory**: every parameter (weights, biases, batch-norm scales and moving
  statistics) times the bytes of one value;
* **operational memory** for a batch: the model, plus a gradient and the
  optimiser's slots for every trainable parameter, plus, for each sample of the
  batch, its input and the output of every layer (the activations kept for the
  backward pass) and a gradient of the same size for each of them.

The activation count is the sum of the outputs of every layer the builder makes
(reshapes and merges included), so it agrees exactly with a real forward pass;
a backend that works in place uses less, so the estimate errs on the safe side.
The largest batch that fits is what ``--batch-size auto`` trains with: seed 002's
rule keeps 80 % of the device for the step and leaves the rest to the framework
and the operating system.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gnas.genome.architecture import Architecture, complexity

BYTES_FLOAT32 = 4
DEVICE_FRACTION = 0.8  # seed 002: use at most 80 % of the device's memory


@dataclass(frozen=True)
class MemoryEstimate:
    """Sizes of one architecture, in values (not bytes) unless a name says bytes."""

    params: int                    # all parameters, as Keras' count_params
    trainable_params: int          # those that receive gradients and optimiser slots
    flops: int                     # one forward pass of one sample (multiply-add = 2)
    input_values: int              # values of one input sample
    activation_values: int         # sum of all layer outputs for one sample
    optimizer_slots: int = 1       # SGD with momentum keeps one slot per parameter
    bytes_per_value: int = BYTES_FLOAT32

    @property
    def model_bytes(self) -> int:
        """Bytes to hold the model: every parameter once."""
        return self.params * self.bytes_per_value

    @property
    def fixed_bytes(self) -> int:
        """Bytes a training step needs whatever the batch: model, gradients, optimiser."""
        return (self.params + self.trainable_params * (1 + self.optimizer_slots)) * self.bytes_per_value

    @property
    def sample_bytes(self) -> int:
        """Bytes each sample of a batch adds: its input, activations and their gradients."""
        return (self.input_values + 2 * self.activation_values) * self.bytes_per_value

    def operational_bytes(self, batch_size: int) -> int:
        """Bytes of one training step on a batch of ``batch_size`` samples."""
        return self.fixed_bytes + batch_size * self.sample_bytes

    def metrics(self, batch_size: int) -> dict[str, Any]:
        """The estimate as flat JSON numbers, for the evaluation rows."""
        return {"model_bytes": self.model_bytes, "operational_bytes": self.operational_bytes(batch_size),
                "activations_per_sample": self.activation_values, "batch_size": batch_size,
                "trainable_params": self.trainable_params}


def layer_output_sizes(arch: Architecture) -> dict[str, int]:
    """Values each layer of the built model outputs for one sample, by layer name.

    Mirrors :func:`gnas.backend.builder.build_model` layer for layer; the input
    layer is not counted (the input is charged separately).
    """
    if arch.family == "conv":
        sizes = _conv_sizes(arch)
    else:
        sizes = _dense_sizes(arch)
    sizes["head"] = arch.n_outputs
    return sizes


def _stage_sizes(sizes: dict[str, int], stage, node_layers: tuple[str, ...], area: int) -> None:
    """Outputs of one stage: merged inputs, the node's layers, the merged sinks."""
    for node in range(stage.nodes):
        if len(stage.predecessors(node)) > 1:
            sizes[f"s{stage.index}_n{node}_in"] = area * stage.width
        for suffix in node_layers:
            sizes[f"s{stage.index}_n{node}_{suffix}"] = area * stage.width
    if len(stage.sinks()) > 1:
        sizes[f"s{stage.index}_out"] = area * stage.width


def _conv_sizes(arch: Architecture) -> dict[str, int]:
    sizes: dict[str, int] = {}
    channels = arch.input_shape[-1]
    h, w = arch.input_shape[0], arch.input_shape[1]
    for pos, stage in enumerate(arch.stages):
        if pos > 0 and h >= 2 and w >= 2:  # the builder's 2x2 max-pool between stages
            h, w = h // 2, w // 2
            sizes[f"s{stage.index}_pool"] = h * w * channels
        _stage_sizes(sizes, stage, ("conv", "bn", "relu"), h * w)
        channels = stage.width
    sizes["gap"] = channels
    return sizes


def _dense_sizes(arch: Architecture) -> dict[str, int]:
    sizes: dict[str, int] = {"flatten": math.prod(arch.input_shape)}
    for stage in arch.stages:
        _stage_sizes(sizes, stage, ("dense", "relu"), 1)
    return sizes


def trainable_params(arch: Architecture) -> int:
    """Parameters that train: all but batch-norm's moving mean and variance."""
    params, _ = complexity(arch)
    if arch.family != "conv":
        return params
    moving = sum(2 * stage.width * stage.nodes for stage in arch.stages)
    return params - moving


def estimate(arch: Architecture, bytes_per_value: int = BYTES_FLOAT32) -> MemoryEstimate:
    """Model and operational memory and FLOPs of ``arch`` (float32 by default)."""
    params, flops = complexity(arch)
    return MemoryEstimate(params=params, trainable_params=trainable_params(arch), flops=flops,
                          input_values=math.prod(arch.input_shape),
                          activation_values=sum(layer_output_sizes(arch).values()),
                          optimizer_slots=1 if arch.momentum > 0 else 0,
                          bytes_per_value=bytes_per_value)


def largest_batch(arch: Architecture, device_bytes: int, fraction: float = DEVICE_FRACTION,
                  bytes_per_value: int = BYTES_FLOAT32) -> int:
    """The largest batch whose training step fits in ``fraction`` of ``device_bytes``.

    Returns 0 when not even one sample fits next to the model.
    """
    est = estimate(arch, bytes_per_value)
    budget = int(device_bytes * fraction) - est.fixed_bytes
    return max(0, budget // est.sample_bytes)


def system_memory_bytes(meminfo: str | Path = "/proc/meminfo") -> int:
    """Total system RAM from ``/proc/meminfo`` (0 when it cannot be read).

    MemTotal, not MemAvailable: the batch chosen from it decides how a network
    trains, so it must not depend on what else the machine runs at that moment.
    """
    try:
        text = Path(meminfo).read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0
