"""Starting a local Ray or joining a cluster: where the driver imports ``ray``.

A local Ray binds to 127.0.0.1 only when its node address is the loopback
address, which Ray grants only while multi-node clusters are switched off for
the process (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) before Ray is imported;
:func:`import_ray` does that, :func:`connect` then starts or joins Ray.
"""
from __future__ import annotations

import importlib.util
import os
import sys

from gnas.config import RunConfig
from gnas.errors import ClusterError
from gnas.execution.ray_plan import PoolPlan, usable_cores

_LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def require_ray(cfg: RunConfig) -> None:
    """Refuse, in one line naming the extra, a Ray run when Ray is not installed.

    Ray is the ``gnas[ray]`` extra: a single-machine run never needs it. This
    looks for the package without importing it, so the check costs nothing.
    """
    if importlib.util.find_spec("ray") is None:
        raise ClusterError(missing_ray_message(cfg))


def missing_ray_message(cfg: RunConfig) -> str:
    """What asked for Ray, and the two ways out: install the extra or use one worker."""
    par = cfg.parallel
    asked = f"--ray-address {par.ray_address}" if par.ray_address else f"--workers {par.workers}"
    return f"{asked} needs Ray; install it with pip install 'gnas[ray]' or run with --workers 1."


def import_ray(local: bool):
    """Import Ray; a local Ray stays on 127.0.0.1 only if it sees clusters off at import.

    Otherwise Ray replaces the loopback address by this machine's network
    address and listens on every interface. The switch is read once, at import,
    and is not left in the environment of the processes started later.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if "ray" in sys.modules:
        return sys.modules["ray"]
    saved = os.environ.get(_LOCAL_ONLY_ENV)
    if local:
        os.environ[_LOCAL_ONLY_ENV] = "0"
    try:
        import ray
    except ImportError as exc:
        # find_spec saw a package that does not import (a broken or partial install).
        raise ClusterError(f"Ray does not import ({first_line(exc)}); install it with "
                           "pip install 'gnas[ray]' or run with --workers 1.") from None
    finally:
        if saved is None:
            os.environ.pop(_LOCAL_ONLY_ENV, None)
        else:
            os.environ[_LOCAL_ONLY_ENV] = saved
    return ray


def connect(ray, plan: PoolPlan) -> None:
    """Start a quiet local Ray on 127.0.0.1, or join the cluster at ``plan.address``."""
    quiet = dict(logging_level="error", log_to_driver=False, namespace="gnas")
    if plan.address:
        try:
            ray.init(address=plan.address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ClusterError(f"cannot join the Ray cluster at {plan.address} "
                               f"({first_line(exc)}); check `ray status --address "
                               f"{plan.address}`.") from None
        return
    try:
        ray.init(address="local", num_cpus=usable_cores(), include_dashboard=False,
                 _node_ip_address="127.0.0.1", **quiet)
    except Exception as exc:  # noqa: BLE001 - Ray raises many kinds when its own processes die
        # A local Ray that cannot start (a killed agent or raylet, a full /tmp,
        # ports taken) is the user's machine, not a bug: one line, not a traceback.
        ray.shutdown()
        raise ClusterError(f"cannot start a local Ray ({first_line(exc)}); run with --workers 1 "
                           "to train in this process, or see /tmp/ray/session_latest/logs.") from None


def first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"
