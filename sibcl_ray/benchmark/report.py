"""Deliverables of the label-efficiency experiment: tables, savings and the plot.

``python -m sibcl_ray.benchmark`` produces one *cell* per (method, nsam, seed) with
a test and a validation error. This module turns those cells into what a reader
of the paper looks at:

- :func:`aggregate`: mean ± population std of the test error over seeds, per
  method and label budget (JSON-friendly: nsam keys are strings);
- :func:`label_savings`: how many labels each baseline needs to match SIB-CL's
  error at SIB-CL's smallest budget, the headline "N× fewer labels" number;
- :func:`selection_savings`: how many randomly drawn labels a method needs to match its
  active-labelling variant (``<method>-al``) at that variant's two smallest budgets;
- :func:`curve_slopes`: the log–log slope of each curve between consecutive budgets, where a
  curve flattens (slope → 0) and more labels stop paying;
- :func:`plot_pretraining`: each pretraining run's losses per epoch, whether pretraining was
  long enough (the contrastive loss flattened);
- :func:`finetune_late_gains`: what validation still gained over the last epochs of fine-tuning,
  whether fine-tuning was long enough at each budget;
- :func:`markdown_table` and :func:`plot`: the table and the log–log figure;
- :func:`write_report`: all of it into ``results.json``, ``results.md`` and
  ``label_efficiency.png``.

NumPy and matplotlib only (no Ray, no torch), so a report can be rebuilt from a
saved ``results.json`` on any laptop.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

#: The output of :func:`aggregate`: method -> str(nsam) -> summary over seeds.
Results = dict[str, dict[str, dict[str, Any]]]

#: Table and legend order: the full method, then its ablations: no surrogate (ssl), no contrastive
#: pretraining (tl, tl-i), neither (sl, sl-i); each picking variant beside its twin.
CANONICAL_ORDER: tuple[str, ...] = ("sibcl", "sibcl-al", "ssl", "ssl-al", "tl", "tl-al", "tl-i", "sl", "sl-i",
                                    "sibcl-mf", "tl-mf", "sl-mf", "fit-mf")
#: An active-labelling variant is named ``<its random-labelling twin>-al``.
SELECTING_SUFFIX = "-al"

#: Fixed colour and marker per method, so every figure of a project reads the same way.
_STYLE: dict[str, tuple[str, str]] = {
    "sibcl": ("#d62728", "o"),
    "sibcl-al": ("#ff7f0e", "*"),
    "ssl": ("#9467bd", "D"),
    "ssl-al": ("#e377c2", "d"),
    "tl": ("#1f77b4", "s"),
    "tl-al": ("#aec7e8", "*"),
    "tl-i": ("#17becf", "^"),
    "sl": ("#7f7f7f", "v"),
    "sl-i": ("#2ca02c", "P"),
    # the multi-fidelity methods: their plain twin's colour family, drawn dotted (``plot``)
    "sibcl-mf": ("#8b0000", "o"),
    "tl-mf": ("#08306b", "s"),
    "sl-mf": ("#3f3f3f", "v"),
    "fit-mf": ("#000000", "x"),
}
#: A multi-fidelity method (it also reads each input's cheap label) is named ``<method>-mf``.
MULTIFIDELITY_SUFFIX = "-mf"
_EXTRA_STYLES: tuple[tuple[str, str], ...] = (
    ("#8c564b", "h"), ("#bcbd22", "<"), ("#000000", ">"), ("#7b4173", "X"),
)


def _method_key(method: str) -> tuple[int, str]:
    """Sort key: canonical methods in their order, any other after them alphabetically."""
    if method in CANONICAL_ORDER:
        return CANONICAL_ORDER.index(method), ""
    return len(CANONICAL_ORDER), method


def _nsam_int(value: Any) -> int:
    """A label budget as an int; rejects 50.5 rather than silently truncating it."""
    as_float = float(value)
    if not as_float.is_integer() or as_float <= 0:
        raise ValueError(f"nsam must be a positive integer, got {value!r}")
    return int(as_float)


def _finite(value: Any, what: str, cell: dict[str, Any]) -> float:
    """A finite float, or a ValueError naming the cell: a NaN would silently poison a mean."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"non-finite {what} {number} in cell {cell!r}")
    return number


