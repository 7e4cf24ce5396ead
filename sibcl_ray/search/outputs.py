"""What a finished search leaves for a person: trials.csv, best_config.yaml and two plots."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Any

import yaml

#: Trial outcomes in trials.csv.
COMPLETED, STOPPED, ERROR, UNFINISHED = "completed", "stopped_by_asha", "error", "unfinished"
NON_FINITE = "non_finite_loss"


def trial_rows(results: Any, statuses: dict[str, str], space: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per trial: id, Tune status, outcome, searched values, metrics, first error line."""
    rows = []
    for result in results:
        metrics = result.metrics or {}
        # a trial that failed before reporting has no metrics: its id is in its folder name
        trial_id = metrics.get("trial_id") or re.search(r"_([0-9a-f]{8})_\d+_", Path(result.path).name).group(1)
        status = statuses.get(trial_id, "ERROR" if result.error else "UNKNOWN")
        if result.error is not None or status == "ERROR":
            outcome = ERROR
        elif metrics.get("stopped_reason"):
            outcome = NON_FINITE
        elif metrics.get("training_complete"):
            outcome = COMPLETED
        elif status == "TERMINATED":
            outcome = STOPPED
        else:
            outcome = UNFINISHED
        row = {"trial_id": trial_id, "status": status, "outcome": outcome}
        row.update({key: result.config.get(key) for key in space})
        row.update({key: metrics.get(key) for key in ("val_error", "phase", "epochs_done", "best_finetune_epoch")})
        row["error"] = (str(result.error).strip().splitlines()[-1][:300] if result.error is not None
                        else metrics.get("stopped_reason", ""))
        rows.append(row)
    return sorted(rows, key=lambda r: r["trial_id"])


def write_trials_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["trial_id"])
        writer.writeheader()
        writer.writerows(rows)


def write_best_config(config: dict[str, Any], summary: dict[str, Any], path: Path) -> None:
    """The best hyperparameters as YAML, usable as ``--config`` of ``python -m sibcl_ray.benchmark``."""
    header = (f"# Best configuration of search {Path(summary['experiment']).name}\n"
              f"# problem {summary['problem']}, preset {summary['preset']}, nsam {summary['nsam']}: "
              f"validation error {summary['val_error']:.4g}, test error {summary['test_error']:.4g}\n"
              f"# use: python -m sibcl_ray.benchmark --problem {summary['problem']} --config {path.name}\n")
    path.write_text(header + yaml.safe_dump({k: config[k] for k in sorted(config)}, sort_keys=False))


def plot_search(rows: list[dict[str, Any]], space: dict[str, Any], folder: Path) -> list[Path]:
    """``search_history.png`` (error per trial, best so far) and ``search_parameters.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [r for r in rows if r["val_error"] is not None and math.isfinite(r["val_error"]) and r["outcome"] != ERROR]
    paths = [folder / "search_history.png", folder / "search_parameters.png"]
    fig, ax = plt.subplots(figsize=(6, 4))
    best, best_so_far = math.inf, []
    for r in scored:
        best = min(best, r["val_error"])
        best_so_far.append(best)
    for outcome, marker in ((COMPLETED, "o"), (STOPPED, "x"), (UNFINISHED, ".")):
        pts = [(i, r["val_error"]) for i, r in enumerate(scored) if r["outcome"] == outcome]
        if pts:
            ax.scatter(*zip(*pts), marker=marker, label=outcome)
    ax.step(range(len(scored)), best_so_far, where="post", color="k", label="best so far")
    ax.set(xlabel="trial (in order of creation)", ylabel="validation error", yscale="log", title="Optimisation history")
    ax.legend()
    fig.tight_layout()
    fig.savefig(paths[0], dpi=120)
    plt.close(fig)

    searched = [k for k, v in space.items() if isinstance(v, dict)]
    cols = min(3, max(1, len(searched)))
    fig, axes = plt.subplots(math.ceil(len(searched) / cols) or 1, cols, figsize=(4 * cols, 3.2 * math.ceil(len(searched) / cols)), squeeze=False)
    for ax, key in zip(axes.flat, searched):
        for outcome, marker in ((COMPLETED, "o"), (STOPPED, "x"), (UNFINISHED, ".")):
            pts = [(r[key], r["val_error"]) for r in scored if r["outcome"] == outcome]
            if pts:
                ax.scatter(*zip(*pts), marker=marker, label=outcome)
        if space[key]["type"].startswith("log"):
            ax.set_xscale("log")
        ax.set(xlabel=key, ylabel="validation error", yscale="log")
    for ax in list(axes.flat)[len(searched):]:
        ax.axis("off")
    if searched:
        axes.flat[0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(paths[1], dpi=120)
    plt.close(fig)
    return paths
