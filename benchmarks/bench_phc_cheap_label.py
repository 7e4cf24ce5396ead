"""A cheap `phc` label of the same cell: the DOS on a coarse k-grid with few plane waves.

    python benchmarks/bench_phc_cheap_label.py [--cells 16] [--fit-cells 8] [--seed 0] [--json PATH]

Multi-fidelity (Δ) learning needs a cheap solve of the *same* input; phc's surrogate (rods) is
another family of cells. For random level-set target cells this measures the error/cost
frontier of `dos_label(k_points=N, plane_waves=P)`: its relative L1 error on METRIC_MASK
against the cell's target label (the `phc` metric, 25×25 k-points and 15×15 plane waves), its
seconds per label on one core, and how many times cheaper than the target label that is.
Alongside: the error of a per-frequency affine map of the cheap DOS onto the target fitted by
least squares on the first ``--fit-cells`` cells and scored on the rest (what a closed-form
`fit-mf` reaches with that many labels), and of predicting every cell by the mean target DOS
of the fitted cells (no information about the cell at all). BENCHMARKS.md, "A cheap phc label", quotes the table.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one core, as a label task runs; before numpy loads

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from results_file import write_results  # noqa: E402
from sibcl_ray.physics import photonic as P  # noqa: E402

#: (k-points per axis, plane waves per axis) of the cheap labels; the target is (25, 15).
CHEAP = [(5, 3), (5, 5), (9, 3), (9, 5), (9, 7), (13, 5), (13, 7), (25, 5), (25, 7)]


def relative_l1(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """The `phc` error per cell: Σ|ŷ − y| / Σ|y| over METRIC_MASK."""
    mask = P.METRIC_MASK
    return np.abs(predicted[:, mask] - true[:, mask]).sum(1) / np.abs(true[:, mask]).sum(1)


def timed_labels(cells: np.ndarray, **options: int | str) -> tuple[np.ndarray, float]:
    """DOS labels of ``cells`` and the seconds per label (one core)."""
    start = time.perf_counter()
    labels = np.array([P.dos_label(c, **options)[1] for c in cells])
    return labels, (time.perf_counter() - start) / len(cells)


def affine_fit_error(cheap: np.ndarray, target: np.ndarray, half: int) -> float:
    """Per-frequency least-squares y_f ≈ a_f + b_f·ŷ_f on the first ``half`` cells, scored on the rest."""
    x, y = cheap[:half], target[:half]
    b = ((x - x.mean(0)) * (y - y.mean(0))).sum(0) / np.maximum(((x - x.mean(0)) ** 2).sum(0), 1e-12)
    a = y.mean(0) - b * x.mean(0)
    return float(relative_l1(a + b * cheap[half:], target[half:]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=16)
    parser.add_argument("--fit-cells", type=int, default=8, help="cells the affine fit is made on (the rest score it)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/phc_cheap_label.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    # as stored and solved for a label: the float32 image
    cells = np.array([P.sample_level_set_cell(rng, n=32) for _ in range(args.cells)], np.float32).astype(np.float64)
    target, target_s = timed_labels(cells, **P.TARGET_LABEL_OPTS)
    half = args.fit_cells
    mean_error = float(relative_l1(np.broadcast_to(target[:half].mean(0), target[half:].shape), target[half:]).mean())
    print(f"target label (25x25 k, 15x15 plane waves): {target_s * 1e3:.1f} ms per cell; "
          f"mean-DOS predictor error {mean_error:.4f}")
    print(f"{'k-grid':>7} {'plane waves':>11} {'ms/label':>9} {'cheaper':>8} {'raw error':>10} {'affine fit':>11}")
    rows = []
    for k_points, plane_waves in CHEAP:
        cheap, seconds = timed_labels(cells, k_points=k_points, plane_waves=plane_waves)
        row = {"k_points": k_points, "plane_waves": plane_waves, "ms_per_label": seconds * 1e3,
               "times_cheaper": target_s / seconds, "raw_error": float(relative_l1(cheap, target).mean()),
               "raw_error_max": float(relative_l1(cheap, target).max()), "affine_fit_error": affine_fit_error(cheap, target, half)}
        rows.append(row)
        print(f"{k_points:>4}^2 {plane_waves:>8}^2 {row['ms_per_label']:>9.1f} {row['times_cheaper']:>7.1f}x "
              f"{row['raw_error']:>10.4f} {row['affine_fit_error']:>11.4f}")
    write_results(args.json, {"cells": args.cells, "fit_cells": half, "seed": args.seed, "target_ms_per_label": target_s * 1e3,
                              "mean_dos_predictor_error": mean_error, "frontier": rows})


if __name__ == "__main__":
    main()
