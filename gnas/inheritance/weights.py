"""The trained weights of the networks that may still be parents, kept in the run directory.

A child inherits from files the run directory holds, so a resumed run starts its
children from exactly the weights an uninterrupted run would. Only the current
population's weights are kept (:meth:`WeightStore.keep_only` at each generation's
start), under a size cap: a network whose weights would pass it keeps none, its
children train from scratch, and the run says so once. Each file is a plain
``.npz`` of arrays, read with ``allow_pickle=False``, written to a temporary name
and renamed, so a kill leaves the old file or the new one.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)

LayerWeights = Mapping[str, Sequence[np.ndarray]]


class WeightsUnreadable(Exception):
    """A kept weight file is missing or damaged; the message says which and why."""


class WeightStore:
    """``RUN/weights/<key>.npz``: a network's trained arrays by layer name, bounded in bytes."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._warned = False

    def file(self, key: str) -> Path:
        return self.path / (re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".npz")

    def bytes(self) -> int:
        """The bytes the kept weights take on disk."""
        return sum(f.stat().st_size for f in self.files())

    def save(self, key: str, layers: LayerWeights) -> bool:
        """Keep ``key``'s weights unless they would pass the cap (then warn once; False)."""
        size = sum(np.asarray(w).nbytes for ws in layers.values() for w in ws)
        old = self.file(key)
        others = self.bytes() - (old.stat().st_size if old.exists() else 0)
        if others + size > self.max_bytes:
            if not self._warned:
                log.warning("kept parent weights would pass evolution.inherit_max_mb=%g MB: "
                            "children of networks whose weights are not kept train from scratch; "
                            "raise the cap to inherit more", self.max_bytes / 2**20)
                self._warned = True
            return False
        names = sorted(layers)
        arrays = {f"l{i}_{j}": np.asarray(w) for i, n in enumerate(names) for j, w in enumerate(layers[n])}
        meta = json.dumps({"key": key, "layers": [[n, len(layers[n])] for n in names]})
        arrays["meta"] = np.frombuffer(meta.encode(), dtype=np.uint8)
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = old.with_name(f".{old.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, old)
        return True

    def has(self, key: str) -> bool:
        return self.file(key).exists()

    def load(self, key: str) -> dict[str, list[np.ndarray]]:
        """``key``'s kept weights; raises WeightsUnreadable for a missing or damaged file."""
        path = self.file(key)
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                return {name: [data[f"l{i}_{j}"] for j in range(int(count))]
                        for i, (name, count) in enumerate(meta["layers"])}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WeightsUnreadable(f"cannot read the parent weights {path}: {exc}") from None

    def keep_only(self, keys: Iterable[str]) -> None:
        """Delete the weights of every network not in ``keys`` (those can no longer be parents)."""
        keep = {self.file(k).name for k in keys}
        for f in self.files():
            if f.name not in keep:
                f.unlink(missing_ok=True)
        if self.path.is_dir():  # a write a kill interrupted
            for f in self.path.glob(".*.tmp-*"):
                f.unlink(missing_ok=True)

    def files(self) -> list[Path]:
        """The kept weight files, one per network."""
        return sorted(self.path.glob("*.npz")) if self.path.is_dir() else []
