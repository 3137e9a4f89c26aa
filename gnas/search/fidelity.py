"""Fidelity schedules: how many epochs each candidate earns (successive halving).

Every new candidate of the search trains to the first rung (``fidelity.min_epochs``).
After each round of trainings the best ``1/eta`` of every rung's candidates (by
validation error at that rung; ties by key) go on to the next rung, continuing
from the weights and momenta their last rung saved: a promotion never restarts a
training. The ranking covers every candidate the rung has ever had, so a network
of an earlier generation is still promoted once it ranks in the top ``1/eta``
of its rung (asynchronous successive halving, as ASHA, but at round boundaries,
so the promotions depend only on the stored rows and a resumed run makes the
same ones). A rung's promotions are one batch of tasks, so they train as one
population-fused group or spread over Ray workers like any other round.

Rungs rank before errors: a candidate's fitness is its score at the highest rung
it reached, and :class:`gnas.search.fitness.FitnessModel` puts every candidate of
a higher rung ahead of every candidate of a lower one, so a network seen at one
epoch is never ranked as if it had trained nine.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from gnas.config import FidelityConfig, RunConfig
from gnas.errors import ConfigError
from gnas.records import SEARCH_EPOCHS, EvalResult, EvalTask, Kind, StoredEvaluation, derive_seed
from gnas.runs.paths import inside
from gnas.runs.store import EvaluationStore

#: Kinds that race in the rungs; pruning attempts keep their own training.
RACING = frozenset({Kind.SEARCH, Kind.CHAMPION})
CHECKPOINT_DIR = "fidelity"  # in the run directory: the training states promotions continue from


def rung_epochs(fidelity: FidelityConfig) -> list[int]:
    """Epochs of each rung: ``min_epochs`` times powers of ``eta``, ending at ``max_epochs``."""
    if fidelity.schedule != "sha":
        return []
    rungs, epochs = [], fidelity.min_epochs
    while epochs < fidelity.max_epochs:
        rungs.append(epochs)
        epochs *= fidelity.eta
    return rungs + [fidelity.max_epochs]


def top_rung(cfg: RunConfig) -> int:
    """Index of the last rung; 0 for full fidelity (a single rung)."""
    return max(0, len(rung_epochs(cfg.fidelity)) - 1)


def rung_of(metrics: dict, top: int) -> int:
    """A row's rung; rows no schedule placed (pruning attempts, full fidelity) count as the top."""
    rung = metrics.get("rung")
    return top if rung is None else int(rung)


