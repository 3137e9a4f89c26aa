"""Shared test settings: no downloads, quiet TensorFlow, small CPU footprint, no shared caches."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("GNAS_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(autouse=True)
def own_calibration_cache(tmp_path_factory, monkeypatch):
    """Each test its own calibration cache, so no test sees another's sweeps (or the user's)."""
    monkeypatch.setenv("GNAS_CACHE_DIR", str(tmp_path_factory.mktemp("gnas-cache")))
