"""`composite`: effective conductivity of a random periodic two-phase composite, as a SIB-CL problem.

NumPy only, like every sibcl_ray problem: it names its invariances and losses, the learning
code implements them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sibcl_ray.errors import SibclError
from sibcl_ray.problems.base import ModelSpec, Problem, ProblemOption
from sibcl_composite import homogenise, microstructure, surrogates

#: Bump when the labels for the same options change, so stale datasets are not reused.
LABEL_VERSION = 1
LABELS = ("normalised", "sigma_eff")

_MODELS: dict[str, ModelSpec] = {
    # The 2D encoder of the reference code with a scalar head (as for 2D tise), padded
    # circularly because the cell is periodic.
    "reference": ModelSpec(dim=2, kernel=7, conv_widths=(64, 256, 256), pools=(2, 4, 4), fc_widths=(256, 256),
                           predictor_widths=(256, 256, 32), projector_widths=(256, 256), padding="circular"),
    "small": ModelSpec(dim=2, kernel=5, conv_widths=(16, 32, 64), pools=(2, 4, 4), fc_widths=(64, 64),
                       predictor_widths=(64, 32), projector_widths=(64, 32), padding="circular"),
}


class EffectiveConductivity(Problem):
    """Predict trace(σ_eff)/2 of a 32×32 periodic two-phase conductivity map.

    Options (keywords, all with defaults):

    - ``label``: ``'normalised'`` (default) predicts σ_eff/⟨σ⟩, the effective conductivity in
      units of the map's mean: σ → sσ scales σ_eff and ⟨σ⟩ alike, so ε-style ``scale`` is an
      exact invariance on top of translations and C4v, and σ_eff = label·⟨σ⟩ is recovered
      exactly from the input. ``'sigma_eff'`` predicts σ_eff itself; it scales with σ, so
      ``scale`` is not claimed. The metric |ŷ − y|/y is the same number for both.
    - ``surrogate``: ``'coarse'`` (default; the solve on a ``coarsen``-times coarser,
      geometric-mean-blocked map) or ``'bounds'`` (Hashin–Shtrikman midpoint, no solve).
      Surrogate inputs are fresh target-distribution maps; only their labels are cheap.
    - ``coarsen``: coarse-graining factor of the ``coarse`` surrogate (default 4: an 8×8 solve).
    - ``resolution``: pixels per side (default 32; a multiple of ``coarsen``).
    """

    name: ClassVar[str] = "composite"
    input_range: ClassVar[tuple[float, float]] = microstructure.SIGMA_RANGE
    finetune_loss = "l1"
    surrogate_loss = "l1"
    #: What ``python -m sibcl_ray.tune --problem composite`` offers on its command line
    #: (``resolution`` stays 32 there: the models' pools expect a multiple of 32).
    options = (ProblemOption("label", str, "normalised (default: sigma_eff / mean sigma, scale-invariant) or sigma_eff"),
               ProblemOption("surrogate", str, "coarse (default: the solve on a coarse-grained map) or bounds "
                                               "(Hashin-Shtrikman midpoint)"),
               ProblemOption("coarsen", int, "coarse-graining factor of the coarse surrogate (default 4: an 8x8 solve)"))

    def __init__(self, label: str = "normalised", surrogate: str = "coarse", coarsen: int = 4,
                 resolution: int = 32) -> None:
        if label not in LABELS:
            raise SibclError(f"--label {label!r} is unknown: allowed values are {', '.join(LABELS)}")
        if surrogate not in surrogates.SURROGATES:
            raise SibclError(f"--surrogate {surrogate!r} is unknown: allowed values are "
                             f"{', '.join(surrogates.SURROGATES)}")
        if int(resolution) < 8:
            raise SibclError(f"--resolution {resolution} is too small: allowed values are 8 or more")
        if int(coarsen) < 2 or int(resolution) % int(coarsen):
            raise SibclError(f"--coarsen {coarsen} does not fit resolution {resolution}: allowed values are "
                             f"divisors of the resolution of 2 or more")
        self.label, self.surrogate = label, surrogate
        self.coarsen, self.resolution = int(coarsen), int(resolution)
        # Translations and the 8 ops of C4v map the five-point network onto itself: exact.
        # Scaling multiplies σ_eff by s, so it is exact only for the normalised label.
        self.invariances = ("translate", "point_group", "scale") if label == "normalised" else ("translate", "point_group")

    @property
    def label_name(self) -> str:  # type: ignore[override]
        return "sigma_eff_over_mean" if self.label == "normalised" else "sigma_eff"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.resolution, self.resolution)

    @property
    def label_dim(self) -> int:
        return 1

    def signature(self) -> dict[str, Any]:
        data = {"sigma_range": list(microstructure.SIGMA_RANGE), "fill_range": list(microstructure.FILL_RANGE),
                "max_harmonic": microstructure.MAX_HARMONIC, "rtol": homogenise.RTOL}
        return {"problem": self.name, "label": self.label, "surrogate": self.surrogate,
                "coarsen": self.coarsen if self.surrogate == "coarse" else None, "resolution": self.resolution,
                "settings": data, "label_version": LABEL_VERSION}

    def target_inputs(self, rng: np.random.Generator, count: int) -> np.ndarray:
        return microstructure.sample_maps(rng, count, n=self.resolution)

    # Labels are computed on the float32 maps as stored, so they match exactly what the network sees.
    def target_labels(self, inputs: np.ndarray) -> np.ndarray:
        maps = np.asarray(inputs, dtype=np.float64)
        return self._finish(homogenise.effective_conductivity(maps), maps)

    def surrogate_samples(self, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
        inputs = self.target_inputs(rng, count)
        maps = inputs.astype(np.float64)
        if self.surrogate == "coarse":
            values = surrogates.coarse_labels(maps, self.coarsen)
        else:
            values = surrogates.bounds_labels(maps)
        return inputs, self._finish(values, maps)

    def _finish(self, values: np.ndarray, maps: np.ndarray) -> np.ndarray:
        """(count, 1) float32 labels: σ_eff, or σ_eff/⟨σ⟩ for the normalised label."""
        if self.label == "normalised":
            values = values / maps.mean(axis=(-2, -1))
        return np.asarray(values, dtype=np.float32).reshape(-1, 1)

    def label_offset(self) -> np.ndarray:
        # Normalised: 1 is the label of every uniform map and the Wiener upper bound, so the
        # network learns the deficit the microstructure causes. σ_eff has no such constant.
        return np.array([1.0 if self.label == "normalised" else 0.0], np.float32)

    def errors(self, predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
        return np.abs(predicted[:, 0] - true[:, 0]) / np.abs(true[:, 0])

    def model_spec(self, size: str) -> ModelSpec:
        if size not in _MODELS:
            raise SibclError(f"model size {size!r} is unknown: allowed values are {', '.join(_MODELS)}")
        return _MODELS[size]
