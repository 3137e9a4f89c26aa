"""The evaluation room: every training of a search goes through one object.

:class:`Evaluations` owns what stands between "score these genomes" and the
executor: the cache (a network is never trained twice), the novelty rule's
"already trained?" question, the budgets (trained networks, epochs), the cap on
consecutive failures, and the executor call itself. It reports every result,
cached or trained, through one callable.

Which candidates train further is a :class:`Schedule`'s decision, as in Ray
Tune, whose schedulers decide and never call the executor themselves: it places
each new task at its first fidelity, and after every round of trainings names
the next round (its promotions). :class:`FullFidelity` trains every task once,
at the configured epochs; :class:`gnas.search.fidelity.SuccessiveHalving`
promotes the best of each rung of epochs, without the loop knowing.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

from gnas.config import RunConfig
from gnas.errors import FatalError
from gnas.genome.protocol import Space
from gnas.genome.space import Bits, bits_to_str
from gnas.inheritance.lineage import Inheritance, Parent
from gnas.records import EvalResult, EvalTask, Kind, derive_seed
from gnas.runs.state import SearchState
from gnas.runs.store import EvaluationStore
from gnas.search.fidelity import SuccessiveHalving, epochs_held, epochs_trained, first_epochs, result_epochs
from gnas.search.fitness import FitnessModel


class Executor(Protocol):
    """Where evaluations run (``gnas.execution``): results are yielded as each one ends."""

    def run(self, tasks: list[EvalTask]) -> Iterator[EvalResult]: ...
    def final(self, genome: str, seed: int, out_dir: Path,
              options: Mapping[str, Any] | None = None,
              report: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]: ...
    def close(self) -> None: ...


class Schedule(Protocol):
    """Decides at which fidelity each candidate trains, and which train further."""

    def first(self, task: EvalTask) -> EvalTask:
        """The task as it first trains (a multi-fidelity schedule: at its lowest rung)."""
        ...

    def promotions(self, generation: int) -> list[EvalTask]:
        """After a round of trainings of ``generation``: the tasks of the next round (none: done).

        Decided from the stored rows only, so a resumed run promotes as an
        uninterrupted one; a promoted network's new row is its result from then on.
        """
        ...


class FullFidelity:
    """Every candidate trains once at the configured epochs: the schedule of the paper."""

    def first(self, task: EvalTask) -> EvalTask:
        return task

    def promotions(self, generation: int) -> list[EvalTask]:
        return []


def _full_fidelity(cfg: RunConfig, store: EvaluationStore, run_path: Path) -> FullFidelity:
    return FullFidelity()


#: ``fidelity.schedule`` -> the builder of that schedule (config, store, run directory); the
#: config offers exactly these names, and a user's schedule object replaces a built one.
SCHEDULES: dict[str, Callable[[RunConfig, EvaluationStore, Path], Schedule]] = {
    "full": _full_fidelity, "sha": SuccessiveHalving}


class BudgetSpent(Exception):
    """A budget (trained networks or epochs) ran out inside a round (caught by the loop)."""

    def __init__(self, evaluated: list[tuple[Bits, EvalResult]], generation: int) -> None:
        super().__init__("budget spent")
        self.evaluated = evaluated
        self.generation = generation


Report = Callable[[EvalResult, bool], None]
"""Told of every result: (result, whether it came from the cache)."""


class Evaluations:
    """Cache, budget, failure cap and executor of one search.

    Args:
        state: The search's state; its ``trained`` and ``final_trained`` counters
            are kept here.
        report: Called with every result, and whether it came from the cache.
        stop_hint: What to tell a user whose run stopped on failures.
        schedule: The fidelity schedule (:class:`FullFidelity` when not given).
        inheritance: Weight inheritance (none when not given): tasks start from their
            parents' kept weights, results leave theirs.
    """

    def __init__(self, cfg: RunConfig, space: Space, store: EvaluationStore,
                 executor: Executor, fitness_model: FitnessModel, state: SearchState,
                 report: Report, stop_hint: str, schedule: Schedule | None = None,
                 inheritance: Inheritance | None = None) -> None:
        self.cfg = cfg
        self.space = space
        self.store = store
        self.executor = executor
        self.fitness_model = fitness_model
        self.state = state
        self.report = report
        self.stop_hint = stop_hint
        self.schedule: Schedule = schedule or FullFidelity()
        self.inheritance = inheritance or Inheritance("none", space, None)
        self.consecutive_failures = 0
        self._promoted: list[EvalResult] = []
        self.searching = True  # False once the search ends and the final pick trains
        self._final_from = 0   # final_trained when the search ended
        self._final_epochs = 0  # epochs the final pick trained since the search ended
        self.clock = search_seconds(store) if cfg.evolution.max_eval_seconds else 0.0
        self._checkpointed_final = state.final_trained  # final picks' rows the checkpoint knew
        self._count_from_store()

    def evaluate(self, genomes: Sequence[Bits], generation: int, kind: Kind = Kind.SEARCH,
                 options: Mapping[str, Any] | None = None,
                 keys: Sequence[str | None] | None = None,
                 parents: Sequence[Sequence[Parent]] | None = None) -> list[EvalResult]:
        """Results of each genome: from the store when known, else trained once.

        ``keys`` may name an evaluation key per genome; a named key is used only
        when the store knows it, otherwise the key is derived from the genome.
        ``parents`` names each genome's parents, whose kept weights a new network
        inherits (with ``evolution.inherit``); a network's first evaluation stands.

        Raises:
            BudgetSpent: The budget ran out before every genome was trained; the
                exception holds the search results this round has.
        """
        keys = [k if k and self.store.lookup(k) is not None else self.task_key(b, options)
                for b, k in zip(genomes, keys or [None] * len(genomes))]
        known, tasks = self._from_cache(genomes, keys, generation, kind, options)
        lineage = dict(zip(keys, parents or []))
        tasks = [self.inheritance.attach(t, lineage.get(t.key, ())) for t in tasks]
        if not self._train(tasks, kind, generation, known):
            bits_of = dict(zip(keys, genomes))
            raise BudgetSpent([(bits_of[k], r) for k, r in known.items()
                               if k in bits_of and r.ok and kind == Kind.SEARCH], generation)
        return [known[k] for k in keys]

    def take_promoted(self) -> list[EvalResult]:
        """Results of networks promoted by the last evaluations that were not asked for
        (earlier generations' networks, still racing); each is handed out once."""
        promoted, self._promoted = self._promoted, []
        return promoted

    def _from_cache(self, genomes: Sequence[Bits], keys: Sequence[str], generation: int,
                    kind: Kind, options: Mapping[str, Any] | None
                    ) -> tuple[dict[str, EvalResult], list[EvalTask]]:
        """The results the store knows (reported as cached), and a task for each other key."""
        known: dict[str, EvalResult] = {}
        tasks: dict[str, EvalTask] = {}
        for bits, key in zip(genomes, keys):
            if key in known or key in tasks:
                continue
            cached = self.store.lookup(key)
            if cached is not None:
                known[key] = cached
                self.report(cached, True)
            else:
                tasks[key] = EvalTask(key=key, genome=bits_to_str(bits), kind=Kind(kind),
                                      seed=derive_seed(self.cfg.evolution.seed, key),
                                      generation=generation, options=dict(options or {}))
        return known, list(tasks.values())

    def _train(self, tasks: list[EvalTask], kind: Kind, generation: int,
               known: dict[str, EvalResult]) -> bool:
        """Train ``tasks``, then the schedule's promotions round by round, into ``known``.

        Every training is stored as it ends; a network's latest row is its result.
        Returns False when the budget cut a round short.
        """
        try:
            return self._rounds(tasks, kind, generation, known)
        finally:
            if not self.space.trains:
                self.store.commit()  # a round of lookups is one transaction

    def _rounds(self, tasks: list[EvalTask], kind: Kind, generation: int,
                known: dict[str, EvalResult]) -> bool:
        """:meth:`_train`'s rounds: the new tasks, then the schedule's promotions."""
        asked = set(known) | {t.key for t in tasks}
        pending = [self.schedule.first(t) for t in tasks]
        while True:
            affordable = self._affordable(pending)
            cut = affordable < len(pending)
            for result in self.executor.run(pending[:affordable]):
                if self._past_clock(result, kind):
                    cut = True
                    break
                result = self.inheritance.keep(result)
                self._record(result, kind)
                known[result.key] = result
                if result.key not in asked:
                    self._promoted.append(result)
            if cut:
                return False
            racing = self.searching and kind in (Kind.SEARCH, Kind.CHAMPION)
            # A promoted network's further-trained weights replace what its children inherit.
            pending = [self.inheritance.attach(t, ()) for t in self.schedule.promotions(generation)] \
                if racing else []
            if not pending:
                return True

    def _affordable(self, pending: Sequence[EvalTask]) -> int:
        """How many of ``pending``, in order, fit in what both budgets have left."""
        count = len(pending)
        left = self.budget_left()
        if left is not None:
            count = min(count, left)
        epochs = self.epochs_left()
        if epochs is not None:
            for i, task in enumerate(pending[:count]):
                epochs -= task.epochs_to_train(self.cfg.train.epochs)
                if epochs < 0:
                    return i
        return count

    def _past_clock(self, result: EvalResult, kind: Kind) -> bool:
        """Whether ``result`` would take the search's clock past ``evolution.max_eval_seconds``.

        Its seconds are known once it is evaluated (a lookup knows them at once);
        such a result is dropped, not stored, as NAS-Bench-201's own scripts drop
        the query that would overrun the time budget.
        """
        limit = self.cfg.evolution.max_eval_seconds
        return bool(limit) and kind != Kind.RESEED and self.clock + result.seconds > limit

    def _record(self, result: EvalResult, kind: Kind) -> None:
        if kind != Kind.RESEED:
            self.clock += result.seconds
        # A trained network is committed the moment it exists; lookups, per round (see _train).
        self.store.add(result, self.fitness_model.fitness(result), commit=self.space.trains)
        self._count_from_store()
        if not self.searching:
            self._final_epochs += result_epochs(result, self.cfg.train.epochs)
        self._count_failure(result)
        self.report(result, False)

    def _count_failure(self, result: EvalResult) -> None:
        self.consecutive_failures = 0 if result.ok else self.consecutive_failures + 1
        limit = self.cfg.evolution.max_consecutive_failures
        if self.consecutive_failures >= limit:
            reason = result.message.splitlines()[0] if result.message else "no reason"
            raise FatalError(f"{limit} evaluations failed in a row (last: {reason}); check the data "
                             f"and the search space, then {self.stop_hint}.")

    def _count_from_store(self) -> None:
        """``state.trained`` and ``state.final_trained`` as the store has them: one row per training.

        Counted from the rows, never carried over from a checkpoint, so a run
        killed inside a generation (whose trainings are stored but not yet in the
        checkpoint) counts, and so budgets, exactly as the uninterrupted run.
        """
        self.state.trained = self.store.count()
        self.state.final_trained = self.store.count(kind=Kind.RESEED.value)

    def end_search(self) -> None:
        """The search is over: from now on the final pick's re-trainings draw on the budget.

        What earlier final picks trained is the checkpoint's count: a pick that a
        kill cut short left its rows, but no checkpoint, so they count as this
        pick's (reused now, as the uninterrupted pick trained them).
        """
        self.searching = False
        self._final_from = min(self._checkpointed_final, self.state.final_trained)

    def spent(self) -> bool:
        """Whether a budget has nothing left for the search: no training, or too few
        epochs for a new candidate's first training."""
        epochs = self.epochs_left()
        limit = self.cfg.evolution.max_eval_seconds
        return self.budget_left() == 0 or (epochs is not None and epochs < first_epochs(self.cfg)) \
            or bool(limit and self.clock >= limit)

    def cut_short(self) -> bool:
        """Whether the store holds rows of the generation after the checkpoint's.

        A run killed inside a generation its budget then ended finds its budget
        spent on resume; that generation is still gone through again, from the
        store, so what it had trained reaches the hall of fame as in the
        uninterrupted run.
        """
        return self.searching and bool(self.store.keys_of(self.state.generation + 1))

    def epochs_left(self) -> int | None:
        """Epochs left in ``evolution.max_epochs_total``; None without an epoch budget.

        While searching, the final pick's and the final trainings' most epochs
        are held back (:func:`gnas.search.fidelity.epochs_held`) and the search's
        own stored trainings count, a promotion by the epochs it adds, as in
        :meth:`budget_left`; afterwards the final pick draws on its share.
        """
        total = self.cfg.evolution.max_epochs_total
        if not total:
            return None
        search = [r for r in self.store.iter_results() if r.kind != Kind.RESEED]
        spent = epochs_trained(search, self.cfg.train.epochs)["epochs"]
        pick, finals = epochs_held(self.cfg)
        if self.searching:
            return max(0, total - pick - finals - spent)
        return max(0, total - finals - spent - self._final_epochs)

    def budget_left(self) -> int | None:
        """Trainings left in ``evolution.max_trainings``; None without a budget.

        While searching, the final candidates' extra seeds are held back, so they
        fit in the same budget (unless they would take half of it or more), and
        only the search's own trainings count: a run stopped by its budget and
        resumed with a larger one searches exactly as a run given the larger
        budget from the start. The earlier final pick's re-trainings then come on
        top (they stay in the store, reused when the same candidates come out).
        """
        ev = self.cfg.evolution
        if not ev.max_trainings:
            return None
        held = ev.final_candidates * ev.final_seeds
        held = held if ev.max_trainings > 2 * held else 0
        spent = self.state.trained - self.state.final_trained  # both counted from the store
        if self.searching:
            return max(0, ev.max_trainings - held - spent)
        return max(0, ev.max_trainings - spent - (self.state.final_trained - self._final_from))

    def task_key(self, bits: Bits, options: Mapping[str, Any] | None = None) -> str:
        """The cache key: the canonical network's, or a variant's own when options name one.

        A pruning attempt (``options["variant"]``) trains the same bits differently,
        so its key is a digest of the network's key and the variant; what the variant
        is stays in the row's fields (kind, options), never inside the key.
        """
        key = self.space.key(bits)
        variant = (options or {}).get("variant")
        return derived_key(key, variant) if variant else key

    def evaluated_before(self, generation: int) -> "EvaluatedBefore":
        """The novelty rule's "already trained?": keys evaluated before ``generation``."""
        return EvaluatedBefore(self.store, generation)


class EvaluatedBefore:
    """``key in evaluated``: whether ``key`` was evaluated before generation ``before_generation``.

    Only earlier generations count, so a generation redone after a kill or a
    budget stop sees what it saw the first time, not its own finished trainings.
    """

    def __init__(self, store: EvaluationStore, before_generation: int) -> None:
        self.store = store
        self.before_generation = before_generation

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.store.contains(key, self.before_generation)


def search_seconds(store: EvaluationStore) -> float:
    """The seconds of the search's stored evaluations (the final pick's re-trainings left out)."""
    return float(sum(r.seconds for r in store.iter_results() if r.kind != Kind.RESEED))


def derived_key(key: str, variant: str) -> str:
    """The cache key of a variant (e.g. a pruning attempt) of the network ``key``."""
    return hashlib.sha256(f"{key}\n{variant}".encode()).hexdigest()[:20]
