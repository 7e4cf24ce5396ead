"""Arithmetic per sample of a model, and a device's peak, so throughput can be read as MFU.

MFU (model FLOPs utilisation) = FLOPs per sample × samples per second ÷ the device's peak
FLOP/s: the share of the chip's arithmetic that the training step turns into model
arithmetic. FLOPs are counted as torch's ``FlopCounterMode`` counts them: a multiply-add is 2
FLOPs, only matrix products and convolutions count (BatchNorm, ReLU, pooling, the optimizer
and bias additions are ignored, as in MFU figures elsewhere).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from sibcl_ray.learning.models import SIBCLNet
from sibcl_ray.problems.base import ModelSpec

#: Dense bf16 tensor-core peaks from the vendors' data sheets, FLOP/s (SXM parts; an H100 PCIe
#: is 756e12). Matched against ``torch.cuda.get_device_name``. Issue 12 measured ≈ 790e12 on
#: an H200 with a large matmul, about 80 % of its sheet value: ``matmul_flops`` is the
#: attainable peak MFU is quoted against, the sheet value is kept beside it.
SPEC_PEAK_FLOPS: dict[str, float] = {"H200": 989e12, "H100": 989e12, "A100": 312e12}


@dataclass(frozen=True)
class ModelFlops:
    """FLOPs per sample (one input, one view) of ``SIBCLNet`` through one head."""

    #: One forward pass.
    forward: int
    #: Forward + backward: ≈ 3× forward (the backward pass computes the gradients with respect
    #: to both the weights and the activations; the first layer's input needs none, so a little less).
    train: int

    @property
    def contrastive_input(self) -> int:
        """Per input of a contrastive step, which trains on two views of every input."""
        return 2 * self.train


def conv_flops(spec: ModelSpec, input_shape: tuple[int, ...]) -> list[int]:
    """Forward FLOPs per sample of each convolution of the encoder, in closed form.

    A convolution with C_in input and C_out output channels and a kernel of k^d taps costs
    2 · C_in · C_out · k^d FLOPs per output point (one multiply-add per tap and channel pair,
    bias ignored): the count of Molchanov et al., "Pruning convolutional neural networks for
    resource efficient inference", ICLR 2017 (there 2·H·W·(C_in·k² + 1)·C_out with the bias),
    and of ``torch.utils.flop_counter.conv_flop_count``. The encoder's convolutions keep the
    spatial size (padding k // 2) and each block's max-pool divides it by its pool size.
    """
    out, size, channels = [], list(input_shape), 1
    for width, pool in zip(spec.conv_widths, spec.pools):
        out.append(2 * channels * width * spec.kernel ** spec.dim * math.prod(size))
        size, channels = [s // pool for s in size], width
    return out


def model_flops(spec: ModelSpec, input_shape: tuple[int, ...], label_dim: int = 1, head: str = "project") -> ModelFlops:
    """FLOPs per sample of ``SIBCLNet(spec, label_dim)`` on inputs of ``input_shape`` through
    ``head`` ('project' for pretraining, 'predict' for supervised steps), counted by torch's
    ``FlopCounterMode`` on the meta device: shapes only, no arithmetic, so the 73 GFLOP 3D
    reference model is counted in milliseconds."""
    batch = 2  # BatchNorm in training mode wants more than one sample
    with torch.device("meta"):
        model = SIBCLNet(spec, label_dim)
        x = torch.empty(batch, *input_shape)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x, head=head)
    forward = counter.get_total_flops()
    counter = FlopCounterMode(display=False)
    with counter:
        model(x, head=head).sum().backward()
    return ModelFlops(forward=forward // batch, train=counter.get_total_flops() // batch)


@dataclass(frozen=True)
class PeakFlops:
    """A device's peak FLOP/s in one dtype: measured on a large matmul, and the data sheet's value."""

    measured: float
    spec: float | None
    dtype: str


def spec_peak_flops(device: torch.device) -> float | None:
    """The data-sheet dense bf16 peak of a known GPU (``SPEC_PEAK_FLOPS``), None for anything else."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in SPEC_PEAK_FLOPS.items() if key in name), None)


def matmul_flops(device: torch.device, dtype: torch.dtype, size: int | None = None, repeats: int = 10) -> float:
    """FLOP/s of the fastest of ``repeats`` square matmuls of ``size`` in ``dtype`` on ``device``
    (default 8192 on a GPU; 1024 on a CPU, already as fast per FLOP as 2048 there): what the
    device attains on the work it does best, so an MFU against it says how far a step is from that."""
    size = size or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = math.inf
    for i in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        _sync(device)
        if i:  # the first call pays for the library's setup
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def device_peak_flops(device: torch.device, dtype: torch.dtype) -> PeakFlops:
    """The peak MFU is quoted against: a measured matmul in ``dtype`` (float32 on a CPU, bf16
    on a GPU), with the data sheet's bf16 value where the GPU is known."""
    return PeakFlops(measured=matmul_flops(device, dtype), spec=spec_peak_flops(device),
                     dtype=str(dtype).removeprefix("torch."))


def mfu(flops_per_sample: float, samples_per_s: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: the fraction of ``peak_flops`` that the model's arithmetic fills."""
    return flops_per_sample * samples_per_s / peak_flops


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
