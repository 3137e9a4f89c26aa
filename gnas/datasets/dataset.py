"""The prepared data set and the records describing one.

:class:`Dataset` is what every loader returns and what search workers train
on; :class:`DatasetInfo` is one row of ``gnas datasets``; ``_Raw`` holds the
arrays as a reader returns them, before :mod:`gnas.datasets.prepare` splits
and encodes them. Kept apart so every other module can import them without
cycles.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Dataset:
    """A data set split three ways and prepared for training.

    ``eq=False``: the fields are arrays, so equality and hashing are by
    identity (value equality of arrays has no single truth value).
    """

    name: str
    task: str
    kind: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    target_mean: float = 0.0
    target_std: float = 1.0
    #: Vectors only: the float32 training-split mean and standard deviation every
    #: column was standardised with (``None`` for images and text), so an exported
    #: model can carry the same standardisation for raw inputs.
    input_mean: np.ndarray | None = None
    input_std: np.ndarray | None = None
    #: Images only: the factor raw pixels were multiplied by (1/255 for uint8
    #: files, 1/16 for digits, 1 for float images) and one raw sample's shape
    #: (before a channel axis was added), so an exported model takes raw images.
    input_scale: float = 1.0
    raw_shape: tuple[int, ...] | None = None
    #: Classification read from a CSV with text labels or from an image folder:
    #: the name of every class, label ``i`` being ``class_names[i]`` (else ``None``).
    class_names: tuple[str, ...] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, as a model's input layer wants it."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    def summary(self) -> str:
        """One line for logs and reports: name, task, shapes and classes."""
        if self.task == "regression":
            target = f"target mean {self.target_mean:.4g} std {self.target_std:.4g}"
        else:
            target = f"{self.n_classes} classes"
        return (
            f"{self.name}: {self.task} ({self.kind}), input {self.input_shape}, "
            f"train {len(self.y_train)}, val {len(self.y_val)}, "
            f"test {len(self.y_test)}, {target}"
        )


@dataclass(frozen=True)
class DatasetInfo:
    """What ``gnas datasets`` shows about one built-in data set."""

    name: str
    task: str
    kind: str
    input_shape: tuple[int, ...]
    n_classes: int
    available: bool
    where: str


@dataclass(frozen=True)
class _Raw:
    """Arrays as read from the files, before splitting and encoding."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    #: Images only: what raw pixels are multiplied by; ``None`` infers it from
    #: the dtype (1/255 for uint8, else 1).
    pixel_scale: float | None = None
    #: A validation split the source brings (a user ``.npz``'s ``x_val, y_val``):
    #: used as is instead of one carved out of the training split.
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    #: See :attr:`Dataset.class_names`.
    class_names: tuple[str, ...] | None = None

    def parts(self) -> tuple[str, ...]:
        """The splits this source holds: ``train``, ``val`` if given, ``test``."""
        return ("train", "val", "test") if self.x_val is not None else ("train", "test")
