"""Report: aggregation over seeds, label savings against analytic power laws, table and plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from sibcl_ray.benchmark.report import (aggregate, curve_slopes, finetune_late_gains, label_savings, markdown_table,
                                        plot, plot_pretraining, selection_savings, write_report)


def _cell(method: str, nsam: int, seed: int, test_error: float, val_error: float | None = None) -> dict:
    return {"method": method, "nsam": nsam, "seed": seed, "test_error": test_error,
            "val_error": test_error if val_error is None else val_error, "extra": "ignored"}


def _power_law_results(curves: dict[str, tuple[float, float, list[int]]]) -> dict:
    """Aggregate of one seed per cell with error = a·(n/50)^-alpha for each method."""
    cells = [_cell(m, n, 0, a * (n / 50) ** -alpha) for m, (a, alpha, nsams) in curves.items() for n in nsams]
    return aggregate(cells)


def test_aggregate_means_stds_and_order() -> None:
    cells = [
        _cell("sl", 100, 1, 0.30), _cell("sl", 100, 0, 0.10, 0.5), _cell("sl", 50, 0, 0.40),
        _cell("sibcl", 50, 2, 0.2), _cell("sibcl", 50, 0, 0.4), _cell("sibcl", 50, 1, 0.6),
        _cell("zeta", 50, 0, 0.9), _cell("alpha", 50, 0, 0.8), _cell("tl-i", 800, 0, 0.1), _cell("tl-i", 200, 0, 0.2),
    ]
    results = aggregate(cells)
    assert list(results) == ["sibcl", "tl-i", "sl", "alpha", "zeta"]
    assert list(results["tl-i"]) == ["200", "800"]  # numeric, not string, order
    assert list(results["sl"]) == ["50", "100"]
    sib = results["sibcl"]["50"]
    assert sib["mean"] == pytest.approx(0.4, abs=1e-12)
    assert sib["std"] == pytest.approx(math.sqrt(((0.2) ** 2 + 0 + 0.2 ** 2) / 3), abs=1e-12)  # ddof=0
    assert sib["n_seeds"] == 3 and sib["seeds"] == [0, 1, 2]
    assert sib["test_errors"] == pytest.approx([0.4, 0.6, 0.2])  # aligned with sorted seeds
    sl = results["sl"]["100"]
    assert sl["mean"] == pytest.approx(0.2) and sl["std"] == pytest.approx(0.1)
    assert sl["val_errors"] == pytest.approx([0.5, 0.3]) and sl["val_mean"] == pytest.approx(0.4)
    assert results["sl"]["50"]["std"] == 0.0 and results["sl"]["50"]["n_seeds"] == 1
    json.dumps(results)  # JSON-friendly as returned


def test_aggregate_rejects_duplicates_and_nan() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        aggregate([_cell("sl", 50, 0, 0.1), _cell("sl", 50, 0, 0.2)])
    with pytest.raises(ValueError, match="non-finite"):
        aggregate([_cell("sl", 50, 0, float("nan"))])


@pytest.mark.parametrize(("sibcl_error", "expected", "text"),
                         [(1.0, 200.0, "200 labels (4.0×)"), (0.625, 512.0, "512 labels (10.2×)")])
def test_label_savings_power_law_is_exact(sibcl_error: float, expected: float, text: str) -> None:
    # baseline 2·(n/50)^-0.5 reaches e at n = 50·(2/e)^2; budgets chosen so the answer falls between them
    results = _power_law_results({"sibcl": (sibcl_error, 0.3, [50, 100, 400]),
                                  "sl": (2.0, 0.5, [50, 100, 400, 800, 3200])})
    entry = label_savings(results)["sl"]
    assert entry["target_error"] == pytest.approx(sibcl_error, abs=1e-12)
    assert entry["reference_nsam"] == 50
    assert entry["labels_needed"] == pytest.approx(expected, abs=1e-9)
    assert entry["savings"] == pytest.approx(expected / 50, abs=1e-9)
    assert entry["reached_at_min"] is False
    assert entry["text"] == text


def test_label_savings_never_reaches_and_already_below() -> None:
    results = _power_law_results({
        "sibcl": (0.1, 0.5, [50, 100]),
        "tl": (0.05, 0.5, [100, 200]),           # already below sibcl@50 at its own smallest budget
        "sl": (2.0, 0.5, [50, 100, 400, 3200]),  # reaches 0.25 only at 3200, still above 0.1
        "ssl": (0.2, 0.0, [50]),                 # a single budget, above the target
        "sl-i": (0.1, 0.0, [50]),                # a single budget, exactly at the target
    })
    savings = label_savings(results)
    assert list(savings) == ["ssl", "tl", "sl", "sl-i"]
    assert savings["sl"]["labels_needed"] is None and savings["sl"]["savings"] is None
    assert savings["sl"]["text"] == "> 3200 (max tried)"
    assert savings["ssl"]["text"] == "> 50 (max tried)"
    tl = savings["tl"]
    assert tl["reached_at_min"] is True and tl["labels_needed"] == 100 and tl["savings"] == pytest.approx(2.0)
    assert tl["text"] == "≤ 100 (already at smallest nsam)"
    assert savings["sl-i"]["reached_at_min"] is True and savings["sl-i"]["savings"] == pytest.approx(1.0)


def test_label_savings_takes_first_crossing_of_non_monotone_curve() -> None:
    # error dips below 1.0 between 100 and 200, rises above, dips again at 800: the first dip counts
    errors = {50: 2.0, 100: 1.5, 200: 0.75, 400: 1.2, 800: 0.5}
    cells = [_cell("sibcl", 50, 0, 1.0)] + [_cell("sl", n, 0, e) for n, e in errors.items()]
    entry = label_savings(aggregate(cells))["sl"]
    fraction = math.log(1.0 / 1.5) / math.log(0.75 / 1.5)
    expected = math.exp(math.log(100) + fraction * math.log(2))
    assert entry["labels_needed"] == pytest.approx(expected, abs=1e-9)
    assert 100 < entry["labels_needed"] < 200


def test_selection_savings_against_the_twin_at_the_two_smallest_budgets() -> None:
    # random labelling: e = 0.2 (n/50)^-1/2; picked labels: e = 0.1 (n/50)^-1/2, i.e. as good as 4× the labels
    results = _power_law_results({"sibcl": (0.2, 0.5, [50, 100, 200, 400, 800]),
                                  "sibcl-al": (0.1, 0.5, [50, 100, 200]), "sl": (0.4, 0.5, [50, 800])})
    savings = selection_savings(results)
    assert list(savings) == ["sibcl-al"] and list(savings["sibcl-al"]) == ["50", "100"]
    for n, entry in savings["sibcl-al"].items():
        assert entry["twin"] == "sibcl" and entry["reference_nsam"] == int(n)
        assert entry["target_error"] == pytest.approx(0.1 * (int(n) / 50) ** -0.5)
        assert entry["savings"] == pytest.approx(4.0) and entry["labels_needed"] == pytest.approx(4 * int(n))
    assert "sibcl-al" not in label_savings(results)  # SIB-CL's own savings table lists only baselines
    assert "| sibcl-al | 50 | 0.100 | sibcl | 200 labels (4.0×) |" in markdown_table(results, None, savings)
    assert selection_savings(_power_law_results({"sibcl-al": (0.1, 0.5, [50])})) == {}  # no twin, no row


def test_curve_slopes_are_the_power_law_exponents_and_show_where_a_curve_flattens() -> None:
    cells = [_cell("sl", n, 0, 0.4 * (n / 50) ** -0.5) for n in (50, 200, 800)]
    cells += [_cell("sibcl", n, 0, e) for n, e in ((50, 0.1), (100, 0.05), (200, 0.05))]
    slopes = curve_slopes(aggregate(cells))
    assert slopes["sl"] == pytest.approx({"50-200": -0.5, "200-800": -0.5})
    assert slopes["sibcl"] == pytest.approx({"50-100": -1.0, "100-200": 0.0})  # flat after 100
    assert "| sibcl | 50→100: -1.00, 100→200: +0.00 |" in markdown_table(aggregate(cells))


def test_late_gains_flag_fine_tuning_that_stopped_while_still_improving(tmp_path: Path) -> None:
    converged = [0.2, 0.1] + [0.05] * 28  # best after epoch 21 of 30 equals the end: 0 %
    improving = [0.1 - 0.001 * e for e in range(30)]  # still falling: 0.080 after 21, 0.071 at 30
    cells = [{**_cell("sibcl", 50, s, 0.1), "finetune_val_curve": converged} for s in range(2)]
    cells += [{**_cell("sl", 50, 0, 0.2), "finetune_val_curve": improving},
              {**_cell("sl", 100, 0, 0.15)}]  # a cell from before the curve was recorded: left out
    late = finetune_late_gains(cells)
    assert late == {"sibcl": {"50": 0.0}, "sl": {"50": pytest.approx(0.080 / 0.071 - 1)}}
    text = markdown_table(aggregate(cells), late=late)
    assert "| sibcl | 0.0 % |" in text and "| sl | 12.7 % * |" in text  # flagged above 1 %
    report = write_report(cells, tmp_path / "out", "phc: t")
    assert report["finetune_late_gains"]["sl"]["50"] == pytest.approx(0.080 / 0.071 - 1)
    assert "Fine-tuning length" in (tmp_path / "out" / "results.md").read_text()
    assert "Fine-tuning length" not in markdown_table(aggregate(cells))


def test_pretraining_losses_are_drawn_per_run(tmp_path: Path) -> None:
    histories = {"sibcl": [{"epochs_done": e, "contrastive_loss": 6 / e, "surrogate_loss": 1 / e} for e in (1, 2, 3)],
                 "tl": [{"epochs_done": e, "surrogate_loss": 2 / e} for e in (1, 2, 3)]}
    plot_pretraining(histories, tmp_path / "p.png", "phc: pretraining")
    assert (tmp_path / "p.png").stat().st_size > 10_000
    report = write_report([_cell("sibcl", 50, 0, 0.1)], tmp_path / "out", "phc: t", pretraining=histories)
    assert report["pretraining"] == histories and (tmp_path / "out" / "pretraining_loss.png").exists()
    assert "pretraining_loss.png" in (tmp_path / "out" / "results.md").read_text()


def test_label_savings_needs_reference() -> None:
    with pytest.raises(ValueError, match="sibcl"):
        label_savings(aggregate([_cell("sl", 50, 0, 0.1)]))


def test_markdown_table_bold_best_and_rows() -> None:
    cells = [_cell("sibcl", 50, s, e) for s, e in enumerate([0.0812 - 0.0031, 0.0812 + 0.0031])]
    cells += [_cell("sl", 50, 0, 0.2), _cell("sl", 100, 0, 0.15), _cell("tl", 100, 0, 0.12)]
    results = aggregate(cells)
    text = markdown_table(results, label_savings(results))
    lines = text.splitlines()
    table = [line for line in text[: text.index("Log–log slope")].splitlines() if line.startswith("| ")]
    assert table[0] == "| method | 50 | 100 |"
    assert len(table) == 1 + 3 + 1 + 2  # header, 3 methods, savings header, 2 baselines
    assert "| sibcl | **0.0812 ± 0.0031** | — |" in lines
    assert "| tl | — | **0.120 ± 0.000** |" in lines
    assert "| sl | 0.200 ± 0.000 | 0.150 ± 0.000 |" in lines
    assert "Label savings of sibcl" in text
    savings_rows = table[table.index("| baseline | labels needed (× sibcl's) |") + 1:]
    assert [row.split("|")[1].strip() for row in savings_rows] == ["tl", "sl"]
    assert "> 100 (max tried)" in text
    assert "Label savings" not in markdown_table(results)


def test_plot_writes_readable_png(tmp_path: Path) -> None:
    import matplotlib.image

    results = _power_law_results({m: (a, 0.4, [50, 100, 200, 400])
                                  for m, a in [("sibcl", 0.5), ("ssl", 0.8), ("sl", 1.0), ("custom", 0.9)]})
    path = tmp_path / "curve.png"
    plot(results, path, "test plot")
    assert path.stat().st_size > 10_000
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image.shape[0] > 400 and image.shape[1] > 600
    assert np.ptp(image[..., :3]) > 0.5  # something was drawn on the white canvas


def test_write_report_outputs(tmp_path: Path) -> None:
    cells = [_cell(m, n, s, a * (n / 50) ** -0.5 * (1 + 0.05 * s))
             for m, a in [("sibcl", 1.0), ("sl", 2.0)] for n in (50, 100, 400, 800) for s in range(2)]
    cells[0]["test_error"] = np.float64(cells[0]["test_error"])  # NumPy scalars must serialise
    out = tmp_path / "report"
    returned = write_report(cells, out, "power law")
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert returned == saved
    assert set(saved) == {"title", "reference", "aggregate", "savings", "selection_savings", "slopes",
                          "finetune_late_gains", "cells"}
    assert list(saved["aggregate"]) == ["sibcl", "sl"] and len(saved["cells"]) == len(cells)
    assert 100 < saved["savings"]["sl"]["labels_needed"] < 400
    markdown = (out / "results.md").read_text(encoding="utf-8")
    assert markdown.startswith("# power law") and "label_efficiency.png" in markdown
    assert (out / "label_efficiency.png").stat().st_size > 0
