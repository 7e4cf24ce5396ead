"""Experiment trackers for a search: Tune's own logger callbacks, chosen with ``--tracker``.

TensorBoard event files are always written (Tune's default, in each trial's folder);
``--tracker mlflow`` / ``wandb`` / ``aim`` add that tool's Tune callback, one run per trial
with its configuration and every reported metric. The packages are optional extras:
:func:`check_trackers` refuses a tracker whose package is missing before Ray starts.

MLflow logs to ``$MLFLOW_TRACKING_URI`` when set, else to a SQLite store in the search's
output folder (``sqlite:///<output>/mlflow.db``; MLflow 3 keeps the plain-folder store in
maintenance mode): ``mlflow ui --backend-store-uri sqlite:///<output>/mlflow.db``.
W&B and Aim take their usual environment (``WANDB_*``; Aim's repository is ``<output>``).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from sibcl_ray.errors import SibclError

#: tracker → (package to import, pip requirement that provides it)
TRACKERS: dict[str, tuple[str, str]] = {
    "mlflow": ("mlflow", "mlflow-skinny (pip install 'sibcl_ray[mlflow]')"),
    "wandb": ("wandb", "wandb"),
    "aim": ("aim", "aim"),
}
MLFLOW_DB = "mlflow.db"


def check_trackers(names: list[str]) -> tuple[str, ...]:
    """The trackers asked for, each known and installed, duplicates dropped."""
    chosen: list[str] = []
    for name in names:
        if name not in TRACKERS:
            raise SibclError(f"--tracker {name!r} is unknown: allowed values are {', '.join(TRACKERS)}")
        package, requirement = TRACKERS[name]
        if importlib.util.find_spec(package) is None:
            raise SibclError(f"--tracker {name} needs the {package} package, which is not installed: pip install {requirement}")
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)


def mlflow_tracking_uri(output: Path) -> str:
    """Where MLflow runs go: ``$MLFLOW_TRACKING_URI``, else the SQLite store in ``output``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(output).absolute() / MLFLOW_DB}"


def tracker_callbacks(names: tuple[str, ...], output: Path, experiment: str) -> list[Any]:
    """Tune logger callbacks for ``names``; every trial becomes one run of ``experiment``."""
    callbacks: list[Any] = []
    for name in names:
        if name == "mlflow":
            from ray.air.integrations.mlflow import MLflowLoggerCallback

            callbacks.append(MLflowLoggerCallback(tracking_uri=mlflow_tracking_uri(output), experiment_name=experiment,
                                                  tags={"sibcl_ray.search": experiment}))
        elif name == "wandb":
            from ray.air.integrations.wandb import WandbLoggerCallback

            callbacks.append(WandbLoggerCallback(project=os.environ.get("WANDB_PROJECT", "sibcl_ray"), group=experiment))
        elif name == "aim":
            from ray.tune.logger.aim import AimLoggerCallback

            callbacks.append(AimLoggerCallback(repo=str(output), experiment_name=experiment))
    return callbacks


def describe(names: tuple[str, ...], output: Path) -> str | None:
    """One line telling the user where the trackers' runs are, or None without trackers."""
    if not names:
        return None
    where = {"mlflow": f"mlflow ui --backend-store-uri {mlflow_tracking_uri(output)}",
             "wandb": "your W&B project", "aim": f"aim up --repo {output}"}
    return "trackers: " + "; ".join(f"{n} → {where[n]}" for n in names)
