"""Run configuration: nested frozen dataclasses, loaded from TOML and ``--set``.

Every key has a type and an allowed range or set of choices declared next to its
default, so a typo or an out-of-range value is refused with one line that names the
key, the value and what is allowed (neat-python's strictness), instead of surfacing
an hour later as a strange search. The resolved configuration is written into every
run directory, so a run can always be reproduced and resumed as it was run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

import tomli_w

from gnas.errors import ConfigError


def _opt(default: Any, *, lo: float | None = None, hi: float | None = None,
         choices: tuple[str, ...] | None = None, doc: str = "") -> Any:
    """A dataclass field carrying its allowed range (inclusive) or choices."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "choices": choices, "doc": doc})


@dataclass(frozen=True)
class DataConfig:
    """Which data set, where to find it and how much of it to use."""

    dataset: str = _opt("digits", doc="a name from `gnas datasets`, or a path to an .npz, "
                        "a .csv[:target] or an image folder")
    data_dir: str = _opt("", doc="extra directory searched before the Keras cache")
    max_train_samples: int = _opt(0, lo=0, doc="0 = the whole training split")
    val_fraction: float = _opt(0.2, lo=0.01, hi=0.5,
                                doc="share of the training split held out for validation")
    task: str = _opt("auto", choices=("auto", "classification", "regression"),
                     doc="one's own data: auto infers it from the targets")


@dataclass(frozen=True)
class SpaceConfig:
    """The search space: stages of Genetic-CNN style DAGs, widths, limits."""

    kind: str = _opt("genetic_cnn", choices=("genetic_cnn", "nb201"),
                     doc="genetic_cnn: stages of Genetic-CNN DAGs trained on the data set; nb201: the "
                         "NAS-Bench-201 cell, evaluated by table lookup (gnas.genome.factory.SPACES)")
    family: str = _opt("auto", choices=("auto", "conv", "dense"),
                     doc="networks searched; auto: conv for images except digits, dense otherwise")
    stage_nodes: tuple[int, ...] = _opt((3, 4, 4), lo=2, hi=7,
                                         doc="nodes of each stage's DAG, one entry per stage")
    conv_widths: tuple[int, ...] = _opt((8, 16, 32, 64), lo=1, hi=4096, doc="filters a conv stage may have")
    dense_widths: tuple[int, ...] = _opt((32, 64, 128, 256), lo=1, hi=65536,
                                          doc="units a dense stage may have")
    width_bits: int = _opt(2, lo=1, hi=6, doc="Gray-coded bits per stage choosing its width")
    max_depth: int = _opt(3, lo=1, hi=32, doc="most stages active at once")
    max_nodes: int = _opt(1024, lo=1, doc="most units/filters over all active nodes")
    max_complexity: int = _opt(0, lo=0, doc="C_max_allowed; 0 = no limit")
    complexity: str = _opt("params", choices=("params", "flops"), doc="what C counts in the fitness")


