"""Global-batch NT-Xent under DDP with real processes: 2 gloo CPU ranks against one process.

Same global batch, same initial weights: the mean of the two ranks' losses equals the
one-process loss of the whole batch, and one optimizer step leaves the same parameters.
"""

from __future__ import annotations

import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sibcl_ray.learning.losses import nt_xent

BATCH, FEATURES, TEMPERATURE = 16, 12, 0.1


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, 32), nn.ReLU(), nn.Linear(32, 8))


def _views() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, FEATURES, generator=g)
    return x, x + 0.3 * torch.randn(BATCH, FEATURES, generator=g)


def _step(model: nn.Module, v1: torch.Tensor, v2: torch.Tensor) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss = nt_xent(model(v1), model(v2), TEMPERATURE)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def _rank(rank: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        v1, v2 = _views()
        half = slice(rank * BATCH // 2, (rank + 1) * BATCH // 2)
        model = DistributedDataParallel(_model())
        loss = _step(model, v1[half], v2[half])
        torch.save({"loss": loss, "params": [p.detach() for p in model.module.parameters()]}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_ranks_give_the_one_process_loss_and_step() -> None:
    v1, v2 = _views()
    single = _model()
    single_loss = _step(single, v1, v2)
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_rank, args=(f"file://{out}/rendezvous", out), nprocs=2, join=True)
        ranks = [torch.load(f"{out}/rank{r}.pt") for r in range(2)]
    assert abs((ranks[0]["loss"] + ranks[1]["loss"]) / 2 - single_loss) < 1e-5
    assert ranks[0]["loss"] != ranks[1]["loss"]  # each rank scores its own views against the global batch
    for rank in ranks:
        for p_dist, p_single in zip(rank["params"], single.parameters()):
            assert torch.allclose(p_dist, p_single.detach(), atol=1e-5)


def test_per_rank_negatives_would_differ() -> None:
    """The check above can fail: the old per-rank loss (no gather) is not the global one."""
    v1, v2 = _views()
    model = _model()
    with torch.no_grad():
        z1, z2 = model(v1), model(v2)
        local = (nt_xent(z1[:8], z2[:8], TEMPERATURE) + nt_xent(z1[8:], z2[8:], TEMPERATURE)) / 2
        assert abs(float(local) - float(nt_xent(z1, z2, TEMPERATURE))) > 1e-3
