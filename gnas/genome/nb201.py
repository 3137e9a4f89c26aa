"""The NAS-Bench-201 cell as a binary chromosome (space ``nb201``).

A NAS-Bench-201 cell is a DAG of 4 nodes whose 6 edges ``j <- i`` (i < j) each
carry one of five operations: ``none`` (no edge), ``skip_connect``,
``nor_conv_1x1``, ``nor_conv_3x3``, ``avg_pool_3x3``. Edges are numbered as the
standard string writes them and as the table's key ``Op0..Op5`` orders them::

    |op~0|+|op~0|op~1|+|op~0|op~1|op~2|
     1<-0    2<-0 2<-1    3<-0 3<-1 3<-2
     Op0     Op1  Op2     Op3  Op4  Op5

The chromosome (28 bits):

* bits 0-5: one connection bit per edge, in that order: the edge exists (1) or
  is ``none`` (0). These are the paper's ``l = 6`` connection genes, which the
  edge-of-chaos draw and the Markov analysis act on;
* bits 6-17: two Gray-coded operation bits per edge (00 skip, 01 1x1, 11 3x3,
  10 pool), read only when the edge exists;
* bits 18-27: the individual's own mutation and crossover rates (5 bits each),
  the self-adaptive genes of every gnas space.

Every bit string is a valid cell (nothing to repair), every cell is reached,
and the key is the table's six digits (0 = none, 1 = skip, 2 = 1x1, 3 = 3x3,
4 = pool): chromosomes that differ only in an absent edge's operation bits or
in their rate genes are one network, evaluated once.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np

from gnas.errors import InvalidGenomeError
from gnas.genome.space import HYPER_FIELDS, Bits, check_bits, gray_to_int, int_to_gray

#: The table's operations, by the digit of the key.
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: The edges (to, from) in the order of the standard string and of the key.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
N_EDGES = len(EDGES)
OP_BITS = 2
CELLS = len(OPS) ** N_EDGES  # 15,625
RATE_FIELDS = tuple(f for f in HYPER_FIELDS if f.name in ("mutation_rate", "crossover_rate"))


class Nb201Space:
    """The NAS-Bench-201 cell space: 6 connection genes, 12 operation genes, 10 rate genes."""

    name = "nb201"
    trains = False      # evaluated by table lookup: the pick is the best query observed
    needs_data = False  # the table is the data
    c_max = 1           # a lookup reports no complexity: the fitness is the error alone

    def __init__(self) -> None:
        self.l = N_EDGES
        self.op_slices = [slice(N_EDGES + OP_BITS * e, N_EDGES + OP_BITS * (e + 1))
                          for e in range(N_EDGES)]
        offset = N_EDGES * (1 + OP_BITS)
        self.hyper_slices: dict[str, slice] = {}
        for f in RATE_FIELDS:
            self.hyper_slices[f.name] = slice(offset, offset + f.bits)
            offset += f.bits
        self.length = offset

    def check(self, bits: Sequence[int]) -> Bits:
        return check_bits(bits, self.length)

    def repair(self, bits: Bits) -> Bits:
        """Every bit string is a cell: nothing to repair."""
        return tuple(bits)

    def digits(self, bits: Sequence[int]) -> list[int]:
        """The table's digit of each edge: 0 (none) or 1 + its Gray-decoded operation."""
        return [1 + gray_to_int(bits[self.op_slices[e]]) if bits[e] else 0 for e in range(N_EDGES)]

    def key(self, bits: Sequence[int]) -> str:
        """The table's key of the cell, e.g. ``"334131"`` (kept: the novelty rule asks often)."""
        return _cell_key(tuple(int(b) for b in bits[:N_EDGES * (1 + OP_BITS)]))

    def random_bits(self, rng: np.random.Generator) -> Bits:
        """A uniform cell (each edge one of the 5 operations, ``none`` included, with
        probability 1/5), as NAS-Bench-201's random search draws it, with uniform rate genes.

        Uniform bits would make an edge ``none`` half the time: not the benchmark's baseline.
        """
        key = "".join(str(int(d)) for d in rng.integers(0, len(OPS), N_EDGES))
        tail = self.length - N_EDGES * (1 + OP_BITS)
        return self.bits_of(key, [int(b) for b in rng.integers(0, 2, tail)])

    def connection_genes(self, bits: Sequence[int]) -> Bits:
        return tuple(bits[:N_EDGES])

    def neighbour(self, bits: Bits, rng: np.random.Generator) -> Bits:
        """One edge, drawn uniformly, given one of its four other operations uniformly."""
        digits = [int(d) for d in self.key(bits)]
        edge = int(rng.integers(0, N_EDGES))
        others = [d for d in range(len(OPS)) if d != digits[edge]]
        digits[edge] = others[int(rng.integers(0, len(others)))]
        tail = N_EDGES * (1 + OP_BITS)
        return self.bits_of("".join(map(str, digits)), bits[tail:])

    def hyper(self, bits: Sequence[int]) -> dict[str, float]:
        return {f.name: f.decode(bits[self.hyper_slices[f.name]]) for f in RATE_FIELDS}

    def describe(self, bits: Sequence[int]) -> str:
        return arch_string(self.key(bits))

    def export(self, bits: Sequence[int]) -> dict[str, Any]:
        key = self.key(bits)
        return {"space": self.name, "key": key, "arch_str": arch_string(key),
                "ops": [OPS[int(d)] for d in key]}

    def bits_of(self, key: str, rates: Sequence[int] | None = None) -> Bits:
        """The chromosome of the cell ``key``: an absent edge's operation bits 0, ``rates`` last."""
        out = [0] * self.length
        for e, digit in enumerate(check_key(key)):
            if digit:
                out[e] = 1
                out[self.op_slices[e]] = int_to_gray(digit - 1, OP_BITS)
        tail = self.length - N_EDGES * (1 + OP_BITS)
        out[N_EDGES * (1 + OP_BITS):] = list(rates) if rates is not None else [0] * tail
        return self.check(out)


@functools.lru_cache(maxsize=1 << 18)  # every setting of the 18 cell genes fits
def _cell_key(cell_bits: Bits) -> str:
    digits = [1 + gray_to_int(cell_bits[N_EDGES + OP_BITS * e:N_EDGES + OP_BITS * (e + 1)])
              if cell_bits[e] else 0 for e in range(N_EDGES)]
    return "".join(str(d) for d in digits)


def check_key(key: str) -> list[int]:
    """The digits of a table key; InvalidGenomeError for anything else."""
    if len(key) != N_EDGES or any(c not in "01234" for c in key):
        raise InvalidGenomeError(f"a NAS-Bench-201 key is {N_EDGES} digits 0-4 (e.g. 334131). "
                                 f"Received: {key!r}.")
    return [int(c) for c in key]


def arch_string(key: str) -> str:
    """The standard NAS-Bench-201 string of the cell ``key``."""
    ops = [OPS[d] for d in check_key(key)]
    nodes = []
    for to in (1, 2, 3):
        nodes.append("|" + "|".join(f"{ops[e]}~{frm}" for e, (t, frm) in enumerate(EDGES) if t == to) + "|")
    return "+".join(nodes)


def key_of_arch_string(text: str) -> str:
    """The table key of a standard string (the inverse of :func:`arch_string`)."""
    ops = [part.split("~")[0] for part in text.replace("+", "").split("|") if part]
    if len(ops) != N_EDGES or any(op not in OPS for op in ops):
        raise InvalidGenomeError(f"not a NAS-Bench-201 cell string: {text!r}.")
    return "".join(str(OPS.index(op)) for op in ops)