@dataclass(frozen=True)
class EvolutionConfig:
    """The genetic algorithm (paper Table I and Algorithm 1)."""

    population: int = _opt(8, lo=2, hi=100000, doc="individuals per generation (N)")
    generations: int = _opt(3, lo=1, hi=1000000, doc="generations after the initial one")
    elite: int = _opt(1, lo=0, doc="best individuals copied unchanged")
    tournament: int = _opt(3, lo=1, hi=1000, doc="tournament size (aging: the sample size)")
    aging_children: int = _opt(0, lo=0, hi=100000,
                               doc="aging: children per generation, the oldest as many die; 0 = the "
                                   "older half; 1 = Real et al.'s one child per step")
    strategy: str = _opt("ga", choices=("ga", "random", "aging"),
                         doc="ga: the paper's; random: uniform genomes; aging: regularized evolution")
    max_trainings: int = _opt(0, lo=0, doc="stop after this many trained networks; 0 = no budget")
    max_epochs_total: int = _opt(0, lo=0, doc="stop when the run's training epochs, final trainings "
                                              "included, would exceed this; 0 = no budget")
    max_eval_seconds: float = _opt(0.0, lo=0.0, doc="stop before the evaluation that would take the search's "
                              "clock (the evaluations' seconds; simulated for a table) past this; 0 = none")
    max_seconds: float = _opt(0.0, lo=0.0, doc="wall-clock budget of the whole run in seconds, calibration and "
                                              "final training included (--time-budget); 0 = none")
    final_candidates: int = _opt(2, lo=0, hi=100, doc="best networks re-trained before the final pick")
    final_seeds: int = _opt(2, lo=0, hi=100,
                            doc="extra seeds per final candidate (count in the budget); 0 = pick on one training")
    novelty_tries: int = _opt(20, lo=0, hi=10000,
                              doc="re-mutations of a child whose network is taken or evaluated; 0 = none")
    seed: int = _opt(0, lo=0, hi=2**31 - 1, doc="seeds the whole run: genomes, weights, batch orders")
    init: str = _opt("coe", choices=("coe", "random"),
                    doc="coe: a logistic map at the edge of chaos, thresholded at lambda_c; "
                        "random: uniform bits")
    lambda_c: float = _opt(-1.0, lo=-1.0, hi=1.0, doc="-1 = measure it (gnas chaos)")
    indpb: float = _opt(0.0, lo=0.0, hi=1.0, doc="per-bit flip probability; 0 = 1/length")
    alpha: float = _opt(0.1, lo=0.0, hi=100.0, doc="weight of C/C_max in the fitness")
    mu: float = _opt(-0.05, lo=-100.0, hi=100.0, doc="weight of the pruned fraction P; negative rewards pruning")
    growth: bool = _opt(True, doc="start from base models with only stage 0 active")
    grow_rate: float = _opt(0.2, lo=0.0, hi=1.0,
                            doc="chance that a mutation also switches the next stage on while growing")
    competition: bool = _opt(True, doc="layer-wise competition: evaluate champions of the best variants")
    champions: int = _opt(1, lo=0, hi=100, doc="champions built per generation from the best individuals")
    objectives: str = _opt("error", choices=("error", "error,params", "error,flops"),
                          doc="error: the weighted fitness; two objectives: NSGA-II")
    max_consecutive_failures: int = _opt(20, lo=1,
                                        doc="stop the run after this many failed evaluations in a row")
    inherit: str = _opt("none", choices=("none", "parent", "first"),
                        doc="a child's matching layers start from its parent's trained weights: none, "
                            "parent (every matching layer) or first (stage 0 only)")
    inherit_max_mb: int = _opt(256, lo=1, hi=1000000,
                               doc="at most this many MB of parents' weights kept in the run directory")


@dataclass(frozen=True)
class TrainConfig:
    """How one candidate is trained and scored."""

    epochs: int = _opt(4, lo=1, hi=10000, doc="training epochs of a candidate in the search (fidelity full)")
    batch_size: int = _opt(32, lo=0, hi=65536, doc="0 = auto: largest batch that fits in 80% of memory")
    threads: int = _opt(0, lo=0, hi=1024, doc="TensorFlow threads per evaluation; 0 = all cores")
    bn_momentum: float = _opt(0.9, lo=0.0, hi=0.999, doc="momentum of the batch-norm moving statistics")
    weight_scale: float = _opt(2.0, lo=0.01, hi=100.0,
                               doc="sigma^2 of fan-in weight init; also sets where lambda_c lies (gnas chaos)")
    eval_timeout: float = _opt(0.0, lo=0.0, doc="seconds; 0 = none")
    group_size: int = _opt(8, lo=1, hi=64,
                           doc="candidates trained together in one step (same scores at any size > 1); "
                               "1 = one at a time, Keras' shuffle")
    mixed_precision: bool = _opt(False, doc="float16 compute with float32 weights, on a GPU only")
    search_samples: int = _opt(0, lo=0, doc="the search trains on the first N samples of the training split "
                                             "(the final training on all of it); 0 = all")


@dataclass(frozen=True)
class PruneConfig:
    """Back-propagation pruning guided by the Markov analysis."""

    fraction: float = _opt(0.0, lo=0.0, hi=0.999, doc="target pruned fraction in [0, 1); 0 = no pruning")
    threshold: float = _opt(0.0, lo=0.0, hi=1.0, doc="start pruning when best error <= this")
    growth_generations: int = _opt(0, lo=0, doc="generations of growth before pruning; 0 = half the generations")
    cycles: int = _opt(40, lo=1, hi=49, doc="fine-tuning steps per cut (< 50)")
    tune_lr_scale: float = _opt(0.3, lo=1e-4, hi=1.0,
                                doc="fine-tuning learning rate, as a fraction of the network's own")
    mask: str = _opt("none", choices=("none", "irregular", "row", "column", "block", "nm"),
                    doc="weight masks the pruner adds inside kept layers; none = cuts only")
    nm: str = _opt("2:4", doc="N:M pattern of mask nm: N weights kept in every M")
    candidates: int = _opt(1, lo=1, hi=100, doc="best individuals pruned")
    max_rejections: int = _opt(3, lo=1, hi=1000, doc="stop after this many rejected cuts in a row")
    p1_weight: float = _opt(0.5, lo=0.0, hi=1.0, doc="weight of Markov survival p1 vs saliency")
    mask_sparsity: float = _opt(0.0, lo=0.0, hi=0.99, doc="weight-mask sparsity; 0 = prune.fraction")
    mask_score: str = _opt("magnitude", choices=("magnitude", "saliency"),
                          doc="how weights are ranked for the masks")


