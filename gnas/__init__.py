"""gnas: genetic neural-architecture search with edge-of-chaos initialisation,
Markov-guided pruning and layer-wise competition."""
from __future__ import annotations

__version__ = "0.2.0"

__all__ = ["__version__"]
