"""Pictures of a trained predictor: what it predicts on test, and how its encoder sees validation.

``test_predictions.png``: for a label on a physical axis (the DOS), predicted vs true for the
best, median and worst test inputs with their errors; for a scalar label (E0), a parity plot
and the error histogram. ``embedding.png``: the first two principal components of the
encoder's features on the validation split, coloured by a scalar of the label. Both come from
arrays the test evaluation already computed (``train.evaluate``); no Ray or torch here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sibcl_ray.problems import Problem  # noqa: E402

TEST_PREDICTIONS_PNG = "test_predictions.png"
EMBEDDING_PNG = "embedding.png"


def plot_test_predictions(problem: Problem, predicted: np.ndarray, true: np.ndarray, path: Path,
                          title: str = "") -> Path:
    """Predicted vs true test labels, in the problem's units and error metric."""
    errors = problem.errors(predicted, true)
    axis = problem.label_axis()
    if problem.label_dim == 1:
        fig, (parity, histogram) = plt.subplots(1, 2, figsize=(10, 4.5))
        lo, hi = float(min(true.min(), predicted.min())), float(max(true.max(), predicted.max()))
        parity.plot([lo, hi], [lo, hi], color="0.5", lw=1, label="exact")
        parity.scatter(true[:, 0], predicted[:, 0], s=8, alpha=0.6, color="tab:blue", label="test inputs")
        parity.set(xlabel=f"true {problem.label_name}", ylabel=f"predicted {problem.label_name}",
                   title=f"parity ({len(errors)} test inputs)")
        parity.legend(loc="upper left")
        histogram.hist(errors, bins=40, color="tab:orange")
        histogram.axvline(float(np.mean(errors)), color="k", ls="--", label=f"mean {np.mean(errors):.4f}")
        histogram.set(xlabel="relative error", ylabel="test inputs", title="error histogram")
        histogram.legend()
    else:
        order = np.argsort(errors)
        picks = {"best": order[0], "median": order[len(order) // 2], "worst": order[-1]}
        grid, xlabel = (axis[1], axis[0]) if axis is not None and len(axis[1]) == problem.label_dim else (
            np.arange(problem.label_dim), "label component")
        fig, panels = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
        for panel, (which, i) in zip(panels, picks.items()):
            panel.plot(grid, true[i], color="k", lw=1.4, label="true")
            panel.plot(grid, predicted[i], color="tab:red", lw=1.1, ls="--", label="predicted")
            panel.set(title=f"{which} test input #{i}: error {errors[i]:.4f}", xlabel=xlabel)
        panels[0].set_ylabel(problem.label_name)
        panels[0].legend(loc="upper left")
    fig.suptitle(title or f"{problem.describe()}: test predictions (mean error {np.mean(errors):.4f})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def principal_components(features: np.ndarray, count: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Projections on the first ``count`` principal components and each one's share of the variance."""
    centred = features - features.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    variance = singular**2
    share = variance[:count] / max(float(variance.sum()), 1e-30)
    return centred @ vt[:count].T, share


def plot_embedding(features: np.ndarray, scalar: np.ndarray, scalar_name: str, path: Path, title: str) -> Path:
    """PCA of encoder features, one point per validation input, coloured by ``scalar``."""
    coords, share = principal_components(np.asarray(features, np.float64))
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    points = ax.scatter(coords[:, 0], coords[:, 1], c=scalar, s=10, cmap="viridis", alpha=0.85)
    fig.colorbar(points, ax=ax, label=scalar_name)
    ax.set(xlabel=f"PC 1 ({share[0]:.0%} of variance)", ylabel=f"PC 2 ({share[1]:.0%} of variance)", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def write_model_pictures(problem: Problem, arrays: dict[str, Any], folder: Path, what: str) -> list[Path]:
    """Both pictures from ``train.evaluate``'s arrays into ``folder``; ``what`` names the model in titles."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [plot_test_predictions(problem, arrays["test_predicted"], arrays["test_true"],
                                     folder / TEST_PREDICTIONS_PNG,
                                     f"{what}: test predictions (mean error {np.mean(arrays['test_errors']):.4f})")]
    if "val_features" in arrays:
        written.append(plot_embedding(arrays["val_features"], arrays["val_scalar"], arrays["val_scalar_name"],
                                      folder / EMBEDDING_PNG, f"{what}: encoder features on validation (PCA)"))
    return written
