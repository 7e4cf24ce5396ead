"""Our own metrics on the Ray dashboard / Prometheus endpoint (``ray.util.metrics``).

Exported by every node on its metrics-export port with Ray's ``ray_`` prefix (counters also get
Prometheus's ``_total`` suffix), e.g. ``ray_sibcl_labels_generated_total``. Every metric is
declared once, in ``METRICS``: the Grafana dashboard (``sibcl_ray.grafana_dashboard``) is built
against this table and a test fails when one of them has no panel. Metrics are created lazily, in
the process that records them, because they need a connected Ray worker or driver.

A process exports what it recorded every ``metrics_report_interval_ms`` (10 s by default), and a
local Ray's node, whose agent serves the values to Prometheus, ends with the command: so when a
Prometheus is set up (``RAY_PROMETHEUS_HOST``), a search ends with ``wait_for_export`` (docs/ray.md).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import ray
from ray.util import metrics

#: ``monitoring/prometheus.yml``'s scrape interval: how long values must stay served to be scraped once.
SCRAPE_INTERVAL_S = 5.0


@dataclass(frozen=True)
class Metric:
    """One metric of ours: what ``ray.util.metrics`` is given, and the name Prometheus shows."""

    name: str
    kind: str  # "counter" or "gauge"
    description: str
    tags: tuple[str, ...]

    @property
    def exported(self) -> str:
        """The series name on the Prometheus endpoint."""
        return f"ray_{self.name}" + ("_total" if self.kind == "counter" else "")


METRICS: dict[str, Metric] = {m.name: m for m in [
    Metric("sibcl_labels_generated", "counter", "Samples generated (inputs and labels)", ("problem", "split")),
    Metric("sibcl_labels_per_second", "gauge", "Label generation throughput of the current run", ("problem", "split")),
    Metric("sibcl_pretrain_samples_per_second", "gauge", "Contrastive pretraining samples per second of a run "
           "(a search trial or a benchmark cell), measured on its first worker", ("problem", "run")),
    Metric("sibcl_search_best_val_error", "gauge", "Best validation error of the running search", ("problem",)),
    Metric("sibcl_trials_started", "counter", "Search trials started (a retried or resumed trial counts once "
           "per search process)", ("problem",)),
    Metric("sibcl_trials_ended", "counter", "Search trials ended, by outcome (the outcomes of trials.csv)",
           ("problem", "outcome")),
]}


_last_recorded: list[float] = []  # time.monotonic() of this process's latest record


@lru_cache(maxsize=None)
def _new_metric(name: str) -> Any:
    spec = METRICS[name]
    cls = {"counter": metrics.Counter, "gauge": metrics.Gauge}[spec.kind]
    return cls(spec.name, description=spec.description, tag_keys=spec.tags)


def _metric(name: str) -> Any:
    """The metric ``name`` of ``METRICS``, about to be recorded."""
    _last_recorded[:] = [time.monotonic()]
    return _new_metric(name)


def wait_for_export() -> float:
    """Wait until this process's last record has been exported and scraped once; returns the seconds waited.

    Only when a Prometheus is set up for this Ray (``RAY_PROMETHEUS_HOST``, README "Monitoring") and
    only for what is left of that window: a search's test evaluation and pictures usually cover it.
    Measured without it: a quick search's last trial end never reached Prometheus (4 of 5 ASHA stops).
    """
    if not _last_recorded or not os.environ.get("RAY_PROMETHEUS_HOST"):
        return 0.0
    export_s = max(ray._config.metrics_report_interval_ms(), 1000) / 1000  # Ray's own floor (docs/ray.md)
    remaining = _last_recorded[0] + export_s + SCRAPE_INTERVAL_S - time.monotonic()
    if remaining > 0:
        print(f"metrics: {remaining:.0f} s for Prometheus to scrape the last values", flush=True)
        time.sleep(remaining)
    return max(remaining, 0.0)


_label_totals: dict[tuple[str, str], int] = {}


def record_labels(problem: str, split: str, rows: int, elapsed_s: float) -> None:
    """Count ``rows`` newly generated samples and update the generation throughput."""
    tags = {"problem": problem, "split": split}
    _metric("sibcl_labels_generated").inc(rows, tags)
    total = _label_totals[(problem, split)] = _label_totals.get((problem, split), 0) + rows
    if elapsed_s > 0:
        _metric("sibcl_labels_per_second").set(total / elapsed_s, tags)


def record_pretraining_throughput(problem: str, run: str, samples_per_second: float) -> None:
    """Contrastive pretraining speed of run ``run`` (samples, both views, per second)."""
    _metric("sibcl_pretrain_samples_per_second").set(samples_per_second, {"problem": problem, "run": run})


def record_best_val_error(problem: str, value: float) -> None:
    """The search's best validation error so far."""
    _metric("sibcl_search_best_val_error").set(value, {"problem": problem})


def record_trial_started(problem: str) -> None:
    _metric("sibcl_trials_started").inc(1, {"problem": problem})


def record_trial_ended(problem: str, outcome: str) -> None:
    """``outcome``: one of trials.csv's (``search.outputs``: completed, stopped_by_asha, ...)."""
    _metric("sibcl_trials_ended").inc(1, {"problem": problem, "outcome": outcome})
