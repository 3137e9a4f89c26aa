"""``gnas datasets``: every data set gnas knows, and whether it is available here."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def add_parser(sub) -> None:
    p = sub.add_parser("datasets", help="list the data sets gnas knows and whether they are available")
    p.add_argument("--data-dir", dest="data_dir")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gnas.datasets import list_datasets

    infos = list_datasets(args.data_dir)
    if args.json:
        print(json.dumps([asdict(i) for i in infos], indent=1))
        return 0
    print(f"{'name':<16}{'task':<16}{'input':<14}{'classes':>8}  available")
    for i in infos:
        shape = "x".join(str(d) for d in i.input_shape)
        print(f"{i.name:<16}{i.task:<16}{shape:<14}{i.n_classes:>8}  "
              f"{'yes' if i.available else 'no'}  {i.where}")
    return 0
