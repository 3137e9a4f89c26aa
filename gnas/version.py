"""The version of gnas, in a module of its own.

Modules that record the version (run directories, checkpoints, export sidecars,
``gnas --version``) import it from here rather than from :mod:`gnas`, whose lazy
``__getattr__`` leads to the whole Python interface; the build reads it from here
too (``setup.cfg``: ``attr: gnas.version.__version__``) without importing gnas.
"""
from __future__ import annotations

__version__ = "0.2.0"
