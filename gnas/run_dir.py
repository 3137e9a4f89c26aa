"""The run directory: paths, atomic JSON, the search state, the lock, safety checks.

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
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import signal
import socket
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from gnas import __version__
from gnas.config import RunConfig, flatten, load_config, read_toml, to_toml
from gnas.errors import RunDirError

SCHEMA_VERSION = 1
MARKER = "gnas-run.json"
LOCK = "gnas.lock"
FAULT_ENV = "GNAS_FAULT_AT"


@dataclass
class SearchState:
    """Everything needed to continue a search exactly where it stopped."""

    generation: int                      # last completed generation; -1 = initial population not evaluated
    population: list[str]                # genomes as 0/1 strings
    fitness: list[list[float] | None]    # fitness values per individual (None = not evaluated)
    rng_state: dict[str, Any]            # numpy bit-generator state
    genome_length: int
    l: int
    keys: list[str] = field(default_factory=list)   # evaluation key of each individual
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


# ------------------------------------------------------------------ interrupts
_deferral: dict[str, Any] = {"depth": 0, "pending": None}


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold back Ctrl-C / SIGTERM (as raised by ``gnas.cli``) until the block ends.

    Checkpoint writes and evaluation commits run inside this block, so a first
    interrupt never lands between a finished evaluation and its row. The atomic
    writes keep files consistent even without it; this keeps finished work.
    """
    _deferral["depth"] += 1
    try:
        yield
    finally:
        _deferral["depth"] -= 1
    if _deferral["depth"] == 0 and _deferral["pending"] is not None:
        exc, _deferral["pending"] = _deferral["pending"], None
        raise exc


def defer_interrupt(exc: BaseException) -> bool:
    """Keep ``exc`` for the end of the current deferred block; False when there is none."""
    if _deferral["depth"] == 0:
        return False
    _deferral["pending"] = _deferral["pending"] or exc
    return True


def acknowledge_interrupt() -> None:
    """Record that an interrupt reached the code that handles it (see ``gnas.cli.Interrupts``).

    A KeyboardInterrupt raised while Python runs a weakref callback or a
    destructor (for example inside Keras' ``clear_session``) is silently
    dropped; until this is called, the CLI raises it again from a SIGALRM
    interval timer, which is stopped here (gnas uses that timer for nothing else).
    """
    _deferral["acknowledged"] = True
    if threading.current_thread() is threading.main_thread():
        signal.setitimer(signal.ITIMER_REAL, 0)


def interrupt_acknowledged() -> bool:
    return bool(_deferral.get("acknowledged"))


# -------------------------------------------------------------- fault points
_fault_counts: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Test hook: kill or stall this process at a precise moment, when asked to.

    ``GNAS_FAULT_AT=POINT:N[:ACTION]`` acts at the N-th time this process passes
    ``POINT``; ACTION is ``kill`` (SIGKILL, the default) or ``stall`` (sleep ten
    minutes, so a test can deliver a signal there). Points:

    - ``checkpoint``: state.json's temporary file is written and fsynced, not yet
      renamed (a kill here is a kill during the checkpoint write);
    - ``checkpointed``: state.json has just been replaced (between generations);
    - ``interrupted``: the first Ctrl-C / SIGTERM has been handled and the resume
      command printed (a second signal sent now tests the immediate exit).

    Unset in normal use, this costs one dictionary lookup.
    """
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    point, _, rest = spec.partition(":")
    if point != name:
        return
    count_text, _, action = rest.partition(":")
    _fault_counts[name] = _fault_counts.get(name, 0) + 1
    if _fault_counts[name] != int(count_text or 1):
        return
    if action == "stall":
        time.sleep(600)
    else:
        os.kill(os.getpid(), signal.SIGKILL)


# -------------------------------------------------------------- atomic files
def atomic_write_text(path: Path, text: str, *, before_rename: Callable[[], None] | None = None) -> None:
    """Write ``text`` to a temporary file in the same directory, fsync, then rename.

    A reader (or a crash) sees either the old file or the new one, never half.
    ``before_rename`` runs between the fsync and the rename (a test fault point).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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


# ---------------------------------------------------------------- the lock
_held: dict[str, list[int]] = {}   # resolved run path -> [fd, depth] for locks this process holds


