"""Encoder + projector + predictor of the reference model (docs/method.md), for 2D and 3D inputs."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sibcl_ray.learning.fidelity import DEGREE, CheapFit
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

    A multi-fidelity network (``cheap_dim`` > 0, docs/method.md "Multi-fidelity") gets each input's
    cheap label c as well: its predictor reads the representation with the standardised c appended
    and predicts the residual of the closed-form fit (``learning.fidelity.CheapFit``, held in
    buffers, so the weights carry it), and ``head='predict'`` returns fit + residual. Its
    ``surrogate_head`` (the representation alone → label) is what surrogate pretraining trains: a
    surrogate input has no cheap label of its own, and learning the coarse solver's answer from the
    input alone is what that pretraining is for. A network without a cheap label has no such head;
    ``head='surrogate'`` is then its predictor.
    """

    def __init__(self, spec: ModelSpec, label_dim: int, cheap_dim: int = 0) -> None:
        super().__init__()
        self.encoder = Encoder(spec)
        rep = spec.fc_widths[-1]
        self.cheap_dim = cheap_dim
        self.projector = _mlp([rep, *spec.projector_widths], batch_norm=True)
        self.predictor = _mlp([rep + cheap_dim, *spec.predictor_widths, label_dim], batch_norm=False)
        if cheap_dim:
            self.surrogate_head = _mlp([rep, *spec.predictor_widths, label_dim], batch_norm=False)
            self.register_buffer("cheap_norm", torch.tensor([0.0, 1.0], dtype=torch.float64))  # center, scale
            self.register_buffer("cheap_coef", torch.zeros(DEGREE + 1, label_dim, dtype=torch.float64))
            # the residual starts at zero, so the untrained network is the fit itself and fine-tuning
            # departs from it only as far as the labels say (a random head started 1.5–2.5× worse, BENCHMARKS.md)
            nn.init.zeros_(self.predictor[-1].weight)
            nn.init.zeros_(self.predictor[-1].bias)

    def set_fit(self, fit: CheapFit) -> None:
        """Hold ``fit`` (made on the labelled training samples) in the buffers."""
        self.cheap_norm.copy_(torch.tensor([fit.center, fit.scale], dtype=torch.float64))
        self.cheap_coef.copy_(torch.from_numpy(np.asarray(fit.coef, np.float64)))

    def fit(self) -> CheapFit:
        """The fit in the buffers."""
        return CheapFit(float(self.cheap_norm[0]), float(self.cheap_norm[1]), self.cheap_coef.cpu().numpy().copy())

    def load_pretrained(self, weights: dict[str, torch.Tensor]) -> None:
        """Load a checkpoint's weights; a plain network's into a multi-fidelity one maps its
        predictor onto the surrogate head (what its surrogate pretraining trained) and leaves
        the residual predictor and the fit as they are (fresh: they are fine-tuning's)."""
        if not self.cheap_dim or "cheap_coef" in weights:
            self.load_state_dict(weights)
            return
        mapped = {("surrogate_head." + k.removeprefix("predictor.") if k.startswith("predictor.") else k): v
                  for k, v in weights.items()}
        mapped |= {k: v for k, v in self.state_dict().items() if k.startswith("predictor.") or k.startswith("cheap_")}
        self.load_state_dict(mapped)

    def residual(self, h: torch.Tensor, cheap: torch.Tensor) -> torch.Tensor:
        """The residual predicted from representations ``h`` and raw cheap labels ``cheap`` (n, cheap_dim),
        in label units. (In units of the fit's residual spread instead, every -mf network stayed at the
        fit on tise 2D quick: its steps shrink 50–100× at the same learning rate, BENCHMARKS.md.)"""
        z = (cheap.double() - self.cheap_norm[0]) / self.cheap_norm[1]
        return self.predictor(torch.cat([h, z.to(h.dtype)], dim=1))

    def fitted(self, cheap: torch.Tensor) -> torch.Tensor:
        """The closed-form fit at raw cheap labels ``cheap``: (n, label_dim), float32."""
        z = (cheap.double() - self.cheap_norm[0]) / self.cheap_norm[1]
        return sum(self.cheap_coef[k] * z**k for k in range(DEGREE + 1)).float()

    def forward(self, x: torch.Tensor, head: str = "predict", cheap: torch.Tensor | None = None) -> torch.Tensor:
        h = self.encoder(x)
        if head == "project":
            return self.projector(h)
        if not self.cheap_dim:
            return self.predictor(h)
        if head == "surrogate":
            return self.surrogate_head(h)
        if cheap is None:
            raise ValueError("a multi-fidelity network predicts from its input and the input's cheap label")
        out = self.residual(h, cheap)
        return out if head == "residual" else self.fitted(cheap) + out.float()
