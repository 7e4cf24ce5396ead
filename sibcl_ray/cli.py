"""What every command line shares: the problem flags and the one-line error convention.

A problem brings its own command-line options (``Problem.options``): ``--problem`` is read
first, then that problem's flags are added, so ``--problem tise --help`` lists ``--dim`` and
a plugin's options appear without this module naming any problem.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

from sibcl_ray.errors import SibclError
from sibcl_ray.problems import available_problems, get_problem, problem_class

DEFAULT_DATA_DIR = Path("~/.cache/sibcl_ray/datasets")
#: Marks a parser whose ``--problem`` adds that problem's own options (``add_problem_arguments``).
_PROBLEM_PARSER = "_sibcl_problem_options"


def add_problem_arguments(parser: argparse.ArgumentParser) -> None:
    """``--problem``; the chosen problem's own options are added when the line is parsed."""
    parser.add_argument("--problem", required=True,
                        help=f"one of: {', '.join(available_problems())}, or package.module:Class; "
                             "its own options are listed by --problem NAME --help")
    setattr(parser, _PROBLEM_PARSER, True)


def parse_arguments(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv`` with the options of the ``--problem`` it names (see the module docstring).

    A flag that belongs to another problem gets one line naming the problems it applies to,
    rather than argparse's "unrecognized arguments"."""
    argv = sys.argv[1:] if argv is None else list(argv)
    options = ()
    if getattr(parser, _PROBLEM_PARSER, False):
        first = argparse.ArgumentParser(add_help=False)
        first.add_argument("--problem")
        name = first.parse_known_args(argv)[0].problem
        if name is not None:
            options = problem_class(name).options
            group = parser.add_argument_group(f"options of --problem {name}")
            for option in options:
                group.add_argument(option.flag, dest=option.name, type=option.kind, help=option.help)
            _refuse_other_problems_flags(argv, name, {o.flag for o in options})
    args = parser.parse_args(argv)  # a missing --problem ends here, in argparse's own words
    args.problem_option_names = [o.name for o in options]
    return args


def _refuse_other_problems_flags(argv: list[str], name: str, own: set[str]) -> None:
    owners: dict[str, list[str]] = {}
    for other in available_problems():
        if other == name:
            continue
        try:
            flags = [o.flag for o in problem_class(other).options]
        except SibclError:  # a broken plugin is reported when it is chosen, not here
            continue
        for flag in flags:
            owners.setdefault(flag, []).append(other)
    for i, word in enumerate(argv):
        flag, _, value = word.partition("=")
        if flag in owners and flag not in own:
            value = value or (argv[i + 1] if i + 1 < len(argv) else "")
            raise SibclError(f"{flag} {value} is not an option of --problem {name!r}; it applies to "
                             f"--problem {' or '.join(owners[flag])}")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help=f"where datasets live and are reused (default {DEFAULT_DATA_DIR})")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, search and training (default 0)")
    parser.add_argument("--address", help="Ray address to join ('auto' on a cluster); default: start a local Ray")


def check_address(address: str | None) -> None:
    """Refuse an ``--address`` nothing listens at before a command writes anything (its output
    folder, run_config.yaml) or starts Ray: a refused run leaves nothing behind."""
    if address not in (None, "auto"):
        from sibcl_ray.session import check_reachable

        check_reachable(address)


def add_dataset_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", metavar="NAME",
                        help="use the imported dataset <data-dir>/NAME (python -m sibcl_ray.import): each split it "
                             "holds is used whole, in place of the preset's size; the splits it lacks are generated")


def problem_options(args: argparse.Namespace) -> dict[str, Any]:
    """The problem's options from its flags, checked by building the problem once."""
    options = {name: getattr(args, name) for name in args.problem_option_names if getattr(args, name) is not None}
    get_problem(args.problem, **options)
    return options


def run_main(body: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse, run, and turn a user error into one ``error: …`` line and exit status 2, and an
    interruption (Ctrl-C, SIGTERM) into one ``stopped: …`` line and exit status 130."""
    _one_line_errors(parser)
    try:
        args = parse_arguments(parser, argv)
        return body(args)
    except SibclError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (session.stop_on_sigterm_like_ctrl_c)
        print("stopped: interrupted; finished work (label shards, benchmark cells, checkpoints) is kept: "
              "rerun the same command to continue", file=sys.stderr)
        return 130


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    """argparse's own errors (a flag's wrong type, a missing ``--problem``, an unknown flag) as one
    ``error:`` line like every other bad value, instead of its usage block: the usage is what
    ``--help`` is for."""

    def error(message: str) -> NoReturn:
        raise SibclError(f"{message}; {parser.prog} --help lists every option and its allowed values")

    parser.error = error  # type: ignore[method-assign]
