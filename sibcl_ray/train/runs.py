"""One training run as data (``RunSpec``) and its execution: in place for one worker, as a
Ray Train ``TorchTrainer`` for several (DDP).

Shared by the Tune trial driver (``search.driver``) and the label-efficiency benchmark
(``benchmark.run``): both describe a run the same way and resume it the same way, by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray
import ray.data

from sibcl_ray import storage
from sibcl_ray.data import shards
from sibcl_ray.data.datasets import split_dataset
from sibcl_ray.train.checkpoints import readable_state
from sibcl_ray.train.context import TaskRun
from sibcl_ray.train.evaluate import evaluate
from sibcl_ray.train.hparams import with_defaults
from sibcl_ray.train.loop import train_loop
from sibcl_ray.train.methods import get_method
from sibcl_ray.train.trainer import build_trainer


@dataclass(frozen=True)
class RunSpec:
    """Everything one Train run needs but its hyperparameters (shared by all trials of a search)."""

    problem: str
    problem_options: dict[str, Any]
    method: str
    model_size: str
    pretrain_epochs: int
    finetune_epochs: int
    nsam: int
    seed: int
    #: split name → (shard paths, sample count); the train split is cut to ``nsam``.
    splits: dict[str, tuple[list[str], int]]
    storage_path: str
    experiment: str
    #: Contrastive and supervised-surrogate optimizer steps per pretraining epoch (``Preset``).
    pretrain_steps: int
    surrogate_steps: int
    #: The pretraining signal early stopping compares (``rung_error``): ``probe_val_error``
    #: or ``val_error`` (zero-shot); see BENCHMARKS.md for the measured choice.
    rung_metric: str = "knn_val_error"
    num_workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    fixed_hparams: dict[str, Any] = field(default_factory=dict)
    #: Checkpoint folder to start from (a pretrained encoder reused across nsam and seeds).
    init_state: str | None = None
    #: Fine-tuning runs per trial from the same pretrained network, scored by their mean
    #: (``train.loop._finetune_replicas``); the benchmark harness runs its seeds as cells instead.
    finetune_seeds: int = 1
    #: Epochs whose checkpoints the run keeps for good (a benchmark's pretraining, fine-tuned
    #: from each); the others are pruned to the last two.
    keep_epochs: tuple[int, ...] = ()

    @property
    def trains_in_place(self) -> bool:
        """A one-worker run trains in the process that runs it (a Tune trial, a Ray task), without
        Ray Train's controller, worker actor and process group (``train.context``)."""
        return self.num_workers == 1

    @property
    def total_epochs(self) -> int:
        return (self.pretrain_epochs if get_method(self.method).pretrains else 0) + self.finetune_epochs

    def splits_needed(self) -> tuple[str, ...]:
        """The splits this run reads: pretraining's only if it pretrains, ``train`` only if it fine-tunes."""
        method = get_method(self.method)
        needed = ["val"]
        if self.finetune_epochs:
            needed.append("train")
        if method.pretrains and self.pretrain_epochs:
            needed += [s for s in method.needs() if s not in ("train", "val")]
        return tuple(needed)

    def loop_config(self, hparams: dict[str, Any], run_name: str) -> dict[str, Any]:
        return {
            "problem": self.problem, "problem_options": self.problem_options, "method": self.method,
            "model_size": self.model_size, "pretrain_epochs": self.pretrain_epochs,
            "finetune_epochs": self.finetune_epochs, "seed": self.seed, "trial_name": run_name,
            "pretrain_steps": self.pretrain_steps, "surrogate_steps": self.surrogate_steps,
            "rung_metric": self.rung_metric,
            "hparams": with_defaults({**self.fixed_hparams, **hparams}), "splits": self.splits_needed(),
            "init_state": self.init_state, "finetune_seeds": self.finetune_seeds,
            "threads": max(1, int(self.cpus_per_worker)),  # torch threads of each worker
        }


