"""The Tune trial driver: one function trainable per trial that builds and fits its own TorchTrainer.

Ray 2.60 runs Train V2, where a TorchTrainer cannot be handed to a Tuner; each trial is a
thin driver (no CPU of its own) that takes the search's materialised datasets, builds a trainer
whose Train run is named after the trial (so a retried or restored trial resumes from its
last checkpoint), and lets Train's TuneReportCallback forward every epoch's metrics.
"""

from __future__ import annotations

from typing import Any

import ray.data
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback

from sibcl_ray import storage
from sibcl_ray.train.runs import RunSpec, finished_run_metrics, fit_run


def run_trial(config: dict[str, Any], job: RunSpec, datasets: dict[str, ray.data.Dataset]) -> None:
    """Tune function trainable: train one configuration with Ray Train and report through Tune."""
    name = f"{job.experiment}-{tune.get_context().get_trial_id()}"
    finished = finished_run_metrics(storage.join(job.storage_path, name), job.total_epochs)
    if finished is not None:  # restored after its Train run ended: Train would report nothing
        tune.report(finished)
        return
    fit_run(job, config, name, callbacks=[TuneReportCallback()], datasets=datasets)


