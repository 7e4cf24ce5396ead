"""``python -m sibcl_ray.tune``: the main job — search SIB-CL's knobs for one problem.

Generates (or reuses) the labels with Ray tasks, runs Optuna TPE + ASHA over trials (each
pretrains once and fine-tunes with several seeds; one-worker trials train inside Tune, DDP
trials through Ray Train), evaluates the best configuration once on the test set and writes
``<output>/summary.json``, the selected model (``<output>/model``, for ``sibcl_ray.load_model``
and ``python -m sibcl_ray.predict``) and pictures of what it predicts.

    python -m sibcl_ray.tune --problem phc                      # quick preset, local Ray
    python -m sibcl_ray.tune --problem tise --dim 3 --tracker mlflow
    python -m sibcl_ray.tune --problem phc --select typiclust   # labels picked by embedding, not drawn
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from sibcl_ray.cli import (add_data_arguments, add_dataset_argument, add_problem_arguments, check_address,
                           problem_options, run_main)
from sibcl_ray.errors import SearchInterrupted, SibclError
from sibcl_ray.learning.selection import STRATEGIES
from sibcl_ray.presets import PRESETS, get_preset, write_run_config
from sibcl_ray.resources import ResourceFlags, add_resource_arguments
from sibcl_ray.search.space import check_batches_split, default_space_path, read_search_file
from sibcl_ray.search.trackers import check_trackers
from sibcl_ray.train.hparams import multifidelity_searched


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sibcl_ray.tune",
        description="Search SIB-CL's temperature, augmentation strength, surrogate mixing ratio and learning "
                    "rates with Ray Tune (Optuna TPE + ASHA), starting from the reference settings; the objective "
                    "is the validation error after fine-tuning on --nsam labels. Prints and writes "
                    "<output>/summary.json, the selected model in <output>/model (sibcl_ray.load_model, "
                    "python -m sibcl_ray.predict) and test_predictions.png / embedding.png; the Optuna study is "
                    "stored in <output>/optuna.journal (optuna-dashboard <output>/optuna.journal).",
    )
    add_problem_arguments(parser)
    parser.add_argument("--preset", default="quick", help=f"run size: one of {', '.join(PRESETS)} (default quick), or a YAML file of preset fields "
                             "(e.g. a run's run_config.yaml; README 'Run sizes')")
    parser.add_argument("--nsam", type=int, help="labelled target samples for fine-tuning (default: the preset's)")
    parser.add_argument("--num-samples", type=int, help="number of trials (default: the preset's)")
    parser.add_argument("--finetune-seeds", type=int,
                        help="fine-tuning runs per trial from the same pretrained network, scored by their mean "
                             "validation error (default: the preset's, 3 at quick; 1 scores one seed, which is "
                             "noisier than the differences a search ranks on)")
    parser.add_argument("--output", type=Path, help="output folder (default ./sibcl_runs/<problem>-<preset>)")
    add_data_arguments(parser)
    add_dataset_argument(parser)
    parser.add_argument("--storage", help="where Tune and Train keep trials and checkpoints: a folder or a URI "
                                          "(s3://…, gs://…); required on a multi-node cluster (default <output>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the latest interrupted search of this problem and preset in the storage")
    parser.add_argument("--search-space", type=Path, help="search-space YAML (default: search_spaces/<problem>.yaml)")
    add_resource_arguments(parser, "trial")
    parser.add_argument("--search", default="tpe-asha", choices=("tpe-asha", "random"),
                        help="tpe-asha (default): Optuna TPE with ASHA early stopping; random: random search, "
                             "every trial to the end (the baseline of the search benchmark)")
    parser.add_argument("--rung-metric", default="knn_val_error",
                        choices=("probe_val_error", "knn_val_error", "val_error"),
                        help="what ASHA compares at rungs that fall inside pretraining: knn_val_error (default; "
                             "5 nearest labelled neighbours in the frozen encoder's features, scored on validation), "
                             "probe_val_error (a ridge probe instead) or val_error (zero-shot error of the "
                             "surrogate-trained predictor); see BENCHMARKS.md for how each ranks trials")
    parser.add_argument("--select", choices=sorted(STRATEGIES), metavar="STRATEGY",
                        help="active labelling: before the search, pretrain once with the reference settings, pick "
                             "the --nsam inputs to label from the unlabeled pool by their embeddings (typiclust or "
                             "kcenter, as the benchmark's sibcl-al), solve them, and fine-tune every trial on those "
                             "instead of a random draw (default: a random draw)")
    parser.add_argument("--tracker", action="append", default=[], metavar="NAME",
                        help="also log every trial to an experiment tracker: mlflow (to $MLFLOW_TRACKING_URI, else "
                             "sqlite:///<output>/mlflow.db), wandb or aim, where its package is installed; repeatable. "
                             "TensorBoard files are always written")
    return parser


def main(argv: list[str] | None = None) -> int:
    def body(args: argparse.Namespace) -> int:
        try:
            summary = run(args)
        except SearchInterrupted as stop:
            print(f"stopped: {stop}", file=sys.stderr)
            return 130
        except KeyboardInterrupt:
            print("stopped: interrupted; finished label shards are kept; rerun the command (with --resume once the "
                  "search has started) to continue", file=sys.stderr)
            return 130
        print(json.dumps(summary, indent=2))
        return 0

    return run_main(body, build_parser(), argv)


def run(args: argparse.Namespace) -> dict:
    """Validate everything that can be validated before Ray starts, then run the search."""
    options = problem_options(args)
    preset = get_preset(args.preset, problem=args.problem, nsam=args.nsam, finetune_seeds=args.finetune_seeds)
    space, start = read_search_file(args.search_space or default_space_path(args.problem))
    if multifidelity_searched(space):
        from sibcl_ray.problems import require_cheap_label

        require_cheap_label(args.problem, "multifidelity in the search space", "multifidelity: false")
        if args.select is not None and args.search_space is not None:
            raise SibclError(f"--select {args.select}: the picked inputs carry no cheap labels, so it does not combine "
                             "with multifidelity in the search space; set multifidelity: false")
        if args.select is not None:  # the packaged space: the user asked for picked labels, not for the knob
            space = {**space, "multifidelity": False}
            print(f"note: --select {args.select}: the picked inputs carry no cheap labels, so this search keeps "
                  "multifidelity off", flush=True)
    dataset = None
    if args.dataset is not None:
        from sibcl_ray.data.imported import dataset_for_run
        from sibcl_ray.problems import get_problem
        from sibcl_ray.train.methods import get_method

        needed = {s: ["the search"] for s in (*get_method("sibcl").needs(), "test")}
        dataset, preset = dataset_for_run(args.data_dir, args.dataset, get_problem(args.problem, **options), preset,
                                          needed, (preset.nsam,))
    if args.select is not None:
        from sibcl_ray.problems import problem_class

        if args.dataset is not None or not problem_class(args.problem).generates:
            raise SibclError(f"--select {args.select}: active labelling solves the labels it picks with the problem's "
                             "solver; it does not combine with --dataset or a problem without a solver")
        if preset.nsam > preset.n_unlabeled:
            raise SibclError(f"--select {args.select}: --nsam {preset.nsam} is more than the unlabeled pool of "
                             f"{preset.n_unlabeled} inputs it picks from")
    num_samples = args.num_samples if args.num_samples is not None else preset.num_samples
    for flag, value in (("--num-samples", num_samples), ("--finetune-seeds", preset.finetune_seeds)):
        if value < 1:
            raise SibclError(f"{flag} {value} must be at least 1")
    flags = ResourceFlags.from_args(args, "trial")
    check_batches_split(space, flags.workers, flags.workers_flag)
    trackers = check_trackers(args.tracker)
    from sibcl_ray import storage

    output = (args.output or Path("sibcl_runs") / f"{args.problem}-{preset.name}").expanduser().absolute()
    for flag, where in (("--output", output), ("--data-dir", args.data_dir), ("--storage", args.storage)):
        if where is not None:
            storage.check_location(where, flag)
    check_address(args.address)
    if args.resume:
        from sibcl_ray.search.run import latest_experiment

        latest_experiment(storage.join(storage.resolve(args.storage or output), "tune"), f"{args.problem}-{preset.name}-")
    output.mkdir(parents=True, exist_ok=True)
    write_run_config(replace(preset, num_samples=num_samples), output / "run_config.yaml")  # --preset repeats it

    import ray

    from sibcl_ray.search.run import SearchSettings, run_search
    from sibcl_ray.session import is_multi_node, start_ray

    start_ray(args.address, driver_slots=max(num_samples, 1))
    try:
        multi_node = is_multi_node()
        storage.check_storage(args.storage, "--storage", multi_node)
        storage.check_storage(str(args.data_dir.expanduser()), "--data-dir", multi_node)
        plan = flags.plan(ray.cluster_resources(), joined=args.address is not None, cap=num_samples)
        settings = SearchSettings(
            problem=args.problem, problem_options=options, preset=preset, space=space, output=output,
            storage=storage.resolve(args.storage or output),
            data_root=args.data_dir.expanduser(), seed=args.seed, num_samples=num_samples,
            max_concurrent=plan.concurrent, workers_per_trial=flags.workers, cpus_per_worker=flags.cpus_per_worker,
            gpus_per_worker=plan.gpus_per_worker, search=args.search, start=tuple(start), rung_metric=args.rung_metric,
            trackers=trackers, dataset=dataset, select=args.select,
        )
        return run_search(settings, resume=args.resume)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
