"""Every evaluation of a run as CSV (``gnas report RUN --evaluations``).

One row per row of ``evaluations.db``, in the order they were committed,
failures included: ``error`` holds a failed evaluation's reason (its last
traceback lines), which is otherwise only in the database. The store is opened
read-only and the CSV comes from Python's ``csv`` module, so a message with
commas, quotes or newlines reads back as it was.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, TextIO

from gnas.errors import ConfigError
from gnas.runs.directory import RunDir
from gnas.runs.paths import check_output
from gnas.runs.store import EvaluationStore

# CSV column -> evaluations.db column
COLUMNS = {"key": "genome_key", "genome": "genome", "kind": "kind", "generation": "generation",
           "status": "status", "val_error": "val_error", "val_loss": "val_loss", "fitness": "fitness",
           "params": "params", "flops": "flops", "pruned_fraction": "pruned_fraction",
           "seconds": "seconds", "attempts": "attempts", "worker": "worker", "node": "node",
           "error": "error"}


def evaluation_rows(run_dir: RunDir) -> list[dict[str, Any]]:
    """Every evaluation of the run as a dict of :data:`COLUMNS`, in commit order.

    A run that has not committed an evaluation yet has none (and no database).

    Raises:
        RunDirError: Not a gnas run, or its database is not gnas'.
    """
    run_dir.open_existing()
    if not run_dir.db_path.is_file():
        return []
    store = EvaluationStore(run_dir.db_path, read_only=True)
    try:
        rows = store.rows()
    finally:
        store.close()
    return [{name: row[column] for name, column in COLUMNS.items()} for row in rows]


def write_evaluations_csv(rows: list[dict[str, Any]], stream: TextIO) -> None:
    """Write ``rows`` (from :func:`evaluation_rows`) as CSV with a header line."""
    writer = csv.DictWriter(stream, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def header() -> str:
    """The first line of every evaluations CSV gnas writes."""
    return ",".join(COLUMNS)


def check_csv_out(run_dir: RunDir, path: str | Path) -> Path:
    """The ``--evaluations`` file, refused when it would replace anything but an earlier one.

    Inside the run directory the run's own files are refused
    (:func:`gnas.runs.paths.check_output`); an existing file elsewhere is
    replaced only when it is an evaluations CSV gnas wrote (its header line).
    """
    out = check_output(run_dir.path, path, "--evaluations")
    if out.is_dir():
        raise ConfigError(f"--evaluations {out} is a directory; give a file name such as evaluations.csv.")
    if out.exists():
        try:
            with open(out, encoding="utf-8", newline="") as fh:
                first = fh.readline(len(header()) + 2).rstrip("\r\n")
        except (OSError, UnicodeDecodeError):
            first = None
        if first != header():
            raise ConfigError(f"--evaluations {out} exists and is not an evaluations CSV of gnas; it was "
                              "left as it is. Give a new file name, or remove it first.")
    return out


def csv_text(rows: list[dict[str, Any]]) -> str:
    """:func:`write_evaluations_csv` into a string (for an atomic write)."""
    text = io.StringIO()
    write_evaluations_csv(rows, text)
    return text.getvalue()
