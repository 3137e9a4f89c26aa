"""The run directory: paths, atomic JSON, the search state, safety checks.

Layout (DESIGN.md)::

    runs/NAME/
      config.toml      resolved configuration, exactly as run
      state.json       latest generation (atomic replace); state.prev.json the one before
      evaluations.db   SQLite, one row per evaluation
      markov/  best/  tensorboard/

Everything is JSON, TOML, SQLite or NumPy without pickle, so a run directory is
safe to open even when it came from someone else.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gnas import __version__
from gnas.config import RunConfig, flatten, load_config, read_toml, to_toml
from gnas.errors import RunDirError

SCHEMA_VERSION = 1
MARKER = "gnas-run.json"


@dataclass
class SearchState:
    """Everything needed to continue a search exactly where it stopped."""

    generation: int                      # last completed generation; -1 = initial population not evaluated
    population: list[str]                # genomes as 0/1 strings
    fitness: list[list[float] | None]    # fitness values per individual (None = not evaluated)
    rng_state: dict[str, Any]            # numpy bit-generator state
    genome_length: int
    l: int
    hall_of_fame: list[dict[str, Any]] = field(default_factory=list)
    logbook: list[dict[str, Any]] = field(default_factory=list)
    init: str = "coe"
    lambda_c: float | None = None
    lambda_c_source: str = ""
    phase: str = "grow"                  # "grow" then "prune"
    scoreboard: dict[str, Any] = field(default_factory=dict)
    pareto_front: list[dict[str, Any]] = field(default_factory=list)
    pruning: dict[str, Any] = field(default_factory=dict)
    finished: bool = False
    schema_version: int = SCHEMA_VERSION
    gnas_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchState":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file in the same directory, fsync, then rename.

    A reader (or a crash) sees either the old file or the new one, never half.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class RunDir:
    """A gnas run directory on disk."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # paths
    @property
    def config_path(self) -> Path:
        return self.path / "config.toml"

    @property
    def state_path(self) -> Path:
        return self.path / "state.json"

    @property
    def prev_state_path(self) -> Path:
        return self.path / "state.prev.json"

    @property
    def db_path(self) -> Path:
        return self.path / "evaluations.db"

    @property
    def markov_dir(self) -> Path:
        return self.path / "markov"

    @property
    def best_dir(self) -> Path:
        return self.path / "best"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard"

    def is_run(self) -> bool:
        return (self.path / MARKER).is_file()

    # creation
    def create(self, cfg: RunConfig) -> None:
        """Make a new run directory; refuse one that exists with other content."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"--run-dir {self.path} exists and is not a directory; choose another path.")
        if self.path.is_dir() and any(self.path.iterdir()):
            if self.is_run():
                raise RunDirError(f"{self.path} already holds a gnas run; continue it with "
                                  f"`gnas resume {self.path}` or choose another --run-dir.")
            raise RunDirError(f"--run-dir {self.path} exists and is not a gnas run; it was left "
                              "untouched. Choose an empty or new directory.")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise RunDirError(f"cannot write to run directory {self.path} ({exc.strerror}); "
                              "choose a writable --run-dir.") from None
        for sub in (self.markov_dir, self.best_dir):
            sub.mkdir(exist_ok=True)
        atomic_write_text(self.config_path, to_toml(cfg))
        atomic_write_text(self.path / MARKER, json.dumps(
            {"schema_version": SCHEMA_VERSION, "gnas_version": __version__}) + "\n")

    # opening
    def open_existing(self) -> None:
        """Check this is a gnas run that this version can continue."""
        if not self.path.is_dir():
            raise RunDirError(f"{self.path} does not exist; give the directory of a gnas run.")
        if not self.is_run():
            raise RunDirError(f"{self.path} is not a gnas run directory (no {MARKER}); "
                              "give the directory that `gnas evolve` created.")
        try:
            marker = json.loads((self.path / MARKER).read_text())
            version = int(marker["schema_version"])
        except (ValueError, KeyError, TypeError, OSError):
            raise RunDirError(f"{self.path / MARKER} is damaged; this run cannot be identified.") from None
        if version > SCHEMA_VERSION:
            raise RunDirError(f"{self.path} was written by a newer gnas (schema {version}, this gnas "
                              f"reads {SCHEMA_VERSION}); upgrade gnas to continue it.")

    def load_config(self, overrides: dict[str, Any] | None = None) -> RunConfig:
        if not self.config_path.is_file():
            raise RunDirError(f"{self.config_path} is missing; this run cannot be resumed.")
        return load_config(None, {**flatten(read_toml(self.config_path)), **(overrides or {})})

    def save_config(self, cfg: RunConfig) -> None:
        atomic_write_text(self.config_path, to_toml(cfg))

    # state
    def save_state(self, state: SearchState) -> None:
        """Atomically replace state.json, keeping the previous good one as state.prev.json."""
        text = json.dumps(state.to_dict(), indent=1, allow_nan=False)
        if self.state_path.is_file():
            if _readable_state(self.state_path) is not None:
                atomic_write_text(self.prev_state_path, self.state_path.read_text())
            else:  # keep a damaged checkpoint for inspection instead of overwriting it
                os.replace(self.state_path, self.path / f"state.damaged-{int(time.time())}.json")
        atomic_write_text(self.state_path, text)

    def load_state(self, warn=print) -> SearchState | None:
        """The newest usable checkpoint; falls back to the previous one with a warning.

        Returns None when the run has no checkpoint yet. Raises RunDirError when
        checkpoints exist but none can be read. Damaged files are never overwritten
        here: the next save keeps them out of state.prev.json.
        """
        if not self.state_path.exists() and not self.prev_state_path.exists():
            return None
        for path in (self.state_path, self.prev_state_path):
            data = _readable_state(path)
            if data is None:
                if path.exists() and path == self.state_path:
                    warn(f"warning: {path} is damaged; resuming from {self.prev_state_path.name}.")
                continue
            if int(data.get("schema_version", 0)) > SCHEMA_VERSION:
                raise RunDirError(f"{path} was written by a newer gnas (schema "
                                  f"{data['schema_version']}); upgrade gnas to continue it.")
            return SearchState.from_dict(data)
        raise RunDirError(f"no usable checkpoint in {self.path}: state.json and state.prev.json are "
                          "damaged or missing. They were left as they are; restore one from a backup.")


def _readable_state(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    required = {"generation", "population", "fitness", "rng_state", "genome_length"}
    if not isinstance(data, dict) or not required <= set(data):
        return None
    return data
