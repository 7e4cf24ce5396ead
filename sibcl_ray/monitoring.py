"""Our own metrics on the Ray dashboard / Prometheus endpoint (``ray.util.metrics``).

Exported by every node on its metrics-export port with Ray's ``ray_`` prefix, e.g.
``ray_sibcl_labels_generated_total``. Metrics are created lazily, in the process that
records them, because they need a connected Ray worker or driver.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ray.util import metrics


@lru_cache(maxsize=None)
def _metric(kind: str, name: str, description: str, tags: tuple[str, ...]) -> Any:
    cls = {"counter": metrics.Counter, "gauge": metrics.Gauge}[kind]
    return cls(name, description=description, tag_keys=tags)


_label_totals: dict[tuple[str, str], int] = {}


def record_labels(problem: str, split: str, rows: int, elapsed_s: float) -> None:
    """Count ``rows`` newly generated samples and update the generation throughput."""
    tags = {"problem": problem, "split": split}
    _metric("counter", "sibcl_labels_generated", "Samples generated (inputs and labels)", ("problem", "split")).inc(rows, tags)
    total = _label_totals[(problem, split)] = _label_totals.get((problem, split), 0) + rows
    if elapsed_s > 0:
        _metric("gauge", "sibcl_labels_per_second", "Label generation throughput of the current run",
                ("problem", "split")).set(total / elapsed_s, tags)


def record_pretraining_throughput(problem: str, samples_per_second: float) -> None:
    """Contrastive pretraining speed of one Train worker (samples, both views, per second)."""
    _metric("gauge", "sibcl_pretrain_samples_per_second", "Contrastive pretraining samples per second per worker",
            ("problem",)).set(samples_per_second, {"problem": problem})


def record_best_val_error(problem: str, value: float) -> None:
    """The search's best validation error so far."""
    _metric("gauge", "sibcl_search_best_val_error", "Best validation error of the running search",
            ("problem",)).set(value, {"problem": problem})
