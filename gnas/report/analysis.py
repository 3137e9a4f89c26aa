"""Reading a run directory for analysis: the functions behind the notebooks and ``gnas markov``.

Everything here only reads: ``state.json`` (logbook), ``markov/*.npz``,
``evaluations.db`` and, when calibration wrote one, ``chaos.json``. Figures
are bare matplotlib ``Figure`` objects (never pyplot), so they save headless
and display inline in a notebook alike.

Predicted vs observed convergence: a generation ``g`` record predicts
``t(g)`` more generations until the chain is absorbed, i.e. convergence at
generation ``g + t(g)``; the observed convergence generation follows
:data:`gnas.markov.chain.CONVERGENCE_DEFINITION`.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from gnas.markov import chain as markov
from gnas.errors import RunDirError
from gnas.runs.directory import RunDir, resume_command
from gnas.runs.state import SearchState

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

RUN_DIR_ENV = "GNAS_RUN_DIR"
DEFAULT_ROOTS = ("runs", "../runs")  # from the repository root, or from notebooks/
CHAOS_FILE = "chaos.json"


# ------------------------------------------------------------------ finding ---
def open_run(path: str | os.PathLike) -> RunDir:
    """A run directory checked to be a gnas run (RunDirError, one line, otherwise)."""
    run_dir = RunDir(path)
    run_dir.open_existing()
    return run_dir


def find_run(run: str | os.PathLike | None = None,
             roots: Iterable[str | os.PathLike] = DEFAULT_ROOTS) -> RunDir:
    """The run a notebook shows: ``run`` (its parameters cell), else ``$GNAS_RUN_DIR``, else the
    most recently updated *finished* run under ``roots``.

    A relative ``run`` is taken from the working directory, else from its parent:
    a kernel starts in ``notebooks/``, while the user gave the path from where
    they started Jupyter (the repository root). "Most recently updated" is the
    newest ``state.json`` (or run marker, for a run that has not checkpointed
    yet), so a resumed old run counts as new; a newer unfinished run is named,
    not taken silently.
    """
    chosen = run if run not in (None, "") else os.environ.get(RUN_DIR_ENV)
    if chosen:
        return open_run(_resolve(Path(chosen)))
    runs = [d for root in roots if Path(root).is_dir()
            for d in Path(root).iterdir() if RunDir(d).is_run()]
    if not runs:
        raise RunDirError(f"no gnas run under {' or '.join(map(str, roots))}; run `gnas evolve`, set "
                          f"run = 'path/to/run' in the parameters cell or {RUN_DIR_ENV}=/path/to/run")
    runs.sort(key=_last_update, reverse=True)
    finished = [d for d in runs if _finished(d)]
    if not finished:
        print(f"no finished run under {' or '.join(map(str, roots))}; showing the newest, {runs[0]}, "
              "which has not finished")
        return open_run(runs[0])
    if finished[0] != runs[0]:
        print(f"showing {finished[0]}, the newest finished run; {runs[0]} is newer but has not finished "
              "(set run = its path to see it)")
    return open_run(finished[0])


def _resolve(path: Path) -> Path:
    """``path`` as given, else (relative) from the parent of the working directory, where it exists."""
    if path.is_absolute() or path.exists():
        return path
    above = Path.cwd().parent / path
    return above if above.exists() else path


def _finished(path: Path) -> bool:
    state = RunDir(path).load_state(warn=lambda message: None) if RunDir(path).state_path.exists() else None
    return bool(state is not None and state.finished)


def _last_update(path: Path) -> float:
    run_dir = RunDir(path)
    stamp = run_dir.state_path if run_dir.state_path.exists() else path / "gnas-run.json"
    return stamp.stat().st_mtime


def finished_state(run_dir: RunDir) -> SearchState:
    """The run's checkpoint, or RunDirError when no generation has finished yet."""
    state = run_dir.load_state(warn=lambda message: None)
    if state is None or state.generation < 0 or not state.logbook:
        raise RunDirError(f"{run_dir.path} has no finished generation yet; wait for generation 0 "
                          f"to end or `{resume_command(run_dir.path)}`")
    return state


