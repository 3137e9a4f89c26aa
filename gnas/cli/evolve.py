"""``gnas evolve``: start a new search."""
from __future__ import annotations

import argparse

from gnas.cli.options import add_search_flags, batch_size, overrides_from
from gnas.config import choices_of, load_config


def add_parser(sub) -> None:
    p = sub.add_parser("evolve", help="run a search (default: digits, about a minute on 2 CPU cores)",
                       description="Evolve network architectures on a data set.")
    p.add_argument("--dataset", help="digits (default), fashion_mnist, mnist, cifar10, cifar100, "
                   "boston_housing, imdb, reuters, or a path to an .npz; with --space nb201: "
                   "cifar10 (default), cifar100 or imagenet16")
    p.add_argument("--space", choices=choices_of("space.kind"),
                   help="genetic_cnn (default): networks trained on the data set; nb201: the "
                   "NAS-Bench-201 cell, evaluated by table lookup (the gnas[bench] extra)")
    p.add_argument("--config", help="TOML configuration file")
    p.add_argument("--preset", help="paper (Table I), default or tiny")
    p.add_argument("--run-dir", dest="run_dir", help="where to keep the run (default runs/<dataset>-<time>)")
    p.add_argument("--data-dir", dest="data_dir", help="directory with the data set files")
    p.add_argument("--max-train-samples", dest="max_train_samples", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--init", choices=choices_of("evolution.init"), help="edge of chaos (default) or uniform")
    p.add_argument("--lambda-c", dest="lambda_c", type=float, help="skip calibration, use this lambda_c")
    p.add_argument("--prune", type=float, metavar="FRACTION", help="target pruned fraction, e.g. 0.5")
    p.add_argument("--mask", choices=choices_of("prune.mask"))
    p.add_argument("--nm", help="N:M sparsity for --mask nm, e.g. 2:4")
    p.add_argument("--no-competition", dest="no_competition", action="store_true",
                   help="turn layer-wise competition off")
    p.add_argument("--strategy", choices=choices_of("evolution.strategy"),
                   help="ga (default, the paper's), random (uniform genomes) or aging "
                   "(regularized evolution)")
    p.add_argument("--objectives", choices=choices_of("evolution.objectives"))
    p.add_argument("--batch-size", dest="batch_size", type=batch_size, help="integer or auto")
    add_search_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gnas import session

    overrides = overrides_from(args)
    cfg = load_config(args.config, overrides, preset=args.preset)
    if args.run_dir is None:  # named here, so that advice given after a failure can name it
        args.run_dir = str(session.default_run_dir(cfg))
    given = None if args.config or args.preset else list(overrides)
    return session.start(cfg, args.run_dir, progress=getattr(args, "verbosity", 0) >= 0, given=given)
