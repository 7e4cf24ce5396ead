"""NT-Xent against a hand computation, and that it can be minimised."""

from __future__ import annotations

import math

import torch

from sibcl_ray.learning.losses import nt_xent, supervised_loss


def test_nt_xent_matches_hand_computed_value() -> None:
    # Two samples, 2D embeddings; view pairs (a, a') and (b, b').
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[1.0, 1.0], [0.0, 2.0]])  # normalised: (1/√2, 1/√2) and (0, 1)
    t = 0.5
    s = 1 / math.sqrt(2)
    # cosine similarities among [a, b, a', b'] (a=(1,0), b=(0,1), a'=(s,s), b'=(0,1))
    sim = {("a", "b"): 0.0, ("a", "a'"): s, ("a", "b'"): 0.0, ("b", "a'"): s, ("b", "b'"): 1.0, ("a'", "b'"): s}
    sim.update({(j, i): v for (i, j), v in list(sim.items())})
    names = ["a", "b", "a'", "b'"]
    positive = {"a": "a'", "b": "b'", "a'": "a", "b'": "b"}
    expected = 0.0
    for i in names:
        denominator = sum(math.exp(sim[(i, j)] / t) for j in names if j != i)
        expected += -math.log(math.exp(sim[(i, positive[i])] / t) / denominator)
    expected /= 4
    assert math.isclose(nt_xent(z1, z2, t).item(), expected, rel_tol=1e-6)


def test_nt_xent_decreases_when_optimised() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    x = torch.randn(32, 8)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        views = (x + 0.05 * torch.randn_like(x), x + 0.05 * torch.randn_like(x))
        loss = nt_xent(net(views[0]), net(views[1]), temperature=0.2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_supervised_losses() -> None:
    p, y = torch.tensor([[1.0, 3.0]]), torch.tensor([[2.0, 1.0]])
    assert supervised_loss("l1", p, y).item() == 1.5
    assert supervised_loss("mse", p, y).item() == 2.5
    assert math.isclose(supervised_loss("log_l1", p, y).item(), (math.log(2) + math.log(3)) / 2, rel_tol=1e-6)
