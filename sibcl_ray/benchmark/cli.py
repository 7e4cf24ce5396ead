"""``python -m sibcl_ray.benchmark``: the label-efficiency curve — test error against labels, per method.

    python -m sibcl_ray.benchmark --problem phc                         # quick preset, every method
    python -m sibcl_ray.benchmark --problem tise --dim 2 --methods sibcl,sl --nsam 50,100 --seeds 3
    python -m sibcl_ray.benchmark --problem phc --dataset mine --config best_config.yaml --export
    python -m sibcl_ray.benchmark --problem phc --methods sibcl,sibcl-al --selection typiclust   # active labelling

Every method of SIB-CL and its baselines (``sibcl, ssl, tl, tl-i, sl, sl-i``; docs/method.md) runs in
one harness: the same encoder, fine-tuning, validation-based model selection and whole-test-set
evaluation. Each pretraining method pretrains once, and that encoder is fine-tuned for every label
budget and seed. ``sibcl-al``, ``ssl-al`` and ``tl-al`` share the pretraining of ``sibcl``, ``ssl``
and ``tl`` but pick the inputs to label from the unlabeled pool by their embeddings
(``--selection``) and solve them on demand, to compare with random labelling at equal budgets.
Each run is a Ray task (``benchmark.run``) sized by the shared resource policy
(``resources``), so cells run side by side on every free CPU or GPU.

Resumable: a finished cell is a JSON file under ``<output>/cells`` and is never rerun; an
interrupted run is named after its cell and continues from its last checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sibcl_ray.cli import (add_data_arguments, add_dataset_argument, add_problem_arguments, check_address,
                           problem_options, run_main)
from sibcl_ray.errors import SibclError
from sibcl_ray.presets import PRESETS, get_preset, write_run_config
from sibcl_ray.resources import ResourceFlags, add_resource_arguments
from sibcl_ray.search.space import check_batches_split, read_search_file
from sibcl_ray.learning.selection import STRATEGIES
from sibcl_ray.train.methods import METHODS, get_method

#: What ``--methods`` runs by default: SIB-CL and the baselines of the paper (not the ``-al`` variants).
DEFAULT_METHODS = tuple(m for m, method in METHODS.items() if not method.selects and not method.multifidelity)


@dataclass(frozen=True)
class Cell:
    """One point of one curve: a method fine-tuned on ``nsam`` labels with one seed."""

    method: str
    nsam: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.method}-n{self.nsam}-s{self.seed}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sibcl_ray.benchmark",
        description="Label-efficiency benchmark: test error of every method at every label budget, over seeds. "
                    "Writes results.json, results.md (table + label savings of SIB-CL) and label_efficiency.png.",
    )
    add_problem_arguments(parser)
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help=f"comma-separated, from: {', '.join(METHODS)} (default: {','.join(DEFAULT_METHODS)}; "
                             "the -al methods pick the inputs they label, see --selection; the -mf methods also read "
                             "each input's cheap label, for a problem that has one (phc, tise): fit-mf is the closed-form "
                             "fit E ≈ a + b·E_lo + c·E_lo² alone (per component of a vector label), sl-mf, tl-mf, "
                             "sibcl-mf learn its residual)")
    parser.add_argument("--selection", default="typiclust", choices=sorted(STRATEGIES),
                        help="how the -al methods pick the inputs to label from the unlabeled pool by their "
                             "pretrained embeddings: typiclust (most typical input of each k-means cluster; default) or "
                             "kcenter (greedy farthest-point)")
    parser.add_argument("--nsam", help="comma-separated label budgets (default: the preset's, e.g. 50,100,200 for quick)")
    parser.add_argument("--seeds", type=int, help="fine-tuning seeds per budget (default: the preset's)")
    parser.add_argument("--preset", default="quick", help=f"run size: one of {', '.join(PRESETS)} (default quick), or a YAML file of preset fields "
                             "(e.g. a run's run_config.yaml; README 'Run sizes')")
    parser.add_argument("--config", type=Path, help="hyperparameters as YAML constants, e.g. a search's best_config.yaml "
                                                    "(default: the reference values)")
    parser.add_argument("--output", type=Path, help="output folder (default ./sibcl_runs/benchmark-<problem>-<preset>)")
    add_data_arguments(parser)
    add_dataset_argument(parser)
    add_resource_arguments(parser, "run")
    parser.add_argument("--export", action="store_true",
                        help="also write every cell's model folder (model.pt, model.json, test_predictions.png, "
                             "embedding.png) to <output>/models/<cell>, for sibcl_ray.load_model and sibcl_ray.predict")
    return parser


def _parse_list(text: str | None, default: tuple[int, ...], flag: str) -> tuple[int, ...]:
    if text is None:
        return default
    try:
        values = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        raise SibclError(f"{flag} {text!r} is not a comma-separated list of integers") from None
    if not values or values[0] < 2:
        raise SibclError(f"{flag} {text!r}: give at least one budget, each at least 2")
    return values


def load_hparams(path: Path | None) -> dict[str, Any]:
    """Hyperparameters from a YAML file of constants (a search's best_config.yaml), checked."""
    if path is None:
        return {}
    values, start = read_search_file(path)
    searched = [k for k, v in values.items() if isinstance(v, dict)]
    if searched or start:
        what = f"key {searched[0]!r} is a distribution" if searched else "'start' lists search starting points"
        raise SibclError(f"--config {path}: {what}; a config holds constants only")
    return values


def _check_selecting(methods: tuple[str, ...], nsams: tuple[int, ...], pool: int, problem: str,
                     options: dict[str, Any]) -> None:
    """An active-labelling method needs the problem's solver and a pool larger than its budgets."""
    selecting = [m for m in methods if get_method(m).selects]
    if not selecting:
        return
    from sibcl_ray.problems import problem_class

    if not problem_class(problem).generates:
        raise SibclError(f"--methods {selecting[0]}: active labelling solves the labels it picks, and problem "
                         f"{problem!r} has no solver (its data comes from files); use {get_method(selecting[0]).twin}")
    if max(nsams) > pool:
        raise SibclError(f"--nsam {max(nsams)}: {selecting[0]} picks its labels from the unlabeled pool of {pool} "
                         "inputs; give budgets up to that")


def _check_multifidelity(methods: tuple[str, ...], hparams: dict[str, Any], problem: str) -> None:
    """A ``-mf`` method or ``multifidelity: true`` needs a problem with a per-input cheap label."""
    from sibcl_ray.problems import require_cheap_label

    mf = [m for m in methods if get_method(m).multifidelity]
    if mf:
        require_cheap_label(problem, f"--methods {mf[0]}", get_method(mf[0]).twin or "sl")
    if hparams.get("multifidelity"):
        require_cheap_label(problem, "multifidelity: true in --config", "multifidelity: false")
        plain = [m for m in methods if get_method(m).network and not get_method(m).multifidelity
                 and f"{m}-mf" not in METHODS]
        if plain:
            raise SibclError(f"--methods {plain[0]} has no multi-fidelity variant, and --config sets multifidelity: "
                             f"true: allowed are {', '.join(m for m in METHODS if m + '-mf' in METHODS)} and the -mf methods")


def main(argv: list[str] | None = None) -> int:
    return run_main(run, build_parser(), argv)


def run(args: argparse.Namespace) -> int:
    options = problem_options(args)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    for m in methods:
        get_method(m)
    if not methods:
        raise SibclError("--methods is empty: give at least one of " + ", ".join(METHODS))
    preset = get_preset(args.preset, problem=args.problem)
    nsams = _parse_list(args.nsam, preset.bench_nsam, "--nsam")
    seeds = args.seeds if args.seeds is not None else preset.bench_seeds
    if seeds < 1:
        raise SibclError(f"--seeds {seeds} must be at least 1")
    hparams = load_hparams(args.config)
    _check_multifidelity(methods, hparams, args.problem)
    _check_selecting(methods, nsams, preset.n_unlabeled, args.problem, options)
    dataset = None
    if args.dataset is not None:
        from sibcl_ray.data.imported import dataset_for_run
        from sibcl_ray.problems import get_problem

        needed: dict[str, list[str]] = {s: ["every method"] for s in ("train", "val", "test")}
        for m in (m for m in methods if get_method(m).pretrains):  # the pretraining splits, by who needs them
            for split in (s for s in get_method(m).needs() if s not in ("train", "val")):
                needed.setdefault(split, []).append(m)
        dataset, preset = dataset_for_run(args.data_dir, args.dataset, get_problem(args.problem, **options), preset,
                                          needed, nsams)
    flags = ResourceFlags.from_args(args, "run")
    check_batches_split(hparams, flags.workers, flags.workers_flag)
    output = (args.output or Path("sibcl_runs") / f"benchmark-{args.problem}-{preset.name}").expanduser().absolute()
    from sibcl_ray import storage

    for flag, where in (("--output", output), ("--data-dir", args.data_dir)):
        storage.check_location(where, flag)
    check_address(args.address)
    (output / "cells").mkdir(parents=True, exist_ok=True)
    write_run_config(replace(preset, bench_nsam=tuple(nsams), bench_seeds=seeds), output / "run_config.yaml")
    cells = [Cell(m, n, args.seed + s) for m in methods for n in nsams for s in range(seeds)]

    import ray

    from sibcl_ray.session import is_multi_node, start_ray

    start_ray(args.address, driver_slots=64)
    try:
        multi_node = is_multi_node()  # runs write checkpoints under --output, tasks read --data-dir: both shared
        storage.check_storage(str(output), "--output", multi_node)
        storage.check_storage(str(args.data_dir.expanduser()), "--data-dir", multi_node)
        plan = flags.plan(ray.cluster_resources(), joined=args.address is not None, cap=len(cells))
        from sibcl_ray.benchmark.run import run_benchmark

        results = run_benchmark(
            problem=args.problem, problem_options=options, preset=preset, cells=cells, hparams=hparams,
            output=output, data_root=args.data_dir.expanduser(), seed=args.seed, max_concurrent=plan.concurrent,
            workers=flags.workers, cpus_per_worker=flags.cpus_per_worker, gpus_per_worker=plan.gpus_per_worker,
            export=args.export, dataset=dataset, selection=args.selection,
        )
    finally:
        ray.shutdown()
    print(Path(output / "results.md").read_text())
    print(f"results: {output}/results.json, results.md, label_efficiency.png ({results['wall_s']:.0f} s)")
    return 0

