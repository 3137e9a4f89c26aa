"""Shared test settings: no downloads, quiet TensorFlow, small CPU footprint."""
from __future__ import annotations

import os

os.environ.setdefault("GNAS_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
