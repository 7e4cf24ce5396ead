"""``python -m sibcl_ray.generate``: make (or complete) a problem's datasets with Ray tasks.

One resumable command for any size: shards that exist and check out are kept, missing ones
are computed in parallel on every CPU of the Ray cluster, a progress bar runs meanwhile and
a throughput line ends it. Training commands call the same code, so data made here is reused.
"""

from __future__ import annotations

import argparse
import json
import sys

from sibcl_ray.cli import add_data_arguments, add_problem_arguments, problem_options, run_main
from sibcl_ray.data.shards import SPLITS
from sibcl_ray.errors import SibclError
from sibcl_ray.presets import PRESETS, get_preset


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sibcl_ray.generate",
        description="Generate inputs and labels as Parquet shards with Ray remote tasks (resumable).",
    )
    add_problem_arguments(parser)
    parser.add_argument("--preset", default="quick", help=f"sizes of the splits: one of {', '.join(PRESETS)} (default quick), or a YAML file of "
                             "preset fields")
    parser.add_argument("--splits", default=",".join(SPLITS),
                        help=f"comma-separated splits to make (default all: {','.join(SPLITS)})")
    parser.add_argument("--count", action="append", default=[], metavar="SPLIT=N",
                        help="override a split's size, e.g. --count train=20000 (repeatable)")
    add_data_arguments(parser)
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all)")
    parser.add_argument("--repair", action="store_true", help="move corrupt shards aside (*.corrupt) and regenerate them")
    parser.add_argument("--cheap", action="store_true",
                        help="also store each input's cheap label (column c of the train, val and test shards; "
                             "problems that declare one, e.g. tise), which the -mf methods read; shards made "
                             "before gain the column, nothing else is solved again")
    return parser


def split_counts(args: argparse.Namespace) -> dict[str, int]:
    """Sizes of the requested splits: the preset's, then ``--count`` overrides."""
    preset = get_preset(args.preset, problem=args.problem)
    sizes = preset.split_counts()
    wanted = [s.strip() for s in args.splits.split(",") if s.strip()]
    for item in args.count:
        name, _, value = item.partition("=")
        if name not in SPLITS or not value.isdigit() or int(value) < 1:
            raise SibclError(f"--count {item!r} is not SPLIT=N with SPLIT one of {', '.join(SPLITS)} and N ≥ 1")
        sizes[name] = int(value)
        if name not in wanted:
            wanted.append(name)
    unknown = [s for s in wanted if s not in SPLITS]
    if unknown:
        raise SibclError(f"--splits: unknown split {unknown[0]!r}: allowed values are {', '.join(SPLITS)}")
    return {s: sizes[s] for s in wanted}


def main(argv: list[str] | None = None) -> int:
    return run_main(run, build_parser(), argv)


def run(args: argparse.Namespace) -> int:
    from sibcl_ray import storage

    options = problem_options(args)
    counts = split_counts(args)
    storage.check_location(args.data_dir, "--data-dir")
    if args.cheap:
        from sibcl_ray.problems import require_cheap_label

        require_cheap_label(args.problem, "--cheap")
    preset = get_preset(args.preset, problem=args.problem)

    import ray

    from sibcl_ray.data.generate import generate
    from sibcl_ray.session import start_ray

    start_ray(args.address, num_cpus=args.num_cpus)
    try:
        cpus = ray.cluster_resources().get("CPU", 1)
        report = generate(args.problem, options, counts, args.data_dir.expanduser(), args.seed,
                          preset.shard_size, repair=args.repair, cheap=args.cheap)
    finally:
        ray.shutdown()
    computed = sum(report.samples_computed.values())
    summary = {
        "dataset": str(report.root), "counts": report.counts, "samples_computed": report.samples_computed,
        **({"cheap_labels_added": report.cheap_added} if report.cheap_added else {}),
        "seconds": round(report.seconds, 2), "samples_per_s": round(report.samples_per_second, 2),
        "samples_per_s_per_cpu": round(report.samples_per_second / cpus, 3), "cpus": cpus,
    }
    print(json.dumps(summary, indent=2))
    print(f"generated {computed} samples in {report.seconds:.1f} s: {report.samples_per_second:.1f} samples/s on "
          f"{cpus:g} CPUs" if computed else f"all {sum(counts.values())} samples already present in {report.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
