"""Command-line flags shared by ``evolve`` and ``resume``, mapped to config keys."""
from __future__ import annotations

import argparse
from typing import Any

from gnas.config import choices_of, parse_set

# flag dest -> config key
FLAG_KEYS = {
    "dataset": "data.dataset", "data_dir": "data.data_dir",
    "max_train_samples": "data.max_train_samples",
    "generations": "evolution.generations", "population": "evolution.population",
    "seed": "evolution.seed", "init": "evolution.init", "lambda_c": "evolution.lambda_c",
    "objectives": "evolution.objectives",
    "strategy": "evolution.strategy", "budget": "evolution.max_trainings",
    "budget_epochs": "evolution.max_epochs_total", "budget_seconds": "evolution.max_eval_seconds",
    "space": "space.kind",
    "epochs": "train.epochs", "fidelity": "fidelity.schedule", "inherit": "evolution.inherit",
    "family": "space.family", "batch_size": "train.batch_size", "threads": "train.threads",
    "eval_timeout": "train.eval_timeout", "time_budget": "evolution.max_seconds",
    "prune": "prune.fraction", "mask": "prune.mask", "nm": "prune.nm",
    "workers": "parallel.workers", "ray_address": "parallel.ray_address",
    "gpus_per_worker": "parallel.gpus_per_worker",
}


def batch_size(text: str) -> int:
    """``auto`` (0: largest batch that fits) or a positive integer."""
    if text == "auto":
        return 0
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {text!r}") from None


def positive_int(text: str) -> int:
    """An integer of at least 1 (a budget of trained networks or epochs)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """A number of seconds above 0 (a budget on the search's clock)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value
def duration(text: str) -> float:
    """``30m``, ``2h``, ``90s`` or plain seconds, as seconds (``--time-budget``)."""
    from gnas.search.timing import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_search_flags(p: argparse.ArgumentParser) -> None:
    """Flags of a new search (all optional; defaults come from the config)."""
    p.add_argument("--population", type=int, help="individuals per generation")
    p.add_argument("--epochs", type=int, help="training epochs per evaluation")
    p.add_argument("--fidelity", choices=choices_of("fidelity.schedule"),
                   help="full: every candidate trains --epochs; sha: successive halving "
                   "over rungs of fidelity.min_epochs..max_epochs")
    p.add_argument("--family", choices=choices_of("space.family"),
                   help="the networks searched: conv or dense; auto: conv for images (digits: "
                   "dense), dense for the rest (space.family)")
    p.add_argument("--inherit", choices=choices_of("evolution.inherit"),
                   help="children start from their parents' trained weights where layers match "
                   "(evolution.inherit)")
    add_resume_flags(p)


def add_resume_flags(p: argparse.ArgumentParser) -> None:
    """Flags a resume accepts too: how long and where the search runs (``RESUMABLE_KEYS``)."""
    p.add_argument("--generations", type=int, help="generations after the initial one")
    p.add_argument("--budget", type=positive_int, metavar="N",
                   help="stop after N trained networks (evolution.max_trainings)")
    p.add_argument("--budget-epochs", dest="budget_epochs", type=positive_int, metavar="N",
                   help="spend at most N training epochs in all, final trainings included "
                   "(evolution.max_epochs_total)")
    p.add_argument("--budget-seconds", dest="budget_seconds", type=positive_seconds, metavar="N",
                   help="stop before the evaluation that would take the search's clock past N "
                   "seconds: the simulated clock of a table space (evolution.max_eval_seconds)")
    p.add_argument("--time-budget", dest="time_budget", type=duration, metavar="DURATION",
                   help="wall clock of the whole run (30m, 2h, 90s, seconds), calibration and final "
                   "training included; alone, it plans the run to fit (evolution.max_seconds)")
    p.add_argument("--workers", type=int, help="parallel evaluation workers (Ray when > 1)")
    p.add_argument("--ray-address", dest="ray_address", help="join a Ray cluster: auto or HOST:PORT")
    p.add_argument("--gpus-per-worker", dest="gpus_per_worker", type=float)
    p.add_argument("--eval-timeout", dest="eval_timeout", type=float,
                   help="seconds per evaluation: a training over it fails with that reason (in this "
                   "process at the next batch boundary, or on Ray)")
    p.add_argument("--threads", type=int, help="TensorFlow threads per evaluation")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config key, e.g. --set evolution.alpha=0.2 (a resume: only "
                   "how long and where the search runs)")


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """Config overrides from the flags actually given, then --set (which wins)."""
    out = {FLAG_KEYS[name]: value for name, value in vars(args).items()
           if name in FLAG_KEYS and value is not None}
    if getattr(args, "no_competition", False):
        out["evolution.competition"] = False
    out.update(parse_set(getattr(args, "overrides", [])))
    return out
