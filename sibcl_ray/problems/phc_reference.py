"""The reference code's photonic-crystal HDF5 layout, read into this package's inputs and DOS labels.

The SIB-CL reference (clott3/SIB-CL, ``datasets_PhC_SE.py`` and
``generate_datasets/PhC/compute_DOS/addDOSintoh5.py``) keeps one group entry per sample,
keyed by the sample number as text (from 1):

- ``unitcell/mpbepsimage/<i>``: the 32×32 permittivity image (values in [1, 20]);
- ``unitcell/epsavg/<i>``: its mean permittivity ε̄ (recomputed from the image when absent);
- ``mpbcal/DOS/<i>``: the Gaussian-smoothed DOS on 500 points f̃ = linspace(0, 1.2, 500),
  f̃ = f·√ε̄, *not* normalised; the reference's loader divides it by √ε̄ and keeps the first
  400 points, so that the empty lattice is 2πf̃.

That normalised DOS is this package's label; it is resampled (linear interpolation) from the
reference's grid (step 1.2/499) onto ours (``photonic.FTILDE``, step 0.0024, 400 points,
both inside the reference's kept range). A file without ``mpbcal/DOS`` gives inputs only
(the reference's unlabeled pool). Needs ``h5py`` (``pip install h5py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sibcl_ray.errors import SibclError
from sibcl_ray.physics import photonic

#: The reference's DOS grid (``addDOSintoh5.py``: wmax 1.2, nw 500).
REFERENCE_FTILDE = np.linspace(0.0, 1.2, 500)
SUFFIXES = (".h5", ".hdf5")


def read_reference_dos_file(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(images (N, 32, 32), normalised DOS on FTILDE (N, 400) or None), samples in key order."""
    try:
        import h5py
    except ImportError:
        raise SibclError(f"reading {path} needs h5py, which is not installed: pip install h5py") from None
    try:
        with h5py.File(path, "r") as f:
            if "unitcell/mpbepsimage" not in f:
                raise SibclError(f"{path} has no group unitcell/mpbepsimage: it is not in the SIB-CL reference's "
                                 "photonic-crystal layout (unitcell/mpbepsimage/<i>, mpbcal/DOS/<i>)")
            images = f["unitcell/mpbepsimage"]
            keys = sorted(images.keys(), key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
            x = np.stack([np.asarray(images[k][()], dtype=np.float64) for k in keys])
            if "mpbcal/DOS" not in f:
                return x, None
            dos, averages = f["mpbcal/DOS"], f.get("unitcell/epsavg")
            missing = [k for k in keys if k not in dos]
            if missing:
                raise SibclError(f"{path}: sample {missing[0]} has an image but no mpbcal/DOS/{missing[0]} "
                                 f"({len(missing)} such samples): every sample needs its DOS")
            y = np.empty((len(keys), len(photonic.FTILDE)))
            for row, k in enumerate(keys):
                raw = np.asarray(dos[k][()], dtype=np.float64)
                if raw.shape != REFERENCE_FTILDE.shape:
                    raise SibclError(f"{path}: mpbcal/DOS/{k} has {raw.size} points, the reference's grid has "
                                     f"{REFERENCE_FTILDE.size} (f̃ = linspace(0, 1.2, 500))")
                eps_mean = float(averages[k][()]) if averages is not None and k in averages else float(x[row].mean())
                y[row] = np.interp(photonic.FTILDE, REFERENCE_FTILDE, raw / np.sqrt(eps_mean))
            return x, y
    except OSError as err:
        raise SibclError(f"{path} cannot be read as HDF5: {str(err).splitlines()[0]}") from None
