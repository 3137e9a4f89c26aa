"""A candidate's training state between rungs: its weights, its optimiser's momenta, its epochs.

Successive halving promotes a candidate by training it further, never again from
the start, so the state a rung ends in is kept in a file and the next rung begins
from it: every weight (batch-norm statistics included), the SGD momentum of every
trainable weight, and the number of epochs trained (which also says how far the
candidate's own batch order has gone). The file is a plain ``.npz`` of numbers,
read with ``allow_pickle=False``, written to a temporary name and renamed, so a
kill leaves either the old state or the new one.

Momenta are named by layer and variable (``s0_n1_dense/kernel``), not by Keras'
full variable path, whose first part is the model's name and changes with each
build; the dense superset, which trains members in its own variables, reads and
writes them under the same names.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from gnas.errors import EvaluationFailed


def variable_name(variable: keras.Variable) -> str:
    """A trainable weight's name within its model: ``layer/variable``."""
    return "/".join(variable.path.split("/")[-2:])


@dataclass
class TrainingState:
    """What a rung leaves for the next: weights, momenta by :func:`variable_name`, epochs trained."""

    weights: list[np.ndarray]
    momenta: dict[str, np.ndarray]
    epochs: int

    @classmethod
    def of(cls, model: keras.Model, epochs: int,
           momenta: dict[str, np.ndarray] | None = None) -> "TrainingState":
        """The state of ``model`` after ``epochs``; momenta from its optimiser unless given."""
        if momenta is None:
            momenta = optimizer_momenta(model)
        return cls(weights=[np.asarray(w) for w in model.get_weights()], momenta=momenta, epochs=epochs)

    def save(self, path: Path) -> None:
        """Write the state atomically (a temporary file renamed over ``path``)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"w{i}": w for i, w in enumerate(self.weights)}
        names = sorted(self.momenta)
        arrays.update({f"m{i}": self.momenta[n] for i, n in enumerate(names)})
        meta = json.dumps({"epochs": self.epochs, "weights": len(self.weights), "momenta": names})
        arrays["meta"] = np.frombuffer(meta.encode(), dtype=np.uint8)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, epochs: int) -> "TrainingState":
        """Read the state saved after ``epochs``; a missing or damaged file, or one of other
        epochs, fails the evaluation with its reason."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                weights = [data[f"w{i}"] for i in range(int(meta["weights"]))]
                momenta = {n: data[f"m{i}"] for i, n in enumerate(meta["momenta"])}
                state = cls(weights=weights, momenta=momenta, epochs=int(meta["epochs"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EvaluationFailed(f"cannot continue from the saved training state {path}: {exc}") from None
        if state.epochs != epochs:
            raise EvaluationFailed(f"the saved training state {path} has {state.epochs} epochs, not the "
                                   f"{epochs} its promotion continues from")
        return state

    def restore(self, model: keras.Model) -> None:
        """Put the weights into ``model`` and, when its optimiser is built, the momenta into it."""
        model.set_weights(self.weights)
        if getattr(model, "optimizer", None) is not None and model.optimizer.built:
            set_optimizer_momenta(model, self.momenta)


def _momentum_slots(model: keras.Model) -> list[tuple[str, keras.Variable]]:
    """(name, momentum variable) of each trainable weight; empty for SGD without momentum."""
    opt = model.optimizer
    slots = getattr(opt, "momentums", None) or []
    return [(variable_name(v), slots[opt._get_variable_index(v)]) for v in model.trainable_weights] \
        if slots else []


def optimizer_momenta(model: keras.Model) -> dict[str, np.ndarray]:
    """The SGD momentum of each trainable weight of a compiled, built model."""
    if getattr(model, "optimizer", None) is None or not model.optimizer.built:
        return {}
    return {name: np.asarray(m.numpy()) for name, m in _momentum_slots(model)}


def set_optimizer_momenta(model: keras.Model, momenta: dict[str, np.ndarray]) -> None:
    """Assign saved momenta to a built optimiser; weights without a saved momentum start at 0."""
    for name, slot in _momentum_slots(model):
        if name in momenta:
            slot.assign(momenta[name])
