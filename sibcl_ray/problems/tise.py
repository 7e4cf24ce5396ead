"""`tise`: ground-state energy of −½∇² + V on a 32^d grid, d = 2 or 3 (docs/method.md)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sibcl_ray.errors import SibclError
from sibcl_ray.physics import schrodinger
from sibcl_ray.problems.base import ModelSpec, Problem, ProblemOption

#: Bump when the solver's output for the same inputs changes, so stale datasets are not reused.
LABEL_VERSION = 1
SURROGATES = ("lowres", "qho")

_MODELS: dict[tuple[int, str], ModelSpec] = {
    (2, "reference"): ModelSpec(dim=2, kernel=7, conv_widths=(64, 256, 256), pools=(2, 4, 4), fc_widths=(256, 256),
                                predictor_widths=(256, 256, 32), projector_widths=(256, 256), padding="zeros"),
    (3, "reference"): ModelSpec(dim=3, kernel=7, conv_widths=(64, 256, 256, 256), pools=(2, 2, 2, 2), fc_widths=(256,),
                                predictor_widths=(256, 256, 32), projector_widths=(256, 256), padding="zeros"),
    (2, "small"): ModelSpec(dim=2, kernel=5, conv_widths=(16, 32, 64), pools=(2, 4, 4), fc_widths=(64, 64),
                            predictor_widths=(64, 32), projector_widths=(64, 32), padding="zeros"),
    # CPU-sized 3D: kernel 3 keeps the first 32³ convolution at ~7 MMAC per sample.
    (3, "small"): ModelSpec(dim=3, kernel=3, conv_widths=(8, 16, 32, 32), pools=(2, 2, 2, 2), fc_widths=(64,),
                            predictor_widths=(64, 32), projector_widths=(64, 32), padding="zeros"),
}


class GroundStateEnergy(Problem):
    """Predict E0 of H = −½∇² + V (Dirichlet box [−5, 5]^d) from V on the 32^d grid.

    Surrogates: ``lowres`` (the same kind of potential solved on a 5^d grid, near-free) or
    ``qho`` (clipped harmonic oscillators labelled ½Σ√k analytically). The point group of
    the cube is the only invariance: translations and scaling change E0 here. The network
    predicts E0 minus the empty-box energy, the part the potential contributes.
    """

    name: ClassVar[str] = "tise"
    input_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    invariances = ("point_group",)
    #: E0 lies above the potential's minimum, and V ≥ 0.
    label_floor = 0.0
    finetune_loss = "mse"
    surrogate_loss = "mse"
    label_name = "E0"
    #: The lowres solver on the very input: 0.01 ms against 1.9 ms for the target label in 2D,
    #: 0.27 ms against 45 ms in 3D, and r = 0.995–0.996 with the target E0 (BENCHMARKS.md).
    cheap_label = "E0 of the same potential solved on a 5^d grid (the lowres solver)"

    options = (ProblemOption("dim", int, "spatial dimension, 2 or 3 (default 3)"),
               ProblemOption("surrogate", str, "surrogate data, lowres or qho (default lowres)"))
    #: A 3D input costs ~30× a 2D cell to convolve on a CPU, so the laptop presets pretrain on
    #: fewer inputs (the labels are cheap, the epochs are not).
    preset_overrides = {
        "smoke": {"n_unlabeled": 100, "n_surrogate": 50},
        "quick": {"n_unlabeled": 800, "n_surrogate": 400, "pretrain_epochs": 5, "finetune_epochs": 25, "grace_period": 7},
    }

    def __init__(self, dim: int = 3, surrogate: str = "lowres", resolution: int = 32) -> None:
        if dim not in (2, 3):
            raise SibclError(f"--dim {dim} is not supported: allowed values are 2, 3")
        if surrogate not in SURROGATES:
            raise SibclError(f"--surrogate {surrogate!r} is unknown: allowed values are {', '.join(SURROGATES)}")
        self.dim, self.surrogate, self.resolution = dim, surrogate, resolution

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.resolution,) * self.dim

    @property
    def label_dim(self) -> int:
        return 1

    def signature(self) -> dict[str, Any]:
        return {"problem": self.name, "dim": self.dim, "surrogate": self.surrogate, "resolution": self.resolution,
                "label_version": LABEL_VERSION}

    def target_inputs(self, rng: np.random.Generator, count: int) -> np.ndarray:
        return np.asarray([schrodinger.sample_potential(rng, self.dim, n=self.resolution) for _ in range(count)], np.float32)

    def target_labels(self, inputs: np.ndarray) -> np.ndarray:
        return schrodinger.ground_state_energies(inputs.astype(np.float64))[:, None].astype(np.float32)

    def surrogate_samples(self, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
        if self.surrogate == "lowres":
            inputs = self.target_inputs(rng, count)
            return inputs, schrodinger.lowres_energies(inputs.astype(np.float64))[:, None].astype(np.float32)
        pairs = [schrodinger.sample_oscillator(rng, self.dim, n=self.resolution) for _ in range(count)]
        return (np.asarray([v for v, _ in pairs], np.float32), np.asarray([[e] for _, e in pairs], np.float32))

    def cheap_labels(self, inputs: np.ndarray) -> np.ndarray:
        return schrodinger.lowres_energies(np.asarray(inputs, np.float64))[:, None].astype(np.float32)

    def label_offset(self) -> np.ndarray:
        return np.array([schrodinger.box_energy(self.dim, n=self.resolution)], np.float32)

    def errors(self, predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
        return np.abs(predicted[:, 0] - true[:, 0]) / np.abs(true[:, 0])

    def model_spec(self, size: str) -> ModelSpec:
        return _MODELS[(self.dim, size)]