def aggregate(cells: list[dict[str, Any]]) -> Results:
    """Mean and spread of the test error over fine-tuning seeds, per method and nsam.

    Each cell needs ``method``, ``nsam``, ``seed``, ``test_error`` and ``val_error``;
    other keys are ignored. The std is the population std (ddof=0) because the seeds
    are all the runs there are, not a sample of a larger design; it is 0 for one seed.
    A repeated (method, nsam, seed) raises ValueError: it would double-weight a run.

    Returns ``{method: {str(nsam): {"mean", "std", "n_seeds", "seeds", "test_errors",
    "val_mean", "val_errors"}}}`` with methods in :data:`CANONICAL_ORDER` (others after,
    alphabetically), nsam keys in numeric order and seeds sorted (errors aligned to them).
    """
    groups: dict[str, dict[int, dict[Any, tuple[float, float]]]] = defaultdict(lambda: defaultdict(dict))
    for cell in cells:
        method, nsam, seed = str(cell["method"]), _nsam_int(cell["nsam"]), cell["seed"]
        runs = groups[method][nsam]
        if seed in runs:
            raise ValueError(f"duplicate cell for method={method!r} nsam={nsam} seed={seed!r}")
        runs[seed] = (_finite(cell["test_error"], "test_error", cell),
                      _finite(cell["val_error"], "val_error", cell))
    return {
        method: {str(nsam): _summarise(groups[method][nsam]) for nsam in sorted(groups[method])}
        for method in sorted(groups, key=_method_key)
    }


def _summarise(runs: dict[Any, tuple[float, float]]) -> dict[str, Any]:
    """Summary of one (method, nsam) group; ``runs`` maps seed -> (test error, val error)."""
    seeds = sorted(runs)
    test = np.array([runs[s][0] for s in seeds])
    val = np.array([runs[s][1] for s in seeds])
    return {
        "mean": float(test.mean()),
        "std": float(test.std(ddof=0)),
        "n_seeds": len(seeds),
        "seeds": seeds,
        "test_errors": test.tolist(),
        "val_mean": float(val.mean()),
        "val_errors": val.tolist(),
    }


