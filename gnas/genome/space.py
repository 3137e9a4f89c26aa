"""The chromosome layout: segments, Gray coding, decoding and repair.

A chromosome is a fixed-length tuple of bits, the concatenation of segments:

* stage active: one bit per stage after the first (stage 0 is always active);
* stage connectivity: K(K-1)/2 bits per stage of K nodes, bit (i, j) an edge i -> j,
  ordered (0,1), (0,2), (1,2), (0,3), ... as in Genetic CNN;
* width: ``width_bits`` Gray-coded bits per stage, an index into the width list;
* hyper-parameters: Gray-coded fixed-point fields for learning rate (log scale),
  momentum, and the individual's own mutation and crossover rates.

The first two segments are the ``l`` connection genes that the Markov analysis and
the pruner act on. Every bit string of the right length decodes to a valid network:
constraints are met by :meth:`SearchSpace.repair`, never by failing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from gnas.genome.architecture import Architecture, StageArch, canonical_stage, complexity
from gnas.config import SpaceConfig
from gnas.errors import ConfigError, InvalidGenomeError

Bits = tuple[int, ...]


@dataclass(frozen=True)
class HyperField:
    """A Gray-coded fixed-point gene: ``bits`` bits mapped onto [lo, hi]."""

    name: str
    bits: int
    lo: float
    hi: float
    log: bool = False

    def decode(self, gray: Sequence[int]) -> float:
        frac = gray_to_int(gray) / (2 ** self.bits - 1)
        if self.log:
            return float(10 ** (math.log10(self.lo) + frac * (math.log10(self.hi) - math.log10(self.lo))))
        return float(self.lo + frac * (self.hi - self.lo))


# Paper Table I ranges.
HYPER_FIELDS = (
    HyperField("learning_rate", 8, 1e-4, 1.0, log=True),
    HyperField("momentum", 5, 0.0, 0.9),
    HyperField("mutation_rate", 5, 0.0, 1.0),
    HyperField("crossover_rate", 5, 0.001, 1.0),
)


def int_to_gray(value: int, bits: int) -> Bits:
    """Gray code of ``value`` as ``bits`` bits, most significant first."""
    g = value ^ (value >> 1)
    return tuple((g >> (bits - 1 - k)) & 1 for k in range(bits))


def gray_to_int(gray: Sequence[int]) -> int:
    """Inverse of :func:`int_to_gray`."""
    value, prev = 0, 0
    for bit in gray:
        prev ^= int(bit)
        value = (value << 1) | prev
    return value


def stage_edge_pairs(nodes: int) -> list[tuple[int, int]]:
    """Edge order of a stage's connectivity bits."""
    return [(i, j) for j in range(1, nodes) for i in range(j)]


