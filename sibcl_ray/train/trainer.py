"""Build one Ray Train ``TorchTrainer`` for one training run (a Tune trial, or a benchmark cell)."""

from __future__ import annotations

from typing import Any

import ray.data
import ray.train
from ray.train import DataConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from sibcl_ray.train.loop import train_loop_per_worker
from sibcl_ray.train.process_group import torch_config_for_this_ray


def build_trainer(loop_config: dict[str, Any], datasets: dict[str, ray.data.Dataset], *, name: str,
                  storage_path: str, num_workers: int, cpus_per_worker: float, gpus_per_worker: float,
                  callbacks: list[Any] | None = None, max_failures: int = 2,
                  keep_all_checkpoints: bool = False) -> TorchTrainer:
    """A TorchTrainer (DDP over ``num_workers``) whose run resumes from its latest checkpoint.

    ``name`` must be stable for the run: a retried or restored trial that builds its trainer
    with the same name and storage path continues from the run's last checkpoint. The
    validation split is given whole to every worker; the others are split across workers
    (a single worker takes them whole, which spares Ray Data's split coordinators). On a local
    Ray the process group meets through a file (``train.process_group``).
    """
    resources: dict[str, float] = {"CPU": cpus_per_worker}
    if gpus_per_worker:
        resources["GPU"] = gpus_per_worker
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        torch_config=torch_config_for_this_ray(),  # local Ray: no rendezvous port on the network
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=bool(gpus_per_worker), resources_per_worker=resources),
        datasets=datasets,
        # one worker: every split whole, no streaming_split coordinator actors to start per run
        dataset_config=DataConfig(datasets_to_split=[n for n in datasets if n != "val"] if num_workers > 1 else []),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=storage_path,
            callbacks=callbacks or [],
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
            # every checkpoint when some are fine-tuned from later (a benchmark's pretraining), else the last two
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=None if keep_all_checkpoints else 2),
        ),
    )