def _curve(per_nsam: dict[str, dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(nsam, mean error) of one method, nsam ascending, whatever the key order."""
    nsams = sorted(_nsam_int(k) for k in per_nsam)
    return np.array(nsams, dtype=float), np.array([per_nsam[str(n)]["mean"] for n in nsams])


def _first_crossing(nsam: np.ndarray, error: np.ndarray, target: float) -> float | None:
    """Smallest nsam where the log–log interpolated error first reaches ``target``.

    Power laws error ∝ nsam^-α are straight lines on log–log axes, so interpolating
    there is exact for them and the natural choice between tried budgets. Segments are
    scanned in order, so a non-monotone curve gives its *first* crossing. Returns None
    when no tried budget reaches the target (no extrapolation beyond the data).
    """
    if error[0] <= target:
        return float(nsam[0])
    for i in range(1, len(nsam)):
        if error[i] <= target:
            log_n, log_e, log_t = np.log(nsam[i - 1 : i + 1]), np.log(error[i - 1 : i + 1]), math.log(target)
            fraction = (log_t - log_e[0]) / (log_e[1] - log_e[0])
            return float(math.exp(log_n[0] + fraction * (log_n[1] - log_n[0])))
    return None


def label_savings(results: Results, reference: str = "sibcl") -> dict[str, dict[str, Any]]:
    """Labels each baseline needs to match ``reference`` at the reference's smallest nsam.

    The target is the reference's mean test error at its smallest budget n0; for each
    other method the first crossing of its log–log interpolated mean-error curve below
    the target gives ``labels_needed`` and ``savings = labels_needed / n0`` (how many
    times more labels the baseline needs). Three outcomes, all with the same keys
    ``reference, target_error, reference_nsam, labels_needed, savings, reached_at_min, text``:

    - crossing inside the tried range: e.g. ``"412 labels (8.2×)"``;
    - never reached: ``labels_needed = savings = None``, ``"> 3200 (max tried)"``;
    - already at or below the target at the baseline's smallest nsam m:
      ``labels_needed = m``, ``reached_at_min = True``, ``"≤ 50 (already at smallest nsam)"``
      (the true need may be fewer labels; we did not try them).

    ``results`` is the output of :func:`aggregate`. Raises ValueError if the reference
    method is absent or an error is not positive (log axes need positive errors).
    """
    if reference not in results:
        raise ValueError(f"reference method {reference!r} not in results (have {sorted(results)})")
    ref_nsam, ref_error = _curve(results[reference])
    n0, target = int(ref_nsam[0]), float(ref_error[0])
    savings = {}
    for method in sorted(results, key=_method_key):
        if method == reference or method.endswith(SELECTING_SUFFIX):  # those compare with their twin instead
            continue
        nsam, error = _curve(results[method])
        if target <= 0 or np.any(error <= 0):
            raise ValueError(f"errors must be positive for log–log interpolation ({reference} vs {method})")
        savings[method] = {"reference": reference, **_saving_entry(nsam, error, target, n0)}
    return savings


def selection_savings(results: Results, budgets: int = 2) -> dict[str, dict[str, dict[str, Any]]]:
    """Labels a random-labelling method needs to match its active-labelling variant.

    For every ``<twin>-al`` whose twin is in ``results`` and each of the variant's
    ``budgets`` smallest label budgets n: the twin's labels needed to reach the variant's
    mean test error at n (first crossing, log–log interpolated, as :func:`label_savings`)
    and ``savings = labels_needed / n``. Returns ``{variant: {str(n): entry}}``, entries with
    the keys of :func:`label_savings`' plus ``twin``.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for method in sorted(results, key=_method_key):
        twin = method[: -len(SELECTING_SUFFIX)]
        if not method.endswith(SELECTING_SUFFIX) or twin not in results:
            continue
        ref_nsam, ref_error = _curve(results[method])
        nsam, error = _curve(results[twin])
        if np.any(error <= 0) or np.any(ref_error <= 0):
            raise ValueError(f"errors must be positive for log–log interpolation ({method} vs {twin})")
        out[method] = {str(int(n)): {"twin": twin, "reference": method,
                                     **_saving_entry(nsam, error, float(e), int(n))}
                       for n, e in list(zip(ref_nsam, ref_error))[:budgets]}
    return out


def curve_slopes(results: Results) -> dict[str, dict[str, float]]:
    """``{method: {"n1-n2": slope}}``: d log(error) / d log(nsam) between consecutive budgets.

    A power law error ∝ nsam^-α has slope −α everywhere; a curve that flattens goes to 0
    (more labels stop helping), a positive slope is a budget that did worse than the one before.
    """
    out = {}
    for method in sorted(results, key=_method_key):
        nsam, error = _curve(results[method])
        out[method] = {f"{int(a)}-{int(b)}": float(np.log(e2 / e1) / np.log(b / a))
                       for a, b, e1, e2 in zip(nsam[:-1], nsam[1:], error[:-1], error[1:]) if e1 > 0 and e2 > 0}
    return out


#: :func:`finetune_late_gains` compares the best validation error after this share of fine-tuning's
#: epochs with the one at the end; a gain above ``LATE_GAIN_FLAG`` marks a budget whose fine-tuning
#: stopped while still improving. On the phc curve at 30 epochs every method and budget still gained
#: 1.7–8.0 % over the last 9, and 100 epochs cut `sl`'s error at 50 labels by 19 % (SIB-CL's by 3.6 %);
#: at 100 every gain was under 1 % (BENCHMARKS.md, "Fine-tuning length").
LATE_START = 0.7
LATE_GAIN_FLAG = 0.01


def finetune_late_gains(cells: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``{method: {str(nsam): gain}}``: the relative fall of the kept run's best validation error
    over the last 30 % of its fine-tuning epochs, ``(best after 70 %) / (best at the end) − 1``,
    mean over seeds. Near 0: fine-tuning had converged; above ``LATE_GAIN_FLAG`` (1 %) it was
    still improving and more ``finetune_epochs`` would lower that budget's error. A short budget
    favours the methods that start from a pretrained network, so it inflates their label savings.

    Cells without a ``finetune_val_curve`` (from before it was recorded), or with under 4 epochs, are left out.

    >>> finetune_late_gains([{"method": "sl", "nsam": 50, "finetune_val_curve": [0.1] * 7 + [0.09, 0.08, 0.08]}])
    {'sl': {'50': 0.25}}
    """
    gains: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for cell in cells:
        curve = cell.get("finetune_val_curve") or []
        if len(curve) < 4 or not all(math.isfinite(v) and v > 0 for v in curve):
            continue
        start = max(0, round(LATE_START * len(curve)) - 1)
        gains[str(cell["method"])][_nsam_int(cell["nsam"])].append(curve[start] / curve[-1] - 1)
    return {method: {str(n): float(np.mean(gains[method][n])) for n in sorted(gains[method])}
            for method in sorted(gains, key=_method_key)}


def _late_gain_lines(late: dict[str, dict[str, float]]) -> list[str]:
    """The "was fine-tuning long enough" table: methods × budgets, flagged above ``LATE_GAIN_FLAG``."""
    columns = sorted({int(n) for per in late.values() for n in per})
    lines = [f"Fine-tuning length: how much the kept run's best validation error still fell over its last "
             f"{round(100 * (1 - LATE_START))} % of epochs (mean over seeds); * above {100 * LATE_GAIN_FLAG:.0f} %: "
             "still improving when it stopped, more `finetune_epochs` would lower that error.", "",
             "| method | " + " | ".join(str(n) for n in columns) + " |", "|---|" + "---:|" * len(columns)]
    for method, per in late.items():
        row = [("—" if str(n) not in per else
                f"{100 * per[str(n)]:.1f} %" + (" *" if per[str(n)] > LATE_GAIN_FLAG else "")) for n in columns]
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    return lines


def _saving_entry(nsam: np.ndarray, error: np.ndarray, target: float, n0: int) -> dict[str, Any]:
    """One baseline's row of :func:`label_savings`."""
    needed = _first_crossing(nsam, error, target)
    reached_at_min = needed is not None and bool(error[0] <= target)
    if needed is None:
        text = f"> {int(nsam[-1])} (max tried)"
    elif reached_at_min:
        text = f"≤ {int(nsam[0])} (already at smallest nsam)"
    else:
        text = f"{needed:.0f} labels ({needed / n0:.1f}×)"
    return {
        "target_error": target,
        "reference_nsam": n0,
        "labels_needed": needed,
        "savings": None if needed is None else needed / n0,
        "reached_at_min": reached_at_min,
        "text": text,
    }


def _format_mean_std(mean: float, std: float) -> str:
    """``mean ± std`` with the mean to 3 significant digits and the std to the same decimals."""
    if mean == 0:
        return f"{mean:.3g} ± {std:.3g}"
    decimals = max(0, 2 - math.floor(math.log10(abs(mean))))
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def _nsam_columns(results: Results) -> list[str]:
    """Every nsam any method tried, in numeric order."""
    return [str(n) for n in sorted({_nsam_int(k) for per_nsam in results.values() for k in per_nsam})]


def _seed_count_note(results: Results) -> str:
    """``n = 3`` or ``n = 2–3`` seeds, so a reader sees when a cell rests on fewer runs."""
    counts = sorted({s["n_seeds"] for per_nsam in results.values() for s in per_nsam.values()})
    return f"n = {counts[0]}" if len(counts) == 1 else f"n = {counts[0]}–{counts[-1]}"


def markdown_table(results: Results, savings: dict[str, dict[str, Any]] | None = None,
                   selection: dict[str, dict[str, dict[str, Any]]] | None = None,
                   late: dict[str, dict[str, float]] | None = None,
                   costs: dict[str, dict[str, dict[str, float]]] | None = None) -> str:
    """Test error table (methods × nsam, best per column in bold), then optional savings.

    Cells read ``mean ± std``; a method that did not try a budget shows ``—``. Ties for
    the best mean are all bold. With ``savings`` (from :func:`label_savings`) a second
    table gives each baseline's labels needed to match the reference, with ``selection``
    (from :func:`selection_savings`) a third the savings of picking labels over drawing them,
    and with ``late`` (from :func:`finetune_late_gains`) whether fine-tuning was long enough.
    """
    columns = _nsam_columns(results)
    methods = sorted(results, key=_method_key)
    best = {
        col: min(results[m][col]["mean"] for m in methods if col in results[m]) for col in columns
    }
    lines = [
        f"Test error, mean ± population std over fine-tuning seeds ({_seed_count_note(results)}); "
        "columns are label budgets nsam, best per column in bold.",
        "",
        "| method | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for method in methods:
        row = []
        for col in columns:
            stats = results[method].get(col)
            if stats is None:
                row.append("—")
                continue
            text = _format_mean_std(stats["mean"], stats["std"])
            row.append(f"**{text}**" if stats["mean"] == best[col] else text)
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    if savings:
        lines += ["", *_savings_lines(savings)]
    if selection:
        lines += ["", *_selection_lines(selection)]
    if late:
        lines += ["", *_late_gain_lines(late)]
    if costs:
        lines += ["", *_cost_lines(costs)]
    slopes = {m: per for m, per in curve_slopes(results).items() if per}
    if slopes:
        lines += ["", "Log–log slope of each curve between consecutive budgets (a power law e ∝ n^-α has −α; "
                  "near 0: the curve has flattened).", "", "| method | slope between budgets |", "|---|---|"]
        lines += [f"| {m} | " + ", ".join(f"{k.replace('-', '→')}: {v:+.2f}" for k, v in per.items()) + " |"
                  for m, per in slopes.items()]
    return "\n".join(lines) + "\n"


def _selection_lines(selection: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """The "labels picked vs drawn" table: one row per active-labelling variant and budget."""
    lines = ["Active labelling: randomly drawn labels each twin needs to reach its -al variant's mean test error "
             "at that budget (log–log interpolation; > 1× means picking saved labels).", "",
             "| variant | budget | its error | twin | labels the twin needs (× budget) |", "|---|---:|---:|---|---|"]
    for method, per_budget in selection.items():
        lines += [f"| {method} | {n} | {e['target_error']:#.3g} | {e['twin']} | {e['text']} |"
                  for n, e in per_budget.items()]
    return lines


def _savings_lines(savings: dict[str, dict[str, Any]]) -> list[str]:
    """The "label savings" table: one row per baseline, reference and target in the header."""
    first = next(iter(savings.values()))
    reference, reference_nsam, target = first["reference"], first["reference_nsam"], first["target_error"]
    return [
        f"Label savings of {reference}: labels each baseline needs to reach {reference}'s mean test error "
        f"{target:#.3g} at nsam = {reference_nsam} (log–log interpolation between tried budgets).",
        "",
        f"| baseline | labels needed (× {reference}'s) |",
        "|---|---|",
        *(f"| {method} | {entry['text']} |" for method, entry in savings.items()),
    ]


def _style(method: str, all_methods: list[str]) -> tuple[str, str]:
    """Colour and marker of a method; unknown methods get the spare styles in name order."""
    if method in _STYLE:
        return _STYLE[method]
    extras = sorted(m for m in all_methods if m not in _STYLE)
    return _EXTRA_STYLES[extras.index(method) % len(_EXTRA_STYLES)]


def solver_costs(cells: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{method: {str(nsam): cost}}`` from the cells' ``solver_cost`` records (``benchmark.run``):
    target labels, cheap and surrogate labels, and the total in target-label equivalents."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for cell in cells:
        if "solver_cost" in cell:
            out[str(cell["method"])][str(_nsam_int(cell["nsam"]))] = cell["solver_cost"]
    return {m: dict(sorted(out[m].items(), key=lambda kv: int(kv[0]))) for m in sorted(out, key=_method_key)}


def _cost_lines(costs: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    any_cost = next(iter(next(iter(costs.values())).values()))
    return [f"Total solver cost in target-label equivalents: target labels + cheap labels (each "
            f"{any_cost['cheap_ratio']:.4f} of a target label, measured: for every labelled training input and every "
            f"test input a -mf method predicts) + surrogate labels (each {any_cost['surrogate_ratio']:.4f}, for the "
            "methods that pretrain on them); the validation set, the same for every method, is left out.", "",
            "| method | nsam | target labels | cheap labels | surrogate labels | total |", "|---|---:|---:|---:|---:|---:|",
            *[f"| {m} | {n} | {c['target']} | {c['cheap']} | {c['surrogate']} | {c['total']:.1f} |"
              for m, per in costs.items() for n, c in per.items()]]


def plot(results: Results, path: Path, title: str) -> None:
    """Log–log test error vs number of labels, one line per method, std as error bars.

    Uses matplotlib's Agg backend through an explicit Figure, so it works headless and
    never touches pyplot's global state (safe inside Ray workers and tests).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig = Figure(figsize=(7.0, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    methods = sorted(results, key=_method_key)
    for method in methods:
        nsam, mean = _curve(results[method])
        std = np.array([results[method][str(int(n))]["std"] for n in nsam])
        colour, marker = _style(method, methods)
        emphasised = method == "sibcl"
        ax.errorbar(
            nsam, mean, yerr=std, label=method, color=colour, marker=marker,
            linewidth=2.6 if emphasised else 1.4, markersize=8 if emphasised else 6,
            # picked labels: dashed beside its twin; the cheap label as an input too: dotted
            linestyle="--" if method.endswith(SELECTING_SUFFIX) else ":" if method.endswith(MULTIFIDELITY_SUFFIX) else "-",
            capsize=3, elinewidth=1.0, zorder=3 if emphasised else 2,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [int(c) for c in _nsam_columns(results)]
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("number of labels (nsam)")
    ax.set_ylabel("test error")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.5)
    ax.grid(True, which="minor", alpha=0.2)
    ax.legend(title="method")
    fig.savefig(Path(path), dpi=150)


#: Per-epoch losses of a pretraining run that :func:`plot_pretraining` draws, when present.
PRETRAINING_LOSSES = ("contrastive_loss", "surrogate_loss")


def plot_pretraining(histories: dict[str, list[dict[str, Any]]], path: Path, title: str) -> None:
    """Each pretraining run's losses against its epoch (one panel per loss), to see whether the
    contrastive loss has flattened; ``histories`` maps a run's method to its checkpoint ``history``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    panels = [k for k in PRETRAINING_LOSSES if any(k in h for runs in histories.values() for h in runs)]
    fig = Figure(figsize=(5.0 * max(1, len(panels)), 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(1, len(panels)), squeeze=False)[0]
    methods = sorted(histories, key=_method_key)
    for ax, key in zip(axes, panels):
        for method in methods:
            points = [(h["epochs_done"], h[key]) for h in histories[method] if key in h]
            if points:
                colour, marker = _style(method, methods)
                ax.plot(*zip(*points), color=colour, marker=marker, markersize=4, label=method)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("pretraining epoch")
        ax.set_ylabel(key.replace("_", " "))
        ax.grid(True, alpha=0.4)
        ax.legend(title="pretraining of")
    fig.suptitle(title)
    fig.savefig(Path(path), dpi=150)


def _json_default(value: Any) -> Any:
    """NumPy scalars and paths (common in benchmark cells) as plain JSON values."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def write_report(cells: list[dict[str, Any]], output: Path, title: str,
                 extra: dict[str, Any] | None = None,
                 pretraining: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Write ``results.json``, ``results.md`` and ``label_efficiency.png`` into ``output``.

    Returns (and saves as ``results.json``) ``{"title", "reference", "aggregate",
    "savings", "selection_savings", "slopes", "finetune_late_gains", "cells"}`` (and ``pretraining``, the runs'
    per-epoch losses, drawn in ``pretraining_loss.png``, when given): the :func:`aggregate` output is nested under ``"aggregate"``
    rather than merged at the top level, so no method name can collide with the other
    keys. ``savings`` is ``{}`` when no ``sibcl`` cells were run. The returned dict is the
    file read back, so it holds plain JSON types even if the cells held NumPy scalars.
    ``extra`` (e.g. provenance) is added at the top level.
    """
    if not cells:
        raise ValueError("no benchmark cells to report")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    results = aggregate(cells)
    savings = label_savings(results) if "sibcl" in results else {}
    selection = selection_savings(results)
    late = finetune_late_gains(cells)
    costs = solver_costs(cells)
    report = {"title": title, "reference": "sibcl", "aggregate": results, "savings": savings,
              "selection_savings": selection, "slopes": curve_slopes(results), "finetune_late_gains": late,
              **({"solver_costs": costs} if costs else {}), "cells": cells, **(extra or {})}
    if pretraining:  # every pretraining run's losses per epoch, and their picture
        report["pretraining"] = pretraining
        plot_pretraining(pretraining, output / "pretraining_loss.png", f"{title.split(':')[0]}: pretraining")
    text = json.dumps(report, indent=2, default=_json_default, ensure_ascii=False)
    (output / "results.json").write_text(text + "\n", encoding="utf-8")
    markdown = (f"# {title}\n\n{markdown_table(results, savings, selection, late, costs)}\n"
                "![label efficiency](label_efficiency.png)\n"
                + ("\n![pretraining losses](pretraining_loss.png)\n" if pretraining else ""))
    (output / "results.md").write_text(markdown, encoding="utf-8")
    plot(results, output / "label_efficiency.png", title)
    return json.loads((output / "results.json").read_text(encoding="utf-8"))
