"""The end of a search: the final pick, the best network's last training and its export.

Two moments, one room:

* :func:`pick_final`, run by the loop once the search ends: the best few are
  trained again with extra seeds and the pick is made on the mean (the winner's
  curse, see its docstring). Its outcome is part of the checkpoint.
* :class:`FinalExport`, run by the session after the loop: the best network is
  trained once more, scored on the test split over its seeds, and saved in
  ``best/`` (model, architecture, summary). The test split decides nothing.

Both, and the loop for a step's request (:class:`gnas.search.step.TrainRequest`),
train a network to the end through :func:`train_to_end`, so a step only decides
what to train.
"""
from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from gnas.config import EvolutionConfig, RunConfig
from gnas.errors import EvaluationFailed, FatalError
from gnas.genome.architecture import Architecture, complexity
from gnas.genome.protocol import Space
from gnas.genome.space import Bits, SearchSpace, str_to_bits
from gnas.records import SEARCH_EPOCHS, EvalResult, Kind, NetworkSize, derive_seed
from gnas.runs.atomic import atomic_write_text, read_json
from gnas.runs.directory import RunDir
from gnas.runs.state import SearchState
from gnas.runs.store import EvaluationStore
from gnas.search.evaluation import BudgetSpent, Executor, derived_key
from gnas.search.step import TrainRequest

Evaluate = Callable[[Sequence[Bits], int, Kind, Mapping[str, Any]], list[EvalResult]]

log = logging.getLogger(__name__)

#: How many of the store's best networks stand in for an empty hall of fame.
STORE_CANDIDATES = 5


def ranked_networks(state: SearchState, store: EvaluationStore) -> list[dict[str, Any]]:
    """The hall of fame, or the store's best trained networks when it is empty.

    A budget that runs out inside generation 0 (in a step after its
    evaluations, such as the competition) leaves the hall of fame empty
    although networks were trained: those rows are the candidates then, ranked
    by their stored fitness, so the run still delivers its best network.
    """
    if state.hall_of_fame:
        return list(state.hall_of_fame)
    return [{"key": n["key"], "genome": n["genome"], "fitness": n["fitness"],
             "generation": n["generation"] or 0} for n in store.top_networks(STORE_CANDIDATES)]


def first_line(exc: BaseException) -> str:
    """An exception's message on one line (a reason kept in a summary)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def reseed_variant(j: int) -> str:
    """The variant naming the final pick's ``j``-th extra training of a network."""
    return f"seed-{j}"


def at_search_epochs(options: Mapping[str, Any], epochs: int) -> dict[str, Any]:
    """``options`` of a re-training that trains as long as the search training did (its
    rung's epochs under successive halving; 0: ``train.epochs``, nothing to add)."""
    return {**options, **({SEARCH_EPOCHS: epochs} if epochs else {})}


def reseed_seeds(evolution: EvolutionConfig, key: str) -> list[int]:
    """The training seeds of the final pick's extra trainings of network ``key``."""
    return [derive_seed(evolution.seed, derived_key(key, reseed_variant(j)))
            for j in range(1, evolution.final_seeds + 1)]


def delivered_seeds(evolution: EvolutionConfig, key: str) -> list[int]:
    """The seeds of network ``key``'s final trainings: its own (the saved model's), then
    the final pick's extra ones (:func:`reseed_seeds`), as :class:`FinalExport` trains them."""
    return [derive_seed(evolution.seed, key)] + reseed_seeds(evolution, key)


def place_pick_winner(fame: list[dict[str, Any]], winner: str,
                      candidates: set[str]) -> list[dict[str, Any]]:
    """The hall of fame with the final pick's winner where the best re-trained candidate was.

    Only the unpruned candidates are re-trained, so the pick may reorder them
    and nothing else: a pruned network that ranked above all of them (its
    fitness is the pruner's fine-tuned one, which a fresh seed cannot
    reproduce) stays ahead, instead of losing its place to its own base.
    """
    best = next(e for e in fame if e["key"] == winner)
    first = next(i for i, e in enumerate(fame) if e["key"] in candidates)
    rest = [e for e in fame if e is not best]
    return rest[:first] + [best] + rest[first:]


