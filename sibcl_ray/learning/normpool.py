"""BatchNorm in training mode followed by max pooling, as one autograd op for 3D blocks on a CPU.

In the small 3D encoder the first block's activations, (B, 8, 32, 32, 32) in float32, are 200 MiB
for the contrastive batch's 192 views: ``MaxPool(BatchNorm(y))`` as two modules writes the
normalised tensor, reads it to pool, and in the backward pass writes a zero-filled
full-resolution gradient for the pooling, scatters into it, and reads it again with ``y`` in
BatchNorm's backward. Here the normalisation is affine per channel, z = a·y + b with
a = γ/σ and b = β − μ·a, so pooling commutes with it (a max for a ≥ 0, a min for a < 0):
the op pools ``y`` itself and normalises the pooled tensor, and its backward writes the
gradient of ``y`` in one pass, BatchNorm's closed form with the pooling's scatter folded in:

    ∂L/∂y = a·scatter(g) − a·Σg/M − a·(y − μ)/σ² · Σ(g·(ŷ − μ))/M,
    ∂L/∂β = Σg,   ∂L/∂γ = Σ g·(ŷ − μ)/σ,

with g the gradient of the pooled output, ŷ the pooled y, M the values per channel.

The batch statistics are computed here too, accurately: torch's CPU BatchNorm on a
channels-last tensor accumulates in float32 row by row (torch 2.13), and on 2 M values per
channel of mean 3 and spread 0.1 its mean was off by 1e-4 and its variance by 0.2 % (its NCDHW
kernel is accurate, and slow on these shapes; BENCHMARKS.md). Here each chunk of samples is reduced on its own, from
cache, and the chunks are merged in float64 (Chan et al.'s parallel variance).
Running statistics are updated exactly as ``nn.BatchNorm3d`` updates them. In evaluation
BatchNorm is a fixed affine map, and where no scale is negative the pool runs first there too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: The fused op's forward in torch.profiler's tables (its backward is ``_NormPoolBackward``).
PROFILE_NAME = "sibcl::norm_then_pool"
#: Values per chunk of the statistics pass: 1 MiB of float32, so a chunk is read from cache twice.
STATS_CHUNK_ELEMENTS = 1 << 18


def _simple_3d(y: torch.Tensor, norm: nn.Module, pool: nn.Module) -> bool:
    """Whether ``pool(norm(y))`` is a BatchNorm3d with running statistics and a momentum, then a
    non-overlapping max pool without padding, on a float32 CPU tensor (cuDNN's BatchNorm is
    accurate and fast; SyncBatchNorm has its own reduction)."""
    if not (type(norm) is nn.BatchNorm3d and norm.affine and norm.track_running_stats
            and norm.momentum is not None and isinstance(pool, nn.MaxPool3d)):
        return False
    kernel, stride = pool.kernel_size, pool.stride if pool.stride is not None else pool.kernel_size
    simple_pool = kernel == stride and pool.padding == 0 and pool.dilation == 1 and not pool.ceil_mode \
        and not pool.return_indices
    return simple_pool and y.device.type == "cpu" and y.dtype == torch.float32


def _fused(y: torch.Tensor, norm: nn.Module, pool: nn.Module) -> bool:
    """Whether ``pool(norm(y))`` takes the fused training op: ``_simple_3d``, training, a gradient wanted."""
    return norm.training and y.requires_grad and _simple_3d(y, norm, pool)


def _channel_rows(y: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``y`` (N, C, …) as a (rows, C·k) matrix whose column j holds channel j mod C, and k.

    In channels-last memory this is a view with k = 16 where the sizes allow: per-channel
    arithmetic on rows of C = 8 values runs in half-empty vector registers and loops a row at a
    time, on rows of 128 values it runs at memory speed (2-3x faster here). Other layouts are
    copied into (values, C) rows.
    """
    channels, values = y.shape[1], y.numel() // max(1, y.shape[1])
    last = y.movedim(1, -1)
    if not last.is_contiguous():
        return last.reshape(-1, channels), 1
    repeats = next(k for k in (16, 8, 4, 2, 1) if values % k == 0)
    return last.view(-1, channels * repeats), repeats


