"""The digest of a run's data, recorded when the run is made and checked on every resume.

A resume on other data (an ``.npz`` replaced, a CSV edited) would mix rows
scored on two data sets in one search; the digest makes it a refusal instead.
It covers the prepared splits (features and targets, their dtypes and shapes),
so the same data read from another folder (``data.data_dir``) still matches.
"""
from __future__ import annotations

import hashlib
import json
from typing import Iterable

import numpy as np


def data_digest(arrays: Iterable[np.ndarray]) -> str:
    """SHA-256 of the arrays in order, each with its dtype and shape."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        if array.dtype.hasobject:  # texts kept as Python strings
            digest.update(json.dumps(array.tolist(), default=str).encode())
        else:
            digest.update(array.tobytes())
    return "sha256:" + digest.hexdigest()
