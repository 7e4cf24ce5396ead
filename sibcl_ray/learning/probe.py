"""Closed-form probes of a frozen encoder: how good its features are before fine-tuning.

During pretraining the only error the old loop could report was the zero-shot error of
the surrogate-trained predictor, a number on another scale than the fine-tuned error the
search optimises (and meaningless for methods without a surrogate head). A ridge probe is
the regression analogue of lightly's ``KNNCallback`` and solo-learn's online linear eval:
fit ``y ≈ φ(x) W`` on the trial's own ``nsam`` labelled samples, in closed form, and score
it on the validation split in the problem's metric. The ridge strength is picked by exact
leave-one-out error on the labelled samples (never on validation), so the probe has no
knob of its own. ``knn_predict`` is the fit-free alternative (k nearest labelled samples in
cosine similarity). No Ray here.

``embedding_std`` is the collapse monitor of Jing et al. / lightly's ``std_of_l2_normalized``:
the per-dimension standard deviation of L2-normalised projections, averaged over
dimensions. It is ``≈ 1/sqrt(d)`` for embeddings spread over the sphere and 0 when every
input maps to the same point.

Example::

    >>> import torch
    >>> h = torch.randn(50, 8, dtype=torch.float64)
    >>> y = h @ torch.randn(8, 3, dtype=torch.float64)
    >>> fit = ridge_fit(h, y)
    >>> bool(torch.allclose(ridge_predict(fit, h), y, atol=1e-2))
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: Ridge strengths tried, relative to the mean squared singular value of the features.
RELATIVE_PENALTIES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


@dataclass(frozen=True)
class RidgeFit:
    """A fitted ridge probe: centring and scale of the features, weights and the chosen penalty."""

    mean: torch.Tensor
    scale: torch.Tensor
    weights: torch.Tensor
    bias: torch.Tensor
    penalty: float


def ridge_fit(features: torch.Tensor, targets: torch.Tensor) -> RidgeFit:
    """Ridge regression of ``targets`` (n, k) on ``features`` (n, d), penalty by leave-one-out.

    Features are centred and scaled as a whole, targets centred; with ``H = U S Vᵀ`` the fitted values for
    penalty λ are ``U diag(s²/(s²+λ)) Uᵀ y`` and the exact leave-one-out residual is
    ``(y − ŷ) / (1 − h_ii)``, so every λ costs one SVD in all.
    """
    h = features.double()
    y = targets.double().reshape(len(h), -1)
    # centred, one scale for all features: per-feature standardisation would blow up a feature
    # that barely varies on the few labelled samples and let it dominate validation predictions
    mean = h.mean(0)
    scale = (h - mean).pow(2).mean().sqrt().clamp_min(1e-12)
    hs = (h - mean) / scale
    y_mean = y.mean(0)
    yc = y - y_mean
    u, s, vt = torch.linalg.svd(hs, full_matrices=False)
    uty = u.T @ yc
    base = float((s**2).mean()) if len(s) else 1.0
    best: tuple[float, float] | None = None
    for relative in RELATIVE_PENALTIES:
        lam = relative * base
        shrink = s**2 / (s**2 + lam)
        fitted = u @ (shrink[:, None] * uty)
        leverage = (u**2 * shrink).sum(1).clamp_max(1 - 1e-9)
        loo = ((yc - fitted) / (1 - leverage)[:, None]).pow(2).mean().item()
        if best is None or loo < best[0]:
            best = (loo, lam)
    assert best is not None
    lam = best[1]
    weights = vt.T @ ((s / (s**2 + lam))[:, None] * uty)
    return RidgeFit(mean=mean, scale=scale, weights=weights, bias=y_mean, penalty=lam)


def ridge_predict(fit: RidgeFit, features: torch.Tensor) -> torch.Tensor:
    """Predictions of a fitted probe for ``features`` (n, d)."""
    return ((features.double() - fit.mean) / fit.scale) @ fit.weights + fit.bias


def knn_predict(train_features: torch.Tensor, train_targets: torch.Tensor, features: torch.Tensor,
                k: int = 5) -> torch.Tensor:
    """Mean target of the ``k`` labelled samples nearest in cosine similarity (lightly's
    ``KNNCallback``, for regression): no fit at all, so no knob and no overfitting."""
    similarity = F.normalize(features.double(), dim=1) @ F.normalize(train_features.double(), dim=1).T
    nearest = similarity.topk(min(k, len(train_features)), dim=1).indices
    return train_targets.double().reshape(len(train_features), -1)[nearest].mean(1)


def embedding_std(projections: torch.Tensor) -> float:
    """Mean per-dimension std of L2-normalised projections: ≈ 1/sqrt(d) healthy, 0 collapsed."""
    z = F.normalize(projections.double(), dim=1)
    return float(z.std(0, unbiased=False).mean())
