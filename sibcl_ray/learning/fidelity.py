"""Δ-learning's closed form: the least-squares fit label ≈ a + b·c + d·c² on a cheap label c.

The multi-fidelity methods (docs/method.md "Multi-fidelity") start from this fit, made on the
labelled training samples only: ``fit-mf`` is the fit alone, and ``sl-mf``, ``tl-mf``,
``sibcl-mf`` train a network on what the fit leaves (the residual). The fit is made in the
standardised cheap label z = (c − center) / scale, which keeps the 3×3 normal equations well
conditioned whatever the label's units; ``physical()`` gives the coefficients in c itself.
A cheap label of one component is used for every label component; one of ``label_dim``
components fits each label component on its own. NumPy only (the predictor and the Ray-free
learning code both use it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: The fit's terms: 1, z, z² (a quadratic: the cheap and target energies are near-linear, with a
#: curvature a straight line misses at the extremes).
DEGREE = 2


@dataclass(frozen=True)
class CheapFit:
    """The fit: ``coef[k, j]`` multiplies zᵏ for label component j, z = (c − center) / scale."""

    center: float
    scale: float
    coef: np.ndarray  # (DEGREE + 1, label_dim), float64

    @classmethod
    def fit(cls, cheap: np.ndarray, labels: np.ndarray) -> CheapFit:
        """Least squares on (cheap (n, 1 or L), labels (n, L)); with fewer than three distinct
        cheap values the minimum-norm solution (a lower-degree fit) comes out instead of NaN."""
        c, y = np.asarray(cheap, np.float64), np.asarray(labels, np.float64)
        if c.ndim != 2 or y.ndim != 2 or len(c) != len(y) or c.shape[1] not in (1, y.shape[1]) or not len(y):
            raise ValueError(f"cheap labels {c.shape} do not fit labels {y.shape}: (n, 1) or (n, L) against (n, L)")
        center = float(c.mean())
        scale = float(c.std()) or 1.0
        z = (c - center) / scale
        coef = np.empty((DEGREE + 1, y.shape[1]))
        for j in range(y.shape[1]):
            zj = z[:, j if z.shape[1] > 1 else 0]
            design = np.stack([zj**k for k in range(DEGREE + 1)], axis=1)
            coef[:, j] = np.linalg.lstsq(design, y[:, j], rcond=None)[0]
        return cls(center, scale, coef)

    def standardised(self, cheap: np.ndarray) -> np.ndarray:
        """z = (c − center) / scale: what a network is given as its extra input."""
        return (np.asarray(cheap, np.float64) - self.center) / self.scale

    def predict(self, cheap: np.ndarray) -> np.ndarray:
        """The fit's labels (n, label_dim), float64."""
        z = self.standardised(cheap)
        return sum(self.coef[k] * z**k for k in range(DEGREE + 1))

    def physical(self) -> np.ndarray:
        """The same polynomial in c itself: ``out[k, j]`` multiplies cᵏ (a + b·c + d·c² for k = 0, 1, 2)."""
        m, s = self.center, self.scale
        a, b, d = self.coef
        return np.stack([a - b * m / s + d * m * m / (s * s), b / s - 2 * d * m / (s * s), d / (s * s)])

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``model.json``): the standardised fit and its physical coefficients."""
        return {"center": self.center, "scale": self.scale, "coef": self.coef.tolist(),
                "physical_coef": self.physical().tolist()}

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> CheapFit:
        return cls(float(saved["center"]), float(saved["scale"]), np.asarray(saved["coef"], np.float64))
