"""One search: labels → Ray Data → Tune (Optuna TPE + ASHA) over Train trials → one test evaluation."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import ray
from optuna.samplers import TPESampler
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from sibcl_ray.data.generate import generate
from sibcl_ray.errors import SibclError
from sibcl_ray.monitoring import record_best_val_error
from sibcl_ray.presets import Preset
from sibcl_ray.search.driver import TrialJob, run_trial
from sibcl_ray.search.space import to_tune
from sibcl_ray.train.evaluate import test_error
from sibcl_ray.train.methods import get_method

#: Custom resource the trial drivers take instead of CPU: a driver only waits on its
#: TorchTrainer, so every CPU stays with the Train workers and Ray Data.
DRIVER_RESOURCE = "trial_driver"


@dataclass(frozen=True)
class SearchSettings:
    problem: str
    problem_options: dict[str, Any]
    preset: Preset
    space: dict[str, Any]
    output: Path
    data_root: Path
    seed: int
    num_samples: int
    max_concurrent: int
    workers_per_trial: int
    cpus_per_worker: float
    gpus_per_worker: float
    method: str = "sibcl"


class _BestValidation(tune.Callback):
    """Publishes the search's best fine-tuned validation error as a Ray metric."""

    def __init__(self, problem: str) -> None:
        self.problem, self.best = problem, float("inf")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if result.get("phase") == "finetune" and result.get("val_error", float("inf")) < self.best:
            self.best = float(result["val_error"])
            record_best_val_error(self.problem, self.best)


def run_search(settings: SearchSettings) -> dict[str, Any]:
    """Generate (or reuse) the data, run the search, evaluate the best trial on test once."""
    start = time.perf_counter()
    preset = settings.preset
    method = get_method(settings.method)
    counts = {"unlabeled": preset.n_unlabeled, "surrogate": preset.n_surrogate, "train": preset.n_train_pool,
              "val": preset.n_val, "test": preset.n_test}
    counts = {s: n for s, n in counts.items() if s in method.needs() or s == "test"}
    data = generate(settings.problem, settings.problem_options, counts, settings.data_root, settings.seed, preset.shard_size)
    computed = sum(data.samples_computed.values())
    print(f"data: {data.root} ({computed} samples computed in {data.seconds:.1f} s"
          + (f", {data.samples_per_second:.1f} samples/s)" if computed else ", all reused)"), flush=True)

    experiment = f"{settings.problem}-{preset.name}-{datetime.now():%Y%m%d-%H%M%S}"
    output = settings.output.absolute()
    job = TrialJob(
        problem=settings.problem, problem_options=settings.problem_options, method=settings.method,
        model_size=preset.model_size, pretrain_epochs=preset.pretrain_epochs, finetune_epochs=preset.finetune_epochs,
        nsam=preset.nsam, seed=settings.seed,
        splits={s: ([str(p) for p in data.paths[s]], counts[s]) for s in counts},
        storage_path=str(output / "train"), experiment=experiment, num_workers=settings.workers_per_trial,
        cpus_per_worker=settings.cpus_per_worker, gpus_per_worker=settings.gpus_per_worker,
    )
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(run_trial, job=job), driver_resources()),
        param_space=to_tune(settings.space),
        tune_config=tune.TuneConfig(
            metric="val_error", mode="min", num_samples=settings.num_samples,
            search_alg=ConcurrencyLimiter(
                OptunaSearch(sampler=TPESampler(seed=settings.seed, n_startup_trials=max(2, settings.num_samples // 3))),
                max_concurrent=settings.max_concurrent),
            scheduler=ASHAScheduler(time_attr="epochs_done", max_t=job.total_epochs,
                                    grace_period=min(preset.grace_period, job.total_epochs),
                                    reduction_factor=preset.reduction_factor),
        ),
        run_config=tune.RunConfig(name=experiment, storage_path=str(output / "tune"),
                                  callbacks=[_BestValidation(settings.problem)]),
    )
    results = tuner.fit()
    best = best_finetuned(results)
    test = ray.get(ray.remote(num_cpus=1)(test_error).remote(
        settings.problem, settings.problem_options, preset.model_size, best.metrics["checkpoint_path"],
        data.paths["test"], preset.n_test))
    summary = {
        "problem": settings.problem, "preset": preset.name, "method": settings.method,
        "best_config": {k: best.config[k] for k in settings.space},
        "val_error": float(best.metrics["val_error"]), "test_error": test["test_error"],
        "test_error_std": test["test_error_std"], "n_test": test["n_test"], "nsam": preset.nsam,
        "n_trials": len(results), "n_trials_finished_all_epochs": sum(bool(r.metrics.get("done")) for r in results),
        "wall_s": round(time.perf_counter() - start, 1), "experiment": str(output / "tune" / experiment),
        "data": str(data.root), "labels_computed": computed, "problem_options": settings.problem_options,
    }
    (output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def driver_resources() -> dict[str, float]:
    """Trial-driver resources: the custom resource when the cluster has it, else a sliver of CPU."""
    if ray.cluster_resources().get(DRIVER_RESOURCE, 0) >= 1:
        return {"cpu": 0, DRIVER_RESOURCE: 1}
    return {"cpu": 0.01}


def best_finetuned(results: tune.ResultGrid) -> tune.Result:
    """The trial with the lowest validation error among those that reached fine-tuning."""
    candidates = [r for r in results if r.metrics and r.metrics.get("phase") == "finetune" and r.error is None]
    if not candidates:
        errors = [str(r.error).splitlines()[0] for r in results if r.error is not None]
        raise SibclError("no trial reached fine-tuning" + (f"; first error: {errors[0]}" if errors else ""))
    return min(candidates, key=lambda r: r.metrics["val_error"])
