"""Weight masks: irregular, row, column, block and N:M sparsity, in NumPy.

A mask is an array of 0.0 / 1.0 shaped like the kernel it applies to; training
multiplies both the weights and their gradients by it (seed ``003``'s hard
prune), so a masked weight stays exactly zero. Masks are chosen from an
importance score per weight: its magnitude ``|w|`` or its first-order Taylor
saliency ``|w * dL/dw|`` (seed ``000``).

Kernels are read as matrices: a Dense kernel ``(in, out)`` as it is, a Conv
kernel ``(kh, kw, cin, cout)`` as ``(kh*kw*cin, cout)``. A *row* is one input
position of that matrix, a *column* one output unit, a *block* a ``b x b`` tile;
rows, columns and blocks are ranked by the L2 norm of their scores (seed
``003``). N:M keeps the ``N`` largest of every ``M`` consecutive weights along the
input-channel axis (the second-to-last axis) for each output unit, the layout
sparse tensor cores accelerate (2:4).
"""
from __future__ import annotations

import math

import numpy as np

from gnas.errors import GnasError

MASK_KINDS = ("irregular", "row", "column", "block", "nm")
BLOCK = 4  # side of a square block of the kernel matrix


class MaskError(GnasError):
    """A mask request that cannot be met (bad kind, N:M or layer shape)."""


def parse_nm(text: str) -> tuple[int, int]:
    """``"2:4"`` -> ``(2, 4)``; one-line error unless ``0 < N < M``."""
    n, sep, m = str(text).partition(":")
    if not (sep and n.strip().isdigit() and m.strip().isdigit()):
        raise MaskError(f"--nm {text!r}: expected N:M such as 2:4.")
    n_i, m_i = int(n), int(m)
    if not 0 < n_i < m_i:
        raise MaskError(f"--nm {text}: N must be at least 1 and below M (N={n_i}, M={m_i}); use e.g. 2:4.")
    return n_i, m_i


def check_nm(n: int, m: int, channels: int, layer: str) -> None:
    """Refuse an N:M pattern that the layer cannot hold, in one line."""
    if not 0 < n < m:
        raise MaskError(f"N:M {n}:{m}: N must be at least 1 and below M; use e.g. 2:4.")
    if channels % m:
        raise MaskError(f"N:M {n}:{m}: M={m} does not divide the {channels} input channels of "
                        f"layer {layer}; choose an M that divides every layer width, or another --mask.")


def importance(kernel: np.ndarray, grad: np.ndarray | None = None) -> np.ndarray:
    """Magnitude ``|w|``, or Taylor saliency ``|w * dL/dw|`` when a gradient is given."""
    w = np.asarray(kernel, dtype=np.float64)
    return np.abs(w) if grad is None else np.abs(w * np.asarray(grad, dtype=np.float64))


def make_mask(kind: str, scores: np.ndarray, sparsity: float = 0.5,
              nm: tuple[int, int] = (2, 4), layer: str = "kernel") -> np.ndarray:
    """The 0/1 mask of ``kind`` that removes the least important weights.

    Args:
        kind: one of :data:`MASK_KINDS`.
        scores: importance per weight, shaped like the kernel (higher is kept).
        sparsity: fraction of the units (weights, rows, columns, blocks) removed;
            ignored for ``nm``, whose sparsity is ``1 - N/M``.
        nm: ``(N, M)`` for ``kind="nm"``.
        layer: name used in error messages.
    """
    s = np.asarray(scores, dtype=np.float64)
    if kind not in MASK_KINDS:
        raise MaskError(f"mask {kind!r} is unknown: choose one of {', '.join(MASK_KINDS)}.")
    if s.ndim < 2:
        raise MaskError(f"layer {layer}: masks need a kernel of 2 or more axes, got shape {s.shape}.")
    if not 0.0 <= sparsity < 1.0:
        raise MaskError(f"mask sparsity {sparsity} is outside [0, 1).")
    if kind == "nm":
        return nm_mask(s, *nm, layer=layer)
    matrix = s.reshape(-1, s.shape[-1])
    if kind == "irregular":
        mask = _drop_lowest(matrix.ravel(), sparsity).reshape(matrix.shape)
    elif kind == "row":
        mask = np.repeat(_drop_lowest(np.linalg.norm(matrix, axis=1), sparsity)[:, None],
                         matrix.shape[1], axis=1)
    elif kind == "column":
        mask = np.repeat(_drop_lowest(np.linalg.norm(matrix, axis=0), sparsity)[None, :],
                         matrix.shape[0], axis=0)
    else:
        mask = _block_mask(matrix, sparsity)
    return mask.reshape(s.shape).astype(np.float32)


