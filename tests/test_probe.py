"""The closed-form probes of a frozen encoder (``learning.probe``) against what they must give."""

from __future__ import annotations

import math

import pytest
import torch

from sibcl_ray.learning.probe import RELATIVE_PENALTIES, embedding_std, knn_predict, ridge_fit, ridge_predict


def test_ridge_recovers_a_linear_map_and_prefers_the_smallest_penalty_without_noise() -> None:
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(200, 16, generator=gen, dtype=torch.float64) * 3 + 1
    w = torch.randn(16, 5, generator=gen, dtype=torch.float64)
    y = h @ w + 0.5
    fit = ridge_fit(h, y)
    h_new = torch.randn(50, 16, generator=gen, dtype=torch.float64)
    assert torch.allclose(ridge_predict(fit, h_new), h_new @ w + 0.5, rtol=1e-2, atol=1e-2)
    base = float((torch.linalg.svdvals((h - h.mean(0)) / fit.scale) ** 2).mean())
    assert fit.penalty == pytest.approx(RELATIVE_PENALTIES[0] * base)


def test_leave_one_out_is_exact() -> None:
    """The closed-form LOO residual equals refitting without each sample (same penalty)."""
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(30, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    fit = ridge_fit(h, y)
    hs = (h - fit.mean) / fit.scale  # the fit's own centring and scale, kept fixed for the check
    u, s, _ = torch.linalg.svd(hs, full_matrices=False)
    shrink = s**2 / (s**2 + fit.penalty)
    yc = y - y.mean(0)
    leverage = (u**2 * shrink).sum(1)
    closed = (yc - u @ (shrink[:, None] * (u.T @ yc))) / (1 - leverage)[:, None]
    for i in (0, 7, 29):
        keep = torch.arange(30) != i
        a, b = hs[keep], yc[keep]
        # ridge with an unpenalised intercept on the 29 samples, as the centred form implies
        a_mean, b_mean = a.mean(0), b.mean(0)
        w = torch.linalg.solve((a - a_mean).T @ (a - a_mean) + fit.penalty * torch.eye(6, dtype=torch.float64),
                               (a - a_mean).T @ (b - b_mean))
        refit = (hs[i] - a_mean) @ w + b_mean
        assert torch.allclose(yc[i] - refit, closed[i], rtol=0.15, atol=1e-2)


def test_noise_makes_the_probe_penalise_more() -> None:
    gen = torch.Generator().manual_seed(2)
    h = torch.randn(40, 30, generator=gen, dtype=torch.float64)
    y = torch.randn(40, 1, generator=gen, dtype=torch.float64)  # pure noise: shrink hard
    assert ridge_fit(h, y).penalty > ridge_fit(h, h[:, :1] * 2).penalty


def test_embedding_std_is_zero_when_collapsed_and_one_over_sqrt_d_when_spread() -> None:
    gen = torch.Generator().manual_seed(3)
    assert embedding_std(torch.ones(100, 64) + 1e-9 * torch.randn(100, 64, generator=gen)) < 1e-6
    spread = embedding_std(torch.randn(20000, 64, generator=gen))
    assert spread == pytest.approx(1 / math.sqrt(64), rel=0.02)


def test_knn_returns_the_mean_of_the_nearest_labelled_samples() -> None:
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    targets = torch.tensor([[1.0], [3.0], [10.0], [20.0]])
    predicted = knn_predict(train, targets, torch.tensor([[2.0, 0.1], [0.0, 5.0]]), k=2)
    assert predicted.squeeze(1).tolist() == [2.0, 15.0]  # cosine: the scale of a query does not matter