# ------------------------------------------------------------------ logbook ---
def logbook(run_dir: RunDir) -> dict[str, np.ndarray]:
    """The logbook as float arrays, one entry per generation, sorted (NaN where missing).

    Keys: every numeric column the engine logs (``generation``, ``best``,
    ``mean``, ``std``, ``best_error``, ``diversity``, ``entropy``, ``lambda``,
    ``evaluations``, ``failures``, ``elapsed_s``, ...). A generation logged
    twice (a resumed run) keeps its last entry.
    """
    rows = {int(r["generation"]): r for r in finished_state(run_dir).logbook}
    ordered = [rows[g] for g in sorted(rows)]
    columns = dict.fromkeys(k for r in ordered for k in r)  # union, in first-seen order
    keys = [k for k in columns if all(_is_number(r.get(k)) or r.get(k) is None for r in ordered)]
    return {k: np.array([np.nan if r.get(k) is None else float(r[k]) for r in ordered]) for k in keys}


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def best_per_generation(run_dir: RunDir) -> list[float]:
    """Best (minimised) ``F`` of generations 0, 1, ... (the curve convergence is measured on)."""
    return markov.best_fitness_curve(finished_state(run_dir).logbook)


# ------------------------------------------------------------------- markov ---
def markov_records(run_dir: RunDir) -> list[dict[str, np.ndarray]]:
    """Every generation's Markov record, sorted; RunDirError when there is none."""
    finished_state(run_dir)
    if not run_dir.markov_dir.is_dir() or not any(run_dir.markov_dir.glob("gen_*.npz")):
        raise RunDirError(f"{run_dir.path} has no Markov records (markov/gen_*.npz); they are written "
                          f"as each generation ends: `{resume_command(run_dir.path)}` adds them from now on")
    return markov.load_run(run_dir.markov_dir)


def markov_summary(run_dir: RunDir, records: Sequence[dict[str, np.ndarray]] | None = None
                   ) -> dict[str, Any]:
    """:func:`gnas.markov.chain.summarise` of the run (what ``gnas markov --json`` prints).

    ``records`` saves reading them again when the caller already has them.
    """
    records = markov_records(run_dir) if records is None else records
    return markov.summarise_records(records, best_per_generation(run_dir), run_dir.markov_dir)


def matrix_distance(record: dict[str, np.ndarray]) -> float:
    """Mean total-variation distance between empirical and theoretical rows, observed rows only.

    0 means the operators moved exactly as eq. 4-6 predicts; NaN when no row
    was observed (generation 0), since there is nothing to compare.
    """
    observed = np.asarray(record["observed"], dtype=bool)
    if not observed.any():
        return math.nan
    diff = np.abs(record["empirical"][observed] - record["theoretical"][observed])
    return float(0.5 * diff.sum(axis=1).mean())


def convergence_table(run_dir: RunDir) -> list[dict[str, Any]]:
    """One row per recorded generation: predictions, entropy, fit of the theory, best fitness.

    ``predicted_convergence`` is ``generation + predicted_generations_to_absorption``,
    directly comparable with ``observed_generations_to_convergence`` (same for every row).
    """
    loaded = markov_records(run_dir)
    summary = markov_summary(run_dir, loaded)
    book = logbook(run_dir)
    best = dict(zip(book["generation"].astype(int).tolist(), book["best"].tolist()))
    records = {int(r["generation"]): r for r in loaded}
    rows = []
    for entry in summary["generations"]:
        g, t = entry["generation"], entry["predicted_generations_to_absorption"]
        rows.append({**entry, "predicted_convergence": None if t is None else g + t,
                     "tv_distance": matrix_distance(records[g]), "best": best.get(g, math.nan),
                     "observed_generations_to_convergence": summary["observed_generations_to_convergence"]})
    return rows


def gene_survival(run_dir: RunDir) -> tuple[np.ndarray, np.ndarray]:
    """``(generations, p1)`` with ``p1[k, gene]`` the survival probability the pruner ranks by."""
    records = markov_records(run_dir)
    return (np.array([int(r["generation"]) for r in records]),
            np.vstack([r["gene_survival"] for r in records]))


