"""Photonic crystals (`phc`): public API, re-exported from its three modules.

- `unit_cells`: the random target (level-set) and surrogate (centred rod) cells;
- `planewave`: TM bands and Hellmann–Feynman group velocities by plane-wave expansion
  (direct, or through a reduced basis for the many k-points of a label);
- `dos`: KGRID/FTILDE, the Gilat–Raubenheimer DOS label and the bands label.

NumPy/SciPy only.
"""

from __future__ import annotations

from sibcl_ray.physics.dos import (
    DEFAULT_SMOOTHING,
    FTILDE,
    KGRID,
    METRIC_MASK,
    SURROGATE_LABEL_OPTS,
    TARGET_LABEL_OPTS,
    bands_label,
    dos_label,
    dos_labels,
    ggr_dos,
    reduced_kgrid,
)
from sibcl_ray.physics.planewave import (
    DEFAULT_PLANE_WAVES,
    SAMPLE_K,
    ReducedModel,
    epsilon_fourier,
    epsilon_matrix,
    inverse_epsilon_matrix,
    plane_wave_indices,
    reduced_model,
    reduced_tm_bands,
    tm_bands,
    tm_modes_below,
)
from sibcl_ray.physics.unit_cells import (
    level_set_cell,
    pixel_centres,
    rod_cell,
    sample_level_set_cell,
    sample_rod_cell,
)

__all__ = [
    "DEFAULT_PLANE_WAVES",
    "DEFAULT_SMOOTHING",
    "SAMPLE_K",
    "ReducedModel",
    "epsilon_matrix",
    "reduced_model",
    "reduced_tm_bands",
    "FTILDE",
    "KGRID",
    "METRIC_MASK",
    "SURROGATE_LABEL_OPTS",
    "TARGET_LABEL_OPTS",
    "bands_label",
    "dos_label",
    "dos_labels",
    "epsilon_fourier",
    "ggr_dos",
    "inverse_epsilon_matrix",
    "level_set_cell",
    "pixel_centres",
    "plane_wave_indices",
    "reduced_kgrid",
    "rod_cell",
    "sample_level_set_cell",
    "sample_rod_cell",
    "tm_bands",
    "tm_modes_below",
]
