"""Optional parts of the search that register themselves when imported.

Each module listed here appends to ``gnas.session.CALLBACK_FACTORIES`` /
``HOOK_FACTORIES`` or ``gnas.report.SECTIONS`` at import time, so the loop, the
session and the report never name them directly.
"""
from __future__ import annotations

import importlib

MODULES = (
    "gnas.markov_recorder",     # Markov matrices per generation (markov/)
    "gnas.competition",         # layer-wise competition and stage-wise crossover
    "gnas.pruning_hook",        # back-propagation pruning guided by Markov survival
    "gnas.tensorboard_logger",  # TensorBoard scalars per generation
    "gnas.pareto",              # Pareto front of the evaluations (report section)
)

_loaded = False


def load() -> None:
    """Import every extension module that exists (once)."""
    global _loaded
    if _loaded:
        return
    for name in MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
    _loaded = True
