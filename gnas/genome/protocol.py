"""What the engine asks of a search space, and what only a staged space answers.

:class:`Space` is the plug: the loop, the evaluation room, the strategies, the
edge-of-chaos draw and the Markov record use only these members, so a space
evaluated by table lookup (:mod:`gnas.genome.nb201`) or a user's own class
passed to ``gnas.evolve(space=...)`` runs the same engine as Genetic CNN.

:class:`StagedSpace` is the extension of a space built of stages of nodes (the
Genetic-CNN :class:`gnas.genome.space.SearchSpace`): layer-wise competition,
pruning, weight inheritance, growth and the chaos probe on Keras networks act on
stages. The session refuses a feature that needs stages on a space without
them (:func:`has_stages`), in one line, before anything is written.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

Bits = tuple[int, ...]

#: The self-adaptive rate genes every space decodes (``Space.hyper``).
RATE_GENES = ("mutation_rate", "crossover_rate")


@runtime_checkable
class Space(Protocol):
    """A binary chromosome layout: every bit string of ``length`` bits is one network.

    Attributes:
        name: What the run records (``space.kind``, or a user's own name).
        length: Bits per chromosome.
        l: The connection genes (the paper's ``l``): the first ``l`` bits, the
            state of the Markov analysis and of the edge-of-chaos draw.
        c_max: The complexity of the largest network (the fitness divides by it).
        trains: Whether an evaluation trains a network. A space evaluated by
            lookup or formula has no final training: its pick is the best
            evaluation observed.
        needs_data: Whether the run loads a data set for it.
    """

    name: str
    length: int
    l: int  # noqa: E741 - the paper's name for it
    c_max: int
    trains: bool
    needs_data: bool

    def check(self, bits: Sequence[int]) -> Bits:
        """``bits`` as a tuple of 0/1 of the right length; InvalidGenomeError otherwise."""
        ...

    def repair(self, bits: Bits) -> Bits:
        """The nearest valid chromosome (valid bits come back unchanged)."""
        ...

    def key(self, bits: Sequence[int]) -> str:
        """The canonical key: equivalent chromosomes (one network) share it."""
        ...

    def random_bits(self, rng: np.random.Generator) -> Bits:
        """A uniform chromosome ('complete chaos'), repaired."""
        ...

    def connection_genes(self, bits: Sequence[int]) -> Bits:
        """The ``l`` connection genes of ``bits``."""
        ...

    def hyper(self, bits: Sequence[int]) -> dict[str, float]:
        """Decoded hyper-parameter genes; at least the self-adaptive :data:`RATE_GENES`."""
        ...

    def describe(self, bits: Sequence[int]) -> str:
        """One line naming the network, for summaries and reports."""
        ...

    def export(self, bits: Sequence[int]) -> dict[str, Any]:
        """The network as a JSON-ready record (``best/architecture.json``)."""
        ...


@runtime_checkable
class NeighbourSpace(Space, Protocol):
    """A space with a neighbourhood of its own, which the mutation's forced move takes.

    On NAS-Bench-201 a single gene flip reaches three of an edge's four other
    operations; one edge given any other operation is the move that regularized
    evolution and local search make on that table.
    """

    def neighbour(self, bits: Bits, rng: np.random.Generator) -> Bits:
        """A chromosome one move away from ``bits`` (another network), rate genes kept."""
        ...


@runtime_checkable
class StagedSpace(Space, Protocol):
    """A space of stages of nodes: what competition, pruning, inheritance and growth act on."""

    stage_nodes: tuple[int, ...]
    active_slice: slice
    edge_slices: list[slice]
    width_slices: list[slice]

    def stage_slices(self, stage: int) -> list[slice]: ...
    def active_stages(self, bits: Sequence[int]) -> list[int]: ...
    def decode(self, bits: Sequence[int]) -> Any: ...


def has_stages(space: Space) -> bool:
    """Whether ``space`` is a staged space (Genetic CNN)."""
    return isinstance(space, StagedSpace)


def name_of(obj: Any) -> str:
    """The name a run records for a user's object: its ``name``, else its class's name."""
    name = getattr(obj, "name", None)
    return name if isinstance(name, str) and name else type(obj).__name__
