"""gnas: genetic neural-architecture search with edge-of-chaos initialisation,
Markov-guided pruning and layer-wise competition.

The Python interface is :func:`evolve` (search on in-memory arrays),
:func:`resume` and :func:`load` (see :mod:`gnas.api`). They are imported on
first use, so ``import gnas`` stays light (no TensorFlow, no data sets).
"""
from __future__ import annotations

from typing import Any

from gnas.version import __version__

__all__ = ["SearchResult", "__version__", "evolve", "load", "resume"]

_API = ("SearchResult", "evolve", "load", "resume")


def __getattr__(name: str) -> Any:
    """The public interface of :mod:`gnas.api`, imported when first asked for."""
    if name in _API:
        from gnas import api

        return getattr(api, name)
    raise AttributeError(f"module 'gnas' has no attribute {name!r}")
