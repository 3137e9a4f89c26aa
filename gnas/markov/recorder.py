"""Saves the Markov-chain record of every generation into the run directory.

A callback that writes ``RUN_DIR/markov/gen_NNNN.npz`` at the end of each
generation; every run has one (the analysis and the pruner read it), wired by
the session. ``gnas report --json`` shows the chain's summary (``markov``).

What counts as a move of the chain (parent state -> child state): every child
made by the variation operators (``VARIATION_OPERATORS``: tournament selection
followed by crossover and/or mutation, or by neither, "copy"), paired with the
parent whose position it took (under crossover, the parent that contributed
its first segment), after repair, since the repaired child is what enters the
population. Not counted, but listed under ``excluded`` with their label:

- elites: copied unchanged by elitism, no operator acts on them; counting them
  would add ``elite`` certain ``i -> i`` moves per generation to the diagonal;
- champions of the layer-wise competition: assembled from the best variant of
  every layer of a member of the *same* generation, not bred from the previous
  one, so they are no step of the generation-to-generation chain;
- any other label a step gives to an individual it inserts (e.g. ``pruned``).

Generation 0 (the initial population) has no lineage: its record holds the
population, its fitness and the theoretical chain, with an empty count matrix.
Only the ``l`` connection genes enter the state.

A run stopped between its checkpoint and this record (a crash, a second
Ctrl-C) loses that generation's lineage, which is kept nowhere else. On
resume the record is rebuilt from the checkpoint with an empty lineage:
every row unobserved, never invented. Such a record is recognisable as a
generation >= 1 with neither moves nor exclusions.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from gnas.genome.protocol import Space
from gnas.genome.space import str_to_bits
from gnas.markov import chain as markov
from gnas.records import VARIATION_OPERATORS
from gnas.runs.directory import RunDir
from gnas.search.callbacks import Callback
from gnas.search.operators import Offspring
from gnas.search.step import Generation

if TYPE_CHECKING:  # pragma: no cover
    from gnas.search.loop import Search


def lineage_arrays(offspring: Sequence[Offspring], space: Space
                   ) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Connection genes of the counted moves: ``(parent_bits, child_bits, operators, excluded)``.

    ``excluded`` holds the labels of the offspring that are no move (see the
    module docstring), in order.
    """
    moves = [o for o in offspring if o.operator in VARIATION_OPERATORS]
    l = space.l
    parents = np.array([space.connection_genes(o.parent) for o in moves], dtype=np.int8).reshape(-1, l)
    children = np.array([space.connection_genes(o.bits) for o in moves], dtype=np.int8).reshape(-1, l)
    excluded = [o.operator for o in offspring if o.operator not in VARIATION_OPERATORS]
    return parents, children, [o.operator for o in moves], excluded


class MarkovRecorder(Callback):
    """Writes one ``markov/gen_NNNN.npz`` per finished generation (atomic replace)."""

    def __init__(self, run_dir: RunDir) -> None:
        self.run_dir = run_dir

    def on_search_begin(self, search: "Search") -> None:
        """Rebuild the checkpointed generation's record if the run stopped before writing it."""
        state = search.state
        g = state.generation
        if g < 0 or markov.generation_path(self.run_dir.markov_dir, g).is_file():
            return
        population = [str_to_bits(x) for x in state.population]
        fitness = [f[0] if f else float("inf") for f in state.fitness]
        self._save(search.space, g, population, fitness, [])

    def on_generation_end(self, search: "Search", info: "Generation") -> None:
        self._save(search.space, info.generation, info.population, info.fitness, info.offspring)

    def _save(self, space: Space, generation: int, population: Sequence[Sequence[int]],
              fitness: Sequence[float], offspring: Sequence[Offspring]) -> None:
        parents, children, operators, excluded = lineage_arrays(offspring, space)
        markov.save_generation(
            markov.generation_path(self.run_dir.markov_dir, generation), generation=generation,
            parent_bits=parents, child_bits=children,
            population_bits=np.array([space.connection_genes(b) for b in population], dtype=np.int8),
            fitness=np.asarray(fitness, dtype=np.float64), operators=operators, excluded=excluded)
