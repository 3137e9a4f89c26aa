"""Callbacks fired by the search loop (neat-python's reporters, Keras' names).

Printing, checkpoint-side artefacts and statistics are callbacks, so the loop
stays short and users can add their own.
"""
from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

from gnas.records import Kind
from gnas.runs import heartbeat

QUIET_S = 10.0
"""Seconds between two progress lines where the stream is not a terminal (a log file)."""


def is_live(stream: Any) -> bool:
    """Whether ``stream`` shows a line rewritten in place (a terminal)."""
    return bool(getattr(stream, "isatty", lambda: False)())

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
        self.training = ""  # where the training in progress stands (the heartbeat)
        self._shown = 0.0

    def on_search_begin(self, search):
        self.search = search
        from tqdm.auto import tqdm

        ev = search.cfg.evolution
        self.generations = ev.generations
        reseeds = ev.final_candidates * ev.final_seeds  # the final pick's extra trainings
        total = ev.population * (ev.generations + 1) + reseeds
        done = ev.population * max(0, search.state.generation + 1)
        if search.state.finished and search.state.generation >= ev.generations:
            done = total  # nothing left to do; a finished run extended with --generations has
        self.by_budget = bool(ev.max_trainings)  # with a budget, the bar counts trainings
        if self.by_budget:
            total, done = ev.max_trainings, min(search.state.trained, ev.max_trainings)
        self.generation = max(0, search.state.generation + 1)
        if search.state.logbook:
            self.best = min(r["best"] for r in search.state.logbook)
        self.bar = tqdm(total=total, initial=done, file=self.stream, unit="eval", dynamic_ncols=True,
                        mininterval=0.5, bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                        "evals [{elapsed}<{remaining}]{postfix}")
        heartbeat.listen(self.on_beat)
        self._describe()

    def on_beat(self, beat: heartbeat.Beat) -> None:
        """Show where the training in progress stands, with the elapsed time: a heartbeat.

        On a terminal (or in a notebook) the line is refreshed with every beat;
        in a log file at most every :data:`QUIET_S` seconds.
        """
        if self.bar is None:
            return
        self.training = beat.text()
        now = time.monotonic()
        if is_live(self.stream) or getattr(self.bar, "container", None) is not None \
                or now - self._shown >= QUIET_S:
            self._shown = now
            self._describe()

    def _describe(self):
        best = "-" if self.best == float("inf") else f"{self.best:.4f}"
        self.bar.set_description_str(f"gen {self.generation}/{self.generations}", refresh=False)
        counts = "" if self.search is None else \
            f", {self.search.state.trained} trained, {self.search.state.reused} reused"
        training = f"; {self.training}" if self.training else ""
        budget = self.search.cfg.evolution.max_seconds if self.search is not None else 0
        if budget > 0:
            from gnas.runs import clock

            training += f"; {_clock_text(clock.spent())} of {_clock_text(budget)} budget"
        self.bar.set_postfix_str(f"best F {best}{counts}{training}", refresh=True)

    def on_generation_begin(self, search, generation):
        self.generation = generation
        self._describe()

    def on_evaluated(self, search, result, cached):
        counted = not cached if self.by_budget else result.kind in (Kind.SEARCH, Kind.RESEED)
        if counted and self.bar is not None and self.bar.n < self.bar.total:
            self.bar.update(1)
        if result.ok:
            self.best = min(self.best, search.fitness_model.fitness(result))
        self.training = ""
        self._describe()

    def on_generation_end(self, search, info):
        expected = search.cfg.evolution.population * (info.generation + 1)
        if not self.by_budget and self.bar.n < expected:  # duplicates inside a generation are trained once
            self.bar.update(expected - self.bar.n)
        self._describe()

    def on_search_end(self, search):
        heartbeat.unlisten(self.on_beat)
        if self.bar is not None:
            self.bar.close()


class ClockKeeper(Callback):
    """With a time budget: records the seconds spent after every generation (``gnas.runs.clock``),
    so a resume counts on from them."""

    def __init__(self, run_path: Any, reserve_s: float) -> None:
        self.run_path = run_path
        self.reserve_s = reserve_s

    def on_generation_end(self, search, info):
        from gnas.runs import clock

        clock.save(self.run_path, self.reserve_s)


class FinalTrainingProgress:
    """A line per final training on stderr: epoch, batch, elapsed time, at most how long is left.

    On a terminal (or a notebook) the line is rewritten with every heartbeat
    (``gnas.runs.heartbeat``) and after every epoch; elsewhere (a log file) a
    line is written at most every :data:`QUIET_S` seconds and when that training
    stops. Called with (which training, of how many), it returns the epoch report
    the end-of-search room hands to the executor
    (:data:`gnas.search.final.FinalProgress`); :meth:`on_beat` listens to the
    heartbeat of the training in progress.
    """

    def __init__(self, max_epochs: int, patience: int, stream: Any = None) -> None:
        self.max_epochs = max_epochs
        self.patience = patience
        self.stream = stream or sys.stderr
        self.which = ""
        self.started = time.monotonic()
        self.last_epoch = ""
        self._shown = 0.0

    def _line(self, text: str, end: bool = False) -> None:
        live = is_live(self.stream)
        now = time.monotonic()
        if live or end or now - self._shown >= QUIET_S:
            self._shown = now
            elapsed = _clock_text(now - self.started)
            print(f"\r{self.which}: {text}, {elapsed} elapsed   ", end="\n" if (end or not live) else "",
                  file=self.stream, flush=True)

    def on_beat(self, beat: heartbeat.Beat) -> None:
        """A heartbeat of the final training in progress: its epoch, batch and time left at most."""
        if not self.which:
            return
        elapsed = time.monotonic() - self.started
        done = (beat.epoch - 1 + beat.batch / max(1, beat.batches))
        bound = ""
        if done > 0:
            bound = f", at most {_clock_text(elapsed / done * (self.max_epochs - done))} left"
        self._line(f"epoch {beat.epoch}/{self.max_epochs}, batch {beat.batch}/{beat.batches}"
                   f"{self.last_epoch}{bound}")

    def __call__(self, index: int, count: int) -> "Callable[[dict[str, Any]], None] | None":
        if self.max_epochs <= 0:
            return None
        self.which, self.started, self.last_epoch = f"final training {index}/{count}", time.monotonic(), ""

        def report(epoch: dict[str, Any]) -> None:
            end = (epoch["epoch"] - epoch["best_epoch"] >= self.patience
                   or epoch["epoch"] >= self.max_epochs)
            self.last_epoch = f" (val error {epoch['val_error']:.4f}, best epoch {epoch['best_epoch']})"
            self._line(f"epoch {epoch['epoch']}/{self.max_epochs}, val error {epoch['val_error']:.4f}, "
                       f"best epoch {epoch['best_epoch']}", end=end)
        return report


def _clock_text(seconds: float) -> str:
    """``1:05`` or ``1:02:05``: a duration as a progress line shows it."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