def format_markov_summary(summary: dict[str, Any]) -> str:
    """A :func:`markov_summary` as a text table: one line per generation, then the observed value."""
    l = summary["l"]
    lines = [f"l = {l} connection genes (states 0..{l}); {len(summary['generations'])} generations recorded",
             "  gen  state entropy  rows observed  predicted gens to absorption  predicted convergence at"]
    for g in summary["generations"]:
        t = g["predicted_generations_to_absorption"]
        lines.append(f"  {g['generation']:>3}  {_num(g['state_entropy']):>13}  "
                     f"{g['rows_observed']:>6}/{l + 1:<6}  {_num(t):>28}  "
                     f"{_num(None if t is None else g['generation'] + t):>24}")
    observed = summary["observed_generations_to_convergence"]
    lines.append("observed generations to convergence: "
                 + (str(observed) if observed is not None else "not converged yet"))
    lines.append(f"({markov.CONVERGENCE_DEFINITION})")
    return "\n".join(lines)


def _num(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.2f}"


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows of dicts as an aligned text table (numbers to 4 significant digits, None as '-')."""
    def cell(x: Any) -> str:
        if x is None or (isinstance(x, float) and not math.isfinite(x)):
            return "-"
        return f"{x:.4g}" if isinstance(x, float) else str(x)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[k]) for row in cells]) for k, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(x.rjust(w) for x, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


# ---------------------------------------------------------- architectures ---
def top_architectures(run_dir: RunDir, k: int = 5) -> list[dict[str, Any]]:
    """The ``k`` best distinct networks evaluated, from ``evaluations.db`` (read only).

    Each: key, genome, fitness, val_error, params, flops, pruned_fraction,
    generation first reaching that fitness, number of evaluations, and a
    description when the run's data set is a built-in one.
    """
    from gnas.runs.store import EvaluationStore

    if not run_dir.db_path.is_file():
        raise RunDirError(f"{run_dir.db_path} is missing; this run has evaluated nothing yet")
    store = EvaluationStore(run_dir.db_path, read_only=True)
    try:
        rows = store.top_networks(k)
    finally:
        store.close()
    names = ("key", "genome", "fitness", "val_error", "params", "flops", "pruned_fraction",
             "generation", "evaluations")
    describe = _describer(run_dir)
    return [{**{n: r[n] for n in names}, "description": describe(r["genome"])} for r in rows]


def _describer(run_dir: RunDir):
    """Genome -> architecture in words, or None when the data set's shape is not known offline."""
    from gnas.datasets import list_datasets
    from gnas.errors import GnasError
    from gnas.genome.factory import make_space

    try:
        cfg = run_dir.load_config()
        info = next(d for d in list_datasets() if d.name == cfg.data.dataset)
        space = make_space(cfg, info)  # DatasetInfo carries the shape fields make_space reads
    except (GnasError, StopIteration, OSError):
        return lambda genome: None

    def describe(genome: str) -> str | None:
        try:
            return space.describe(tuple(int(c) for c in genome))
        except (GnasError, ValueError):
            return None
    return describe


# -------------------------------------------------------------------- chaos ---
def load_chaos(run_dir: RunDir) -> dict[str, Any] | None:
    """The edge-of-chaos calibration of the run (``chaos.json``), or None when it was not run.

    Returns ``{"lambda_c": float | None, "source": str, "reason": str,
    "sweep": {"lambda", "exponent", "std"}}`` with the sweep as float arrays
    sorted by lambda.
    """
    path = run_dir.path / CHAOS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        sweep = sorted(data.get("sweep") or [], key=lambda p: float(p["lambda"]))
        arrays = {k: np.array([float(p[k]) if p.get(k) is not None else np.nan for p in sweep])
                  for k in ("lambda", "exponent", "std")}
        return chaos_record(data, arrays)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RunDirError(f"{path} is not a readable chaos calibration ({type(exc).__name__}); "
                          f"recreate it with `gnas chaos`") from None


