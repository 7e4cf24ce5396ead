"""The Grafana dashboard for our metrics, built from code: ``python -m sibcl_ray.grafana_dashboard``.

Every panel's PromQL names metrics through ``monitoring.METRICS`` (so a renamed metric breaks the
build, not the dashboard), and a test checks that each metric there has a panel and that every
panel's query returns the run's own numbers through a real Prometheus (tests/test_monitoring.py).
Ray's node CPU, memory and GPU series sit next to ours. The JSON in the repository
(``monitoring/grafana/sibcl_dashboard.json``) is this module's output, never hand-edited.

Grafana shows it next to Ray's own dashboards when the file lies in the folder that Ray's
generated provisioning points Grafana at: ``RAY_METRICS_GRAFANA_DASHBOARD_OUTPUT_DIR`` when set
in the environment of the Ray head (Ray writes its dashboards there too, and leaves other files
alone), else ``<session_dir>/metrics/grafana/dashboards`` (README "Monitoring"). The panels use
Ray's ``datasource`` and ``SessionName`` variables, which the Ray dashboard's Metrics view sets.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sibcl_ray.monitoring import METRICS

UID = "sibclSearch"
TITLE = "SIB-CL search"
#: Every query is restricted to the Ray session the viewer picked (all by default).
SESSION = 'SessionName=~"$SessionName"'
#: Where the repository keeps the generated JSON.
REPO_FILE = Path("monitoring/grafana/sibcl_dashboard.json")


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel. ``needs_gpu``: the series exist only on nodes with a GPU."""

    expr: str
    legend: str
    needs_gpu: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    targets: tuple[Target, ...]


def _ours(name: str) -> str:
    """The exported series of our metric ``name``, for the selected session."""
    return f"{METRICS[name].exported}{{{SESSION}}}"


def _ray(series: str) -> str:
    return f"{series}{{{SESSION}}}"


_STARTED = f"sum by (problem) ({_ours('sibcl_trials_started')})"
_ENDED = f"sum by (problem) ({_ours('sibcl_trials_ended')})"

PANELS: tuple[Panel, ...] = (
    Panel("Labels generated", "Samples solved and written to shards, per problem and split (reused shards "
          "are not counted).", "short",
          (Target(f"sum by (problem, split) ({_ours('sibcl_labels_generated')})", "{{problem}} {{split}}"),)),
    Panel("Label throughput", "Labels per second of the current generation run, per problem and split.", "short",
          (Target(f"sum by (problem, split) ({_ours('sibcl_labels_per_second')})", "{{problem}} {{split}}"),)),
    Panel("Pretraining samples/s per trial", "Contrastive pretraining speed of each trial (both views, "
          "measured on its first worker).", "short",
          (Target(f"sum by (problem, run) ({_ours('sibcl_pretrain_samples_per_second')})", "{{run}}"),)),
    Panel("Best validation error", "The search's best fine-tuned validation error so far.", "percentunit",
          (Target(f"min by (problem) ({_ours('sibcl_search_best_val_error')})", "{{problem}}"),)),
    Panel("Trials", "Trials started, running, and ended by outcome (the outcomes of trials.csv).", "short", (
        Target(_STARTED, "started {{problem}}"),
        Target(f"{_STARTED} - ({_ENDED} or {_STARTED} * 0)", "running {{problem}}"),
        Target(f"sum by (problem, outcome) ({_ours('sibcl_trials_ended')})", "{{outcome}} {{problem}}"),
    )),
    Panel("Node CPU", "CPU use of each Ray node (100 % = all its cores).", "percent",
          (Target(f"avg by (instance) ({_ray('ray_node_cpu_utilization')})", "{{instance}}"),)),
    Panel("Node memory", "Memory used on each Ray node, of its total.", "percent",
          (Target(f"sum by (instance) ({_ray('ray_node_mem_used_host')}) * 100 / "
                  f"sum by (instance) ({_ray('ray_node_mem_total_host')})", "{{instance}}"),)),
    Panel("GPU use", "Utilisation and memory of each GPU (series exist only on nodes with GPUs).", "percent", (
        Target(f"sum by (instance, GpuIndex) ({_ray('ray_node_gpus_utilization')})",
               "{{instance}} GPU {{GpuIndex}}", needs_gpu=True),
        Target(f"sum by (instance, GpuIndex) ({_ray('ray_node_gram_used')}) * 100 / (sum by (instance, GpuIndex) "
               f"({_ray('ray_node_gram_used')}) + sum by (instance, GpuIndex) ({_ray('ray_node_gram_available')}))",
               "{{instance}} GPU {{GpuIndex}} memory", needs_gpu=True),
    )),
)

_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
_WIDTH, _HEIGHT = 12, 8


def _panel_json(index: int, panel: Panel) -> dict[str, Any]:
    return {
        "id": index + 1, "type": "timeseries", "title": panel.title, "description": panel.description,
        "datasource": _DATASOURCE,
        "gridPos": {"h": _HEIGHT, "w": _WIDTH, "x": (index % 2) * _WIDTH, "y": (index // 2) * _HEIGHT},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "none"}},
        "targets": [{"refId": chr(ord("A") + i), "datasource": _DATASOURCE, "expr": t.expr, "legendFormat": t.legend,
                     "range": True} for i, t in enumerate(panel.targets)],
    }


def _variables() -> list[dict[str, Any]]:
    """Ray's own variable names: its Metrics view passes ``var-datasource`` and ``var-SessionName``."""
    sessions = "label_values(ray_node_cpu_utilization, SessionName)"
    return [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "hide": 2, "current": {}},
        {"name": "SessionName", "type": "query", "datasource": _DATASOURCE, "definition": sessions,
         "query": {"query": sessions, "refId": "SessionNames"}, "refresh": 2, "sort": 2, "includeAll": True,
         "allValue": ".+", "multi": False, "current": {"selected": True, "text": "All", "value": "$__all"},
         "description": "Ray session (one per `ray start` or local run)."},
    ]


def build() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model."""
    return {
        "uid": UID, "title": TITLE, "tags": ["ray", "sibcl"], "editable": True, "graphTooltip": 1,
        "schemaVersion": 39, "version": 1, "refresh": "10s", "time": {"from": "now-1h", "to": "now"},
        "timezone": "", "templating": {"list": _variables()},
        "panels": [_panel_json(i, p) for i, p in enumerate(PANELS)],
    }


def render() -> str:
    return json.dumps(build(), indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sibcl_ray.grafana_dashboard",
                                     description="Write the Grafana dashboard of our metrics (JSON) to a file.")
    parser.add_argument("--output", type=Path, default=REPO_FILE,
                        help="file to write, e.g. into RAY_METRICS_GRAFANA_DASHBOARD_OUTPUT_DIR (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.output.parent.is_dir():
        parser.exit(2, f"error: --output {args.output}: folder {args.output.parent} does not exist\n")
    args.output.write_text(render())
    print(f"wrote {args.output} ({len(PANELS)} panels)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
