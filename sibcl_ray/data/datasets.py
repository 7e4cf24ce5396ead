"""Ray Data views of verified shards: what the Train workers read with ``get_dataset_shard``."""

from __future__ import annotations

from pathlib import Path

import ray.data
from ray.data.expressions import col

#: CPUs asked per read task: a fraction, so reads are never starved by Train workers that
#: hold whole CPUs (RAY_NOTES: "Ray Data can hang when Train workers hold every CPU").
READ_TASK_CPUS = 0.25


def split_dataset(paths: list[Path], count: int) -> ray.data.Dataset:
    """The first ``count`` samples of a split, materialised in the object store.

    Materialising once per trial costs one read; every epoch then iterates memory, which
    RAY_NOTES measured at 0.6 s against 5–12 s for re-reading Parquet each epoch.
    """
    ds = ray.data.read_parquet([str(p) for p in paths], num_cpus=READ_TASK_CPUS)
    ds = ds.filter(expr=col("index") < int(count), num_cpus=READ_TASK_CPUS)
    return ds.materialize()