class SuccessiveHalving:
    """The ``--fidelity sha`` schedule of one run (see the module docstring)."""

    def __init__(self, cfg: RunConfig, store: EvaluationStore, run_path: Path) -> None:
        self.cfg = cfg
        self.store = store
        self.rungs = rung_epochs(cfg.fidelity)
        self.eta = cfg.fidelity.eta
        self.run_path = Path(run_path)
        self.dir = self.run_path / CHECKPOINT_DIR

    @property
    def top(self) -> int:
        return len(self.rungs) - 1

    def checkpoint(self, key: str, rung: int) -> str:
        """Where a network's state after ``rung`` is kept; none after the last rung.

        Keys come from the database, so the path is checked to stay inside the run
        (and a key gnas did not make is refused when a resume opens the store).
        """
        if rung >= self.top:
            return ""
        path = inside(self.run_path, Path(CHECKPOINT_DIR) / f"{key}-e{self.rungs[rung]}.npz", CHECKPOINT_DIR)
        return str(path)

    def first(self, task: EvalTask) -> EvalTask:
        """A racing candidate at the first rung; a re-training at the epochs it names."""
        if task.kind in RACING:
            return dataclasses.replace(task, epochs=self.rungs[0], rung=0,
                                       checkpoint=self.checkpoint(task.key, 0))
        epochs = int(task.options.get(SEARCH_EPOCHS, 0))
        if task.kind == Kind.RESEED and epochs:
            rung = self.rungs.index(epochs) if epochs in self.rungs else self.top
            return dataclasses.replace(task, epochs=epochs, rung=rung)
        return task

    def promotions(self, generation: int) -> list[EvalTask]:
        """The next round: every rung's top ``1/eta`` not yet promoted, continuing their training."""
        at: list[dict[str, StoredEvaluation]] = [{} for _ in self.rungs]
        for row in self.store.evaluations():
            if row.result.kind in RACING:
                rung = rung_of(row.result.metrics, self.top)
                at[rung].setdefault(row.key, row)
        tasks = []
        for rung in range(self.top):
            above = set().union(*(at[r] for r in range(rung + 1, len(self.rungs))))
            self._drop_states(rung, above & set(at[rung]))
            ranked = sorted((r for r in at[rung].values() if r.result.ok),
                            key=lambda r: (r.result.val_error, r.key))
            for row in ranked[:len(at[rung]) // self.eta]:
                if row.key not in above:
                    tasks.append(self._promotion(row, rung, generation))
        return tasks

    def _promotion(self, row: StoredEvaluation, rung: int, generation: int) -> EvalTask:
        result = row.result
        return EvalTask(key=row.key, genome=result.genome, kind=result.kind,
                        seed=derive_seed(self.cfg.evolution.seed, row.key), generation=generation,
                        epochs=self.rungs[rung + 1], rung=rung + 1, resume_from=self.rungs[rung],
                        checkpoint_from=self.checkpoint(row.key, rung),
                        checkpoint=self.checkpoint(row.key, rung + 1))

    def _drop_states(self, rung: int, promoted: set[str]) -> None:
        """Delete the states of ``rung`` that were continued: a network is promoted from a rung once."""
        for key in promoted:
            path = self.checkpoint(key, rung)  # a training state this schedule wrote
            if path and Path(path).is_file() and not Path(path).is_symlink():
                Path(path).unlink()


def result_epochs(result: EvalResult, default_epochs: int) -> int:
    """The epochs a stored training reached (``train.epochs`` for a row without them)."""
    return int(result.metrics.get("epochs", default_epochs))


def last_rung_epochs(cfg: RunConfig) -> int:
    """The epochs of a fully trained candidate: the last rung's, or ``train.epochs``."""
    rungs = rung_epochs(cfg.fidelity)
    return rungs[-1] if rungs else cfg.train.epochs


def first_epochs(cfg: RunConfig) -> int:
    """The epochs of a new candidate's first training: the first rung's, or ``train.epochs``."""
    rungs = rung_epochs(cfg.fidelity)
    return rungs[0] if rungs else cfg.train.epochs


def epochs_held(cfg: RunConfig) -> tuple[int, int]:
    """Epochs an epoch budget holds back while searching: (final pick, final trainings).

    The final pick re-trains ``final_candidates`` networks ``final_seeds`` times
    each at most at the last rung; the final network then trains once per seed
    (``1 + final_seeds``) for at most ``final.max_epochs`` (with 0, as long as a
    search training). Both are upper bounds, so the run never spends more than
    its budget; what early stopping leaves unspent is shown, not reused.
    """
    ev, longest = cfg.evolution, last_rung_epochs(cfg)
    return (ev.final_candidates * ev.final_seeds * longest,
            (1 + ev.final_seeds) * (cfg.final.max_epochs or longest))


def check_epoch_budget(cfg: RunConfig) -> None:
    """Refuse an epoch budget that leaves the search not even one first training."""
    total = cfg.evolution.max_epochs_total
    if not total:
        return
    first, held = first_epochs(cfg), sum(epochs_held(cfg))
    if total < held + first:
        raise ConfigError(f"--budget-epochs {total} leaves no epochs for the search: the final pick and "
                          f"final trainings hold back {held} and a first training takes {first}; give "
                          f"at least {held + first}, or lower final.max_epochs or evolution.final_seeds.")


def epochs_trained(results: Iterable[EvalResult], default_epochs: int) -> dict[str, Any]:
    """The epochs a run's stored trainings took: in all, and how many trainings reached each rung.

    A promotion counts by the epochs it adds; a row without epochs (full
    fidelity, a pruning attempt) by ``default_epochs`` (``train.epochs``).
    """
    reached: dict[str, int] = {}
    rungs: dict[int, int] = {}
    total = 0
    for result in results:
        epochs = result_epochs(result, default_epochs)
        total += max(0, epochs - reached.get(result.key, 0))
        reached[result.key] = max(epochs, reached.get(result.key, 0))
        if "rung" in result.metrics:
            rungs[epochs] = rungs.get(epochs, 0) + 1
    return {"epochs": total, "rungs": {e: rungs[e] for e in sorted(rungs)}}


def run_epochs(results: Iterable[EvalResult], cfg: RunConfig) -> dict[str, Any]:
    """:func:`epochs_trained` of a run's stored trainings, with its epoch budget (0: none)."""
    return {**epochs_trained(results, cfg.train.epochs), "budget": cfg.evolution.max_epochs_total}


def epoch_line(spent: Mapping[str, Any], final_epochs: Sequence[int] = ()) -> str:
    """``312 (rungs 1/3/9: 18/6/3 trainings) + 36 in final trainings = 348 of a budget of 400``."""
    rungs = spent.get("rungs") or {}
    by_rung = (f" (rungs {'/'.join(map(str, rungs))}: {'/'.join(map(str, rungs.values()))} trainings)"
               if rungs else "")
    final = f" + {sum(final_epochs)} in final trainings" if final_epochs else ""
    total = spent["epochs"] + sum(final_epochs)
    budget = f" = {total} of a budget of {spent['budget']}" if spent.get("budget") else ""
    return f"{spent['epochs']} in search trainings{by_rung}{final}{budget}"
