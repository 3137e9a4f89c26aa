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
import zipfile
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from gnas.runs.paths import inside

log = logging.getLogger(__name__)

LayerWeights = Mapping[str, Sequence[np.ndarray]]


class WeightsUnreadable(Exception):
    """A kept weight file is missing or damaged; the message says which and why."""


#: The names this store writes: a sanitised key (hex digits, for keys gnas makes) and ``.npz``,
#: and their temporary names while written. Nothing else in the folder is ever deleted.
_OWN = re.compile(r"[A-Za-z0-9_.-]+\.npz")
_OWN_TEMP = re.compile(r"\.[A-Za-z0-9_.-]+\.npz\.tmp-[0-9]+")


class WeightStore:
    """``RUN/weights/<key>.npz``: a network's trained arrays by layer name, bounded in bytes.

    The folder's parent is the run directory: every file written or deleted is
    checked to lie inside it (:func:`gnas.runs.paths.inside`).
    """

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._warned = False

    def file(self, key: str) -> Path:
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", key).lstrip(".") + ".npz"
        return inside(self.path.parent, Path(self.path.name) / name)

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
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            raise WeightsUnreadable(f"cannot read the parent weights {path}: {exc}") from None

    def keep_only(self, keys: Iterable[str]) -> None:
        """Delete the weights of every network not in ``keys`` (those can no longer be parents)."""
        keep = {self.file(k).name for k in keys}
        for f in self.files():
            if f.name not in keep and self._wrote(f):
                f.unlink(missing_ok=True)
        if self.path.is_dir():  # a write a kill interrupted
            for f in self.path.iterdir():
                if _OWN_TEMP.fullmatch(f.name) and not f.is_dir():
                    inside(self.path.parent, f).unlink(missing_ok=True)

    def _wrote(self, path: Path) -> bool:
        """Whether ``path`` is a file this store wrote: its own record names the key it is filed under."""
        try:
            with np.load(path, allow_pickle=False) as data:
                key = json.loads(bytes(data["meta"]).decode())["key"]
            return isinstance(key, str) and self.file(key) == path
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
            return False

    def files(self) -> list[Path]:
        """The kept weight files, one per network (regular files of gnas' names only)."""
        if not self.path.is_dir():
            return []
        folder = inside(self.path.parent, self.path.name)
        return sorted(inside(self.path.parent, f) for f in folder.iterdir()
                      if _OWN.fullmatch(f.name) and f.is_file() and not f.is_symlink())