def _channel_affine(y: torch.Tensor, slope: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """``y·slope + offset`` per channel in one pass, in ``y``'s memory format."""
    if not y.movedim(1, -1).is_contiguous():  # NCDHW: each channel is a contiguous run already
        return torch.addcmul(_per_channel(offset, y), y, _per_channel(slope, y))
    rows, repeats = _channel_rows(y)
    out = torch.addcmul(offset.repeat(repeats), rows, slope.repeat(repeats))
    return out.view(y.movedim(1, -1).shape).movedim(-1, 1)


def batch_stats(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of ``y`` (N, C, …) over everything but C, to float32
    precision whatever the layout: chunks of samples reduced in float32 (mean, then squares
    about it), merged in float64."""
    channels = y.shape[1]
    step = max(1, STATS_CHUNK_ELEMENTS // max(1, y[0].numel()))
    counts, means, squares = [], [], []
    for start in range(0, y.shape[0], step):
        rows, repeats = _channel_rows(y[start : start + step])
        count = rows.numel() // channels
        mean = rows.sum(dim=0).view(repeats, channels).sum(dim=0) / count
        centred = rows - mean.repeat(repeats)
        counts.append(count)
        means.append(mean)
        squares.append(centred.mul_(centred).sum(dim=0).view(repeats, channels).sum(dim=0))
    n = torch.tensor(counts, dtype=torch.float64).view(-1, 1)
    chunk_means, chunk_squares = torch.stack(means).double(), torch.stack(squares).double()
    mean = (n * chunk_means).sum(0) / n.sum()
    var = (chunk_squares.sum(0) + (n * (chunk_means - mean) ** 2).sum(0)) / n.sum()
    return mean.float(), var.float()


def _per_channel(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view((1, -1) + (1,) * (like.dim() - 2))


class _NormPool(torch.autograd.Function):
    """``max_pool3d(batch_norm(y))`` with given batch statistics (see the module docstring)."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,  # type: ignore[override]
                mean: torch.Tensor, invstd: torch.Tensor, kernel: tuple[int, int, int]) -> torch.Tensor:
        scale = weight * invstd
        shift = bias - mean * scale
        pooled, index = F.max_pool3d(y, kernel, return_indices=True)
        negative = scale < 0
        if bool(negative.any()):  # a < 0 turns the max of z into the min of y
            low, low_index = F.max_pool3d(-y, kernel, return_indices=True)
            flip = _per_channel(negative, pooled)
            pooled, index = torch.where(flip, -low, pooled), torch.where(flip, low_index, index)
        ctx.save_for_backward(y, weight, mean, invstd, pooled, index)
        return _channel_affine(pooled, scale, shift)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        y, weight, mean, invstd, pooled, index = ctx.saved_tensors
        dims = [0] + list(range(2, grad.dim()))
        count = y.numel() // y.shape[1]
        scale = weight * invstd
        grad_bias = grad.sum(dims)
        grad_weight = (grad * (pooled - _per_channel(mean, pooled)) * _per_channel(invstd, pooled)).sum(dims)
        grad_y = None
        if ctx.needs_input_grad[0]:
            slope = -scale * invstd * grad_weight / count
            offset = -scale * grad_bias / count - slope * mean
            grad_y = _channel_affine(y, slope, offset)
            batch, channels = y.shape[:2]
            grad_y.view(batch, channels, -1).scatter_add_(
                2, index.reshape(batch, channels, -1), (grad * _per_channel(scale, grad)).reshape(batch, channels, -1))
        return grad_y, grad_weight, grad_bias, None, None, None


def _fused_norm_pool(y: torch.Tensor, norm: nn.Module, pool: nn.Module) -> torch.Tensor:
    """The fused op's forward: batch statistics, running statistics, then ``_NormPool``."""
    assert isinstance(norm, nn.BatchNorm3d) and isinstance(pool, nn.MaxPool3d)
    with torch.no_grad():
        mean, var = batch_stats(y)
        count = y.numel() // y.shape[1]
        norm.num_batches_tracked.add_(1)
        momentum = norm.momentum
        norm.running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        norm.running_var.mul_(1 - momentum).add_(var * (count / max(1, count - 1)), alpha=momentum)
        invstd = torch.rsqrt(var + norm.eps)
    kernel = pool.kernel_size if isinstance(pool.kernel_size, tuple) else (pool.kernel_size,) * 3
    return _NormPool.apply(y, norm.weight, norm.bias, mean, invstd, kernel)


def norm_then_pool(y: torch.Tensor, norm: nn.Module, pool: nn.Module) -> torch.Tensor:
    """``pool(norm(y))``: in training, one fused op where ``_fused`` allows it (running statistics
    updated as BatchNorm does); in evaluation, where BatchNorm is a fixed affine map with no
    negative scale, the pool first and the affine on the pooled tensor (plain autograd ops, the
    same values bit for bit: rounding is monotone; 1.3x faster on a validation pass); the two
    modules otherwise (a negative scale would need a min pool, a pass over -y costing what it saves)."""
    if _fused(y, norm, pool):
        with torch.profiler.record_function(PROFILE_NAME):  # a no-op unless a profiler runs
            return _fused_norm_pool(y, norm, pool)
    if not norm.training and _simple_3d(y, norm, pool):
        assert isinstance(norm, nn.BatchNorm3d) and isinstance(pool, nn.MaxPool3d)
        scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
        if bool((scale >= 0).all()):
            return _channel_affine(pool(y), scale, norm.bias - norm.running_mean * scale)
    return pool(norm(y))