def _drop_lowest(values: np.ndarray, sparsity: float) -> np.ndarray:
    """1 for kept entries, 0 for the ``floor(sparsity * n)`` lowest (ties: first index)."""
    k = int(math.floor(sparsity * values.size + 1e-9))
    keep = np.ones(values.size, dtype=np.float32)
    keep[np.argsort(values, kind="stable")[:k]] = 0.0
    return keep


def _block_mask(matrix: np.ndarray, sparsity: float, b: int = BLOCK) -> np.ndarray:
    """Square ``b x b`` tiles (partial at the edges) ranked by the L2 norm of their scores."""
    rows, cols = -(-matrix.shape[0] // b), -(-matrix.shape[1] // b)
    padded = np.zeros((rows * b, cols * b))
    padded[: matrix.shape[0], : matrix.shape[1]] = matrix
    norms = np.sqrt((padded.reshape(rows, b, cols, b) ** 2).sum(axis=(1, 3)))
    keep = _drop_lowest(norms.ravel(), sparsity).reshape(rows, cols)
    full = np.kron(keep, np.ones((b, b), dtype=np.float32))
    return full[: matrix.shape[0], : matrix.shape[1]]


def nm_mask(scores: np.ndarray, n: int, m: int, layer: str = "kernel") -> np.ndarray:
    """Keep the ``n`` highest of every ``m`` consecutive input channels per output unit."""
    s = np.asarray(scores, dtype=np.float64)
    check_nm(n, m, s.shape[-2], layer)
    moved = np.moveaxis(s, -2, -1)                      # (..., out, in)
    groups = moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m)
    order = np.argsort(-groups, axis=-1, kind="stable")
    keep = np.zeros(groups.shape, dtype=np.float32)
    np.put_along_axis(keep, order[..., :n], 1.0, axis=-1)
    return np.moveaxis(keep.reshape(moved.shape), -1, -2)


def nm_holds(kernel: np.ndarray, n: int, m: int) -> bool:
    """True when every group of ``m`` consecutive input channels has at most ``n`` nonzeros."""
    w = np.moveaxis(np.asarray(kernel), -2, -1)
    if w.shape[-1] % m:
        return False
    groups = w.reshape(*w.shape[:-1], w.shape[-1] // m, m)
    return bool(((groups != 0).sum(axis=-1) <= n).all())


def density(masks: dict[str, np.ndarray]) -> float:
    """Fraction of the masked weights that are kept (1.0 for no masks)."""
    total = sum(int(m.size) for m in masks.values())
    return 1.0 if not total else sum(float(m.sum()) for m in masks.values()) / total


def storage_note(kind: str, nm: str, sparsity: float, params_nonzero: int,
                 params_stored: int) -> str | None:
    """What a weight mask does to the exported file, in one plain sentence (None: no mask).

    Irregular and N:M masks zero weights inside layers of unchanged shape, so
    the file keeps every zero and a dense kernel computes with them: the network
    is sparser, not smaller or faster. Row, column and block masks are saved
    compacted: units they wholly zero are removed, the zeros left inside kept
    units are stored.
    """
    if kind in (None, "", "none"):
        return None
    if kind in ("row", "column", "block"):
        return (f"{kind}: units the mask wholly zeroes are removed from the file ({params_stored:,} "
                f"stored parameters); the {params_stored - params_nonzero:,} zeros left inside kept "
                f"units are stored dense ({params_nonzero:,} non-zero)")
    if kind == "nm":
        n, m = parse_nm(nm)
        label, zeros = nm, 100.0 * (1.0 - n / m)
    else:
        label, zeros = kind, 100.0 * float(sparsity)
    return (f"{label}: {zeros:.0f} % zeros, stored dense; no speed-up without sparse kernels "
            f"({params_nonzero:,} non-zero of {params_stored:,} stored parameters)")
