"""``gnas export``: the best network of a run as a standalone .keras file and a JSON sidecar."""
from __future__ import annotations

import argparse
from pathlib import Path

from gnas.errors import ConfigError


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="save the best network as a .keras file (+ JSON sidecar)",
                       description="Export the best network of a run: keep the search weights, or "
                       "retrain on training + validation data with --retrain; test it; save it.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", metavar="PATH",
                   help="where to write the model: FILE.keras, FILE.tflite, FILE.onnx, or a new "
                   "directory for saved_model (default RUN_DIR/export/best.keras, best.tflite, "
                   "best.onnx or best_saved_model); the sidecar is the same path ending in .json")
    p.add_argument("--format", default="keras", metavar="FORMAT",
                   help="keras (default), saved_model, tflite or onnx (needs tf2onnx and onnx)")
    p.add_argument("--retrain", action="store_true",
                   help="train fresh weights on train + val instead of keeping the search weights")
    p.add_argument("--epochs", type=int, metavar="E", help="epochs for --retrain (default: the run's)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gnas.report.export import default_out, export_best, sidecar_of
    from gnas.runs.directory import RunDir

    if args.epochs is not None and not args.retrain:
        raise ConfigError("--epochs applies to --retrain only; add --retrain or drop --epochs.")
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs {args.epochs}: expected a positive number of epochs.")
    run_dir = RunDir(args.run_dir)
    sidecar = export_best(run_dir, args.out, epochs=args.epochs, retrain=args.retrain, fmt=args.format)
    out = Path(args.out) if args.out else default_out(run_dir, args.format)
    m = sidecar["metrics"]
    print(f"model:       {out} ({sidecar['format']}, takes raw inputs)\n"
          f"sidecar:     {sidecar_of(out)}\n"
          f"weights:     {sidecar['weights']}\n"
          f"test score:  {m['test_score']:.2f}  (100 x (1 - test error), {m['test_samples']} samples)\n"
          f"parameters:  {m['params']:,}\n"
          f"network:     {sidecar['description']}")
    return 0
