"""What a finished search leaves for a person: trials.csv, best_config.yaml and Optuna's plots."""

from __future__ import annotations

import csv
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
        row.update({key: (result.config or {}).get(key) for key in space})  # None: stopped before it started
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


#: PNG name → the ``optuna.visualization.matplotlib`` function that draws it.
SEARCH_PLOTS = {
    "search_history.png": "plot_optimization_history",
    "search_intermediate.png": "plot_intermediate_values",
    "search_importances.png": "plot_param_importances",
    "search_parallel.png": "plot_parallel_coordinate",
    "search_slice.png": "plot_slice",
}


def plot_search(study_name: str, folder: Path) -> list[Path]:
    """The search's pictures, drawn by Optuna from the stored study (``SEARCH_PLOTS``).

    A plot Optuna cannot draw yet (importances need two finished trials that differ) is
    left out with a note instead of failing the search at its end.
    """
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    from sibcl_ray.search.searcher import load_search_study

    study = load_search_study(folder, study_name)
    written = []
    for name, function in SEARCH_PLOTS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                ax = getattr(optuna_plots, function)(study)
            except (ValueError, RuntimeError, ZeroDivisionError) as err:
                print(f"note: {name} not drawn ({str(err).splitlines()[0] if str(err) else type(err).__name__})")
                plt.close("all")
                continue
        figure = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        figure.set_size_inches(max(figure.get_figwidth(), 8), max(figure.get_figheight(), 5))
        figure.savefig(folder / name, dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append(folder / name)
    return written
