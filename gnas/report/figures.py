"""``gnas report --plots``: the run as PNG figures, drawn headless (Figure + Agg canvas).

A search is judged by its curves and by the network it hands over, so every run
gets: fitness per generation, validation error against size for every evaluation
with the Pareto front marked, population diversity, the edge-of-chaos sweep (when
the run calibrated it), the layer-wise scoreboard (when competition ran) and a
drawing of the best architecture. Each figure has a fixed size in inches and is
saved at :data:`DPI`, so its pixel size is known in advance (``SIZES``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from gnas.report import analysis
from gnas.genome.architecture import Architecture, StageArch
from gnas.records import StoredEvaluation
from gnas.errors import GnasError
from gnas.report.sections import complexity_measure
from gnas.search.pareto import complexity_of, front_of
from gnas.runs.atomic import read_json
from gnas.runs.directory import RunDir
from gnas.runs.state import SearchState
from gnas.runs.store import EvaluationStore

DPI = 100
SIZES: dict[str, tuple[float, float]] = {   # inches; pixels are SIZES * DPI
    "fitness": (8.0, 5.0), "pareto": (8.0, 5.0), "diversity": (12.0, 4.0),
    "chaos": (8.0, 5.0), "scoreboard": (12.0, 4.5), "architecture": (14.0, 5.0),
}
SCOREBOARD_VARIANTS = 5  # variants drawn per layer


def write_plots(run_dir: RunDir, out: str | Path | None = None) -> list[Path]:
    """Write every figure this run has data for into ``out`` (default RUN_DIR/plots).

    Returns the PNG paths written, in a fixed order. A figure whose data the run
    does not have (no chaos.json, an empty scoreboard) is skipped, not drawn empty.
    """
    run_dir.open_existing()
    state = analysis.finished_state(run_dir)
    out_dir = Path(out) if out else run_dir.path / "plots"
    figures: list[tuple[str, Callable[[], Any]]] = [
        ("fitness", lambda: analysis.fitness_figure(run_dir)),
        ("pareto", lambda: pareto_figure(_evaluations(run_dir), _objective(run_dir))),
        ("diversity", lambda: analysis.diversity_figure(run_dir)),
    ]
    chaos = analysis.load_chaos(run_dir)
    if chaos is not None and len(chaos["sweep"]["lambda"]):
        figures.append(("chaos", lambda: analysis.chaos_figure(chaos)))
    layers = scoreboard_layers(state.steps.get("competition", {}))
    if layers:
        figures.append(("scoreboard", lambda: scoreboard_figure(layers)))
    best = best_architecture(run_dir, state)
    if best is not None:
        figures.append(("architecture", lambda: architecture_figure(*best)))
    return [save(make(), out_dir / f"{name}.png", SIZES[name]) for name, make in figures]


def save(fig, path: Path, size: tuple[float, float]) -> Path:
    """Save ``fig`` at ``size`` inches and :data:`DPI`, with the Agg canvas (no display)."""
    fig.set_size_inches(*size)
    return analysis.save_figure(fig, path, dpi=DPI)


def _figure(size: tuple[float, float], ncols: int = 1):
    """A bare figure of ``size`` inches overall with ``ncols`` axes (analysis' one maker)."""
    return analysis.new_figure(ncols, size[0] / ncols, size[1], integer_x=False)


# ------------------------------------------------------------------ pareto ---
def _evaluations(run_dir: RunDir) -> list[StoredEvaluation]:
    store = EvaluationStore(run_dir.db_path)
    try:
        return store.evaluations()
    finally:
        store.close()


def _objective(run_dir: RunDir) -> str:
    """The complexity the run's Pareto front is drawn against (parameters when unknown)."""
    try:
        return complexity_measure(run_dir.load_config())
    except GnasError:  # the report already says what is wrong with the run directory
        return "params"


def pareto_figure(evaluations: list[StoredEvaluation], complexity: str = "params"):
    """Validation error vs complexity of every successful evaluation, front marked."""
    fig, (ax,) = _figure(SIZES["pareto"])
    ok = [e for e in evaluations if e.result.ok]
    failed = len(evaluations) - len(ok)
    if ok:
        x = np.array([max(complexity_of(e, complexity), 1) for e in ok], dtype=float)
        y = np.array([e.result.val_error for e in ok], dtype=float)
        points = ax.scatter(x, y, c=[e.result.generation for e in ok], cmap="viridis", s=25,
                            alpha=0.8, label="evaluations")
        fig.colorbar(points, ax=ax, label="generation")
        front = front_of(ok, complexity)
        fx = [max(complexity_of(e, complexity), 1) for e in front]
        fy = [e.result.val_error for e in front]
        ax.step(fx, fy, where="post", color="C3", linewidth=1.5)
        ax.scatter(fx, fy, s=90, facecolors="none", edgecolors="C3", linewidths=1.5,
                   label=f"Pareto front ({len(front)})")
        ax.set_xscale("log")
        ax.legend(loc="upper right")
    ax.set(xlabel=f"{complexity} (log scale)", ylabel="validation error",
           title=f"Error vs {complexity}: {len(ok)} evaluations ({failed} failed, not shown)")
    return fig


# -------------------------------------------------------------- scoreboard ---
def scoreboard_layers(board: Any) -> list[tuple[str, list[tuple[str, float, int]]]]:
    """The scoreboard as [(layer, [(variant, mean fitness, count), ...])], best first.

    Reads the competition's format (``{"layers": [{"stage", "variants": [...]}]}``
    with ``mean``/``count`` per variant) and, generically, any mapping of
    layer -> list of variants that carry ``fitness`` (or ``mean``) and ``count``.
    """
    if not board:
        return []
    if isinstance(board, dict) and isinstance(board.get("layers"), list):
        pairs = [(f"layer {layer.get('stage', k)}", layer.get("variants", []))
                 for k, layer in enumerate(board["layers"])]
    elif isinstance(board, dict):
        pairs = [(str(name), variants) for name, variants in board.items() if isinstance(variants, list)]
    else:
        return []
    out = []
    for name, variants in pairs:
        entries = [(_variant_label(v), float(v.get("mean", v.get("fitness"))), int(v.get("count", 1)))
                   for v in variants if isinstance(v, dict) and v.get("mean", v.get("fitness")) is not None]
        if entries:
            out.append((name, sorted(entries, key=lambda e: e[1])[:SCOREBOARD_VARIANTS]))
    return out


def _variant_label(v: dict[str, Any]) -> str:
    if "variant" in v or "name" in v:
        return str(v.get("variant", v.get("name")))[:32]
    if v.get("active") is False:
        return "off"
    if "nodes" in v and "width" in v:
        return f"{v['nodes']} nodes x {v['width']}, {len(v.get('edges', []))} edges"
    return "?"


def scoreboard_figure(layers: list[tuple[str, list[tuple[str, float, int]]]]):
    """One panel per layer: its best variants' mean fitness, with how many networks carried each."""
    fig, axes = _figure(SIZES["scoreboard"], ncols=len(layers))
    for ax, (name, entries) in zip(axes, layers):
        labels = [e[0] for e in entries][::-1]
        values = [e[1] for e in entries][::-1]
        bars = ax.barh(range(len(entries)), values, color="C0")
        bars[-1].set_color("C2")  # the layer's leader
        for bar, (_, value, count) in zip(bars, entries[::-1]):
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" n={count}",
                    va="center", fontsize=8)
        ax.set_yticks(range(len(entries)), labels, fontsize=8)
        ax.set(title=name, xlabel="mean fitness F (lower is better)")
        ax.set_xlim(0, max(values) * 1.25 if max(values) > 0 else 1)
    fig.suptitle("Layer-wise competition: best variants per layer")
    return fig


