"""Ray executor: a persistent pool of actors that evaluate candidates concurrently.

Each actor (``gnas.execution.ray_worker``) holds one
:class:`~gnas.backend.evaluator.Evaluator` and the data set, which the driver
puts into Ray's object store once (actors read it without copying). An actor
reserves as many Ray CPUs as it uses threads, so all actors together never use
more threads than there are cores. The driver never imports TensorFlow; even
the final retraining runs on an actor. The pool is planned and checked before
Ray starts, in ``gnas.execution.ray_plan``; Ray is started or joined in
``gnas.execution.ray_connect``; the pool's bookkeeping records are in
``gnas.execution.ray_slots``.

Failures stay inside the pool. An actor that dies mid-evaluation (killed,
segfault, out of memory, lost node) is replaced and its candidate retried once,
then recorded as failed; ``train.eval_timeout`` bounds one evaluation (the actor
is killed and replaced); ``parallel.recycle_every`` replaces an actor after that
many evaluations, because TensorFlow frees memory only when its process exits.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator

# Names imported ``as`` themselves are re-exported for the code that imports them from here.
from gnas.config import RunConfig
from gnas.datasets import Dataset
from gnas.errors import FatalError
from gnas.execution.ray_plan import PoolPlan, check_gpus, plan_pool
from gnas.execution.groups import spread_size
from gnas.execution.ray_connect import connect, first_line, import_ray
from gnas.execution.ray_slots import Flight, Slot
from gnas.execution.ray_worker import Worker
from gnas.records import EvalResult, EvalTask, failed

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2            # a candidate whose worker dies is tried once more, then failed
START_TIMEOUT_S = 300.0     # longest wait for a first worker before giving up
START_GRACE_S = 60.0        # the first run waits this long for the whole pool to start
POLL_S = 1.0                # how often the pool checks timeouts while waiting


class RayExecutor:
    """Evaluates tasks on a pool of Ray actors and yields each result as it arrives."""

    def __init__(self, cfg: RunConfig, dataset: Dataset) -> None:
        self.cfg = cfg
        self.plan = plan_pool(cfg)
        self.ray = import_ray(local=not self.plan.address)
        connect(self.ray, self.plan)
        self._start_failures = 0
        self._warm = False
        try:
            self.plan = self._check_cluster(self.plan)
            self._data = self.ray.put(dataset)
            self._actor = self.ray.remote(Worker).options(
                num_cpus=self.plan.threads, num_gpus=self.plan.gpus_per_worker, max_restarts=0,
                scheduling_strategy="SPREAD" if self.plan.address else "DEFAULT")
            self.slots = [Slot(i) for i in range(self.plan.workers)]
            for slot in self.slots:
                self._start(slot)
        except BaseException:
            self.ray.shutdown()
            raise
        log.info(self.describe())

    def describe(self) -> str:
        """One line: how many workers, their threads and GPUs, and where."""
        gpu = f", {self.plan.gpus_per_worker:g} GPU" if self.plan.gpus_per_worker else ""
        where = f"the Ray cluster at {self.plan.address}" if self.plan.address else "local Ray (127.0.0.1)"
        n, t = self.plan.workers, self.plan.threads
        return (f"{n} Ray worker{'s' if n > 1 else ''} ({t} thread{'s' if t > 1 else ''}{gpu} "
                f"each) on {where}")

    def workers(self) -> list[dict[str, Any]]:
        """Name, pid and node of every actor that is ready (pid 0 while starting)."""
        return [{"name": s.name, "pid": s.pid, "node": s.node, "busy": s.busy} for s in self.slots]

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Block until every actor has started (TensorFlow imported, data in place)."""
        if not self._wait_started(time.monotonic() + timeout_s):
            raise FatalError(self._no_room_message(timeout_s))

    def _wait_started(self, deadline: float) -> bool:
        """Wait for the starting actors until ``deadline``; True when all have started."""
        while any(s.starting is not None for s in self.slots):
            if time.monotonic() > deadline:
                return False
            self._take_started()
        return True

    def _take_started(self) -> None:
        """Wait up to ``POLL_S`` for a starting actor and take in those that started."""
        refs = [s.starting for s in self.slots if s.starting is not None]
        done, _ = self.ray.wait(refs, num_returns=1, timeout=POLL_S)
        for ref in done:
            self._on_ready(ref)

    # -------------------------------------------------------------- evaluation
    def run(self, tasks: list[EvalTask]) -> Iterator[EvalResult]:
        """Yield one result per task, in the order they finish (a group's together)."""
        tasks = list(tasks)
        if tasks and not self._warm:
            self._await_pool()
        queue: deque[tuple[list[EvalTask], int]] = deque((g, 1) for g in self._groups(tasks))
        flights: dict[Any, Flight] = {}
        try:
            while queue or flights:
                self._dispatch(queue, flights)
                self._check_start_timeout(flights)
                yield from self._collect(queue, flights)
        finally:
            for flight in flights.values():  # abandoned mid-way: stop that work
                self._replace(flight.slot)

    def _groups(self, tasks: list[EvalTask]) -> list[list[EvalTask]]:
        """Training groups: formed by a worker (it knows its device memory), else one task each.

        The size is capped so that every worker gets a group
        (:func:`gnas.execution.groups.spread_size`; safe because no score
        depends on its group). A worker that died since its last evaluation
        is replaced and another one asked; with none to ask in time the
        members train alone, with the scores they would have had in groups.
        """
        size = spread_size(self.cfg.train.group_size, len(tasks), len(self.slots))
        if size <= 1 or not tasks:
            return [[t] for t in tasks]
        deadline = time.monotonic() + START_GRACE_S
        while time.monotonic() <= deadline:
            ready = [s for s in self.slots if s.starting is None]
            if not ready:
                self._wait_started(time.monotonic() + POLL_S)
                continue
            try:
                return self.ray.get(ready[0].actor.groups.remote(tasks, size))
            except self.ray.exceptions.RayTaskError as exc:
                raise exc.as_instanceof_cause() from None  # a gnas bug, as in _finish
            except self.ray.exceptions.RayError:  # the actor died: killed, crash, OOM, lost node
                self._replace(ready[0])
        return [[t] for t in tasks]

    def _await_pool(self) -> None:
        """Give the whole pool a moment to start, so the first tasks spread over every worker.

        Workers that Ray cannot place within the grace period join later; the
        run goes on with those that started.
        """
        self._warm = True
        self._wait_started(time.monotonic() + START_GRACE_S)

    def _dispatch(self, queue: deque, flights: dict[Any, Flight]) -> None:
        for slot in self.slots:
            if not queue:
                return
            if slot.idle:
                group, attempt = queue.popleft()
                ref = slot.actor.evaluate.remote(group, attempt)
                slot.busy = True
                flights[ref] = Flight(group, slot, attempt, time.monotonic())

    def _collect(self, queue: deque, flights: dict[Any, Flight]) -> Iterator[EvalResult]:
        starting = {s.starting: s for s in self.slots if s.starting is not None}
        done, _ = self.ray.wait(list(flights) + list(starting), num_returns=1,
                                timeout=self._wait_s(flights))
        for ref in done:
            if ref in starting:
                self._on_ready(ref)
            else:
                yield from self._finish(ref, flights.pop(ref), queue)
        yield from self._expire(flights)

    def _finish(self, ref: Any, flight: Flight, queue: deque) -> list[EvalResult]:
        """The results of a finished flight, or none when its group goes back in the queue."""
        slot = flight.slot
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            raise exc.as_instanceof_cause() from None  # Evaluator raises only for gnas bugs
        except self.ray.exceptions.RayError as exc:  # the actor died: killed, crash, OOM, lost node
            where = dict(worker=slot.name, node=slot.node, seconds=time.monotonic() - flight.started_s)
            reason = f"worker {slot.name} (pid {slot.pid}) died: {first_line(exc)}"
            self._replace(slot)
            if flight.attempt < MAX_ATTEMPTS:
                queue.appendleft((flight.tasks, flight.attempt + 1))
                return []
            return [failed(task, reason, attempts=flight.attempt, **where) for task in flight.tasks]
        slot.busy = False
        slot.done += len(result)
        if self.cfg.parallel.recycle_every and slot.done >= self.cfg.parallel.recycle_every:
            self._replace(slot)
        return result

    def _expire(self, flights: dict[Any, Flight]) -> Iterator[EvalResult]:
        """Fail and replace every evaluation that ran past ``train.eval_timeout``.

        A group of P members may run P times the limit: the limit is per evaluation.
        """
        limit = self.cfg.train.eval_timeout
        if not limit:
            return
        now = time.monotonic()
        for ref, flight in list(flights.items()):
            if now - flight.started_s > limit * len(flight.tasks):
                del flights[ref]
                slot = flight.slot
                message = f"timed out after {limit:g} s (--eval-timeout); worker {slot.name} replaced"
                results = [failed(task, message, attempts=flight.attempt, worker=slot.name,
                                  node=slot.node, seconds=now - flight.started_s)
                           for task in flight.tasks]
                self._replace(slot)
                yield from results

    def _wait_s(self, flights: dict[Any, Flight]) -> float:
        limit = self.cfg.train.eval_timeout
        if not limit or not flights:
            return POLL_S
        due = min(f.started_s + limit * len(f.tasks) for f in flights.values())
        return min(max(due - time.monotonic(), 0.0) + 0.01, POLL_S)

    def _check_start_timeout(self, flights: dict[Any, Flight]) -> None:
        """Never wait forever for actors that Ray cannot place."""
        if flights or any(s.starting is None for s in self.slots):
            return
        if time.monotonic() - min(s.started_s for s in self.slots) > START_TIMEOUT_S:
            raise FatalError(self._no_room_message(START_TIMEOUT_S))

    # ------------------------------------------------------------------- actors
    def _start(self, slot: Slot) -> None:
        slot.incarnation += 1
        slot.actor = self._actor.remote(self.cfg, self._data, slot.name, self.plan.threads,
                                        self.plan.gpus_per_worker)
        slot.starting = slot.actor.info.remote()
        slot.started_s = time.monotonic()
        slot.busy, slot.done, slot.pid, slot.node = False, 0, 0, ""

    def _replace(self, slot: Slot) -> None:
        """Kill the slot's actor (if still alive) and start a fresh one in its place."""
        self._kill(slot)
        self._start(slot)

    def _kill(self, slot: Slot) -> None:
        """Kill the slot's actor; one already gone is fine."""
        try:
            self.ray.kill(slot.actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone is fine
            pass

    def _on_ready(self, ref: Any) -> None:
        slot = next(s for s in self.slots if s.starting == ref)
        try:
            info = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            self._start_failures += 1
            if self._start_failures > 2 * len(self.slots) + 1:
                raise FatalError(f"Ray workers keep failing to start ({first_line(exc)}); check "
                                 "that gnas and TensorFlow are installed on every node.") from None
            self._replace(slot)
            return
        self._start_failures = 0
        slot.starting, slot.pid, slot.node = None, info["pid"], info["node"]

    def _no_room_message(self, waited_s: float) -> str:
        gpu = f" and {self.plan.gpus_per_worker:g} GPU" if self.plan.gpus_per_worker else ""
        return (f"no Ray worker started within {waited_s:.0f} s: nothing in the cluster has "
                f"{self.plan.threads} free CPU{gpu} for one; lower --threads or "
                "--gpus-per-worker, or add nodes.")

    def _check_cluster(self, plan: PoolPlan) -> PoolPlan:
        """Resources of the Ray actually joined: GPUs present, default worker count."""
        resources = self.ray.cluster_resources()
        if plan.gpus_per_worker > 0:
            check_gpus(max(plan.workers, 1) if not plan.address else 1, plan.gpus_per_worker,
                       resources.get("GPU", 0.0))
        if plan.workers == 0:
            plan = dataclasses.replace(plan, workers=max(int(resources.get("CPU", 1)) // plan.threads, 1))
        return plan

    # ------------------------------------------------------------ final model
    def final(self, genome: str, seed: int, out_dir: Path,
              options: dict[str, Any] | None = None,
              report: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Train the delivered network on an actor, save ``out_dir/model.keras``, return its scores.

        An actor cannot stream its epochs: ``report`` sees them once it is done.
        """
        reason = ""
        for _ in range(MAX_ATTEMPTS):
            slot = self._idle_slot()
            try:
                data, metrics = self.ray.get(slot.actor.final.remote(genome, seed, options))
            except self.ray.exceptions.RayTaskError as exc:
                raise exc.as_instanceof_cause() from None
            except self.ray.exceptions.RayError as exc:
                reason = first_line(exc)
                self._replace(slot)
                continue
            from gnas.backend.saving import replace_file

            out_dir.mkdir(parents=True, exist_ok=True)
            replace_file(out_dir / "model.keras", lambda tmp: tmp.write_bytes(data))
            if report is not None:
                for epoch in (metrics.get("final_training") or {}).get("history", []):
                    report(epoch)
            return metrics
        raise FatalError(f"the worker retraining the best network died twice ({reason}); "
                         "resume the run to try again.")

    def _idle_slot(self) -> Slot:
        """A started, idle actor, waiting for one to start if need be."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not any(s.idle for s in self.slots):
            if time.monotonic() > deadline:
                raise FatalError(self._no_room_message(START_TIMEOUT_S))
            self._take_started()
        return next(s for s in self.slots if s.idle)

    def close(self) -> None:
        """Stop every actor and leave Ray (a local Ray shuts down with the driver)."""
        if not self.ray.is_initialized():
            return
        for slot in self.slots:
            self._kill(slot)
        self.ray.shutdown()