def held_runs() -> list[Path]:
    """Run directories this process holds the lock of (for the resume hint)."""
    return [Path(p) for p in _held]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_owner(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"process {int(info['pid'])} on {info.get('host', '?')}"
    except (OSError, ValueError, KeyError, TypeError):
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
                                  f"`gnas resume {self.path}` or choose another --run-dir.")
            raise RunDirError(f"--run-dir {self.path} exists and is not a gnas run; it was left "
                              "untouched. Choose an empty or new directory.")
        ancestor = self.path.absolute()
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
            raise RunDirError(f"cannot create run directory {self.path}: {ancestor} is not a writable "
                              "directory. Choose a writable --run-dir.")

    def create(self, cfg: RunConfig) -> None:
        """Make a new run directory; refuse one that exists with other content.

        Nothing that already exists is ever deleted or changed here: a path that
        is a file, a non-empty directory or another run is refused with one line.
        """
        self.check_new()
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
        """Check this is a gnas run that this version can continue (reads only)."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{self.path} is a file, not a run directory; give the directory "
                              "that `gnas evolve` created.")
        if not self.path.is_dir():
            raise RunDirError(f"{self.path} does not exist; give the directory of a gnas run.")
        if not self.is_run():
            raise RunDirError(f"{self.path} is not a gnas run directory (no {MARKER}); "
                              "give the directory that `gnas evolve` created.")
        try:
            marker = json.loads((self.path / MARKER).read_text(encoding="utf-8"))
            version = int(marker["schema_version"])
        except (ValueError, KeyError, TypeError, OSError, UnicodeDecodeError):
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

    # the lock
    def lock(self) -> None:
        """Take the run's lock, so two processes never continue the same run at once.

        The lock is an ``flock`` on ``gnas.lock`` (which holds the owner's PID for
        the message): the kernel drops it when its process dies, even by SIGKILL,
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
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunDirError(f"{self.path} is in use by {_lock_owner(self.lock_path)}; wait for it "
                                  "to finish or stop it, then try again.") from None
            if _same_file(fd, self.lock_path):  # not unlinked by a releasing owner meanwhile
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                         "since": time.time()}).encode() + b"\n")
                _held[key] = [fd, 1]
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
        """Delete temporary files that a killed process left behind (call under the lock)."""
        stale = [p for d in (self.path, self.best_dir, self.markov_dir) if d.is_dir()
                 for p in d.iterdir() if _is_temp(p)]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    # state
    def save_state(self, state: SearchState) -> None:
        """Atomically replace state.json, keeping the previous good one as state.prev.json.

        Interrupts are held back while this runs; a SIGKILL at any point leaves a
        usable state.json or state.prev.json. A damaged state.json is moved aside
        to ``state.damaged-TIME.json`` for inspection, never overwritten.
        """
        text = _with_checksum(state.to_dict())
        with deferred_interrupts():
            if self.state_path.is_file():
                if _readable_state(self.state_path) is not None:
                    atomic_write_text(self.prev_state_path, self.state_path.read_text(encoding="utf-8"))
                else:
                    os.replace(self.state_path, self.path / f"state.damaged-{int(time.time())}.json")
            atomic_write_text(self.state_path, text, before_rename=lambda: fault_point("checkpoint"))
        fault_point("checkpointed")

    def load_state(self, warn: Callable[[str], Any] = print) -> SearchState | None:
        """The newest usable checkpoint; falls back to the previous one with a warning.

        Returns None when the run has no checkpoint yet. Raises RunDirError when
        checkpoints exist but none can be read. Damaged files are never overwritten
        here: the next save moves a damaged state.json aside instead.
        """
        if not self.state_path.exists() and not self.prev_state_path.exists():
            return None
        current = _readable_state(self.state_path)
        previous = _readable_state(self.prev_state_path) if current is None else None
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
    """Files gnas writes before renaming them into place: ``*.tmp`` and ``.NAME.*.tmp*``."""
    name = path.name
    return path.is_file() and (name.endswith(".tmp") or (name.startswith(".") and ".tmp" in name))


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _checksum(data: dict[str, Any]) -> str:
    body = json.dumps({k: v for k, v in data.items() if k != "checksum"}, sort_keys=True,
                      allow_nan=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


def _with_checksum(data: dict[str, Any]) -> str:
    """The state as JSON text carrying the SHA-256 of its own content.

    The checksum is taken over the JSON round trip of ``data`` (what a reader
    will parse), so keys and numbers hash the same when the file is loaded.
    """
    plain = json.loads(json.dumps(data, allow_nan=False))
    return json.dumps({**plain, "checksum": _checksum(plain)}, indent=1, allow_nan=False)


_BITS = re.compile(r"[01]+")


def _readable_state(path: Path) -> dict[str, Any] | None:
    """The checkpoint's content when it is complete and consistent, else None.

    Only JSON is parsed; the checksum (when present) and the shapes are checked,
    so a truncated, edited or foreign file is never taken for a checkpoint.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or ("checksum" in data and data["checksum"] != _checksum(data)):
        return None
    try:
        n, gen = int(data["genome_length"]), int(data["generation"])
        population, fitness = data["population"], data["fitness"]
        ok = (gen >= -1 and isinstance(data["rng_state"], dict) and isinstance(population, list)
              and isinstance(fitness, list) and len(fitness) == len(population) > 0
              and all(isinstance(g, str) and len(g) == n and _BITS.fullmatch(g) for g in population)
              and all(f is None or isinstance(f, list) for f in fitness))
    except (KeyError, TypeError, ValueError):
        return None
    return data if ok else None