# ------------------------------------------------------------ architecture ---
def best_architecture(run_dir: RunDir, state: SearchState
                      ) -> tuple[Architecture, list[list[int]]] | None:
    """The best network and the units of each of its nodes.

    From best/architecture.json (which records the exported file's per-node
    widths), else decoded from the hall of fame with its stage widths. None for
    a space without stages (a NAS-Bench-201 cell is drawn by its string).
    """
    path = run_dir.best_dir / "architecture.json"
    data = read_json(path)
    if run_dir.load_config().space.kind != "genetic_cnn" or (isinstance(data, dict) and "stages" not in data):
        return None
    if isinstance(data, dict):
        arch = Architecture.from_dict({**data, "stages": [
            {k: v for k, v in st.items() if k != "node_widths"} for st in data["stages"]]})
        saved = [st.get("node_widths") for st in data["stages"]]
        widths = [list(map(int, w)) if w else d for w, d in zip(saved, arch.node_widths())]
        return arch, widths
    if not state.hall_of_fame:
        return None
    from gnas.genome.space import str_to_bits
    from gnas.datasets import load_for_run as load_data
    from gnas.genome.factory import make_space

    cfg = run_dir.load_config()
    space = make_space(cfg, load_data(cfg))
    arch = space.decode(str_to_bits(state.hall_of_fame[0]["genome"]))
    return arch, arch.node_widths()


def node_positions(stage: StageArch) -> dict[int, tuple[int, int]]:
    """(column, row) of each node: column = longest path from a source, so edges go right."""
    depth = {n: 0 for n in range(stage.nodes)}
    for j in range(stage.nodes):  # edges satisfy i < j, so one pass in index order suffices
        for i in stage.predecessors(j):
            depth[j] = max(depth[j], depth[i] + 1)
    rows: dict[int, int] = {}
    out = {}
    for n in range(stage.nodes):
        out[n] = (depth[n], rows.get(depth[n], 0))
        rows[depth[n]] = rows.get(depth[n], 0) + 1
    return out