@dataclass(frozen=True)
class FinalConfig:
    """The final training of the chosen network (see :mod:`gnas.backend.convergence`)."""

    max_epochs: int = _opt(50, lo=0, hi=100000,
                           doc="train the final network up to this many epochs with early stopping "
                               "on validation; 0 = keep the search's own training")
    patience: int = _opt(5, lo=1, hi=10000, doc="epochs without a new best validation loss before stopping")
    lr_factor: float = _opt(0.0, lo=0.0, hi=0.99,
                            doc="multiply the learning rate by this after lr_patience epochs without a new "
                                "best validation loss; 0 = keep it constant")
    lr_patience: int = _opt(2, lo=1, hi=10000, doc="epochs without a new best before the learning rate drops")


@dataclass(frozen=True)
class FidelityConfig:
    """How many epochs a candidate trains: once at train.epochs, or over rungs (successive halving)."""

    schedule: str = _opt("full", choices=("full", "sha"),
                         doc="full: every candidate trains train.epochs; sha: successive halving over rungs")
    min_epochs: int = _opt(1, lo=1, hi=10000, doc="epochs of the first rung (sha)")
    max_epochs: int = _opt(9, lo=1, hi=100000, doc="epochs of the last rung (sha)")
    eta: int = _opt(3, lo=2, hi=100, doc="rungs grow by this factor; the best 1/eta of a rung go on (sha)")


@dataclass(frozen=True)
class ParallelConfig:
    """Where evaluations run."""

    workers: int = _opt(0, lo=0, hi=4096, doc="Ray actors evaluating at once; 0 or 1 = in process, no Ray")
    ray_address: str = _opt("", doc="HOST:PORT of a Ray cluster to join; empty = a local one")
    gpus_per_worker: float = _opt(0.0, lo=0.0, hi=64.0,
                                   doc="GPUs per Ray actor; 0.25 = four actors share one")
    recycle_every: int = _opt(0, lo=0, doc="replace a worker after N evaluations; 0 = never")
    restarts: int = _opt(2, lo=0, hi=100, doc="times a search whose Ray processes died is resumed from its "
                         "last checkpoint by itself; 0 = stop and print the resume command")


@dataclass(frozen=True)
class PlugsConfig:
    """Names of the user's own objects a run was made with (empty: built from this config).

    Recorded so that a resume can insist on the same objects; see ``gnas.session.Plugs``.
    """

    space: str = _opt("", doc="a space object passed to gnas.evolve(space=...)")
    evaluator: str = _opt("", doc="an evaluator object passed to gnas.evolve(evaluator=...)")
    strategy: str = _opt("", doc="a strategy object passed to gnas.evolve(strategy=...)")
    schedule: str = _opt("", doc="a schedule object passed to gnas.evolve(schedule=...)")


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; saved as config.toml in its run directory."""

    data: DataConfig = field(default_factory=DataConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    evolution: EvolutionConfig = field(default_factory=EvolutionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    final: FinalConfig = field(default_factory=FinalConfig)
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    plugs: PlugsConfig = field(default_factory=PlugsConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict (tuples become lists), ready for TOML or JSON."""
        out: dict[str, dict[str, Any]] = {}
        for sec in fields(self):
            section = getattr(self, sec.name)
            out[sec.name] = {f.name: (list(v) if isinstance(v := getattr(section, f.name), tuple) else v)
                             for f in fields(section)}
        return out


PRESETS: dict[str, dict[str, Any]] = {
    # Paper Table I: N = 10, l = 31 (4 stage bits + 3+6+6+6+6 edges), 10 generations,
    # 10 epochs, max depth 5, max nodes 1024.
    "paper": {
        "evolution.population": 10, "evolution.generations": 10,
        "train.epochs": 10, "space.stage_nodes": (3, 4, 4, 4, 4),
        "space.max_depth": 5, "space.max_nodes": 1024,
    },
    "default": {},
    "tiny": {"evolution.population": 4, "evolution.generations": 2, "train.epochs": 1,
             "space.stage_nodes": (3, 3), "space.max_depth": 2, "final.max_epochs": 3},
}


