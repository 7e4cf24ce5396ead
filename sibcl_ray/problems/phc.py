"""`phc`: normalised density of states of 2D photonic crystals, TM polarisation (SIBCL.md)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sibcl_ray.physics import photonic
from sibcl_ray.problems.base import ModelSpec, Problem

#: Bump when the solver's output for the same options changes, so stale datasets are not reused.
LABEL_VERSION = 1

_REFERENCE_MODEL = ModelSpec(
    dim=2,
    kernel=7,
    conv_widths=(64, 256, 256),
    pools=(2, 4, 4),
    fc_widths=(1024, 1024),
    predictor_widths=(1024, 1024, 512),
    projector_widths=(1024, 1024, 1024, 256),
)
_SMALL_MODEL = ModelSpec(
    dim=2,
    kernel=7,
    conv_widths=(16, 32, 64),
    pools=(2, 4, 4),
    fc_widths=(128, 128),
    predictor_widths=(256, 256),
    projector_widths=(128, 64),
)


class PhotonicCrystalDOS(Problem):
    """Predict the normalised TM DOS on 400 frequencies from a 32×32 permittivity image.

    Inputs are permittivities in [1, 20]; the network predicts DOS − 2πf̃, the deviation
    from the empty lattice, and is scored by the relative L1 error over f̃ ∈ [0.24, 0.96].
    All three invariances (periodic translations, C4v, ε-scaling) are exact for this label.
    """

    name: ClassVar[str] = "phc"
    input_range: ClassVar[tuple[float, float]] = (1.0, 20.0)
    invariances: ClassVar[tuple[str, ...]] = ("translate", "point_group", "scale")
    finetune_loss: ClassVar[str] = "l1"
    surrogate_loss: ClassVar[str] = "log_l1"

    def __init__(self, resolution: int = 32) -> None:
        self.resolution = resolution

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.resolution, self.resolution)

    @property
    def label_dim(self) -> int:
        return len(photonic.FTILDE)

    def signature(self) -> dict[str, Any]:
        return {
            "problem": self.name,
            "resolution": self.resolution,
            "target_label": dict(sorted(photonic.TARGET_LABEL_OPTS.items())),
            "surrogate_label": dict(sorted(photonic.SURROGATE_LABEL_OPTS.items())),
            "label_version": LABEL_VERSION,
        }

    def target_inputs(self, rng: np.random.Generator, count: int) -> np.ndarray:
        cells = [photonic.sample_level_set_cell(rng, n=self.resolution) for _ in range(count)]
        return np.asarray(cells, dtype=np.float32)

    def target_labels(self, inputs: np.ndarray) -> np.ndarray:
        return self._labels(inputs, photonic.TARGET_LABEL_OPTS)

    def surrogate_samples(self, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
        cells = np.asarray([photonic.sample_rod_cell(rng, n=self.resolution) for _ in range(count)], np.float32)
        return cells, self._labels(cells, photonic.SURROGATE_LABEL_OPTS)

    @staticmethod
    def _labels(cells: np.ndarray, options: dict[str, Any]) -> np.ndarray:
        # Solve on the float32 image as stored, so labels match exactly what the network sees.
        return np.asarray([photonic.dos_label(c.astype(np.float64), **options)[1] for c in cells], np.float32)

    def label_offset(self) -> np.ndarray:
        return (2.0 * np.pi * photonic.FTILDE).astype(np.float32)

    def errors(self, predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
        mask = photonic.METRIC_MASK
        diff = np.abs(predicted[:, mask] - true[:, mask]).sum(axis=1)
        return diff / np.abs(true[:, mask]).sum(axis=1)

    def model_spec(self, size: str) -> ModelSpec:
        return {"reference": _REFERENCE_MODEL, "small": _SMALL_MODEL}[size]