class SearchSpace:
    """Knows every segment's offset, and turns bits into architectures.

    The Genetic-CNN space: a :class:`gnas.genome.protocol.StagedSpace`, the one
    space that layer-wise competition, pruning, weight inheritance, growth and
    the chaos probe act on.
    """

    name = "genetic_cnn"
    trains = True       # every evaluation trains a Keras network
    needs_data = True

    def __init__(self, cfg: SpaceConfig, input_shape: tuple[int, ...], n_outputs: int,
                 task: str = "classification", family: str = "dense") -> None:
        self.cfg = cfg
        self.input_shape = tuple(input_shape)
        self.n_outputs = n_outputs
        self.task = task
        self.family = family
        self.widths = cfg.conv_widths if family == "conv" else cfg.dense_widths
        self.stage_nodes = cfg.stage_nodes
        n_stages = len(self.stage_nodes)
        offset = 0
        self.active_slice = slice(offset, offset + n_stages - 1)
        offset += n_stages - 1
        self.edge_slices: list[slice] = []
        for k in self.stage_nodes:
            self.edge_slices.append(slice(offset, offset + k * (k - 1) // 2))
            offset += k * (k - 1) // 2
        self.n_connection_genes = offset
        self.width_slices = [slice(offset + s * cfg.width_bits, offset + (s + 1) * cfg.width_bits)
                             for s in range(n_stages)]
        offset += n_stages * cfg.width_bits
        self.hyper_slices: dict[str, slice] = {}
        for f in HYPER_FIELDS:
            self.hyper_slices[f.name] = slice(offset, offset + f.bits)
            offset += f.bits
        self.length = offset
        self.c_max = self._largest_complexity()
        self._check_smallest_fits()

    # ----------------------------------------------------------------- layout
    @property
    def l(self) -> int:  # noqa: E743 - the paper's name for it
        """Number of connection genes (stage-active + stage-connectivity bits)."""
        return self.n_connection_genes

    def segments(self) -> list[tuple[str, int, int]]:
        """(name, start, stop) of every segment, for reports and notebooks."""
        out = [("stage_active", self.active_slice.start, self.active_slice.stop)]
        out += [(f"edges_{s}", sl.start, sl.stop) for s, sl in enumerate(self.edge_slices)]
        out += [(f"width_{s}", sl.start, sl.stop) for s, sl in enumerate(self.width_slices)]
        out += [(name, sl.start, sl.stop) for name, sl in self.hyper_slices.items()]
        return out

    def stage_slices(self, stage: int) -> list[slice]:
        """All the genes of one stage position (its active bit, edges and width)."""
        out = [self.edge_slices[stage], self.width_slices[stage]]
        if stage > 0:
            bit = self.active_slice.start + stage - 1
            out.insert(0, slice(bit, bit + 1))
        return out

    def check(self, bits: Sequence[int]) -> Bits:
        """Validate length and values; return the bits as a tuple of ints."""
        return check_bits(bits, self.length)

    # --------------------------------------------------------------- decoding
    def active_stages(self, bits: Sequence[int]) -> list[int]:
        return [0] + [s + 1 for s, b in enumerate(bits[self.active_slice]) if b]

    def width_of(self, bits: Sequence[int], stage: int) -> int:
        code = gray_to_int(bits[self.width_slices[stage]])
        return self.widths[code * len(self.widths) // 2 ** self.cfg.width_bits]

    def hyper(self, bits: Sequence[int]) -> dict[str, float]:
        return {f.name: f.decode(bits[self.hyper_slices[f.name]]) for f in HYPER_FIELDS}

    def decode(self, bits: Sequence[int]) -> Architecture:
        """The network these bits build (after repair)."""
        bits = self.repair(self.check(bits))
        return self._decode_unchecked(bits)

    def _decode_unchecked(self, bits: Bits) -> Architecture:
        stages = []
        for s in self.active_stages(bits):
            pairs = stage_edge_pairs(self.stage_nodes[s])
            edges = tuple(p for p, b in zip(pairs, bits[self.edge_slices[s]]) if b)
            n, canon = canonical_stage(self.stage_nodes[s], edges)
            stages.append(StageArch(index=s, nodes=n, edges=canon, width=self.width_of(bits, s)))
        return Architecture(family=self.family, input_shape=self.input_shape,
                            n_outputs=self.n_outputs, task=self.task, stages=tuple(stages),
                            **self.hyper(bits))

    def key(self, bits: Sequence[int]) -> str:
        return self.decode(bits).key()

    def describe(self, bits: Sequence[int]) -> str:
        return self.decode(bits).describe()

    def export(self, bits: Sequence[int]) -> dict[str, Any]:
        return self.decode(bits).to_dict()

    # ----------------------------------------------------------------- repair
    def complexity_of(self, arch: Architecture) -> int:
        params, flops = complexity(arch)
        return params if self.cfg.complexity == "params" else flops

    def violations(self, bits: Bits) -> list[str]:
        """Constraints these bits break (empty when valid)."""
        arch = self._decode_unchecked(bits)
        out = []
        if len(arch.stages) > self.cfg.max_depth:
            out.append(f"depth {len(arch.stages)} > max_depth {self.cfg.max_depth}")
        if arch.total_nodes > self.cfg.max_nodes:
            out.append(f"nodes {arch.total_nodes} > max_nodes {self.cfg.max_nodes}")
        if self.cfg.max_complexity and self.complexity_of(arch) > self.cfg.max_complexity:
            out.append(f"complexity {self.complexity_of(arch)} > {self.cfg.max_complexity}")
        return out

    def is_valid(self, bits: Sequence[int]) -> bool:
        return not self.violations(self.check(bits))

    def repair(self, bits: Bits) -> Bits:
        """Meet max_depth, max_nodes and C_max_allowed by switching stages off.

        Excess stages are switched off from the deepest; if stage 0 alone is too
        big, its width code is lowered, then its edges are switched off from the
        last. Valid bits come back unchanged.
        """
        out = list(bits)
        while True:
            problems = self.violations(tuple(out))
            if not problems:
                return tuple(out)
            active = self.active_stages(out)
            if len(active) > 1:
                out[self.active_slice.start + active[-1] - 1] = 0
                continue
            code = gray_to_int(out[self.width_slices[0]])
            if code > 0:
                out[self.width_slices[0]] = int_to_gray(code - 1, self.cfg.width_bits)
                continue
            edges = [i for i in range(self.edge_slices[0].start, self.edge_slices[0].stop) if out[i]]
            if not edges:
                return tuple(out)  # unreachable: _check_smallest_fits guarantees it
            out[edges[-1]] = 0  # fewer nodes in stage 0: its last edge goes first

    def _largest_complexity(self) -> int:
        """C_max: the complexity of the largest network of the space (all genes on)."""
        full = [1] * self.length
        for s in range(len(self.stage_nodes)):
            full[self.width_slices[s]] = int_to_gray(2 ** self.cfg.width_bits - 1, self.cfg.width_bits)
        arch = self._decode_unchecked(tuple(full))
        return max(1, self.complexity_of(arch))

    def _check_smallest_fits(self) -> None:
        smallest = [0] * self.length
        arch = self._decode_unchecked(tuple(smallest))
        if arch.total_nodes > self.cfg.max_nodes or (
                self.cfg.max_complexity and self.complexity_of(arch) > self.cfg.max_complexity):
            raise ConfigError("space.max_nodes / space.max_complexity are below the smallest network "
                              "of the search space; raise them or use smaller widths.")

    # --------------------------------------------------------------- sampling
    def random_bits(self, rng: np.random.Generator) -> Bits:
        """Uniform bits ('complete chaos'), repaired."""
        return self.repair(tuple(int(b) for b in rng.integers(0, 2, self.length)))

    def base_model(self, bits: Sequence[int]) -> Bits:
        """The same chromosome with every stage after the first switched off."""
        out = list(bits)
        out[self.active_slice] = [0] * (self.active_slice.stop - self.active_slice.start)
        return self.repair(tuple(out))

    def connection_genes(self, bits: Sequence[int]) -> Bits:
        return tuple(bits[: self.n_connection_genes])


def check_bits(bits: Sequence[int], length: int) -> Bits:
    """``bits`` as a tuple of ints, refused unless it is ``length`` values of 0 or 1."""
    out = tuple(int(b) for b in bits)
    if len(out) != length or any(b not in (0, 1) for b in out):
        raise InvalidGenomeError(f"genome must be {length} bits of 0/1. Received: {len(out)} values.")
    return out


def bits_to_str(bits: Sequence[int]) -> str:
    return "".join(str(int(b)) for b in bits)


def str_to_bits(text: str) -> Bits:
    return tuple(int(c) for c in text)