def chaos_record(data: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """A calibration as ``chaos.json`` holds it, in the form :func:`chaos_figure` draws."""
    if arrays is None:
        sweep = sorted(data.get("sweep") or [], key=lambda p: float(p["lambda"]))
        arrays = {k: np.array([float(p[k]) if p.get(k) is not None else np.nan for p in sweep])
                  for k in ("lambda", "exponent", "std")}
    lam, ci = data.get("lambda_c"), data.get("lambda_c_ci")
    return {"lambda_c": None if lam is None else float(lam), "source": str(data.get("source", "")),
            "reason": str(data.get("reason", "")), "sweep": arrays,
            "lambda_c_ci": None if not ci else [float(ci[0]), float(ci[1])],
            "crossing_at": data.get("crossing_at"), "robust": bool(data.get("robust", False)),
            "network": str(data.get("network", "search")),
            "weight_scale": data.get("weight_scale")}


def write_chaos_plot(data: dict[str, Any], path: str | os.PathLike, title: str = "") -> Path:
    """``chaos.png`` for a calibration record (what ``gnas chaos`` and a run's calibration draw)."""
    fig = chaos_figure(chaos_record(data))
    if title:
        fig.axes[0].set_title(title)
    out = Path(path)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    save_figure(fig, tmp, dpi=100)
    tmp.replace(out)
    return out


# ------------------------------------------------------------------ figures ---
def new_figure(ncols: int = 1, width: float = 6.0, height: float = 4.0,
            integer_x: bool = True) -> tuple["Figure", Any]:
    """A bare figure with ``ncols`` axes; x axes of generations or genes take integer ticks."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    for ax in axes if integer_x else ():
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, axes


def save_figure(fig: "Figure", path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write a figure as PNG with the Agg canvas (headless); returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return out


def fitness_figure(run_dir: RunDir) -> "Figure":
    """Best and mean fitness ``F`` (minimised) per generation, mean with a +-1 std band."""
    book = logbook(run_dir)
    fig, (ax,) = new_figure()
    g = book["generation"]
    ax.plot(g, book["best"], "o-", label="best F")
    ax.plot(g, book["mean"], "s--", label="mean F")
    ax.fill_between(g, book["mean"] - book["std"], book["mean"] + book["std"], alpha=0.2)
    ax.set(xlabel="generation", ylabel="fitness F (lower is better)", title="Fitness")
    ax.legend()
    return fig


def diversity_figure(run_dir: RunDir) -> "Figure":
    """Population diversity per generation: mean Hamming distance, per-locus entropy, lambda."""
    book = logbook(run_dir)
    panels = [(k, t) for k, t in (("diversity", "mean pairwise Hamming distance"),
                                  ("entropy", "per-locus entropy (bits)"),
                                  ("lambda", "lambda (share of connection genes on)")) if k in book]
    fig, axes = new_figure(len(panels), width=4.5)
    for ax, (key, title) in zip(axes, panels):
        ax.plot(book["generation"], book[key], "o-")
        ax.set(xlabel="generation", title=title)
    return fig


def convergence_figure(run_dir: RunDir) -> "Figure":
    """Predicted convergence generation (``g + t(g)``) per generation vs the observed one."""
    rows = convergence_table(run_dir)
    book = logbook(run_dir)
    observed = rows[0]["observed_generations_to_convergence"]
    fig, (left, right) = new_figure(2, width=5.5)
    g = [r["generation"] for r in rows]
    left.plot(g, [np.nan if r["predicted_convergence"] is None else r["predicted_convergence"]
                  for r in rows], "o-", label="predicted: g + t(g)")
    if observed is not None:
        left.axhline(observed, color="C3", linestyle="--", label=f"observed: {observed}")
    left.set(xlabel="generation g", ylabel="convergence generation", title="Predicted vs observed")
    left.legend()
    right.plot(book["generation"], book["best"], "o-", label="best F")
    right.plot(book["generation"], np.minimum.accumulate(np.nan_to_num(book["best"], nan=np.inf)),
               "k:", label="best so far")
    if observed is not None:
        right.axvline(observed, color="C3", linestyle="--", label="observed convergence")
    right.set(xlabel="generation", ylabel="fitness F", title="Best fitness")
    right.legend()
    return fig


def gene_survival_figure(run_dir: RunDir) -> "Figure":
    """Heat map of each connection gene's survival probability ``p1`` per generation."""
    generations, p1 = gene_survival(run_dir)
    fig, (ax,) = new_figure(width=max(6.0, 0.35 * p1.shape[1] + 2))
    im = ax.imshow(p1, aspect="auto", vmin=0.0, vmax=1.0, cmap="viridis",
                   extent=(-0.5, p1.shape[1] - 0.5, generations[-1] + 0.5, generations[0] - 0.5))
    ax.set(xlabel="connection gene", ylabel="generation", title="Per-gene survival probability p1")
    fig.colorbar(im, ax=ax, label="p1")
    return fig


def chaos_figure(chaos: dict[str, Any]) -> "Figure":
    """The calibration sweep: Lyapunov exponent vs lambda, ``lambda_c`` and its bootstrap interval.

    A crossing that was not robust is drawn dotted beside the preset the run used
    instead, so the figure shows why the preset was taken.
    """
    sweep = chaos["sweep"]
    fig, (ax,) = new_figure(integer_x=False)
    ax.errorbar(sweep["lambda"], sweep["exponent"], yerr=np.nan_to_num(sweep["std"]), fmt="o-", capsize=3,
                label="mean exponent (+-1 std over networks and batches)")
    ax.axhline(0.0, color="grey", linewidth=1)
    ci, scale = chaos.get("lambda_c_ci"), chaos.get("weight_scale")
    if chaos.get("network") == "theory" and scale:
        grid = np.linspace(max(float(np.nanmin(sweep["lambda"])), 1e-3), float(np.nanmax(sweep["lambda"])), 200)
        ax.plot(grid, 0.5 * np.log(grid * float(scale)), "--", color="C2", label="0.5 log(lambda sigma^2)")
    if ci:
        ax.axvspan(ci[0], ci[1], color="C3", alpha=0.15, label=f"95 % bootstrap interval [{ci[0]:.3f}, {ci[1]:.3f}]")
    crossing = chaos.get("crossing_at")
    if crossing is not None and not chaos.get("robust", True):
        ax.axvline(float(crossing), color="C1", linestyle=":", label=f"crossing {float(crossing):.3f} (not robust)")
    if chaos["lambda_c"] is not None:
        ax.axvline(chaos["lambda_c"], color="C3", linestyle="--",
                   label=f"lambda_c = {chaos['lambda_c']:.3f} ({chaos['source'] or 'measured'})")
    ax.legend(fontsize=8)
    finite = sweep["exponent"][np.isfinite(sweep["exponent"])]
    if len(finite):
        ax.set_ylim(bottom=max(float(np.percentile(finite, 5)) - float(np.nanmax(sweep["std"])), -1.5))
    ax.set(xlabel="lambda (share of genes on)", ylabel="max Lyapunov exponent per layer",
           title="Edge-of-chaos calibration")
    return fig


def matrices_figure(record: dict) -> "Figure":
    """Empirical and theoretical heat maps of one generation record, side by side.

    Unobserved rows of the empirical matrix are greyed and hatched: no data,
    not a zero probability.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    l, g = int(record["l"]), int(record["generation"])
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    axes = fig.subplots(1, 2)
    cmap = colormaps["viridis"].with_extremes(bad="lightgrey")
    panels = (("empirical", "Empirical"), ("theoretical", "Theoretical (Wright-Fisher)"))
    for ax, (key, title) in zip(axes, panels):
        im = ax.imshow(np.ma.masked_invalid(record[key]), cmap=cmap, vmin=0.0, vmax=1.0, origin="upper")
        ax.set(title=f"{title}, generation {g}", xlabel="child state j (ones)",
               ylabel="parent state i (ones)")
        fig.colorbar(im, ax=ax, shrink=0.85, label="P[i, j]")
    for i in np.flatnonzero(~np.asarray(record["observed"], dtype=bool)):
        axes[0].add_patch(Rectangle((-0.5, i - 0.5), l + 1, 1, facecolor="lightgrey",
                                    edgecolor="grey", hatch="//", linewidth=0))
    return fig


def plot_matrices(record: dict, out_png: str | os.PathLike) -> Path:
    """Write :func:`matrices_figure` of one generation record as a PNG; returns its path."""
    return save_figure(matrices_figure(record), out_png)


def matrices_figures(run_dir: RunDir, generations: Sequence[int] | None = None) -> list["Figure"]:
    """Empirical vs theoretical heat maps of the given generations (default: all)."""
    wanted = None if generations is None else {int(g) for g in generations}
    return [matrices_figure(r) for r in markov_records(run_dir)
            if wanted is None or int(r["generation"]) in wanted]
