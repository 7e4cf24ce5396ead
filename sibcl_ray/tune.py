"""``python -m sibcl_ray.tune``: the main job — search SIB-CL's knobs for one problem.

Generates (or reuses) the labels with Ray tasks, runs Optuna TPE + ASHA over Ray Train
trials, evaluates the best configuration once on the test set and writes
``<output>/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sibcl_ray.errors import SibclError
from sibcl_ray.presets import PRESETS, get_preset
from sibcl_ray.problems import PROBLEMS, get_problem
from sibcl_ray.search.space import default_space_path, load_space


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sibcl_ray.tune",
        description="Search SIB-CL's temperature, augmentation strength, surrogate mixing ratio and learning "
                    "rates with Ray Tune (Optuna TPE + ASHA); the objective is the validation error after "
                    "fine-tuning on --nsam labels. Prints and writes <output>/summary.json.",
    )
    parser.add_argument("--problem", required=True, help=f"one of: {', '.join(PROBLEMS)}")
    parser.add_argument("--preset", default="quick", help=f"run size, one of: {', '.join(PRESETS)} (default quick)")
    parser.add_argument("--nsam", type=int, help="labelled target samples for fine-tuning (default: the preset's)")
    parser.add_argument("--num-samples", type=int, help="number of trials (default: the preset's)")
    parser.add_argument("--output", type=Path, help="output folder (default ./sibcl_runs/<problem>-<preset>)")
    parser.add_argument("--address", help="Ray address to join ('auto' on a cluster); default: start a local Ray")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, search and training (default 0)")
    parser.add_argument("--search-space", type=Path, help="search-space YAML (default: search_spaces/<problem>.yaml)")
    parser.add_argument("--data-dir", type=Path, default=Path("~/.cache/sibcl_ray/datasets"),
                        help="where generated datasets live and are reused (default ~/.cache/sibcl_ray/datasets)")
    parser.add_argument("--max-concurrent", type=int, help="trials at once (default: as many as the CPUs/GPUs allow)")
    parser.add_argument("--workers-per-trial", type=int, default=1, help="DDP workers per trial (default 1)")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs per Train worker (default 1)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per Train worker (default 0)")
    parser.add_argument("--dim", type=int, choices=(2, 3), help="tise only: spatial dimension (default 3)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = run(args)
    except SibclError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


def run(args: argparse.Namespace) -> dict:
    """Validate everything that can be validated before Ray starts, then run the search."""
    problem_options = {"dim": args.dim} if args.dim is not None else {}
    if args.dim is not None and args.problem != "tise":
        raise SibclError(f"--dim {args.dim} applies to --problem tise only, not {args.problem!r}")
    get_problem(args.problem, **problem_options)
    preset = get_preset(args.preset, nsam=args.nsam)
    space = load_space(args.search_space or default_space_path(args.problem))
    num_samples = args.num_samples if args.num_samples is not None else preset.num_samples
    for flag, value, low in (("--num-samples", num_samples, 1), ("--workers-per-trial", args.workers_per_trial, 1)):
        if value < low:
            raise SibclError(f"{flag} {value} must be at least {low}")
    if args.cpus_per_worker <= 0 or args.gpus_per_worker < 0:
        raise SibclError(f"--cpus-per-worker {args.cpus_per_worker} must be > 0 and --gpus-per-worker "
                         f"{args.gpus_per_worker} must be >= 0")
    output = (args.output or Path("sibcl_runs") / f"{args.problem}-{preset.name}").expanduser().absolute()
    output.mkdir(parents=True, exist_ok=True)

    import ray

    from sibcl_ray.search.run import SearchSettings, run_search
    from sibcl_ray.session import start_ray

    start_ray(args.address, driver_slots=max(num_samples, 1))
    try:
        per_trial_cpus = args.workers_per_trial * args.cpus_per_worker
        per_trial_gpus = args.workers_per_trial * args.gpus_per_worker
        resources = ray.cluster_resources()
        fits = int(resources.get("CPU", 1) // per_trial_cpus)
        if per_trial_gpus:
            fits = min(fits, int(resources.get("GPU", 0) // per_trial_gpus))
        if fits < 1:
            raise SibclError(f"one trial needs {per_trial_cpus:g} CPUs and {per_trial_gpus:g} GPUs but the cluster has "
                             f"{resources.get('CPU', 0):g} CPUs and {resources.get('GPU', 0):g} GPUs")
        settings = SearchSettings(
            problem=args.problem, problem_options=problem_options, preset=preset, space=space, output=output,
            data_root=args.data_dir.expanduser(), seed=args.seed, num_samples=num_samples,
            max_concurrent=max(1, min(args.max_concurrent or fits, num_samples)),
            workers_per_trial=args.workers_per_trial, cpus_per_worker=args.cpus_per_worker,
            gpus_per_worker=args.gpus_per_worker,
        )
        return run_search(settings)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
