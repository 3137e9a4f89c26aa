"""The one-shot download of a missing built-in data set into the Keras cache.

Each file is fetched once, with a short timeout, to a temporary file that is
checked against its sha256 before it is renamed into place, so the cache never
holds a half or wrong file. ``GNAS_OFFLINE=1`` forbids any network access.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import pathlib
import tempfile
import urllib.request

from gnas.datasets.file_errors import _one_line
from gnas.datasets.locate import _locate, _where, keras_cache_dir
from gnas.datasets.specs import _Spec
from gnas.errors import DataError


DOWNLOAD_TIMEOUT_S = 5


def _offline() -> bool:
    """``GNAS_OFFLINE=1`` (or any value but 0/empty) forbids network access."""
    return os.environ.get("GNAS_OFFLINE", "").strip() not in ("", "0")


def _download(spec: _Spec) -> str | None:
    """Fetch the data set's files into the Keras cache, one attempt each.

    Returns:
        None on success, else why it failed (for the error message).
    """
    if _offline():
        return "download skipped (GNAS_OFFLINE=1)"
    cache = keras_cache_dir()
    for url, rel, sha256 in spec.downloads:
        dest = cache / rel
        if dest.is_file():
            continue
        try:
            _fetch(url, dest, sha256)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            return f"download of {url} failed ({_one_line(exc) or type(exc).__name__})"
    return None


def _fetch(url: str, dest: pathlib.Path, sha256: str | None) -> None:
    """Download to a temporary file, check it, then rename: never a half file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(  # noqa: S310 (fixed https URLs)
            url, timeout=DOWNLOAD_TIMEOUT_S
        ) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
                digest.update(chunk)
        if sha256 and digest.hexdigest() != sha256:
            raise ValueError(f"checksum mismatch: sha256 {digest.hexdigest()}, expected {sha256}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _find_builtin(spec: _Spec, data_dir: str | None, download: bool) -> pathlib.Path:
    """Find (or fetch) a built-in data set's files: their path or a DataError."""
    path = _locate(spec, data_dir)
    if path is None:
        reason = _download(spec) if download else "download disabled"
        path = _locate(spec, data_dir) if reason is None else None
        if path is None:
            raise DataError(
                f"{spec.name}: files not found. Expected {spec.expected} in "
                f"{_where(spec, data_dir)}; {reason or 'downloaded files not found'}. "
                "Put the files there or pass --data-dir."
            )
    return path
