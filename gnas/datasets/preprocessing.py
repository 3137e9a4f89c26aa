"""What a prepared data set did to its raw inputs and targets, as a plain record.

A search trains on prepared arrays (pixels scaled, vectors standardised with
training-split statistics, text multi-hot, regression targets standardised).
An exported model must take what its user has, the raw arrays, so the record
below travels with it: the backend builds the same steps as Keras layers in
front of (and, for regression, behind) the network, and the export's JSON
sidecar stores the record itself. The arithmetic named here is the arithmetic
of :mod:`gnas.datasets.prepare`, so the layers reproduce it bit for bit.
"""
from __future__ import annotations

from typing import Any

from gnas.datasets.dataset import Dataset
from gnas.datasets.prepare import NUM_WORDS, TEXT_INDEX_FROM, TEXT_START_CHAR

#: The padding value of a text model's integer input (``pad_sequences``' default).
TEXT_PAD = 0


def preprocessing_record(data: Dataset) -> dict[str, Any]:
    """The input and output steps between raw data and the network, JSON-serialisable.

    Returns:
        ``{"input": {...}, "output": {...} | None}``. ``input["kind"]`` is
        ``"image"`` (``scale``: factor applied to raw pixels, ``raw_shape``: one
        raw sample, ``shape``: what the network takes), ``"vector"`` (``mean``
        and ``std`` per feature, float32 values, ``(x - mean) / std``) or
        ``"text"`` (integer word-index sequences padded with ``pad``, multi-hot
        over ``num_words`` columns after adding ``index_from``, column
        ``start_char`` always set). ``output`` is ``{"mean", "std"}`` for a
        regression (the network predicts ``(y - mean) / std``), else ``None``.
        ``classes`` names output ``i`` of a classifier read from a CSV with
        text labels or from an image folder (``None`` where labels are the names).
    """
    if data.kind == "image":
        raw = list(data.raw_shape or data.input_shape)
        inp: dict[str, Any] = {"kind": "image", "scale": float(data.input_scale),
                               "raw_shape": raw, "shape": list(data.input_shape)}
    elif data.kind == "text":
        inp = {"kind": "text", "num_words": NUM_WORDS, "index_from": TEXT_INDEX_FROM,
               "start_char": TEXT_START_CHAR, "pad": TEXT_PAD}
    else:
        inp = {"kind": "vector", "features": int(data.input_shape[0]),
               "mean": _floats(data.input_mean), "std": _floats(data.input_std)}
    out = None
    if data.task == "regression":
        out = {"mean": float(data.target_mean), "std": float(data.target_std)}
    classes = list(data.class_names) if data.class_names is not None else None
    return {"input": inp, "output": out, "classes": classes}


def _floats(values: Any) -> list[float]:
    """Float32 statistics as exact JSON floats (a float32 is exact in a float64)."""
    return [float(v) for v in values] if values is not None else []
