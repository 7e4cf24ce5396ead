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
#: Fewer trials than this with one comparable value each, and a plot of values against
#: parameters shows points, not a trend: it is left out with a line saying so.
MIN_PLOTTED_TRIALS = 2


def plotted_study(study: Any) -> tuple[Any, str]:
    """The trials the value plots (history, importances, parallel, slice) can compare, and what
    their value is.

    With enough COMPLETE trials that is their final validation error. A quick search ends with
    most trials stopped by ASHA (PRUNED), which Optuna's plots leave out: then every trial is
    compared at the last epoch all of them reached (their ``rung_error`` there) in an in-memory
    study, so the plots show every trial on one footing. ``None`` and the reason when neither has
    :data:`MIN_PLOTTED_TRIALS` trials.
    """
    import optuna
    from optuna.trial import TrialState

    complete = [t for t in study.trials if t.state == TrialState.COMPLETE and t.value is not None]
    if len(complete) >= MIN_PLOTTED_TRIALS:
        return study, f"final validation error of the {len(complete)} completed trials"
    reported = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                and t.intermediate_values]
    common = set.intersection(*(set(t.intermediate_values) for t in reported)) if reported else set()
    if len(reported) < MIN_PLOTTED_TRIALS or not common:
        return None, (f"{len(complete)} completed trial(s) and no epoch that {MIN_PLOTTED_TRIALS} or more trials "
                      "all reached: nothing to compare")
    epoch = max(common)
    derived = optuna.create_study(study_name=f"{study.study_name} at epoch {epoch}", direction="minimize")
    for t in reported:
        derived.add_trial(optuna.trial.create_trial(params=t.params, distributions=t.distributions,
                                                    value=t.intermediate_values[epoch]))
    return derived, (f"rung_error at epoch {epoch}, the last epoch all {len(reported)} trials reached "
                     f"({len(complete)} completed, {len(reported) - len(complete)} stopped by ASHA)")


def plot_search(study: Any, folder: Path) -> dict[str, str]:
    """The search's pictures, drawn by Optuna from its stored study (``SEARCH_PLOTS``) into
    ``folder``; returns for each PNG what it shows, or why it was left out (summary.json's
    ``search_plots``).

    Every trial's rung values (``search_intermediate.png``) come from the stored study; the value
    plots from :func:`plotted_study`, titled with what their value is. A plot that would show
    nothing (fewer than :data:`MIN_PLOTTED_TRIALS` comparable trials; importances from no more trials
    than parameters) is not drawn: a picture of one dot looks like information and is not.
    """
    compared, basis = plotted_study(study)
    shown: dict[str, str] = {}
    for name, function in SEARCH_PLOTS.items():
        source, what = (study, "every trial's rung_error at each epoch it reported") \
            if name == "search_intermediate.png" else (compared, basis)
        if source is None:
            refused: str | None = what
        elif name == "search_importances.png" and (few := _too_few_to_rank(source)):
            refused = few
        else:
            refused = _draw(function, source, folder / name, what)
        if refused is not None:
            (folder / name).unlink(missing_ok=True)  # an earlier run's picture must not stand for this one
        shown[name] = what if refused is None else f"not drawn: {refused}"
        print(f"{name}: {shown[name]}", flush=True)
    return shown


def _too_few_to_rank(study: Any) -> str | None:
    """Why importances would be noise: fewer compared trials than searched parameters + 1 (a fit of
    p parameters needs more than p points; three trials of eight parameters drew them all ~1/5)."""
    from optuna.trial import TrialState

    trials = [t for t in study.trials if t.state == TrialState.COMPLETE]  # all Optuna's importances read
    searched = {name for t in trials for name in t.distributions}
    if len(trials) <= len(searched):
        return f"{len(trials)} trials cannot rank {len(searched)} parameters (at least {len(searched) + 1} needed)"
    return None


def _draw(function: str, study: Any, path: Path, title: str) -> str | None:
    """One Optuna matplotlib plot of ``study`` into ``path``; the reason when Optuna cannot draw it."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        try:
            ax = getattr(optuna_plots, function)(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            plt.close("all")
            return str(err).splitlines()[0] if str(err) else type(err).__name__
    first = ax.flat[0] if hasattr(ax, "flat") else ax
    figure = first.figure
    _readable_ticks(figure)
    figure.set_size_inches(max(figure.get_figwidth(), 8, 1.5 * len(figure.axes) if function == "plot_parallel_coordinate"
                               else 0), max(figure.get_figheight(), 5))
    figure.suptitle(title, fontsize=9, y=1.02)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return None


def _readable_ticks(figure: Any) -> None:
    """No labels on a log axis's minor ticks: Optuna's slice and parallel plots print them on top of
    each other (``2×10⁻⁴3×10⁻⁴…``) for a learning rate or a temperature searched on a log scale."""
    from matplotlib.ticker import NullFormatter

    for axes in figure.axes:
        for axis, scale in ((axes.xaxis, axes.get_xscale()), (axes.yaxis, axes.get_yscale())):
            if scale == "log":
                axis.set_minor_formatter(NullFormatter())