def read_splits(job: RunSpec, splits: tuple[str, ...] | None = None) -> dict[str, ray.data.Dataset]:
    """The job's splits as blocks in the object store (``train``: its first ``nsam``), read once
    so every run of a search or benchmark is handed the same blocks instead of re-reading."""
    return {split: split_dataset([Path(p) for p in job.splits[split][0]],
                                 job.nsam if split == "train" else job.splits[split][1])
            for split in (splits or job.splits_needed())}


def read_arrays(job: RunSpec, splits: tuple[str, ...] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """The job's splits as arrays (``train``: its first ``nsam``), read once by the driver for
    one-worker trials, which then share them from the object store (``tune.with_parameters``)."""
    return {split: shards.read_split([Path(p) for p in job.splits[split][0]],
                                     job.nsam if split == "train" else job.splits[split][1])
            for split in (splits or job.splits_needed())}


def trial_data(job: RunSpec, splits: tuple[str, ...] | None = None) -> dict[str, Any]:
    """What a run is handed: arrays when it trains in place, Ray Data blocks for Train workers."""
    return read_arrays(job, splits) if job.trains_in_place else read_splits(job, splits)


@dataclass(frozen=True)
class RunResult:
    """A finished run: its last report and its last checkpoint folder (path or URI)."""

    metrics: dict[str, Any]
    checkpoint: str


def fit_run(job: RunSpec, hparams: dict[str, Any], name: str, callbacks: list[Any] | None = None,
            datasets: dict[str, Any] | None = None) -> RunResult:
    """Run ``name`` to its end on ``datasets`` (``trial_data`` of this job, so ``train`` holds its
    ``nsam`` samples; read here when not given), resuming from its last checkpoint in
    ``<storage_path>/<name>``: in this process for one worker (a Ray task's), else as a
    TorchTrainer with ``callbacks``."""
    datasets = datasets if datasets is not None else trial_data(job)
    config = job.loop_config(hparams, name)
    if job.trains_in_place:
        run = TaskRun(datasets, storage.join(job.storage_path, name), keep_epochs=job.keep_epochs)
        train_loop(config, run)
        if run.checkpoint is None:
            raise RuntimeError(f"run {name} reported no checkpoint")
        return RunResult(run.metrics, run.checkpoint)
    ray.data.DataContext.get_current().enable_progress_bars = False
    trainer = build_trainer(
        config, {split: datasets[split] for split in job.splits_needed()}, name=name,
        storage_path=job.storage_path, num_workers=job.num_workers, cpus_per_worker=job.cpus_per_worker,
        gpus_per_worker=job.gpus_per_worker, callbacks=callbacks, keep_all_checkpoints=bool(job.keep_epochs),
    )
    result = trainer.fit()
    return RunResult(result.metrics, result.checkpoint.path)


def finished_run_metrics(run_dir: str, total_epochs: int) -> dict[str, Any] | None:
    """The final metrics of a Train run whose last readable checkpoint has every epoch done, else None."""
    for folder in reversed(storage.list_dirs(run_dir, "checkpoint_")):
        state = readable_state(folder)
        if state is None:  # its upload was cut short when the run stopped: Train never registered it
            continue
        if state["epochs_done"] >= total_epochs:
            return {"val_error": state["best_val"], "epochs_done": state["epochs_done"], "phase": "finetune",
                    "training_complete": True, "best_finetune_epoch": state["best_epoch"], "checkpoint_path": folder}
        return None
    return None


def evaluate_in_task(problem: str, problem_options: dict[str, Any], model_size: str, checkpoint: str,
                     test_paths: list[Path], count: int, use_gpu: bool, val_paths: list[Path] | None = None,
                     n_val: int = 0, keep_arrays: bool = False) -> dict[str, Any]:
    """``evaluate.evaluate`` as its own Ray task: the calling driver holds no CPU, and the
    reference 3D model wants the GPU its runs used (too slow on a CPU)."""
    task = ray.remote(num_cpus=1, num_gpus=1 if use_gpu else 0)(evaluate)
    return ray.get(task.remote(problem, problem_options, model_size, checkpoint, test_paths, count, val_paths,
                               n_val, keep_arrays))
