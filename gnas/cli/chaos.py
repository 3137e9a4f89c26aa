"""``gnas chaos``: measure the edge of chaos lambda_c of a data set's search space."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(sub) -> None:
    p = sub.add_parser(
        "chaos", help="measure lambda_c, the edge of chaos of the search space",
        description="Sweep lambda (the fraction of active connection genes) over [0, 1], probe "
        "networks with their initial weights and a batch of real inputs, and report where the "
        "Lyapunov exponent of a small perturbation crosses zero (lambda_c).")
    p.add_argument("--dataset", default="digits", help="a name from `gnas datasets` or an .npz path")
    p.add_argument("--config", help="TOML configuration file (search space, weight scale)")
    p.add_argument("--data-dir", dest="data_dir", help="directory with the data set files")
    p.add_argument("--max-train-samples", dest="max_train_samples", type=int)
    p.add_argument("--points", type=int, default=11, help="lambda values from 0 to 1 (at least 3)")
    p.add_argument("--lambdas", type=_floats, help="explicit lambda values, e.g. 0,0.25,0.5,0.75,1")
    p.add_argument("--samples", type=int, default=32, help="chromosomes (networks) per lambda")
    p.add_argument("--batches", type=int, default=4,
                   help="batches of real inputs per network (the bootstrap resamples both)")
    p.add_argument("--batch", type=int, default=64, help="real inputs per batch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weight-scale", dest="weight_scale", type=float,
                   help="sigma^2 of the fan-in weight initialisation (train.weight_scale)")
    p.add_argument("--threads", type=int, help="TensorFlow threads (0 = all cores)")
    p.add_argument("--theory", action="store_true",
                   help="probe deep linear networks with weights kept with probability lambda "
                   "instead (the check against lambda_c = 1 / weight scale)")
    p.add_argument("--langton", nargs=3, type=int, metavar=("N", "D", "Q"),
                   help="only print Langton's lambda = (T - Q) / T with T = N^D")
    p.add_argument("--out", help="directory for chaos.png and chaos.json (default runs/chaos-DATASET)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    if args.langton:
        return _langton(args)
    from gnas.chaos import calibration
    from gnas.config import load_config
    from gnas.datasets import load_dataset
    from gnas.errors import RunDirError
    from gnas.genome.factory import make_space
    from gnas.report.analysis import write_chaos_plot
    from gnas.runs.atomic import atomic_write_text

    lambdas = calibration.check_lambdas(args.lambdas) if args.lambdas else calibration.sweep_lambdas(args.points)
    cfg = load_config(args.config, _overrides(args))
    if cfg.space.kind != "genetic_cnn":
        from gnas.errors import ConfigError

        raise ConfigError(f"gnas chaos measures Keras networks of stages (genetic_cnn); the space "
                          f"{cfg.space.kind!r} has none: give --lambda-c to gnas evolve instead.")
    dataset = load_dataset(cfg.data.dataset, data_dir=cfg.data.data_dir or None,
                           max_train_samples=cfg.data.max_train_samples or None,
                           val_fraction=cfg.data.val_fraction, seed=0)
    space = None if args.theory else make_space(cfg, dataset)
    result = calibration.calibrate(dataset, space, weight_scale=cfg.train.weight_scale,
                                   lambdas=lambdas, samples=args.samples, batch=args.batch,
                                   batches=args.batches, seed=args.seed, threads=cfg.train.threads,
                                   theory=args.theory, cfg=cfg)
    out = Path(args.out or Path("runs") / f"chaos-{dataset.name}")
    record: dict[str, Any] = {**result.to_dict(), "dataset": cfg.data.dataset}
    if space is not None:
        record["space"] = calibration.space_fingerprint(space, cfg.train.weight_scale)
    title = f"edge of chaos: {dataset.name}" + (" (theory)" if args.theory else "")
    try:
        out.mkdir(parents=True, exist_ok=True)
        record["png"] = str(write_chaos_plot(record, out / calibration.PLOT_NAME, title))
        atomic_write_text(out / calibration.CACHE_NAME, json.dumps(record, indent=1))
    except OSError as exc:
        raise RunDirError(f"cannot write to --out {out} ({exc.strerror}); choose a writable "
                          "directory.") from None
    print(json.dumps(record, indent=1) if args.json else _text(record))
    return 0


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    pairs = {"data.dataset": args.dataset, "data.data_dir": args.data_dir,
             "data.max_train_samples": args.max_train_samples,
             "train.weight_scale": args.weight_scale, "train.threads": args.threads}
    return {k: v for k, v in pairs.items() if v is not None}


def _langton(args: argparse.Namespace) -> int:
    from gnas.chaos.population import langton_lambda

    n, d, q = args.langton
    value = langton_lambda(n, d, q)
    print(json.dumps({"n": n, "d": d, "q": q, "T": n ** d, "lambda": value}) if args.json
          else f"lambda = (T - q) / T = ({n ** d} - {q}) / {n ** d} = {value:.6g}")
    return 0


def _text(record: dict[str, Any]) -> str:
    lines = [f"{'lambda':>8}  {'exponent':>9}  {'std':>7}"]
    lines += [f"{p['lambda']:>8.3f}  {p['exponent']:>9.4f}  {p['std']:>7.4f}" for p in record["sweep"]]
    ci = record.get("lambda_c_ci")
    if ci:
        lines.append(f"crossing  = {record['crossing_at'] if record.get('crossing_at') is not None else '-'}"
                     f", 95 % interval [{ci[0]:.4f}, {ci[1]:.4f}], robust: {str(record['robust']).lower()}")
    lines.append(f"lambda_c = {record['lambda_c']:.4f} ({record['source']}: {record['reason']})")
    if record.get("expected") is not None:
        lines.append(f"theory:    1 / weight scale = {record['expected']:.4f}")
    lines.append(f"plot:      {record['png']}")
    return "\n".join(lines)
