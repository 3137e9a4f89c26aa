"""The run directory: paths, creation and opening checks, the lock, saving the search state.

Layout (DESIGN.md)::

    runs/NAME/
      gnas-run.json    marker: this is a gnas run, and its schema version
      config.toml      resolved configuration, exactly as run
      state.json       latest generation (atomic replace); state.prev.json the one before
      evaluations.db   SQLite, one row per evaluation
      gnas.lock        PID of the process working on the run (while one does)
      markov/  best/  tensorboard/

Everything is JSON, TOML, SQLite or NumPy without pickle, so a run directory is
safe to open even when it came from someone else. Every file is replaced
atomically (temporary file, fsync, rename), so a run killed at any moment leaves
either the old or the new version of each file, never half of one.

The pieces this builds on have their own modules: ``gnas.runs.atomic`` (atomic
writes), ``gnas.runs.state`` (the state and its checksum), ``gnas.runs.interrupts``
(interrupts held back during writes) and ``gnas.runs.faults`` (test fault points).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import shlex
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from filelock import lock_descriptor

from gnas.version import __version__
from gnas.config import RunConfig, flatten, load_config, read_toml, search_defining, search_digest, to_toml
from gnas.errors import ConfigError, RunDirError
from gnas.runs.atomic import atomic_write_text, read_json
from gnas.runs.faults import fault_point
from gnas.runs.interrupts import deferred_interrupts
from gnas.runs.paths import check_managed_entries, inside
from gnas.runs.state import SCHEMA_VERSION, SearchState, readable_state, with_checksum

log = logging.getLogger(__name__)

MARKER = "gnas-run.json"
LOCK = "gnas.lock"


# ---------------------------------------------------------------- the lock
_held: dict[str, list[int]] = {}   # resolved run path -> [fd, depth] for locks this process holds


def resume_command(path: str | Path) -> str:
    """The shell command that continues the run in ``path`` (quoted for any path)."""
    return f"gnas resume {shlex.quote(str(path))}"


def held_runs() -> list[Path]:
    """Run directories this process holds the lock of (for the resume hint)."""
    return [Path(p) for p in _held]



def _lock_owner(path: Path) -> str:
    try:
        info = read_json(path)
        return f"process {int(info['pid'])} on {info.get('host', '?')}"
    except (ValueError, KeyError, TypeError):
        return "another process"


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
    def weights_dir(self) -> Path:
        """The weights children may inherit (``--inherit``), one ``KEY.npz`` per network."""
        return self.path / "weights"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard"

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK

    def is_run(self) -> bool:
        return (self.path / MARKER).is_file()

    # creation
    def check_new(self) -> None:
        """Refuse, without creating anything, a path that cannot become a new run.

        Cheap enough to run before the data set is loaded: a path that is a file,
        a non-empty directory, another run, or below a file is reported at once.
        """
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"--run-dir {self.path} exists and is not a directory; choose another path.")
        if self.path.is_dir() and any(self.path.iterdir()):
            if self.is_run():
                raise RunDirError(f"{self.path} already holds a gnas run; continue it with "
                                  f"`{resume_command(self.path)}` or choose another --run-dir.")
            raise RunDirError(f"--run-dir {self.path} exists and is not a gnas run; it was left "
                              "untouched. Choose an empty or new directory.")
        ancestor = self.path.absolute()
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
            raise RunDirError(f"cannot create run directory {self.path}: {ancestor} is not a writable "
                              "directory. Choose a writable --run-dir.")

    def create(self, cfg: RunConfig, data_digest: str | None = None) -> None:
        """Make a new run directory; refuse one that exists with other content.

        ``data_digest`` (:func:`gnas.runs.data_digest.data_digest` of the run's
        splits) is recorded in gnas-run.json, and a resume on other data refused.

        Nothing that already exists is ever deleted or changed here: a path that
        is a file, a non-empty directory or another run is refused with one line.
        """
        self.check_new()
        existed = self.path.is_dir()
        try:
            self._create(cfg, data_digest)
        except BaseException:
            # A full disk or an interrupt half-way: take back what was made here (the
            # directory was new or empty), so running the command again just works.
            for name in (MARKER, "config.toml"):
                with contextlib.suppress(OSError):
                    (self.path / name).unlink()
            for sub in (self.markov_dir, self.best_dir, *([] if existed else [self.path])):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            raise

    def _create(self, cfg: RunConfig, data_digest: str | None) -> None:
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
        search = search_defining(cfg)
        atomic_write_text(self.path / MARKER, json.dumps(
            {"schema_version": SCHEMA_VERSION, "gnas_version": __version__,
             "search_config": search, "search_digest": search_digest(search),
             **({"data_digest": data_digest} if data_digest else {})},
            indent=1, allow_nan=False) + "\n")

    # opening
    def open_existing(self) -> None:
        """Check this is a gnas run that this version can continue (reads only)."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{self.path} is a file, not a run directory; give the directory "
                              "that `gnas evolve` created.")
        if not self.path.is_dir():
            raise RunDirError(f"{self.path} does not exist; give the directory of a gnas run.")
        if not self.is_run():
            raise RunDirError(f"{self.path} is not a gnas run directory (no {MARKER}); "
                              "give the directory that `gnas evolve` created.")
        check_managed_entries(self.path)
        version = int(self._marker()["schema_version"])
        if version > SCHEMA_VERSION:
            raise RunDirError(f"{self.path} was written by a newer gnas (schema {version}, this gnas "
                              f"reads {SCHEMA_VERSION}); upgrade gnas to continue it.")
        if version < SCHEMA_VERSION:
            raise RunDirError(f"{self.path} was written by gnas 0.1 (schema {version}, this gnas reads "
                              f"{SCHEMA_VERSION}: pruned evaluations and step state are recorded "
                              "differently); open it with gnas 0.1, or start a new run with `gnas evolve`.")

    def _marker(self) -> dict[str, Any]:
        """gnas-run.json, checked for its shape; a file of another shape is refused."""
        try:
            marker = read_json(self.path / MARKER)
            int(marker["schema_version"])
            recorded = marker.get("search_config")
            if recorded is not None and (not isinstance(recorded, dict)
                                         or marker.get("search_digest") != search_digest(recorded)):
                raise ValueError("search_config does not match its digest")
        except (ValueError, KeyError, TypeError, AttributeError, OSError, UnicodeDecodeError):
            raise RunDirError(f"{self.path / MARKER} is damaged; this run cannot be identified.") from None
        return marker

    def check_config(self, cfg: RunConfig) -> None:
        """Refuse a config.toml whose search-defining keys differ from the run's start.

        The values recorded in gnas-run.json when the run began are the reference,
        so a hand edit of config.toml cannot slip past the refusal that a flag gets.
        A run recorded without them (an earlier 0.2 run) is not checked.
        """
        recorded = self._marker().get("search_config")
        if recorded is None:
            return
        now = search_defining(cfg)
        for key, value in recorded.items():
            if key in now and now[key] != value:
                raise ConfigError(f"{self.config_path}: {key} was changed by hand (the run began with "
                                  f"{value!r}, the file has {now[key]!r}); it defines the search. Put "
                                  "it back, or start a new run with `gnas evolve`.")

    def check_data(self, data_digest: str | None) -> None:
        """Refuse to continue on data other than the run began with (reads only).

        A run recorded without a digest (made by an earlier gnas) is not checked.
        """
        recorded = self._marker().get("data_digest")
        if recorded is not None and recorded != data_digest:
            raise RunDirError(f"{self.path} was started on other data than {self.config_path.name} "
                              "names now (the data's digest differs); put the run's data back, or start "
                              "a new run with `gnas evolve`.")

    def load_config(self, overrides: dict[str, Any] | None = None) -> RunConfig:
        if not self.config_path.is_file():
            raise RunDirError(f"{self.config_path} is missing; this run cannot be resumed.")
        return load_config(None, {**flatten(read_toml(self.config_path)), **(overrides or {})})

    def save_config(self, cfg: RunConfig) -> None:
        atomic_write_text(self.config_path, to_toml(cfg))

    # the lock
    def lock(self) -> None:
        """Take the run's lock, so two processes never continue the same run at once.

        The lock is filelock's native lock on ``gnas.lock`` (``flock`` on Unix, a
        byte-range lock on Windows; the file holds the owner's PID for the
        message): the system drops it when its process dies, even by SIGKILL,
        so a lock file left by a dead process is simply taken over. Re-entrant
        within one process. Raises RunDirError while another live process holds it.
        """
        key = str(self.path.resolve())
        if key in _held:
            _held[key][1] += 1
            return
        for _ in range(5):
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise RunDirError(f"cannot write to run directory {self.path} ({exc.strerror}); "
                                  "check its permissions.") from None
            if not lock_descriptor(fd, blocking=False):
                os.close(fd)
                raise RunDirError(f"{self.path} is in use by {_lock_owner(self.lock_path)}; wait for it "
                                  "to finish or stop it, then try again.") from None
            if _same_file(fd, self.lock_path):  # not unlinked by a releasing owner meanwhile
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                         "since": time.time()}).encode() + b"\n")
                _held[key] = [fd, 1]
                log.debug("took the lock %s", self.lock_path)
                return
            os.close(fd)
        raise RunDirError(f"could not take the lock {self.lock_path}; try again.")

    def unlock(self) -> None:
        """Release the lock taken by :meth:`lock` (the lock file is removed)."""
        key = str(self.path.resolve())
        if key not in _held:
            return
        _held[key][1] -= 1
        if _held[key][1] > 0:
            return
        fd = _held.pop(key)[0]
        with contextlib.suppress(OSError):
            if _same_file(fd, self.lock_path):
                self.lock_path.unlink()
        os.close(fd)

    @contextlib.contextmanager
    def locked(self) -> Iterator["RunDir"]:
        """``with run_dir.locked():`` holds the lock for the block."""
        self.lock()
        try:
            yield self
        finally:
            self.unlock()

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete temporary files that a killed process left behind (call under the lock).

        Every folder gnas writes in is searched (the run's own, never a symlink's
        target); only names of gnas' temporary files are removed.
        """
        stale = [inside(self.path, p) for d in self._written_dirs() for p in d.iterdir() if _is_temp(p)]
        for p in stale:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        return stale

    def _written_dirs(self) -> list[Path]:
        """The run directory and every real folder below it that gnas writes in."""
        tops = [self.path / name for name in ("best", "markov", "weights", "fidelity", "pruning", "export")]
        found = [self.path]
        for top in tops:
            if top.is_dir() and not top.is_symlink():
                found.append(top)
                for parent, dirs, _ in os.walk(top):  # symlinks are not followed
                    found.extend(Path(parent) / d for d in sorted(dirs)
                                 if not (Path(parent) / d).is_symlink() and not _is_temp(Path(parent) / d))
        return found

    # state
    def save_state(self, state: SearchState) -> None:
        """Atomically replace state.json, keeping the previous good one as state.prev.json.

        Interrupts are held back while this runs; a SIGKILL at any point leaves a
        usable state.json or state.prev.json. A damaged state.json is moved aside
        to ``state.damaged-TIME.json`` for inspection, never overwritten.
        """
        text = with_checksum(state.to_dict())
        with deferred_interrupts():
            if self.state_path.is_file():
                if readable_state(self.state_path) is not None:
                    atomic_write_text(self.prev_state_path, self.state_path.read_text(encoding="utf-8"))
                else:
                    os.replace(self.state_path, self.path / f"state.damaged-{int(time.time())}.json")
            atomic_write_text(self.state_path, text, before_rename=lambda: fault_point("checkpoint"))
        fault_point("checkpointed")

    def load_state(self, warn: Callable[[str], Any] = log.warning) -> SearchState | None:
        """The newest usable checkpoint; falls back to the previous one with a warning.

        Returns None when the run has no checkpoint yet. Raises RunDirError when
        checkpoints exist but none can be read. Damaged files are never overwritten
        here: the next save moves a damaged state.json aside instead.
        """
        if not self.state_path.exists() and not self.prev_state_path.exists():
            return None
        current = readable_state(self.state_path)
        previous = readable_state(self.prev_state_path) if current is None else None
        data = current if current is not None else previous
        if data is None:
            raise RunDirError(f"no usable checkpoint in {self.path}: state.json and state.prev.json are "
                              "damaged or missing. They were left as they are; restore one from a backup.")
        if int(data.get("schema_version", 0)) > SCHEMA_VERSION:
            raise RunDirError(f"{self.path} has a checkpoint written by a newer gnas (schema "
                              f"{data['schema_version']}, this gnas reads {SCHEMA_VERSION}); "
                              "upgrade gnas to continue it.")
        if current is None:
            warn(f"warning: {self.state_path} is damaged or missing; resuming from "
                 f"{self.prev_state_path.name} (generation {data['generation']}).")
        return SearchState.from_dict(data)


def _is_temp(path: Path) -> bool:
    """What gnas writes before renaming it into place, or uses and deletes: ``*.tmp``,
    ``.NAME.*.tmp*`` files, and ``.NAME.tmp*`` scratch directories."""
    name = path.name
    if path.is_dir():
        return name.startswith(".") and ".tmp" in name
    return path.is_file() and (name.endswith(".tmp") or (name.startswith(".") and ".tmp" in name))


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
