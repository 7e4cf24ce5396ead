"""The fast 3D step on a CPU (channels-last, fused BatchNorm + max pool, ReLU after pooling) is
the same maths as the reference's step: checked against a straightforward float64 computation
(per-sample point-group ops by permute and flip, Conv → BatchNorm → ReLU → MaxPool in NCDHW,
NT-Xent from its definition) to float32 precision, loss, gradients and running statistics."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sibcl_ray.learning.models import SIBCLNet
from sibcl_ray.learning.normpool import batch_stats, norm_then_pool
from sibcl_ray.learning.steps import StepSettings, contrastive_step
from sibcl_ray.learning.transforms import make_augmenter, point_group_ops
from sibcl_ray.problems import get_problem

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEMPERATURE = 0.1


def reference_views(x: torch.Tensor, gen: torch.Generator, strength: float) -> torch.Tensor:
    """One random point-group view per sample, drawn as ``transforms.random_geometry`` draws
    (op per sample, then the identity where a uniform ≥ strength), applied one sample at a time."""
    ops = torch.randint(0, 48, (len(x),), generator=gen)
    ops[torch.rand(len(x), generator=gen) >= strength] = 0
    table = point_group_ops(3)
    views = []
    for sample, op in zip(x, ops.tolist()):
        perm, flips = table[op]
        view = sample.permute(perm)
        views.append(view.flip([a for a, flip in enumerate(flips) if flip]))
    return torch.stack(views)


def reference_encoder(model: SIBCLNet, x: torch.Tensor) -> torch.Tensor:
    """The reference's blocks, Conv → BatchNorm (batch statistics; running ones updated) → ReLU →
    MaxPool, in NCDHW."""
    h = x.unsqueeze(1)
    features = model.encoder.features
    for i in range(0, len(features), 4):
        conv, norm, pool = features[i], features[i + 1], features[i + 2]
        h = F.conv3d(h, conv.weight, conv.bias, padding=conv.padding)
        h = F.batch_norm(h, norm.running_mean, norm.running_var, norm.weight, norm.bias, training=True,
                         momentum=norm.momentum, eps=norm.eps)
        h = F.max_pool3d(F.relu(h), pool.kernel_size)
    return model.encoder.head(h.flatten(2).mean(dim=2))


@torch.no_grad()
def evaluate(model: SIBCLNet, x: torch.Tensor, reference: bool) -> torch.Tensor:
    """Predictions in evaluation mode: the modules one after the other in the reference's order
    (``reference``), or the model's own forward."""
    model.eval()
    if reference:
        h = x.to(next(model.parameters()).dtype).unsqueeze(1)
        features = model.encoder.features
        for i in range(0, len(features), 4):
            h = features[i + 2](F.relu(features[i + 1](features[i](h))))
        return model.predictor(model.encoder.head(h.flatten(2).mean(dim=2)))
    return model(x, head="predict")


def reference_nt_xent(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """SimCLR's loss from its definition: each view's positive is the other view of its sample,
    every other view a negative, cosine similarities over the temperature."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    logits = (z @ z.T / TEMPERATURE).fill_diagonal_(float("-inf"))
    return F.cross_entropy(logits, torch.cat([torch.arange(n) + n, torch.arange(n)]))


def reference_step(model: SIBCLNet, opt: torch.optim.Optimizer, x: torch.Tensor, gen: torch.Generator,
                   dtype: torch.dtype) -> torch.Tensor:
    """The reference's contrastive step, straightforwardly, in ``dtype``: returns the loss."""
    views = torch.cat([reference_views(x, gen, 1.0), reference_views(x, gen, 1.0)]).to(dtype)
    z = model.projector(reference_encoder(model, views))
    loss = reference_nt_xent(z[: len(x)], z[len(x) :])
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.detach()


def _tise3d_setup() -> tuple[SIBCLNet, StepSettings, torch.Tensor, object]:
    problem = get_problem("tise", dim=3)
    settings = StepSettings.for_device(torch.device("cpu"), dim=3)
    torch.manual_seed(0)
    model = SIBCLNet(problem.network_spec("small"), problem.label_dim)
    lo, hi = problem.input_range
    x = torch.from_numpy((problem.target_inputs(np.random.default_rng(0), 6) - lo) / (hi - lo)).float()
    return model, settings, x, make_augmenter(problem.invariances, 1.0, problem.input_range)


def test_tise3d_step_equals_the_reference_step_in_float64() -> None:
    """One step of the CPU's 3D step on real potentials against the reference computation in
    float64, beside today's step in float32 (NCDHW, the modules one after the other): both
    losses to 5e-6 relative; every gradient of the new step as far from float64 as today's is
    (at most 4x, plus 1e-4 of the network's largest gradient for the ones that are 0 exactly),
    and today's within float32's level (1e-3 of the parameter's largest entry)."""
    model, settings, x, augment = _tise3d_setup()
    assert settings.channels_last and settings.describe() == "float32+channels_last"
    reference, today = copy.deepcopy(model).double(), copy.deepcopy(model)
    fast = settings.prepare(model, 3)
    opts = [torch.optim.SGD(m.parameters(), lr=0.05) for m in (model, today, reference)]
    gen, today_gen, ref_gen = (torch.Generator().manual_seed(4) for _ in range(3))
    loss = contrastive_step(fast, opts[0], x, augment, gen, TEMPERATURE, settings)
    today_loss = reference_step(today, opts[1], x, today_gen, torch.float32)
    ref_loss = reference_step(reference, opts[2], x, ref_gen, torch.float64)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=5e-6)
    assert today_loss.item() == pytest.approx(ref_loss.item(), rel=5e-6)
    named = list(reference.named_parameters())
    largest = max(r.grad.abs().max().item() for _, r in named if r.grad is not None)
    for (name, r), p, q in zip(named, model.parameters(), today.parameters()):
        if r.grad is None:  # the predictor: not in a contrastive step
            assert p.grad is None and q.grad is None, name
            continue
        fast_error, today_error = ((g.grad.double() - r.grad).abs().max().item() for g in (p, q))
        # float32's own level: the first convolution sums 12 views of 32³ values, and a conv bias
        # before BatchNorm has a zero gradient that float32 leaves as a sum of 4e5 values' rounding
        assert today_error <= 1e-3 * r.grad.abs().max().item() + 5e-4 * largest, name
        assert fast_error <= 4 * today_error + 1e-4 * largest, name
    assert torch.equal(gen.get_state(), ref_gen.get_state())  # the same random draws, no more
    running = [(a, b) for a, b in zip(model.buffers(), reference.buffers()) if a.dtype == torch.float32]
    assert len(running) == 2 * 5  # BatchNorm's running mean and variance, 4 blocks and the projector
    assert all(torch.allclose(a.double(), b, rtol=1e-5, atol=1e-6) for a, b in running)
    # evaluation (running statistics; the pool before the affine map) of the three updated networks
    predicted = [evaluate(net, x, ref).double() for net, ref in ((fast, False), (today, True), (reference, True))]
    fast_error, today_error = ((p - predicted[2]).abs().max().item() for p in predicted[:2])
    assert fast_error <= 4 * today_error + 1e-6 * predicted[2].abs().max().item()