def architecture_figure(arch: Architecture, node_widths: Sequence[Sequence[int]] | None = None):
    """Stages as boxes of nodes (with widths), DAG edges as arrows, pooling and head between.

    ``node_widths`` are the units of each node of the exported file (a compacted
    network's nodes can differ within a stage); by default the stage widths.
    """
    widths = node_widths if node_widths is not None else arch.node_widths()
    fig, (ax,) = _figure(SIZES["architecture"])
    x = _box(ax, 0.0, "input\n" + "x".join(map(str, arch.input_shape)), "0.85")
    for pos, (stage, nodes) in enumerate(zip(arch.stages, widths)):
        if pos and arch.family == "conv":
            x = _box(ax, x + 0.5, "max-pool\n2x2", "0.9", link=True)
        x = _draw_stage(ax, arch, stage, x + 0.6, nodes)
    if arch.family == "conv":
        x = _box(ax, x + 0.5, "global\navg-pool", "0.9", link=True)
    _box(ax, x + 0.5, f"dense head\n{arch.n_outputs}", "0.85", link=True)
    ax.set_xlim(-0.8, x + 1.8)
    ax.set_ylim(-2.2, 2.4)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"Best architecture ({arch.family}): lr {arch.learning_rate:.3g}, "
                 f"momentum {arch.momentum:.2f}", fontsize=11)
    return fig


def _box(ax, x: float, text: str, color: str, link: bool = False) -> float:
    """A labelled block centred at height 0 starting at ``x``; returns its right edge."""
    from matplotlib.patches import FancyBboxPatch

    width = 0.9
    if link:
        _arrow(ax, (x - 0.5, 0.0), (x, 0.0))
    ax.add_patch(FancyBboxPatch((x, -0.45), width, 0.9, boxstyle="round,pad=0.05", fc=color, ec="0.3"))
    ax.text(x + width / 2, 0.0, text, ha="center", va="center", fontsize=8)
    return x + width


def _draw_stage(ax, arch: Architecture, stage: StageArch, x0: float, widths: Sequence[int]) -> float:
    """One stage: input point, nodes by depth, edges, output sum; returns the right edge."""
    from matplotlib.patches import Circle, FancyBboxPatch

    pos = node_positions(stage)
    cols = max(c for c, _ in pos.values()) + 1
    per_col = {c: sum(1 for cc, _ in pos.values() if cc == c) for c in range(cols)}
    step = min(1.1, 3.3 / max(per_col.values()))  # tall columns are packed closer
    radius = min(0.3, 0.4 * step)
    centre = {n: (x0 + 0.8 + 1.1 * c, (per_col[c] - 1) / 2 * step - r * step) for n, (c, r) in pos.items()}
    right = x0 + 0.8 + 1.1 * (cols - 1) + 0.8
    ax.add_patch(FancyBboxPatch((x0 - 0.1, -1.9), right - x0 + 0.2, 3.8, boxstyle="round,pad=0.05",
                                fc="none", ec="C0", linestyle="--"))
    block = "conv3x3-BN-ReLU" if arch.family == "conv" else "dense-ReLU"
    shown = f"widths {', '.join(map(str, widths))}" if len(set(widths)) > 1 else f"width {widths[0]}"
    ax.text((x0 + right) / 2, 2.05, f"stage {stage.index}: {stage.nodes} x {block}, {shown}",
            ha="center", fontsize=8, color="C0")
    _arrow(ax, (x0 - 0.6, 0.0), (x0, 0.0))
    for n in stage.sources():
        _arrow(ax, (x0, 0.0), centre[n], shrink_end=radius)
    for i, j in stage.edges:  # an edge that skips a column bends round the nodes between
        bend = 0.35 if pos[j][0] - pos[i][0] > 1 else 0.0
        _arrow(ax, centre[i], centre[j], shrink_start=radius, shrink_end=radius, color="C1", bend=bend)
    for n in stage.sinks():
        _arrow(ax, centre[n], (right, 0.0), shrink_start=radius)
    for n, (cx, cy) in centre.items():
        ax.add_patch(Circle((cx, cy), radius, fc="white", ec="C0", lw=1.5))
        ax.text(cx, cy, f"{n}\n{widths[n]}", ha="center", va="center", fontsize=7)
    ax.plot([right], [0.0], "o", color="C0")  # the sum of the sinks: the stage output
    return right


def _arrow(ax, start, end, shrink_start: float = 0.0, shrink_end: float = 0.0,
           color: str = "0.35", bend: float = 0.0) -> None:
    """An arrow from ``start`` to ``end`` with its ends pulled back by the given lengths."""
    (x1, y1), (x2, y2) = start, end
    length = float(np.hypot(x2 - x1, y2 - y1)) or 1.0
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    ax.annotate("", xy=(x2 - ux * shrink_end, y2 - uy * shrink_end),
                xytext=(x1 + ux * shrink_start, y1 + uy * shrink_start),
                arrowprops=dict(arrowstyle="-|>", color=color, lw=1.0, shrinkA=0, shrinkB=0,
                                connectionstyle=f"arc3,rad={bend}"))
