"""What every command line shares: the problem flags and the one-line error convention."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from sibcl_ray.errors import SibclError
from sibcl_ray.problems import PROBLEMS, get_problem

#: Problem options settable from the command line, and the problems they apply to.
PROBLEM_FLAGS: dict[str, tuple[str, type, str]] = {
    "dim": ("tise", int, "tise only: spatial dimension, 2 or 3 (default 3)"),
    "surrogate": ("tise", str, "tise only: surrogate data, lowres or qho (default lowres)"),
    "label": ("phc", str, "phc only: dos (default) or bands (6 lowest bands at the 625 k-points)"),
}
DEFAULT_DATA_DIR = Path("~/.cache/sibcl_ray/datasets")


def add_problem_arguments(parser: argparse.ArgumentParser) -> None:
    """``--problem`` and the problems' own options."""
    parser.add_argument("--problem", required=True, help=f"one of: {', '.join(PROBLEMS)}")
    for name, (_, kind, text) in PROBLEM_FLAGS.items():
        parser.add_argument(f"--{name}", type=kind, help=text)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help=f"where datasets live and are reused (default {DEFAULT_DATA_DIR})")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, search and training (default 0)")
    parser.add_argument("--address", help="Ray address to join ('auto' on a cluster); default: start a local Ray")


def problem_options(args: argparse.Namespace) -> dict[str, Any]:
    """The problem's options from the flags, checked by building the problem once."""
    if args.problem not in PROBLEMS:
        raise SibclError(f"unknown problem {args.problem!r}: allowed values are {', '.join(sorted(PROBLEMS))}")
    options = {}
    for name, (owner, _, _) in PROBLEM_FLAGS.items():
        value = getattr(args, name)
        if value is None:
            continue
        if owner != args.problem:
            raise SibclError(f"--{name} {value} applies to --problem {owner} only, not {args.problem!r}")
        options[name] = value
    get_problem(args.problem, **options)
    return options


def run_main(body: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse, run, and turn a user error into one ``error: …`` line and exit status 2, and an
    interruption (Ctrl-C, SIGTERM) into one ``stopped: …`` line and exit status 130."""
    args = parser.parse_args(argv)
    try:
        return body(args)
    except SibclError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (session.stop_on_sigterm_like_ctrl_c)
        print("stopped: interrupted; finished work (label shards, benchmark cells, checkpoints) is kept: "
              "rerun the same command to continue", file=sys.stderr)
        return 130
