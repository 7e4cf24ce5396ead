"""Losses: SimCLR's NT-Xent for pretraining and the supervised losses of SIB-CL."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def _gathered(z: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Every rank's ``z`` concatenated in rank order, gradients flowing back to their owners,
    and this rank's offset in it (the identity in one process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z, 0
    from torch.distributed.nn.functional import all_gather

    parts = all_gather(z)
    return torch.cat(parts), sum(len(p) for p in parts[: dist.get_rank()])


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised temperature-scaled cross entropy over the global batch of 2B embeddings (SimCLR).

    ``z1[i]`` and ``z2[i]`` are two views of sample ``i``; every other embedding in the batch
    is a negative. Cosine similarity: embeddings are L2-normalised here. Under DDP with more
    than one rank the negatives are the *global* batch (lightly's ``gather_distributed=True``):
    each rank scores its own 2b views against all 2B, with gradients flowing back through the
    all-gather, so the mean of the ranks' losses is the one-process loss of the whole batch and
    the objective does not change with the number of workers.

    Example::

        >>> g = torch.Generator().manual_seed(0)
        >>> z = torch.randn(8, 16, generator=g)
        >>> round(float(nt_xent(z, z, 0.1)), 4) < round(float(nt_xent(z, torch.randn(8, 16, generator=g), 0.1)), 4)
        True
    """
    local = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    all1, offset = _gathered(local[:n])
    all2, _ = _gathered(local[n:])
    total = all1.shape[0]
    keys = torch.cat([all1, all2])  # global order: every rank's first views, then every rank's second
    logits = local @ keys.T / temperature
    rows = torch.arange(n, device=local.device) + offset
    own = torch.cat([rows, rows + total])  # where each local view sits among the keys
    logits[torch.arange(2 * n, device=local.device), own] = float("-inf")  # not its own positive or negative
    targets = torch.cat([rows + total, rows])
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
