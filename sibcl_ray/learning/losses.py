"""Losses: SimCLR's NT-Xent for pretraining and the supervised losses of SIBCL.md."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised temperature-scaled cross entropy over 2B embeddings (SimCLR).

    ``z1[i]`` and ``z2[i]`` are two views of sample ``i``; every other embedding in the
    batch is a negative. Cosine similarity: embeddings are L2-normalised here.
    """
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    n = z1.shape[0]
    logits.fill_diagonal_(float("-inf"))  # a view is not its own positive or negative
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)


def supervised_loss(name: str, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """'l1', 'mse', or 'log_l1' = mean log(1 + |error|) (the reference's surrogate DOS loss)."""
    if name == "l1":
        return F.l1_loss(predicted, target)
    if name == "mse":
        return F.mse_loss(predicted, target)
    if name == "log_l1":
        return torch.log1p((predicted - target).abs()).mean()
    raise ValueError(f"unknown loss {name!r}: allowed values are l1, mse, log_l1")
