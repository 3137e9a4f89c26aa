"""Planning the Ray pool before Ray starts: workers, threads, GPUs and the cluster address.

Everything here runs on the driver without importing Ray, so a wrong setting
(more threads than cores, a GPU that is not there, an address nobody listens
at) fails in seconds with one line, instead of after Ray has started or while
it retries an unreachable address. ``gnas.execution.ray_pool`` builds the pool from
the :class:`PoolPlan` returned here.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from gnas.config import RunConfig
from gnas.errors import ClusterError

PROBE_TIMEOUT_S = 3.0       # socket probe of --ray-address


@dataclass(frozen=True)
class PoolPlan:
    """What the pool asks Ray for, checked before Ray starts."""

    address: str            # "" = start a local Ray; else a reachable HOST:PORT
    workers: int            # 0 = one per cluster CPU (joined clusters only)
    threads: int            # TensorFlow threads (and Ray CPUs) per worker
    gpus_per_worker: float


def plan_pool(cfg: RunConfig, cores: int | None = None, gpus: int | None = None) -> PoolPlan:
    """Check workers, threads, GPUs and the address; ClusterError in seconds if unusable."""
    par, threads = cfg.parallel, cfg.train.threads
    if par.ray_address:
        return PoolPlan(probe_address(par.ray_address), par.workers, threads or 1,
                        par.gpus_per_worker)
    cores = cores if cores is not None else usable_cores()
    workers = max(par.workers, 1)
    threads = threads or max(cores // workers, 1)
    if workers * threads > cores:
        raise ClusterError(f"--workers {workers} with --threads {threads} needs {workers * threads} "
                           f"CPU cores but Ray sees {cores} here; use --workers "
                           f"{max(cores // threads, 1)} or fewer threads, or join a cluster "
                           "with --ray-address.")
    if par.gpus_per_worker > 0:
        check_gpus(workers, par.gpus_per_worker, visible_gpus() if gpus is None else gpus)
    return PoolPlan("", workers, threads, par.gpus_per_worker)


def check_gpus(workers: int, per_worker: float, available: float) -> None:
    """ClusterError unless ``workers`` actors of ``per_worker`` GPUs fit in ``available``."""
    if available <= 0:
        raise ClusterError(f"--gpus-per-worker {per_worker:g} asks for a GPU but Ray sees none "
                           "here; drop the flag or run where a GPU is visible.")
    if workers * per_worker > available + 1e-9:
        raise ClusterError(f"--workers {workers} x --gpus-per-worker {per_worker:g} needs "
                           f"{workers * per_worker:g} GPUs but Ray sees {available:g}; lower one.")


def usable_cores() -> int:
    """Cores this process may run on (the CPUs a local Ray is started with)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def visible_gpus() -> int:
    """NVIDIA GPUs the kernel driver lists, limited by CUDA_VISIBLE_DEVICES; no CUDA needed."""
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is not None and mask.strip() in ("", "-1"):
        return 0
    try:
        count = len(list(Path("/proc/driver/nvidia/gpus").iterdir()))
    except OSError:
        count = 0
    return count if mask is None else min(count, len(mask.split(",")))


def probe_address(address: str) -> str:
    """Resolve ``auto`` and check that something listens at HOST:PORT, within seconds.

    Ray itself retries an unreachable address for a minute or more; a socket
    probe turns a typo into a one-line error at once.
    """
    resolved = _auto_address() if address == "auto" else address
    target = resolved.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ClusterError(f"--ray-address {address!r}: expected auto or HOST:PORT, "
                           "e.g. 127.0.0.1:6379.")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise ClusterError(f"cannot reach a Ray cluster at {target} ({exc.strerror or exc}); "
                           "start it with `ray start --head` or check the address.") from None
    return resolved


def _auto_address() -> str:
    """What Ray's ``auto`` means: RAY_ADDRESS, else the cluster `ray start` left here."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    temp = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    try:
        return (Path(temp) / "ray" / "ray_current_cluster").read_text().strip()
    except OSError:
        raise ClusterError("--ray-address auto found no Ray cluster (RAY_ADDRESS is unset and "
                           "`ray start` left none here); start one or give HOST:PORT.") from None
