"""Encoder + projector + predictor of the reference model (docs/method.md), for 2D and 3D inputs."""

from __future__ import annotations

import torch
from torch import nn

from sibcl_ray.learning.normpool import norm_then_pool
from sibcl_ray.problems.base import ModelSpec


def _mlp(widths: list[int], batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(w_in, w_out))
        if i < len(widths) - 2:
            if batch_norm:
                layers.append(nn.BatchNorm1d(w_out))
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Conv → BatchNorm → MaxPool → ReLU blocks, global average pool, Linear → ReLU → Linear.

    The reference's blocks are Conv → BatchNorm → ReLU → MaxPool. ReLU is monotone, so it
    commutes with a max: pooling first gives the same outputs and the same gradients (bit for
    bit) while the ReLU and its backward touch a tensor 2^dim times smaller; in 3D the first
    block's full-resolution activations dominate a step on a CPU. The parameter-free modules
    only swap places, so state dicts keep their keys.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        conv, norm, pool = {2: (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d), 3: (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d)}[spec.dim]
        blocks: list[nn.Module] = []
        channels = 1
        for width, pool_size in zip(spec.conv_widths, spec.pools):
            blocks += [conv(channels, width, spec.kernel, padding=spec.kernel // 2, padding_mode=spec.padding),
                       norm(width), pool(pool_size), nn.ReLU()]
            channels = width
        self.features = nn.Sequential(*blocks)
        self.head = _mlp([channels, *spec.fc_widths], batch_norm=False)
        self.dim = spec.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(1)
        for i in range(0, len(self.features), 4):  # (conv, norm, pool, ReLU) blocks
            conv, norm, pool, relu = self.features[i : i + 4]
            h = relu(norm_then_pool(conv(h), norm, pool))  # fused in 3D training on a CPU: normpool.py
        return self.head(h.flatten(2).mean(dim=2))


class SIBCLNet(nn.Module):
    """One encoder shared by a projector (contrastive) and a predictor (labels).

    ``forward(x, head)`` dispatches on the head so DistributedDataParallel sees every use.
    """

    def __init__(self, spec: ModelSpec, label_dim: int) -> None:
        super().__init__()
        self.encoder = Encoder(spec)
        rep = spec.fc_widths[-1]
        self.projector = _mlp([rep, *spec.projector_widths], batch_norm=True)
        self.predictor = _mlp([rep, *spec.predictor_widths, label_dim], batch_norm=False)

    def forward(self, x: torch.Tensor, head: str = "predict") -> torch.Tensor:
        h = self.encoder(x)
        return self.projector(h) if head == "project" else self.predictor(h)