def pick_final(state: SearchState, evolution: EvolutionConfig, store: EvaluationStore,
               evaluate: Evaluate, fitness_of: Callable[[EvalResult], float]) -> None:
    """The winner's curse: re-train the best few with extra seeds, pick on the mean.

    One short training is noisy, so the best of many single trainings is mostly
    the luckiest. The best ``final_candidates`` of the hall of fame (pruned
    networks excepted: their evaluation is the pruner's) are trained again with
    ``final_seeds`` other seeds; the one with the smallest mean fitness takes
    the place of the best of them in the hall of fame (a pruned network ranked
    above them keeps its place), and every candidate's errors are kept in the state.
    Without budget for every seed, the pick stays on single trainings.
    """
    fame = state.hall_of_fame = ranked_networks(state, store)
    rows = [store.lookup(e["key"]) for e in fame[:evolution.final_candidates]]
    chosen = [(e, r) for e, r in zip(fame, rows) if r is not None and r.ok and r.kind != Kind.PRUNE]
    if not evolution.final_seeds or not chosen:
        return
    genomes = [str_to_bits(e["genome"]) for e, _ in chosen]
    runs: list[list[EvalResult]] = [[r] for _, r in chosen]
    # Under successive halving each candidate trains again for the epochs its row had.
    epochs = [int(r.metrics.get("epochs", 0)) for _, r in chosen]
    try:
        for j in range(1, evolution.final_seeds + 1):
            for e in sorted(set(epochs)):
                same = [k for k, ek in enumerate(epochs) if ek == e]
                options = at_search_epochs({"variant": reseed_variant(j)}, e)
                again = evaluate([genomes[k] for k in same], state.generation, Kind.RESEED, options)
                for k, r in zip(same, again):
                    runs[k].append(r)
    except BudgetSpent:
        return
    final = [candidate_record(entry, results, fitness_of) for (entry, _), results in zip(chosen, runs)]
    final.sort(key=lambda c: (c["mean_fitness"], c["genome"]))
    state.final = final
    state.hall_of_fame = place_pick_winner(fame, final[0]["key"], {e["key"] for e, _ in chosen})


def candidate_record(entry: Mapping[str, Any], results: Sequence[EvalResult],
                     fitness_of: Callable[[EvalResult], float]) -> dict[str, Any]:
    """One final candidate's errors over its seeds, with their mean and spread."""
    errors = [r.val_error for r in results if r.ok]
    fits = [fitness_of(r) for r in results]
    return {"key": entry["key"], "genome": entry["genome"], "val_errors": errors,
            "mean_val_error": float(np.mean(errors)) if errors else None,
            "std_val_error": float(np.std(errors)) if errors else None,
            "mean_fitness": float(np.mean(fits))}


@dataclass(frozen=True)
class ExportShape:
    """How a saved network differs from its genome's architecture (unit cuts, compaction).

    The pruner knows; the session passes its functions in, so this room stays
    below the pruning package.
    """

    narrowed: Callable[[Architecture, Mapping[str, Any] | None], Architecture]
    architecture: Callable[[Architecture, Mapping[str, Any] | None], dict[str, Any]]
    description: Callable[[Architecture, Mapping[str, Any] | None], str]


#: Called after each epoch of a final training (``{"epoch", "val_error", "best_epoch", ...}``).
EpochReport = Callable[[dict[str, Any]], None]
#: (which final training, of how many) -> its epoch report, or None for no progress.
FinalProgress = Callable[[int, int], "EpochReport | None"]


def train_to_end(executor: Executor, evolution: EvolutionConfig, request: TrainRequest,
                 report: EpochReport | None = None) -> dict[str, Any]:
    """Train the requested network with its own seed and save it; its validation and test scores.

    With ``final.max_epochs`` > 0 the executor trains it to convergence
    (``metrics["final_training"]``), ``report`` seeing each epoch.
    """
    seed = derive_seed(evolution.seed, request.key)
    return executor.final(request.genome, seed, request.out_dir, dict(request.options or {}), report)


def _no_progress(index: int, count: int) -> None:
    return None