def test_tise3d_losses_follow_todays_over_adam_steps() -> None:
    """Four pretraining steps (Adam at the default lr) from the same seed: the fast step's losses
    stay within 1e-3 of today's float32 step's. Adam's first updates are about lr·sign(gradient),
    so float32 rounding of the near-zero gradients already moves today's float32 run ~1e-4 away
    from the same run in float64; the bound is that scale, not a looser one."""
    model, settings, x, augment = _tise3d_setup()
    today = copy.deepcopy(model)
    fast = settings.prepare(model, 3)
    opt, today_opt = (torch.optim.Adam(m.parameters(), lr=1e-3) for m in (model, today))
    gen, today_gen = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    for _ in range(4):
        loss = contrastive_step(fast, opt, x, augment, gen, TEMPERATURE, settings)
        today_loss = reference_step(today, today_opt, x, today_gen, torch.float32)
        assert loss.item() == pytest.approx(today_loss.item(), rel=1e-3)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last_3d])
def test_norm_then_pool_is_batchnorm_then_maxpool(memory_format: torch.memory_format) -> None:
    """Outputs, every gradient and the running statistics of the fused op against the two modules
    in float64, with negative scales (where the max of the normalised values is the min of y)."""
    gen = torch.Generator().manual_seed(0)
    y = (torch.randn(4, 8, 8, 8, 8, generator=gen) * 0.5 + 1).contiguous(memory_format=memory_format)
    y.requires_grad_()
    norm, pool = nn.BatchNorm3d(8), nn.MaxPool3d(2)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, -0.5, 2.0, -1.5, 0.3, 1.0, -2.0, 0.7]))
        norm.bias.copy_(torch.randn(8, generator=gen))
    ref_norm = copy.deepcopy(norm).double()
    y64 = y.detach().double().contiguous().requires_grad_()
    weights = torch.randn(4, 8, 4, 4, 4, generator=gen, dtype=torch.float64)
    out = norm_then_pool(y, norm, pool)
    ref = pool(ref_norm(y64))
    (out * weights.float()).sum().backward()
    (ref * weights).sum().backward()
    assert out.dtype == torch.float32 and (out.double() - ref).abs().max() < 1e-5
    assert (y.grad.double() - y64.grad).abs().max() < 1e-5 * y64.grad.abs().max()
    assert y.grad.is_contiguous(memory_format=memory_format)
    for mine, theirs in ((norm.weight.grad, ref_norm.weight.grad), (norm.bias.grad, ref_norm.bias.grad),
                         (norm.running_mean, ref_norm.running_mean), (norm.running_var, ref_norm.running_var)):
        assert (mine.double() - theirs).abs().max() < 1e-5 * max(1.0, theirs.abs().max().item())
    assert int(norm.num_batches_tracked) == 1
    norm.eval()  # with a negative scale, evaluation takes the modules
    assert torch.equal(norm_then_pool(y.detach(), norm, pool), pool(norm(y.detach())))
    with torch.no_grad():
        norm.weight.abs_()  # all scales positive: the pool first, then the affine map
    ref_norm.load_state_dict(norm.state_dict())
    ref_norm.eval()
    assert (norm_then_pool(y.detach(), norm, pool).double() - pool(ref_norm(y64.detach()))).abs().max() < 1e-5


def test_batch_stats_are_float32_accurate_far_from_zero() -> None:
    """Mean 3, spread 0.01, 2^21 values per channel in channels-last memory: a float32 sum one row
    at a time is off by ~1e-4 here; the chunked, float64-merged statistics are not."""
    gen = torch.Generator().manual_seed(0)
    y = (3 + 0.01 * torch.randn(64, 4, 32, 32, 32, generator=gen)).contiguous(memory_format=torch.channels_last_3d)
    mean, var = batch_stats(y)
    var64, mean64 = torch.var_mean(y.double(), dim=(0, 2, 3, 4), correction=0)
    assert (mean.double() - mean64).abs().max() < 3e-7 * 3
    assert ((var.double() - var64).abs() / var64).max() < 1e-5
