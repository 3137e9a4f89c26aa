"""Callbacks fired by the search loop (neat-python's reporters, Keras' names).

Printing, checkpoint-side artefacts and statistics are callbacks, so the loop
stays short and users can add their own.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable, Sequence

from gnas.records import Kind

if TYPE_CHECKING:  # pragma: no cover
    from gnas.search.loop import Search
    from gnas.search.step import Generation
    from gnas.records import EvalResult


class Callback:
    """Base class: override the events you need."""

    def on_search_begin(self, search: "Search") -> None: ...
    def on_generation_begin(self, search: "Search", generation: int) -> None: ...
    def on_evaluated(self, search: "Search", result: "EvalResult", cached: bool) -> None: ...
    def on_generation_end(self, search: "Search", info: "Generation") -> None: ...
    def on_search_end(self, search: "Search") -> None: ...


class CallbackList(Callback):
    """Fans every event out to a list of callbacks, in order."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks = list(callbacks)

    def append(self, cb: Callback) -> None:
        self.callbacks.append(cb)

    def on_search_begin(self, search):
        for cb in self.callbacks:
            cb.on_search_begin(search)

    def on_generation_begin(self, search, generation):
        for cb in self.callbacks:
            cb.on_generation_begin(search, generation)

    def on_evaluated(self, search, result, cached):
        for cb in self.callbacks:
            cb.on_evaluated(search, result, cached)

    def on_generation_end(self, search, info):
        for cb in self.callbacks:
            cb.on_generation_end(search, info)

    def on_search_end(self, search):
        for cb in self.callbacks:
            cb.on_search_end(search)


class ProgressBar(Callback):
    """One live line: generation, slots done/total, best fitness, trained and reused, ETA.

    Slots filled from the cache are not trainings, so the line counts trained
    networks and reused ones apart from the slots. The total holds the population
    slots and the final pick's extra seeds (``final_candidates × final_seeds``);
    with a budget it is the budget, in trainings.
    """

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.bar = None
        self.best = float("inf")
        self.generation = 0
        self.generations = 0
        self.search: "Search | None" = None
        self.by_budget = False

    def on_search_begin(self, search):
        self.search = search
        from tqdm import tqdm

        ev = search.cfg.evolution
        self.generations = ev.generations
        reseeds = ev.final_candidates * ev.final_seeds  # the final pick's extra trainings
        total = ev.population * (ev.generations + 1) + reseeds
        done = ev.population * max(0, search.state.generation + 1)
        if search.state.finished:
            done = total
        self.by_budget = bool(ev.max_trainings)  # with a budget, the bar counts trainings
        if self.by_budget:
            total, done = ev.max_trainings, min(search.state.trained, ev.max_trainings)
        self.generation = max(0, search.state.generation + 1)
        if search.state.logbook:
            self.best = min(r["best"] for r in search.state.logbook)
        self.bar = tqdm(total=total, initial=done, file=self.stream, unit="eval", dynamic_ncols=True,
                        mininterval=0.5, bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                        "evals [{elapsed}<{remaining}]{postfix}")
        self._describe()

    def _describe(self):
        best = "-" if self.best == float("inf") else f"{self.best:.4f}"
        self.bar.set_description_str(f"gen {self.generation}/{self.generations}", refresh=False)
        counts = "" if self.search is None else \
            f", {self.search.state.trained} trained, {self.search.state.reused} reused"
        self.bar.set_postfix_str(f"best F {best}{counts}", refresh=True)

    def on_generation_begin(self, search, generation):
        self.generation = generation
        self._describe()

    def on_evaluated(self, search, result, cached):
        counted = not cached if self.by_budget else result.kind in (Kind.SEARCH, Kind.RESEED)
        if counted and self.bar is not None and self.bar.n < self.bar.total:
            self.bar.update(1)
        if result.ok:
            self.best = min(self.best, search.fitness_model.fitness(result))
        self._describe()

    def on_generation_end(self, search, info):
        expected = search.cfg.evolution.population * (info.generation + 1)
        if not self.by_budget and self.bar.n < expected:  # duplicates inside a generation are trained once
            self.bar.update(expected - self.bar.n)
        self._describe()

    def on_search_end(self, search):
        if self.bar is not None:
            self.bar.close()


class FinalTrainingProgress:
    """A line per final training on stderr: epoch, validation error, best epoch so far.

    On a terminal the line is rewritten after every epoch; elsewhere (a log
    file) it is written once, when that training stops. Called with (which
    training, of how many), it returns the epoch report the end-of-search room
    hands to the executor (:data:`gnas.search.final.FinalProgress`).
    """

    def __init__(self, max_epochs: int, patience: int, stream: Any = None) -> None:
        self.max_epochs = max_epochs
        self.patience = patience
        self.stream = stream or sys.stderr

    def __call__(self, index: int, count: int) -> "Callable[[dict[str, Any]], None] | None":
        if self.max_epochs <= 0:
            return None
        live = bool(getattr(self.stream, "isatty", lambda: False)())

        def report(epoch: dict[str, Any]) -> None:
            end = (epoch["epoch"] - epoch["best_epoch"] >= self.patience
                   or epoch["epoch"] >= self.max_epochs)
            if live or end:
                print(f"\rfinal training {index}/{count}: epoch {epoch['epoch']}/{self.max_epochs}, "
                      f"val error {epoch['val_error']:.4f}, best epoch {epoch['best_epoch']}   ",
                      end="\n" if end else "", file=self.stream, flush=True)
        return report
