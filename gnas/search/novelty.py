"""The novelty rule: every population slot a new network.

Copies of one genome share its cached, deterministic fitness, so under the paper's
operators alone they win every tournament and a population of 10 collapses onto
one network within two or three generations, re-finding it instead of training
new ones. Two rules keep the search searching:

* a mutation always changes the network: it flips one uniformly drawn *expressed*
  gene (one whose flip changes the canonical key, i.e. the decoded network or its
  trained hyper-parameters), and each bit flips in addition with probability
  ``rate * indpb`` (``rate`` is the individual's own, self-adaptive mutation rate);
* a child whose key is already in the new population, or already evaluated in
  this run, is mutated again, up to ``tries`` times; only then is it accepted as a
  *reuse*, and counted as one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Container, Sequence

import numpy as np

from gnas.genome.space import Bits
from gnas.records import Operator
from gnas.search.operators import Offspring

KeyOf = Callable[[Bits], str]


def flip(bits: Bits, index: int) -> Bits:
    """``bits`` with gene ``index`` inverted."""
    return bits[:index] + (1 - bits[index],) + bits[index + 1:]


def expressed_genes(bits: Bits, key_of: KeyOf, repair: Callable[[Bits], Bits]) -> list[int]:
    """Genes whose inversion (then repair) changes the canonical key of ``bits``.

    Measured by flipping each gene, so it follows the decoder exactly: edges of a
    switched-off stage, the mutation and crossover rates, and a stage bit that
    repair would switch off again are not expressed.
    """
    own = key_of(bits)
    return [i for i in range(len(bits)) if key_of(repair(flip(bits, i))) != own]


def mut_expressed(bits: Bits, rng: np.random.Generator, *, rate: float, indpb: float,
                  key_of: KeyOf, repair: Callable[[Bits], Bits]) -> Bits:
    """One forced expressed flip, plus each bit with probability ``rate * indpb``.

    Without the forced flip, per-bit inversion at 1/L flips nothing in about a
    third of mutations and, with most genes unexpressed while networks grow, leaves
    the network unchanged about four times in five.
    """
    out = list(bits)
    expressed = expressed_genes(bits, key_of, repair)
    if expressed:
        forced = int(expressed[int(rng.integers(0, len(expressed)))])
        out[forced] ^= 1
    extra = rng.random(len(bits)) < rate * indpb
    if expressed:
        extra[forced] = False
    for i in np.flatnonzero(extra):
        out[int(i)] ^= 1
    return repair(tuple(out))


def mut_neighbour(bits: Bits, rng: np.random.Generator, *, rate: float, indpb: float,
                  neighbour: Callable[[Bits, np.random.Generator], Bits],
                  repair: Callable[[Bits], Bits]) -> Bits:
    """One move of the space's own neighbourhood, plus each bit with probability ``rate * indpb``.

    :func:`mut_expressed` with the forced flip replaced by the space's move (see
    ``gnas.genome.protocol.NeighbourSpace``).
    """
    out = np.array(neighbour(bits, rng))
    extra = rng.random(len(bits)) < rate * indpb
    out[extra] ^= 1
    return repair(tuple(int(b) for b in out))


Mutate = Callable[[Bits, np.random.Generator], Bits]
RateMutate = Callable[[Bits, float, np.random.Generator], Bits]
"""A mutation at a given rate: (bits, rate, rng) -> bits."""


def expressed_mutation(*, indpb: float, key_of: KeyOf, repair: Callable[[Bits], Bits],
                       neighbour: Callable[[Bits, np.random.Generator], Bits] | None = None
                       ) -> RateMutate:
    """The search's mutation, :func:`mut_expressed` with the run's per-bit probability, key and
    repair, or :func:`mut_neighbour` for a space with a neighbourhood of its own.

    The search loop and the operators' Markov chain both take it from here, so
    the chain forecasts the mutation the loop makes.
    """
    def mutate(bits: Bits, rate: float, rng: np.random.Generator) -> Bits:
        if neighbour is not None:
            return mut_neighbour(bits, rng, rate=rate, indpb=indpb, neighbour=neighbour, repair=repair)
        return mut_expressed(bits, rng, rate=rate, indpb=indpb, key_of=key_of, repair=repair)
    return mutate


def remutation(mutate: RateMutate, *, rates: Callable[[Bits], tuple[float, float]],
               repair: Callable[[Bits], Bits],
               grow: Callable[[Bits, np.random.Generator], Bits] | None) -> Mutate:
    """The novelty rule's extra mutation of a duplicate child: its own rate, then growth if on."""
    def remutate(bits: Bits, rng: np.random.Generator) -> Bits:
        child = mutate(bits, rates(bits)[0], rng)
        return repair(grow(child, rng)) if grow is not None else child
    return remutate


@dataclass(frozen=True)
class Novel:
    """The outcome of the novelty rule for one generation."""

    offspring: list[Offspring]
    reused: int          # children accepted as duplicates after every try
    retried: int         # extra mutations the rule made


def make_novel(offspring: Sequence[Offspring], rng: np.random.Generator, *, mutate: Mutate,
               key_of: KeyOf, evaluated: Container[str], tries: int,
               taken: Sequence[str] = ()) -> Novel:
    """Mutate each non-elite child again while its network is taken or already evaluated.

    Slots are handled in order; elites (and ``taken`` keys) reserve their
    network first, so the population never holds one network twice unless a
    child exhausts its ``tries`` (counted in ``reused``).
    """
    seen = set(taken)
    for o in offspring:
        if o.operator == Operator.ELITE:
            seen.add(key_of(o.bits))
    out, reused, retried = [], 0, 0
    for o in offspring:
        if o.operator == Operator.ELITE:
            out.append(o)
            continue
        bits, key, op = o.bits, key_of(o.bits), o.operator
        n = 0
        while (key in seen or key in evaluated) and n < tries:
            bits = mutate(bits, rng)
            key, n = key_of(bits), n + 1
            op = Operator.MUTATION if op in (Operator.COPY, Operator.MUTATION) else Operator.CROSSOVER_MUTATION
        retried += n
        if key in seen or key in evaluated:
            reused += 1
        seen.add(key)
        out.append(Offspring(bits, o.parent, op, o.mate))
    return Novel(out, reused, retried)


def distinct_population(population: Sequence[Bits], rng: np.random.Generator, *, mutate: Mutate,
                        key_of: KeyOf, tries: int) -> list[Bits]:
    """Generation 0 without duplicate networks: a repeated network is replaced by a mutant of it."""
    seen: set[str] = set()
    out = []
    for bits in population:
        key, n = key_of(bits), 0
        while key in seen and n < tries:
            bits = mutate(bits, rng)
            key, n = key_of(bits), n + 1
        seen.add(key)
        out.append(bits)
    return out