#: What a space without stages cannot use: competition and growth act on stages, and a
#: network that is not trained has no re-seeded final pick or final training.
STAGELESS_DEFAULTS: dict[str, Any] = {
    "evolution.competition": False, "evolution.growth": False, "evolution.final_seeds": 0,
    "final.max_epochs": 0,
}
#: Defaults of a ``space.kind``, applied under the preset, the file and the overrides.
#: NAS-Bench-201's lambda_c is the paper's value for images until one is measured. Its
#: GA is smaller and more selective than the Genetic-CNN default (6 individuals, 3 elites,
#: tournaments of 6), tuned on the CIFAR-10 table only (docs/nb201.md has the figures).
SPACE_DEFAULTS: dict[str, dict[str, Any]] = {
    "nb201": {**STAGELESS_DEFAULTS, "data.dataset": "cifar10", "evolution.lambda_c": 0.881,
              "evolution.population": 6, "evolution.elite": 3, "evolution.tournament": 6},
}


def choices_of(key: str) -> tuple[str, ...]:
    """The allowed values of a ``section.key`` with a fixed vocabulary (for CLI flags).

    The command line reads them from the field itself, so a new choice is added in
    one place.
    """
    section, _, name = key.partition(".")
    field_ = _section_fields(section).get(name)
    if field_ is None or not field_.metadata.get("choices"):
        raise ConfigError(f"{key} is not a config key with a fixed set of choices.")
    return tuple(field_.metadata["choices"])


def _check_value(section: str, f: dataclasses.Field, value: Any) -> Any:
    """Coerce ``value`` to the type of ``f`` and check its range; ConfigError if not."""
    key = f"{section}.{f.name}"
    default = f.default
    meta = f.metadata
    value = _coerce(key, default, value)
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if isinstance(item, bool) or isinstance(item, str):
            continue
        if isinstance(item, float) and not math.isfinite(item):
            raise ConfigError(f"{key}: expected a finite number. Received: {key}={item!r}.")
        lo, hi = meta.get("lo"), meta.get("hi")
        if (lo is not None and item < lo) or (hi is not None and item > hi):
            raise ConfigError(f"{key}={_shown(item)} is out of range: allowed "
                              f"{_range_text(lo, hi)}. Set a value in that range.")
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{key}={value!r} is not allowed: choose one of "
                          f"{', '.join(meta['choices'])}.")
    if isinstance(value, tuple) and not value:
        raise ConfigError(f"{key}: expected a non-empty list. Received: {key}=[].")
    return value


def _shown(item: Any) -> str:
    """A number as a message shows it: an integer of more than 15 digits (``1e300``
    coerced to int) in exponent form, anything else as written."""
    if isinstance(item, int) and abs(item) >= 10 ** 15:
        return f"{float(item):.3g}"
    return repr(item)


