"""A user's CSV: one sample per row, numeric features, one target column.

Named ``file.csv`` (the target is the last column) or ``file.csv:<target>``
(a header name, or a 1-based column number). The first row is a header when
some column holds text there and a number below it. Features must be numbers
(an empty or textual cell is refused with its row and column named); a target
of text labels, or of few distinct integers, makes a classification whose
classes are the sorted distinct values (``Dataset.class_names``), any other
numeric target a regression (``data.task`` overrides the inference). A CSV holds no test split, so a fixed, seeded
20 % of the rows is held out (:mod:`~gnas.datasets.held_out`).
"""
from __future__ import annotations

import csv
import io
import pathlib

import numpy as np

from gnas.datasets.dataset import _Raw
from gnas.datasets.held_out import split_off_test
from gnas.datasets.user_npz import _infer_task
from gnas.errors import DataError

#: Delimiters recognised besides the comma.
_DELIMITERS = ",;\t|"


def split_csv_name(name: str) -> tuple[str, str | None] | None:
    """``("file.csv", target or None)`` for a CSV name, ``None`` for any other name."""
    text = str(name)
    if text.lower().endswith(".csv"):
        return text, None
    head, sep, target = text.rpartition(":")
    if sep and head.lower().endswith(".csv") and target:
        return head, target
    return None


def _read_user_csv(path: pathlib.Path, target: str | None,
                   task: str = "auto") -> tuple[_Raw, tuple[str, str, str, int]]:
    """Read a CSV into held-out train/test arrays and (name, task, kind, classes).

    ``task`` ``"auto"`` infers it from the target column (module docstring).
    """
    header, rows = _rows(path)
    column = _target_column(header, len(rows[0]), target, path)
    names = header or [f"column {i + 1}" for i in range(len(rows[0]))]
    x = _features(rows, column, names, path)
    y, class_names = _targets([r[column] for r in rows], names[column], path, task)
    task = "classification" if class_names is not None else "regression"
    keep, held = split_off_test(y, str(path), stratify=task == "classification")
    raw = _Raw(x[keep], y[keep], x[held], y[held], class_names=class_names)
    return raw, (str(path), task, "vector", len(class_names) if class_names else 1)


def _rows(path: pathlib.Path) -> tuple[list[str] | None, list[list[str]]]:
    """The header (or ``None``) and the data rows, every row as long as the first."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); save the CSV as UTF-8.") from None
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=_DELIMITERS)
    except csv.Error:
        dialect = csv.excel
    rows = [r for r in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{path}: the CSV is empty; it needs one row per sample and a target column.")
    width = len(rows[0])
    for number, row in enumerate(rows, 1):
        if len(row) != width:
            raise DataError(f"{path}: row {number} has {len(row)} fields but row 1 has {width}; "
                            "every row needs the same columns.")
    if width < 2:
        raise DataError(f"{path}: one column only; a CSV needs feature columns and a target column.")
    if len(rows) == 1 and not all(_is_number(c) for c in rows[0]):
        raise DataError(f"{path}: a header row and no data rows; the CSV needs one row per sample "
                        "below its header.")
    header = rows[0] if len(rows) > 1 and _is_header(rows[0], rows[1]) else None
    data = rows[1:] if header is not None else rows
    return ([h.strip() for h in header] if header is not None else None), data


def _is_header(first: list[str], second: list[str]) -> bool:
    """Some column holds text in the first row and a number in the second."""
    return any(not _is_number(a) and _is_number(b) for a, b in zip(first, second))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _target_column(header: list[str] | None, width: int, target: str | None, path: pathlib.Path) -> int:
    """The index of the target column: the last one, a header name or a 1-based number."""
    if target is None:
        return width - 1
    if header is not None and target in header:
        return header.index(target)
    if target.isdigit() and 1 <= int(target) <= width:
        return int(target) - 1
    known = f"columns: {', '.join(header)}" if header else f"no header row; give a number 1..{width}"
    raise DataError(f"{path}: no target column {target!r} ({known}); name it as file.csv:<column>.")


def _features(rows: list[list[str]], target: int, names: list[str], path: pathlib.Path) -> np.ndarray:
    """Every column but the target, as float32; the first bad cell is named."""
    columns = [c for c in range(len(names)) if c != target]
    x = np.empty((len(rows), len(columns)), np.float32)
    for i, row in enumerate(rows):
        for j, c in enumerate(columns):
            cell = row[c].strip()
            try:
                x[i, j] = float(cell)
            except ValueError:
                what = "is empty" if not cell else f"holds {cell!r}"
                raise DataError(
                    f"{path}: feature {names[c]!r} {what} in data row {i + 1}; features must be numbers "
                    "(fill in missing values, one-hot encode categories, or drop the column)."
                ) from None
    if not np.all(np.isfinite(x)):
        raise DataError(f"{path}: a feature is infinite or NaN; fill in or drop those rows.")
    return x


def _targets(cells: list[str], name: str, path: pathlib.Path,
             task: str) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Class indices and names for a classification, or float targets for a regression."""
    cells = [c.strip() for c in cells]
    if "" in cells:
        raise DataError(f"{path}: target {name!r} is empty in data row {cells.index('') + 1}; "
                        "every sample needs a target.")
    if all(_is_number(c) for c in cells):
        values = np.array([float(c) for c in cells])
        if not np.all(np.isfinite(values)):
            raise DataError(f"{path}: target {name!r} holds an infinite or NaN value; drop those rows.")
        if task == "regression" or (task == "auto" and _infer_task(values) == "regression"):
            return values.astype(np.float32), None
        classes = np.unique(values)
        names = tuple(str(int(v)) if v == int(v) else str(v) for v in classes)
        return np.searchsorted(classes, values).astype(np.int64), _two_or_more(names, name, path)
    if task == "regression":
        bad = next(c for c in cells if not _is_number(c))
        raise DataError(f"{path}: target {name!r} holds {bad!r}; a regression needs numbers "
                        "(or set data.task to classification or auto).")
    names = tuple(sorted(set(cells)))
    index = {c: i for i, c in enumerate(names)}
    return np.array([index[c] for c in cells], np.int64), _two_or_more(names, name, path)


def _two_or_more(names: tuple[str, ...], column: str, path: pathlib.Path) -> tuple[str, ...]:
    if len(names) < 2:
        raise DataError(f"{path}: target {column!r} has one value only ({names[0]}); "
                        "a classification needs at least two classes.")
    return names
