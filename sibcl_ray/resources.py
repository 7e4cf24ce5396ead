"""The Ray resource policy of ``tune`` and ``benchmark``: one set of flags, one set of rules.

A search trial and a benchmark run are the same kind of thing (one training run of
``--workers-per-trial``/``--workers-per-run`` workers), so both commands take the same four
flags, check them the same way before Ray starts, and size their concurrency the same way:

- a one-worker run trains in the process Ray gives it (a Tune trial, a Ray task), which holds
  the worker's CPUs and GPUs;
- a DDP run's driver holds one ``trial_driver`` slot (a custom resource of the head,
  ``session.start_ray``; a sliver of CPU where the cluster has none) and its Train workers
  hold the CPUs and GPUs;
- as many runs at once as the cluster's CPUs and GPUs fit, or ``--max-concurrent``; on a local
  Ray a run that does not fit at all is refused, on a cluster it waits for the autoscaler.

Example::

    flags = ResourceFlags.from_args(args, "trial")      # before Ray: one-line errors
    plan = flags.plan(ray.cluster_resources(), joined=args.address is not None, cap=num_samples)
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from sibcl_ray.errors import SibclError

#: The head's custom resource that trial and run drivers hold instead of a CPU (cluster.yaml).
DRIVER_RESOURCE = "trial_driver"


def add_resource_arguments(parser: argparse.ArgumentParser, unit: str) -> None:
    """``--max-concurrent``, ``--workers-per-<unit>``, ``--cpus-per-worker``, ``--gpus-per-worker``."""
    what = {"trial": "trials", "run": "Train runs"}[unit]
    parser.add_argument("--max-concurrent", type=int, help=f"{what} at once (default: as many as the CPUs/GPUs allow)")
    parser.add_argument(f"--workers-per-{unit}", type=int, default=1, dest="workers", metavar="N",
                        help=f"DDP workers per {unit} (default 1); batch sizes are global and split evenly across them")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs per Train worker (default 1)")
    parser.add_argument("--gpus-per-worker", type=float,
                        help="GPUs per Train worker (default: 1 when the cluster has GPUs, else 0)")


@dataclass(frozen=True)
class ResourceFlags:
    """The four flags, checked."""

    unit: str
    workers: int
    cpus_per_worker: float
    gpus_per_worker: float | None
    max_concurrent: int | None

    @property
    def workers_flag(self) -> str:
        return f"--workers-per-{self.unit}"

    @classmethod
    def from_args(cls, args: argparse.Namespace, unit: str) -> ResourceFlags:
        flags = cls(unit, args.workers, args.cpus_per_worker, args.gpus_per_worker, args.max_concurrent)
        for flag, value in ((flags.workers_flag, flags.workers), ("--max-concurrent", flags.max_concurrent)):
            if value is not None and value < 1:
                raise SibclError(f"{flag} {value} must be at least 1")
        if flags.cpus_per_worker <= 0 or (flags.gpus_per_worker or 0) < 0:
            raise SibclError(f"--cpus-per-worker {flags.cpus_per_worker} must be > 0 and --gpus-per-worker "
                             f"{flags.gpus_per_worker} must be >= 0")
        return flags

    def plan(self, cluster: dict[str, float], joined: bool, cap: int) -> ResourcePlan:
        """GPUs per worker and how many runs at once (at most ``cap``) on a cluster with ``cluster``
        resources; ``joined``: the command joined a cluster (``--address``), which may grow."""
        gpus = gpus_per_worker(self.gpus_per_worker, cluster)
        need_cpus, need_gpus = self.workers * self.cpus_per_worker, self.workers * gpus
        fits = int(cluster.get("CPU", 0) // need_cpus)  # a head with no CPUs has no "CPU" key at all
        if need_gpus:
            fits = min(fits, int(cluster.get("GPU", 0) // need_gpus))
        if fits < 1:
            needs = (f"one {self.unit} needs {need_cpus:g} CPUs and {need_gpus:g} GPUs but the cluster has "
                     f"{cluster.get('CPU', 0):g} CPUs and {cluster.get('GPU', 0):g} GPUs now")
            if not joined:
                raise SibclError(needs)
            print(f"note: {needs}; {self.unit}s wait for the autoscaler to add nodes", flush=True)
            fits = 1
        return ResourcePlan(gpus_per_worker=gpus, concurrent=max(1, min(self.max_concurrent or fits, cap)))


@dataclass(frozen=True)
class ResourcePlan:
    gpus_per_worker: float
    concurrent: int


def gpus_per_worker(requested: float | None, cluster: dict[str, float]) -> float:
    """GPUs per Train worker: as asked, else one when the cluster has GPUs (the reference's
    models are sized for a GPU), else none."""
    return requested if requested is not None else float(cluster.get("GPU", 0) > 0)


def driver_resources(cluster: dict[str, float]) -> dict[str, float]:
    """What a DDP run's driver holds: a ``trial_driver`` slot when the cluster has them, else a
    sliver of CPU (Tune's resource-dict spelling: ``cpu`` and custom names)."""
    if cluster.get(DRIVER_RESOURCE, 0) >= 1:
        return {"cpu": 0, DRIVER_RESOURCE: 1}
    return {"cpu": 0.01}


def run_resources(trains_in_place: bool, cpus_per_worker: float, gpus_per_worker: float,
                  cluster: dict[str, float]) -> dict[str, float]:
    """What the process running one trial or run holds: the worker's CPUs and GPUs when it trains
    in place (one worker), else a driver's slot (its Train workers hold the rest)."""
    if trains_in_place:
        return {"cpu": cpus_per_worker, **({"gpu": gpus_per_worker} if gpus_per_worker else {})}
    return driver_resources(cluster)


def task_options(resources: dict[str, float]) -> dict[str, Any]:
    """``run_resources`` in the spelling of ``ray.remote(...).options``."""
    rest = {k: v for k, v in resources.items() if k not in ("cpu", "gpu")}
    return {"num_cpus": resources.get("cpu", 0), "num_gpus": resources.get("gpu", 0), **({"resources": rest} if rest else {})}
