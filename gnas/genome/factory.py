"""Build the search space a configuration names (``space.kind``).

:data:`SPACES` is the family's name -> builder map; ``space.kind`` offers
exactly its names (a test holds them equal), and a user's own space object,
passed to ``gnas.evolve(space=...)``, takes the place of a built one.
"""
from __future__ import annotations

from typing import Callable

from gnas.config import RunConfig
from gnas.datasets import Dataset
from gnas.errors import ConfigError
from gnas.genome.nb201 import Nb201Space
from gnas.genome.protocol import Space
from gnas.datasets.checks import check_family
from gnas.genome.space import SearchSpace


def family_for(cfg: RunConfig, dataset: Dataset) -> str:
    """conv for images, dense for vectors, text and tabular data (unless configured).

    digits, the default data set, is searched dense: there a conv search
    delivers a better model (98.4 against 96.5 test) but takes five times as
    long (about 4 minutes against 50 s on 2 cores), and the default run is the
    one-minute first search. ``space.family = "conv"`` chooses conv for it.
    """
    if cfg.space.family != "auto":
        return cfg.space.family
    return "conv" if dataset.kind == "image" and dataset.name != "digits" else "dense"


def genetic_cnn_space(cfg: RunConfig, dataset: Dataset | None) -> SearchSpace:
    """The Genetic-CNN space: layout from the config, shapes from the data."""
    if dataset is None:
        raise ConfigError("the genetic_cnn space needs a data set; give --dataset.")
    family = family_for(cfg, dataset)
    check_family(family, dataset.input_shape, dataset.name)  # a conv search of vectors is refused
    return SearchSpace(cfg.space, dataset.input_shape, dataset.n_classes, task=dataset.task,
                       family=family)


def nb201_space(cfg: RunConfig, dataset: Dataset | None) -> Nb201Space:
    """The NAS-Bench-201 cell space (its table is the evaluator's, not the space's)."""
    return Nb201Space()


#: ``space.kind`` -> the builder of that space; whether it needs a data set is its class's own.
SPACES: dict[str, Callable[[RunConfig, Dataset | None], Space]] = {
    "genetic_cnn": genetic_cnn_space, "nb201": nb201_space}
SPACE_CLASSES: dict[str, type] = {"genetic_cnn": SearchSpace, "nb201": Nb201Space}


def needs_data(cfg: RunConfig) -> bool:
    """Whether the space ``cfg`` names loads a data set."""
    return SPACE_CLASSES[cfg.space.kind].needs_data


def make_space(cfg: RunConfig, dataset: Dataset | None) -> Space:
    """The search space of a run, as ``space.kind`` names it."""
    return SPACES[cfg.space.kind](cfg, dataset)


def space_for_run(cfg: RunConfig) -> Space:
    """The space of a recorded run, rebuilt from its config (its data set loaded only if it needs one).

    A run made with a user's space object cannot be rebuilt here: say so in one line.
    """
    if cfg.plugs.space:
        raise ConfigError(f"this run searched the space object {cfg.plugs.space!r}, which gnas "
                          "cannot rebuild from its config; analyse it from Python with that object.")
    from gnas.datasets import load_for_run

    return make_space(cfg, load_for_run(cfg) if needs_data(cfg) else None)