class FinalExport:
    """Trains the best network once more, tests it over seeds and saves ``best/``."""

    def __init__(self, cfg: RunConfig, space: SearchSpace, store: EvaluationStore,
                 run_dir: RunDir, executor: Executor, shape: ExportShape,
                 progress: FinalProgress | None = None) -> None:
        self.cfg = cfg
        self.space = space
        self.store = store
        self.run_dir = run_dir
        self.executor = executor
        self.shape = shape
        self.progress = progress or _no_progress

    def finish(self, state: SearchState) -> dict[str, Any]:
        """Retrain the best network, score it on the test split, save best/; the summary.

        A final training that fails (its loss diverges) skips that network, with
        the reason kept in the summary's ``final_skipped``, and the next best is
        trained instead; only when every candidate fails does the run stop, in one
        line. A summary of the same choice with its model already saved is kept (a
        finished run resumed with nothing to do trains nothing, and a skipped
        network is not trained again).
        """
        fame = ranked_networks(state, self.store)
        if not fame:
            raise FatalError("no network of this run trained successfully, so there is nothing to "
                             "deliver; check the data and the search space, then start a new run.")
        kept = self._kept(fame)
        if kept is not None:
            return kept
        skipped: list[dict[str, str]] = []
        for best in fame:
            try:
                summary = self._deliver(best)
            except EvaluationFailed as exc:
                reason = first_line(exc)
                log.warning("the final training of %s failed (%s); the next best network is trained",
                            best["key"], reason)
                skipped.append({"key": best["key"], "reason": reason})
                continue
            if skipped:
                summary["final_skipped"] = skipped
            atomic_write_text(self.run_dir.best_dir / "architecture.json",
                              json.dumps(summary["architecture"], indent=1))
            atomic_write_text(self.run_dir.best_dir / "summary.json", json.dumps(summary, indent=1))
            return summary
        raise FatalError(f"the final training of each of the {len(fame)} best networks failed "
                         f"(last: {skipped[-1]['reason']}); training on this data is unstable: "
                         "check its scale and labels (docs/data.md), then start a new run.")

    def _kept(self, fame: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
        """The saved summary when it delivers the network this choice would (else None)."""
        summary_path = self.run_dir.best_dir / "summary.json"
        previous = read_json(summary_path)
        if not isinstance(previous, dict) or not (self.run_dir.best_dir / "model.keras").is_file():
            return None
        skipped = previous.get("final_skipped")
        skipped_keys = {e.get("key") for e in skipped if isinstance(e, dict)} \
            if isinstance(skipped, list) else set()
        for best in fame:
            if best["key"] == previous.get("key"):
                break
            if best["key"] not in skipped_keys:
                return None
        else:
            return None
        if "test_scores" in previous:
            return previous
        # A summary written before test scores over seeds were kept: add them.
        summary = {**previous, **self.test_over_seeds(best, previous,
                                                      previous.get("final_options") or {})}
        atomic_write_text(summary_path, json.dumps(summary, indent=1))
        return summary

    def _deliver(self, best: Mapping[str, Any]) -> dict[str, Any]:
        """Train ``best`` to the end (its model saved in best/) and over its seeds; its summary.

        Raises:
            EvaluationFailed: The training of the saved model failed.
        """
        row = self.store.lookup(best["key"])
        options = (row.metrics.get("final_options") if row else None) or {}
        search_epochs = int(row.metrics.get("epochs", 0)) if row else 0  # its rung's (sha)
        training = at_search_epochs(options, search_epochs)
        count = len(delivered_seeds(self.cfg.evolution, best["key"]))
        metrics = train_to_end(self.executor, self.cfg.evolution,
                               TrainRequest(best["genome"], best["key"], self.run_dir.best_dir, training),
                               self.progress(1, count))
        summary = self.summary(best, row, metrics, options)
        if "final_training" in metrics:
            summary["final_training"] = {**metrics["final_training"], "val_error": metrics["val_error"],
                                         "search_epochs": search_epochs or self.cfg.train.epochs}
        summary.update(self.test_over_seeds(best, metrics, training))
        return summary

    def summary(self, best: Mapping[str, Any], row: EvalResult | None, metrics: Mapping[str, Any],
                options: Mapping[str, Any]) -> dict[str, Any]:
        """What ``best/summary.json`` says of the best network and its final training."""
        arch = self.space.decode(str_to_bits(best["genome"]))
        saved = row.metrics if row is not None else None
        arch = self.shape.narrowed(arch, saved)  # unit cuts narrowed its stages
        params, flops = (row.params, row.flops) if row and row.ok else complexity(arch)
        return {"key": best["key"], "genome": best["genome"], "fitness": best["fitness"],
                "val_error": row.val_error if row else metrics["val_error"],
                "test_error": metrics["test_error"], "test_score": metrics["test_score"],
                "params": params, "flops": flops,
                **NetworkSize.from_row(row, params, flops).before_pruning(),
                "pruned_fraction": row.pruned_fraction if row else 0.0,
                "architecture": self.shape.architecture(arch, saved),
                "description": self.shape.description(arch, saved),
                "dataset": self.cfg.data.dataset, "final_options": dict(options)}

    def test_over_seeds(self, best: Mapping[str, Any], first: Mapping[str, Any],
                        options: Mapping[str, Any]) -> dict[str, Any]:
        """The best network's test score over its training seeds: mean ± std.

        One test score of one short training says little about the architecture
        (the winner's curse again, on the test split), so the best network is also
        trained with the final pick's extra seeds (``evolution.final_seeds``, the
        seeds its re-trainings had) and each training is scored on the test split.
        These trainings come after the search and its choice: the test split still
        decides nothing. The saved model is the first seed's (``first``: its
        metrics). After final trainings to convergence, each one's epochs are kept.
        A seed whose training fails (diverges) is left out of the scores, with its
        reason in ``skipped_seeds``: the scores are those of models that exist.
        """
        runs = [first]
        skipped: list[dict[str, Any]] = []
        seeds = reseed_seeds(self.cfg.evolution, best["key"])
        with tempfile.TemporaryDirectory(dir=self.run_dir.path, prefix=".seeds.tmp-") as scratch:
            for i, seed in enumerate(seeds, start=2):
                try:
                    runs.append(self.executor.final(best["genome"], seed, Path(scratch), dict(options),
                                                    self.progress(i, 1 + len(seeds))))
                except EvaluationFailed as exc:  # that seed is left out, its reason kept
                    skipped.append({"seed": int(seed), "reason": first_line(exc)})
        scores = [r["test_score"] for r in runs]
        out = {"test_scores": scores, "test_score_mean": float(np.mean(scores)),
               "test_score_std": float(np.std(scores))}
        if skipped:
            out["skipped_seeds"] = skipped
        if all("final_training" in r for r in runs):
            out["final_epochs"] = [r["final_training"]["epochs"] for r in runs]
        return out


#: ``(pick's key, its row, every row) -> extra summary fields`` of a space's own (e.g. its table's view).
PickDetails = Callable[[str, EvalResult, list[EvalResult]], dict[str, Any]]


class ObservedPick:
    """The end of a search on a space that trains nothing (a table, a formula).

    No network is trained again: the pick is the best evaluation observed, as
    NAS-Bench-201's own scripts pick; ``best/`` holds its summary and what the
    space exports of it (``architecture.json``), ``details`` adds the space's own
    figures (the table's mean over seeds, the pick's rank).
    """

    def __init__(self, cfg: RunConfig, space: Space, store: EvaluationStore, run_dir: RunDir,
                 details: PickDetails | None = None) -> None:
        self.cfg = cfg
        self.space = space
        self.store = store
        self.run_dir = run_dir
        self.details = details

    def finish(self, state: SearchState) -> dict[str, Any]:
        """Write ``best/summary.json`` and ``best/architecture.json`` of the best observed network."""
        best = state.hall_of_fame[0]
        row = self.store.lookup(best["key"])
        bits = str_to_bits(best["genome"])
        summary: dict[str, Any] = {
            "key": best["key"], "genome": best["genome"], "fitness": best["fitness"],
            "val_error": row.val_error if row else None, "space": self.space.name,
            "description": self.space.describe(bits), "architecture": self.space.export(bits),
            "dataset": self.cfg.data.dataset, "params": row.params if row else 0,
            "flops": row.flops if row else 0, "trained": False}
        if self.details is not None and row is not None:
            summary.update(self.details(best["key"], row, list(self.store.iter_results())))
        self.run_dir.best_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir.best_dir / "architecture.json",
                          json.dumps(summary["architecture"], indent=1))
        atomic_write_text(self.run_dir.best_dir / "summary.json", json.dumps(summary, indent=1))
        return summary
