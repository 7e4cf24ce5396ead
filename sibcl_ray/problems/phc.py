"""`phc`: 2D photonic crystals, TM polarisation (docs/method.md): the DOS label, or the bands label."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sibcl_ray.errors import SibclError
from sibcl_ray.physics import photonic
from sibcl_ray.problems.base import ModelSpec, Problem, ProblemOption
from sibcl_ray.problems.phc_reference import SUFFIXES as REFERENCE_SUFFIXES, read_reference_dos_file

#: Bump when the solver's output for the same options changes, so stale datasets are not reused.
LABEL_VERSION = 1


@dataclass(frozen=True)
class _Label:
    invariances: tuple[str, ...]
    finetune_loss: str
    surrogate_loss: str
    reference_model: ModelSpec
    small_model: ModelSpec


_LABELS: dict[str, _Label] = {
    # All three are exact for the normalised DOS.
    "dos": _Label(
        invariances=("translate", "point_group", "scale"), finetune_loss="l1", surrogate_loss="log_l1",
        reference_model=ModelSpec(dim=2, kernel=7, conv_widths=(64, 256, 256), pools=(2, 4, 4), fc_widths=(1024, 1024),
                                  predictor_widths=(1024, 1024, 512), projector_widths=(1024, 1024, 1024, 256)),
        small_model=ModelSpec(dim=2, kernel=7, conv_widths=(16, 32, 64), pools=(2, 4, 4), fc_widths=(128, 128),
                              predictor_widths=(256, 256), projector_widths=(128, 64)),
    ),
    # Point-group ops permute k-points and scaling scales ω: only translations leave bands alone.
    "bands": _Label(
        invariances=("translate",), finetune_loss="mse", surrogate_loss="mse",
        reference_model=ModelSpec(dim=2, kernel=9, conv_widths=(64, 256, 256), pools=(2, 4, 4), fc_widths=(256, 1024),
                                  predictor_widths=(256, 512, 512), projector_widths=(1024, 256)),
        small_model=ModelSpec(dim=2, kernel=7, conv_widths=(16, 32, 64), pools=(2, 4, 4), fc_widths=(128, 128),
                              predictor_widths=(256, 512), projector_widths=(128, 64)),
    ),
}
_BANDS_SURROGATE_PLANE_WAVES = 7
#: ``dos_label`` options of the cheap DOS (``cheap_labels``).
CHEAP_DOS_OPTS = {"k_points": 13, "plane_waves": 5}


class PhotonicCrystalDOS(Problem):
    """Predict a TM property of a square-lattice photonic crystal from its 32×32 permittivity image.

    ``label='dos'`` (default): the normalised DOS on 400 frequencies; the network predicts
    DOS − 2πf̃, the deviation from the empty lattice, scored by the relative L1 error over
    f̃ ∈ [0.24, 0.96]. ``label='bands'``: the 6 lowest bands at the 625 k-points, scored by
    the mean relative error (the zero frequency at Γ excluded).
    """

    name: ClassVar[str] = "phc"
    input_range: ClassVar[tuple[float, float]] = (1.0, 20.0)
    #: A density of states and a band frequency are both ≥ 0.
    label_floor: ClassVar[float | None] = 0.0
    #: The knee of the error/cost frontier (BENCHMARKS.md, "A cheap phc label"): 22× cheaper than a
    #: target label, 0.038 from it with no label at all. Bands: the surrogate's 7² plane waves.
    cheap_label = ("the DOS of the same cell on 13×13 k-points with 5×5 plane waves "
                   "(--label bands: its bands with 7×7 plane waves)")

    options = (ProblemOption("label", str, "dos (default) or bands (6 lowest bands at the 625 k-points)"),)

    def __init__(self, label: str = "dos", resolution: int = 32) -> None:
        if label not in _LABELS:
            raise SibclError(f"--label {label!r} is unknown: allowed values are {', '.join(_LABELS)}")
        self.label, self.resolution = label, resolution
        spec = _LABELS[label]
        self.invariances, self.finetune_loss, self.surrogate_loss = spec.invariances, spec.finetune_loss, spec.surrogate_loss

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.resolution, self.resolution)

    @property
    def label_dim(self) -> int:
        return len(photonic.FTILDE) if self.label == "dos" else 6 * len(photonic.KGRID)

    def signature(self) -> dict[str, Any]:
        settings = {"target": photonic.TARGET_LABEL_OPTS, "surrogate": photonic.SURROGATE_LABEL_OPTS}
        if self.label == "bands":
            settings = {"target": {}, "surrogate": {"plane_waves": _BANDS_SURROGATE_PLANE_WAVES}}
        return {"problem": self.name, "label": self.label, "resolution": self.resolution,
                "label_settings": {k: dict(sorted(v.items())) for k, v in settings.items()},
                "label_version": LABEL_VERSION}

    def target_inputs(self, rng: np.random.Generator, count: int) -> np.ndarray:
        return np.asarray([photonic.sample_level_set_cell(rng, n=self.resolution) for _ in range(count)], np.float32)

    def target_labels(self, inputs: np.ndarray) -> np.ndarray:
        if self.label == "bands":
            return self._bands(inputs, {})
        return self._dos(inputs, photonic.TARGET_LABEL_OPTS)

    def surrogate_samples(self, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
        cells = np.asarray([photonic.sample_rod_cell(rng, n=self.resolution) for _ in range(count)], np.float32)
        if self.label == "bands":
            return cells, self._bands(cells, {"plane_waves": _BANDS_SURROGATE_PLANE_WAVES})
        return cells, self._dos(cells, photonic.SURROGATE_LABEL_OPTS)

    def cheap_labels(self, inputs: np.ndarray) -> np.ndarray:
        if self.label == "bands":
            return self._bands(inputs, {"plane_waves": _BANDS_SURROGATE_PLANE_WAVES})
        return self._dos(inputs, CHEAP_DOS_OPTS)

    # Solve on the float32 image as stored, so labels match exactly what the network sees.
    @staticmethod
    def _dos(cells: np.ndarray, options: dict[str, Any]) -> np.ndarray:
        return np.asarray([photonic.dos_label(c.astype(np.float64), **options)[1] for c in cells], np.float32)

    @staticmethod
    def _bands(cells: np.ndarray, options: dict[str, Any]) -> np.ndarray:
        return np.asarray([photonic.bands_label(c.astype(np.float64), **options).ravel() for c in cells], np.float32)

    @property
    def label_name(self) -> str:  # type: ignore[override]
        return self.label

    def label_axis(self) -> tuple[str, np.ndarray] | None:
        if self.label == "bands":
            return None
        return "normalised frequency f̃ = ωa/2πc", photonic.FTILDE.copy()

    def label_columns(self) -> list[str]:
        if self.label == "bands":
            return [f"band{b}_k{k}" for b in range(6) for k in range(len(photonic.KGRID))]  # bands_label(...).ravel()
        return super().label_columns()

    def read_foreign_file(self, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
        """The SIB-CL reference's HDF5 (``problems.phc_reference``): images and, for the DOS label, labels."""
        if path.suffix.lower() not in REFERENCE_SUFFIXES:
            return super().read_foreign_file(path)
        x, y = read_reference_dos_file(path)
        return (x, y) if self.label == "dos" else (x, None)  # its labels are DOS: bands come from --labels

    def label_offset(self) -> np.ndarray:
        if self.label == "bands":
            return np.zeros(self.label_dim, np.float32)
        return (2.0 * np.pi * photonic.FTILDE).astype(np.float32)

    def errors(self, predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
        if self.label == "bands":
            nonzero = np.abs(true) > 1e-9  # ω = 0 at Γ has no relative error
            ratio = np.where(nonzero, np.abs(predicted - true) / np.where(nonzero, np.abs(true), 1.0), 0.0)
            return ratio.sum(axis=1) / nonzero.sum(axis=1)
        mask = photonic.METRIC_MASK
        diff = np.abs(predicted[:, mask] - true[:, mask]).sum(axis=1)
        return diff / np.abs(true[:, mask]).sum(axis=1)

    def model_spec(self, size: str) -> ModelSpec:
        spec = _LABELS[self.label]
        return {"reference": spec.reference_model, "small": spec.small_model}[size]
