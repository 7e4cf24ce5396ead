"""Where a training loop runs: in Ray Train workers (DDP), in a Tune trial, or in a Ray task.

``train.loop.train_loop`` needs five things from its surroundings: its rank and world size,
its device, its splits, the checkpoint to resume from, and a way to report an epoch (with a
checkpoint). ``TrainWorker`` takes them from Ray Train, inside a ``TorchTrainer`` worker.
``TuneTrial`` takes them from Ray Tune, inside a one-worker trial's function trainable: such a
trial needs none of Train's machinery (controller, worker actor, process group — about 20 s of
every trial's start on two cores, docs/ray.md), so it starts at Tune's own floor. Both report
the same metrics and save the same checkpoint format; the loop cannot tell them apart.
``TaskRun`` is the same for a one-worker run in a plain Ray task (a benchmark's pretraining or
fine-tuning cell): it writes its checkpoints itself to ``<storage>/<run name>/checkpoint_<epoch>``
and resumes from the latest readable one when Ray retries the task.

Example (what ``search.driver.run_trial`` does for a one-worker trial)::

    arrays = {"val": shards.read_split(val_paths, n_val), ...}   # read once, in the driver
    train_loop(job.loop_config(hparams, name), TuneTrial(arrays))
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow.fs
import ray
import ray.train
import ray.train.torch
import torch
from ray import tune

from sibcl_ray import storage
from sibcl_ray.train.checkpoints import readable_state


class LoopContext(Protocol):
    """What ``train.loop.train_loop`` asks of where it runs."""

    rank: int
    world_size: int
    device: torch.device

    def split_batches(self, name: str) -> Iterable[dict[str, np.ndarray]]:
        """This worker's part of split ``name``, as numpy batches with ``x`` (and ``y``)."""

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model on this worker's device (wrapped in DDP when there are several workers)."""

    def latest_checkpoint(self) -> Any | None:
        """The checkpoint to resume from (a retried or restored run), or None."""

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        """Report one epoch's metrics, with the checkpoint in ``checkpoint_dir`` when given."""


class TrainWorker:
    """A Ray Train ``TorchTrainer`` worker: datasets from ``get_dataset_shard``, DDP, Train's reports."""

    def __init__(self) -> None:
        context = ray.train.get_context()
        self.rank, self.world_size = context.get_world_rank(), context.get_world_size()
        self.device = ray.train.torch.get_device()

    def split_batches(self, name: str) -> Iterable[dict[str, np.ndarray]]:
        return ray.train.get_dataset_shard(name).iter_batches(batch_size=1024, batch_format="numpy")

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"find_unused_parameters": True})

    def latest_checkpoint(self) -> Any | None:
        return ray.train.get_checkpoint()

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint)


def _device() -> torch.device:
    """The GPU Ray gave this process, else the CPU."""
    return torch.device("cuda") if ray.get_gpu_ids() and torch.cuda.is_available() else torch.device("cpu")


class _InProcess:
    """A one-worker run in this process: arrays handed over by its caller, this process's device."""

    rank = 0
    world_size = 1

    def __init__(self, arrays: dict[str, dict[str, np.ndarray]]) -> None:
        self.arrays = arrays
        self.device = _device()

    def split_batches(self, name: str) -> Iterable[dict[str, np.ndarray]]:
        return [self.arrays[name]]

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(self.device)


class TuneTrial(_InProcess):
    """A one-worker run inside a Tune function trainable: Tune's checkpoints (a retried or
    restored trial resumes from its latest) and reports."""

    def latest_checkpoint(self) -> Any | None:
        """Tune's checkpoint of this trial or, when a restored trial is handed none, its latest
        readable checkpoint folder: a search stopped between a trial's report and Tune's saving
        of the experiment state restores that trial without a checkpoint, and it would start over."""
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            return checkpoint
        from ray.train._internal.session import get_session  # the trial's storage: no public accessor in 2.60

        where = get_session().storage  # get_trial_dir() is the local working dir, not where checkpoints go
        fs = where.storage_filesystem
        infos = fs.get_file_info(pyarrow.fs.FileSelector(where.trial_fs_path, allow_not_found=True))
        folders = sorted(i.path for i in infos if i.type == pyarrow.fs.FileType.Directory
                         and i.base_name.startswith("checkpoint_"))
        for folder in reversed(folders):  # the newest one whose copy was not cut short
            candidate = tune.Checkpoint(path=folder, filesystem=fs)
            if readable_state(candidate) is not None:
                return candidate
        return None

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        tune.report(metrics, checkpoint=checkpoint)


class TaskRun(_InProcess):
    """A one-worker run in a Ray task: checkpoints kept by the run itself in ``run_dir`` (the
    last ``keep``, and those after the epochs in ``keep_epochs`` for good), the last report kept
    for the caller."""

    def __init__(self, arrays: dict[str, dict[str, np.ndarray]], run_dir: str, keep: int = 2,
                 keep_epochs: tuple[int, ...] = ()) -> None:
        super().__init__(arrays)
        self.run_dir, self.keep = run_dir, keep
        self.kept = {f"checkpoint_{e:06d}" for e in keep_epochs}
        self.metrics: dict[str, Any] = {}
        self.checkpoint: str | None = self.latest_checkpoint()

    def latest_checkpoint(self) -> str | None:
        folders = [f for f in storage.list_dirs(self.run_dir, "checkpoint_") if readable_state(f) is not None]
        return folders[-1] if folders else None

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        self.metrics = dict(metrics)
        if checkpoint_dir is None:
            return
        self.checkpoint = storage.join(self.run_dir, f"checkpoint_{int(metrics['epochs_done']):06d}")
        storage.delete_folder(self.checkpoint)  # an unreadable copy left by a run that died writing it
        storage.put_folder(Path(checkpoint_dir), self.checkpoint)
        for old in storage.list_dirs(self.run_dir, "checkpoint_")[:-self.keep]:
            if old.rstrip("/").rsplit("/", 1)[-1] not in self.kept:
                storage.delete_folder(old)
