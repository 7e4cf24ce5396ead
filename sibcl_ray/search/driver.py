"""The Tune trial: one function trainable per trial, training in place or through Ray Train.

A one-worker trial runs the training loop right here, in its Tune function trainable
(``train.context.TuneTrial``): the driver reads the splits once and hands every trial the same
arrays from the object store, Tune keeps the trial's checkpoints, and a retried or restored
trial resumes from its latest. That is Tune's own start-up floor — none of Ray Train's
controller, worker actor and process group, about 20 s of every trial on two cores.

A trial with several workers (DDP) is a thin driver instead: Ray 2.60 runs Train V2, where a
TorchTrainer cannot be handed to a Tuner, so the driver (no CPU of its own) builds a trainer
whose Train run is named after the trial (so a retried or restored trial resumes from its last
checkpoint), hands it the search's materialised datasets, and lets Train's TuneReportCallback
forward every epoch's metrics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import ray.data
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback

from sibcl_ray import storage
from sibcl_ray.train.context import TuneTrial
from sibcl_ray.train.loop import train_loop
from sibcl_ray.train.runs import RunSpec, finished_run_metrics, fit_run

#: What a trial is handed: Ray Data datasets (Train workers) or arrays (a one-worker trial).
TrialData = dict[str, ray.data.Dataset] | dict[str, dict[str, np.ndarray]]


def run_trial(config: dict[str, Any], job: RunSpec, datasets: TrialData) -> None:
    """Tune function trainable: train one configuration and report every epoch through Tune."""
    name = f"{job.experiment}-{tune.get_context().get_trial_id()}"
    if job.trains_in_place:
        train_loop(job.loop_config(config, name), TuneTrial(datasets))
        return
    finished = finished_run_metrics(storage.join(job.storage_path, name), job.total_epochs)
    if finished is not None:  # restored after its Train run ended: Train would report nothing
        tune.report(finished)
        return
    fit_run(job, config, name, callbacks=[TuneReportCallback()], datasets=datasets)
