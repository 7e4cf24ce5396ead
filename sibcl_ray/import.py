"""``python -m sibcl_ray.import``: bring your own inputs and labels as one split of a named dataset.

    python -m sibcl_ray.import --problem phc --name mine --split train --inputs cells.npy --labels dos.npy
    python -m sibcl_ray.import --problem phc --name ref --split test --inputs mf1-tm.h5 --rows 18000:20000
    python -m sibcl_ray.tune --problem phc --dataset mine          # uses the imported splits whole

Reads ``.npy``, ``.npz`` (arrays ``x``, ``y``), Parquet (columns ``x``, ``y``) and, for phc, the
SIB-CL reference's HDF5 (``problems.phc_reference``); checks everything before writing a
verified split into ``<data-dir>/<name>/<split>`` (``data.imported``). No Ray: nothing to start.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sibcl_ray.cli import DEFAULT_DATA_DIR, add_problem_arguments, problem_options, run_main
from sibcl_ray.data.shards import SPLITS
from sibcl_ray.problems import get_problem


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sibcl_ray.import",
        description="Import your own inputs (and labels) as one split of a dataset that tune and benchmark use "
                    "with --dataset NAME. Everything is checked before anything is written; an imported split is "
                    "never replaced.",
    )
    add_problem_arguments(parser)
    parser.add_argument("--name", required=True, help="dataset name: <data-dir>/<name>/ (letters, digits, . _ -)")
    parser.add_argument("--split", required=True, choices=tuple(SPLITS),
                        help="which split the file holds: unlabeled (inputs only), surrogate (cheap labels), "
                             "train (the labelled pool fine-tuning draws --nsam from), val, test")
    parser.add_argument("--inputs", type=Path, required=True,
                        help="inputs file: .npy (N, *input shape), .npz (x, optionally y), .parquet (column x, "
                             "optionally y); phc also reads the SIB-CL reference's .h5")
    parser.add_argument("--labels", type=Path,
                        help="labels file (.npy (N, label dim), .npz y, .parquet column y); not needed when the "
                             "inputs file holds them")
    parser.add_argument("--rows", metavar="START:STOP",
                        help="import only these rows of the file(s), e.g. 18000:20000 (default: all)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help=f"where datasets live (default {DEFAULT_DATA_DIR}); the same as tune's --data-dir")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(run, build_parser(), argv)


def run(args: argparse.Namespace) -> int:
    from sibcl_ray.data.imported import import_split

    problem = get_problem(args.problem, **problem_options(args))
    record = import_split(problem, args.data_dir, args.name, args.split, args.inputs, args.labels, args.rows)
    print(json.dumps(record, indent=2))
    print(f"imported {record['count']} samples as split {args.split!r} of dataset {args.name!r} ({record['dataset']}); "
          f"use it with --dataset {args.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