def _range_text(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"[{lo}, {hi}]"
    return f">= {lo}" if lo is not None else f"<= {hi}"


def _coerce(key: str, default: Any, value: Any) -> Any:
    """Values from TOML or the command line, converted to the default's type."""
    want = type(default)
    try:
        if want is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            if isinstance(value, bool):
                return value
            raise TypeError
        if want is tuple:
            if isinstance(value, str):
                value = [v for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
            if not isinstance(value, (list, tuple)):
                raise TypeError
            return tuple(_coerce(key, default[0], v) for v in value)
        if want is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if want is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if want is str:
            if not isinstance(value, str):
                raise TypeError
            return value
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{key}: expected {want.__name__}{' of ' + type(default[0]).__name__ if want is tuple else ''}. "
                      f"Received: {key}={value!r} ({type(value).__name__}).")


def _section_fields(section: str) -> dict[str, dataclasses.Field]:
    classes = {f.name: f.default_factory for f in fields(RunConfig)}  # type: ignore[misc]
    if section not in classes:
        raise ConfigError(f"unknown config section [{section}]: expected one of {', '.join(classes)}.")
    return {f.name: f for f in fields(classes[section]())}


def apply_overrides(cfg: RunConfig, overrides: Mapping[str, Any]) -> RunConfig:
    """Return ``cfg`` with ``{"section.key": value}`` applied and every value checked."""
    sections: dict[str, dict[str, Any]] = {}
    for dotted, value in overrides.items():
        if "." not in dotted:
            raise ConfigError(f"config key {dotted!r} must be written section.key, e.g. evolution.population.")
        section, key = dotted.split(".", 1)
        known = _section_fields(section)
        if key not in known:
            raise ConfigError(f"unknown config key {section}.{key}: [{section}] accepts "
                              f"{', '.join(known)}.")
        sections.setdefault(section, {})[key] = _check_value(section, known[key], value)
    for section, values in sections.items():
        cfg = replace(cfg, **{section: replace(getattr(cfg, section), **values)})
    validate(cfg)
    return cfg


def validate(cfg: RunConfig) -> None:
    """Checks that involve more than one key."""
    ev, sp = cfg.evolution, cfg.space
    if ev.elite >= ev.population:
        raise ConfigError(f"evolution.elite={ev.elite} must be below evolution.population={ev.population}.")
    if sp.max_depth > len(sp.stage_nodes):
        raise ConfigError(f"space.max_depth={sp.max_depth} exceeds the {len(sp.stage_nodes)} stages of "
                          f"space.stage_nodes; lower it or add stages.")
    fi = cfg.fidelity
    if fi.min_epochs > fi.max_epochs:
        raise ConfigError(f"fidelity.min_epochs={fi.min_epochs} exceeds fidelity.max_epochs={fi.max_epochs}; "
                          f"the first rung must not train longer than the last.")
    n, _, m = cfg.prune.nm.partition(":")
    if not (n.isdigit() and m.isdigit() and 0 < int(n) < int(m)):
        raise ConfigError(f"prune.nm={cfg.prune.nm!r}: expected N:M with 0 < N < M, e.g. 2:4.")


def flatten(mapping: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """``{"evolution": {"population": 8}}`` -> ``{"evolution.population": 8}``."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            if where:
                raise ConfigError(f"config section [{where}.{key}] is too deep: gnas sections hold keys only.")
            flat.update({f"{key}.{k}": v for k, v in flatten(value, key).items()})
        elif not where:
            raise ConfigError(f"config key {key!r} must sit in a section such as [evolution].")
        else:
            flat[key] = value
    return flat


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                preset: str | None = None, defaults: Mapping[str, Any] | None = None) -> RunConfig:
    """Build a RunConfig: defaults (the space's, then ``defaults``), then a preset, then a
    TOML file, then overrides."""
    if preset and preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}.")
    file = flatten(read_toml(path)) if path else {}
    overrides = dict(overrides or {})
    kind = {**(PRESETS[preset] if preset else {}), **file, **overrides}.get("space.kind")
    space_defaults = SPACE_DEFAULTS.get(kind, {}) if isinstance(kind, str) else {}
    cfg = apply_overrides(RunConfig(), {**space_defaults, **(defaults or {})})
    if preset:
        cfg = apply_overrides(cfg, PRESETS[preset])
    if file:
        cfg = apply_overrides(cfg, file)
    return apply_overrides(cfg, overrides)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file, turning every failure into a one-line ConfigError."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found: check the path.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML ({exc}); fix the line it names.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc}).") from None


def to_toml(cfg: RunConfig) -> str:
    """Serialise the resolved configuration with a TOML writer.

    A real writer, not hand-quoting: a path with a newline, a tab, quotes or any
    other character still reads back as exactly the same string, so a run whose
    data directory has an odd name can always be resumed and reported.
    """
    return tomli_w.dumps(cfg.to_dict())


# Keys a resume may change: how long to search and where or how fast to evaluate.
# Every other key defines the search itself (its genomes, their scores, the cache
# keys), so changing it mid-run would mix two different searches in one directory.
RESUMABLE_KEYS = ("evolution.generations", "evolution.max_trainings", "evolution.max_epochs_total",
                  "evolution.max_eval_seconds",
                  "evolution.max_seconds",
                  "evolution.max_consecutive_failures", "data.data_dir", "train.threads",
                  "train.eval_timeout", "parallel.")


def search_defining(cfg: RunConfig) -> dict[str, Any]:
    """The flat ``section.key -> value`` of every key that defines the search."""
    return {k: v for k, v in flatten(cfg.to_dict()).items() if not k.startswith(RESUMABLE_KEYS)}


def search_digest(values: Mapping[str, Any]) -> str:
    """SHA-256 of search-defining values, so their record at run start is itself checked."""
    body = json.dumps(dict(values), sort_keys=True, allow_nan=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["evolution.population=20"]`` -> overrides, values parsed as TOML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. evolution.population=20.")
        try:
            out[key.strip()] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = raw.strip()
    return out
