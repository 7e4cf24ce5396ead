"""One contrastive and one supervised optimizer step of SIB-CL, in pure torch.

The Ray Train loop (``train.loop``) runs its epochs out of these, and
``benchmarks/bench_training.py`` times them alone: what a step costs on a device is measured
without Ray, and the loop's overhead is measured against the same steps. How a step runs on
its device is one :class:`StepSettings`: float32 on a CPU (as always), bf16 autocast and
channels-last on a GPU, optionally ``torch.compile``. The losses are computed in float32 in
every case (NT-Xent's logits are cosines over a temperature of 0.1: bf16's 8-bit mantissa
would round them to ~0.04).
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from sibcl_ray.learning.losses import nt_xent, supervised_loss

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class StepSettings:
    """Numerics and layout of a step: the autocast dtype (None: float32 throughout), channels-last
    convolutions, cuDNN's autotuner, and the ``torch.compile`` backend (None: eager). 'inductor'
    is the one that makes kernels; 'aot_eager' traces forward and backward the same way without
    generating code, which lets a CPU test take the compiled path in seconds instead of a minute."""

    autocast_dtype: torch.dtype | None = None
    channels_last: bool = False
    #: Let cuDNN time its convolution algorithms once per shape and keep the fastest: the
    #: steps' shapes are fixed (``step_batches``), so the timing is paid once.
    cudnn_benchmark: bool = False
    compile: str | None = None

    @classmethod
    def for_device(cls, device: torch.device, compile: bool = False, dim: int | None = None) -> StepSettings:
        """What a step should use on ``device`` for a network with ``dim``-dimensional convolutions:
        bf16 autocast + channels-last on CUDA (tensor cores take bf16, and cuDNN's fast
        convolutions want NHWC/NDHWC); float32 elsewhere, channels-last for 3D networks (oneDNN's
        3D convolutions and max pooling over 8-32 channels run several times faster in NDHWC
        than in NCDHW, BENCHMARKS.md; BatchNorm's statistics are then computed by
        ``normpool``, torch's channels-last ones being inexact); compiled by inductor if ``compile``."""
        backend = "inductor" if compile else None
        if device.type == "cuda":
            return cls(autocast_dtype=torch.bfloat16, channels_last=True, cudnn_benchmark=True, compile=backend)
        return cls(channels_last=dim == 3, compile=backend)

    def prepare(self, model: nn.Module, dim: int) -> nn.Module:
        """``model`` (with ``dim``-dimensional convolutions) in these settings' memory format,
        compiled if asked; turns cuDNN's autotuner on for the process if asked. Call it before
        DDP wraps the model: DDP's gradient buckets follow the parameters' layout as it is when
        it wraps them."""
        if self.cudnn_benchmark:
            torch.backends.cudnn.benchmark = True
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last if dim == 2 else torch.channels_last_3d)
        return torch.compile(model, backend=self.compile) if self.compile else model

    def autocast(self, device: torch.device) -> AbstractContextManager[object]:
        """The forward pass's autocast context on ``device`` (a no-op in float32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.autocast_dtype)

    def describe(self) -> str:
        """One word per setting, for tables: e.g. ``bfloat16+channels_last+compile``."""
        dtype = "float32" if self.autocast_dtype is None else str(self.autocast_dtype).removeprefix("torch.")
        compiled = {None: [], "inductor": ["compile"]}.get(self.compile, [f"compile({self.compile})"])
        return "+".join([dtype] + ["channels_last"] * self.channels_last + compiled)


#: What every step ran before settings existed, and the CPU's for 2D networks.
FLOAT32 = StepSettings()


def batches(count: int, batch: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Shuffled index batches, dropping the ragged end (equal step counts across DDP ranks)."""
    batch = max(1, min(batch, count))
    order = torch.randperm(count, generator=gen)
    return [order[i : i + batch] for i in range(0, count - batch + 1, batch)]


def step_batches(count: int, batch: int, steps: int, gen: torch.Generator) -> list[torch.Tensor]:
    """``steps`` index batches of ``batch`` samples: shuffled passes over ``count`` strung together.

    A fixed number of steps whatever the batch size, so the searched batch size does not
    also set the pretraining budget; equal on every DDP rank by construction.
    """
    batch = max(1, min(batch, count))
    passes = -(-(steps * batch) // count)
    order = torch.cat([torch.randperm(count, generator=gen) for _ in range(passes)])
    return [order[i * batch : (i + 1) * batch] for i in range(steps)]


def contrastive_split(batch_size: int, mix_ratio: float) -> tuple[int, int]:
    """(target, surrogate) inputs of a contrastive batch of ``batch_size``: the surrogate share
    is ``mix_ratio``, and at least two target inputs keep NT-Xent defined."""
    n_surrogate = int(round(batch_size * mix_ratio))
    return max(2, batch_size - n_surrogate), n_surrogate


def contrastive_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, augment: Augment,
                     gen: torch.Generator, temperature: float, settings: StepSettings = FLOAT32) -> torch.Tensor:
    """One NT-Xent step on the batch ``x``: two random invariance views made on ``x``'s device,
    projected, contrasted (over the global batch under DDP, see ``losses.nt_xent``) and one
    optimizer update. Returns the loss, detached (reading it is the caller's sync point)."""
    views = torch.cat([augment(x, gen), augment(x, gen)])
    with settings.autocast(views.device):
        z = model(views, head="project")
    loss = nt_xent(z[: len(x)].float(), z[len(x) :].float(), temperature)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.detach()


def supervised_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, loss_name: str,
                    settings: StepSettings = FLOAT32, head: str = "predict",
                    cheap: torch.Tensor | None = None) -> torch.Tensor:
    """One supervised step of encoder + ``head`` on (``x``, ``y``) with the loss ``loss_name``
    (``losses.supervised_loss``); a multi-fidelity network's predictor also reads the inputs'
    cheap labels ``cheap`` (``models.SIBCLNet``). Returns the loss, detached."""
    with settings.autocast(x.device):
        predicted = model(x, head=head) if cheap is None else model(x, head=head, cheap=cheap)
    loss = supervised_loss(loss_name, predicted.float(), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.detach()
