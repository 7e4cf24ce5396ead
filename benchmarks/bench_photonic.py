"""Accuracy and cost of the `phc` labels: plane waves vs a converged basis and vs MPB.

    python benchmarks/bench_photonic.py [--cells 6] [--seed 0] [--json PATH] [--no-mpb]

On random level-set target cells (32×32), for plane_waves 7…15 per axis: mean relative
error of the 10 lowest TM bands on the 313 time-reversal-irreducible KGRID points
(excluding f = 0 at Γ) vs a 21×21 basis and vs MPB at resolution 32; relative L1 error
of the DOS label on METRIC_MASK vs the 21×21 label (the `phc` metric); and seconds per
target label (bands + velocities + DOS) on one core, through the solver `dos_label` uses
for that basis (direct per-k solves below 13×13, the reduced basis from 13×13 on).  Band
errors are of `tm_bands` (direct, full basis).  Also the exact-pixel-Fourier
alternative to the DFT, and the cost and accuracy of the surrogate (rod) label.

MPB (Debian `mpb`, `python3-meep`) runs in a subprocess of /usr/bin/python3 on the same
cells and k-points (10 TM bands, resolution 32, material function = nearest pixel); its
column is skipped with a message when it cannot be imported there.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one core, for this process and the MPB subprocess; before numpy loads

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from results_file import write_results  # noqa: E402
from sibcl_ray.physics import photonic as P  # noqa: E402
from sibcl_ray.physics.planewave import REDUCED_MIN_PLANE_WAVES  # noqa: E402

PLANE_WAVES = (7, 9, 11, 13, 15)
REFERENCE_PLANE_WAVES = 21
N_BANDS = 10
MPB_PYTHON = "/usr/bin/python3"
MPB_TOLERANCE = 1e-5
"""Label-quality MPB (docs/method.md: 9e-6 from tolerance 1e-7), on the 313 irreducible k-points."""
MPB_REFERENCE_SETUP = {"tolerance": 1e-7, "cells": 2}
"""MPB as the SIB-CL reference ran it: default tolerance, all 625 k-points (timed on 2 cells)."""

_MPB_SCRIPT = r"""
import sys, time
import numpy as np
import meep as mp
from meep import mpb

cells, kpoints = np.load(sys.argv[1]), np.load(sys.argv[2])
resolution, n_bands, tolerance = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
mp.verbosity(0)
freqs, seconds = [], []
for eps in cells:
    n = eps.shape[0]

    def nearest_pixel(p, eps=eps, n=n):
        # pixel (i, j) is centred at (-0.5 + i/n, -0.5 + j/n)
        i = int(np.floor((p.x + 0.5) * n + 0.5)) % n
        j = int(np.floor((p.y + 0.5) * n + 0.5)) % n
        return mp.Medium(epsilon=float(eps[i, j]))

    start = time.perf_counter()
    solver = mpb.ModeSolver(
        geometry_lattice=mp.Lattice(size=mp.Vector3(1, 1)), geometry=[],
        default_material=nearest_pixel, k_points=[mp.Vector3(*k) for k in kpoints],
        resolution=resolution, num_bands=n_bands, tolerance=tolerance)
    solver.run_tm()
    seconds.append(time.perf_counter() - start)
    freqs.append(np.array(solver.all_freqs))
np.savez(sys.argv[3], freqs=np.array(freqs), seconds=np.array(seconds))
"""


def relative_band_error(bands: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean |f - f_ref| / f_ref over all cells, k-points and bands (or ``mask``), excluding f_ref = 0 (Γ)."""
    keep = (reference > 1e-8) & (True if mask is None else mask)
    return float(np.mean(np.abs(bands[keep] - reference[keep]) / reference[keep]))


def relative_dos_error(labels: np.ndarray, reference: np.ndarray) -> float:
    """The `phc` metric: mean over cells of Σ|y - y_ref| / Σ|y_ref| on METRIC_MASK."""
    m = P.METRIC_MASK
    return float(np.mean(np.abs(labels[:, m] - reference[:, m]).sum(1) / np.abs(reference[:, m]).sum(1)))


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def pixel_form_factor_bands(eps: np.ndarray, kpoints: np.ndarray, plane_waves: int) -> np.ndarray:
    """Bands with the exact Fourier coefficients of the pixel image (the alternative to the DFT)."""
    g = P.plane_wave_indices(plane_waves)
    m = np.linalg.inv(P.epsilon_fourier(eps, g[:, None] - g[None], pixel_form_factor=True))
    d = np.linalg.norm(kpoints[:, None, :] + g[None], axis=2)
    lam = np.linalg.eigvalsh(d[:, :, None] * m[None] * d[:, None, :])[:, :N_BANDS]
    return np.sqrt(np.maximum(lam, 0.0))


def mpb_available() -> bool:
    ok = Path(MPB_PYTHON).exists() and subprocess.run([MPB_PYTHON, "-c", "import meep.mpb"], capture_output=True).returncode == 0
    if not ok:
        print(f"MPB column skipped: `import meep.mpb` fails under {MPB_PYTHON} "
              "(apt-get install -y mpb mpb-scm python3-meep python3-h5py python3-matplotlib)")
    return ok


def run_mpb(cells: np.ndarray, kpoints: np.ndarray, tolerance: float) -> dict:
    """MPB bands (cells, k, 10) and seconds per cell at resolution 32."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, name) for name in ("cells.npy", "k.npy", "out.npz", "mpb.py")]
        np.save(paths[0], cells)
        np.save(paths[1], kpoints)
        Path(paths[3]).write_text(_MPB_SCRIPT)
        args = [MPB_PYTHON, paths[3], paths[0], paths[1], paths[2], "32", str(N_BANDS), str(tolerance)]
        subprocess.run(args, check=True, capture_output=True)
        out = np.load(paths[2])
        return {"bands": out["freqs"], "seconds": out["seconds"], "tolerance": tolerance, "k_points": len(kpoints)}


def target_rows(cells: np.ndarray, kpoints: np.ndarray, mpb: dict | None) -> tuple[list[dict], dict]:
    reference_bands = np.array([P.tm_bands(c, kpoints, N_BANDS, plane_waves=REFERENCE_PLANE_WAVES) for c in cells])
    reference_dos = np.array([P.dos_label(c, plane_waves=REFERENCE_PLANE_WAVES)[1] for c in cells])
    # the modes the DOS label sees: f̃ = f·√ε̄ below the top of the grid
    in_label = reference_bands * np.sqrt(cells.mean(axis=(1, 2)))[:, None, None] <= 0.96
    rows = []
    for pw in PLANE_WAVES:
        bands = np.array([P.tm_bands(c, kpoints, N_BANDS, plane_waves=pw) for c in cells])
        labels, seconds = zip(*(timed(P.dos_label, c, plane_waves=pw) for c in cells))
        labels = np.array([label[1] for label in labels])
        rows.append({
            "plane_waves": pw,
            "label_solver": "reduced basis" if pw >= REDUCED_MIN_PLANE_WAVES else "direct",
            "band_error_vs_reference": relative_band_error(bands, reference_bands),
            "band_error_vs_mpb": relative_band_error(bands, mpb["bands"]) if mpb else None,
            "label_band_error_vs_mpb": relative_band_error(bands, mpb["bands"], in_label) if mpb else None,
            "dos_error_vs_reference": relative_dos_error(labels, reference_dos),
            "seconds_per_label": float(np.mean(seconds)),
        })
    pw = P.TARGET_LABEL_OPTS["plane_waves"]
    pixel = np.array([pixel_form_factor_bands(c, kpoints, pw) for c in cells])
    extra = {
        "reference_vs_mpb": relative_band_error(reference_bands, mpb["bands"]) if mpb else None,
        "pixel_form_factor_plane_waves": pw,
        "pixel_form_factor_vs_mpb": relative_band_error(pixel, mpb["bands"]) if mpb else None,
        "pixel_form_factor_vs_reference": relative_band_error(pixel, reference_bands),
    }
    return rows, extra


def surrogate_row(rng: np.random.Generator, n_cells: int) -> dict:
    rods = np.array([P.sample_rod_cell(rng) for _ in range(n_cells)])
    results = [timed(P.dos_label, r, **P.SURROGATE_LABEL_OPTS) for r in rods]
    labels = np.array([label[1] for label, _ in results])
    converged = np.array([P.dos_label(r, plane_waves=REFERENCE_PLANE_WAVES, symmetry="c4v")[1] for r in rods])
    return {
        "opts": P.SURROGATE_LABEL_OPTS,
        "seconds_per_label": float(np.mean([s for _, s in results])),
        "dos_error_vs_reference": relative_dos_error(labels, converged),
    }


def fmt(x: float | None, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def report(rows: list[dict], extra: dict, surrogate: dict, mpbs: list[dict], n_cells: int) -> str:
    ref = f"{REFERENCE_PLANE_WAVES}×{REFERENCE_PLANE_WAVES}"
    lines = [
        f"TM, 10 bands, 313 k-points, {n_cells} random level-set cells 32×32, 1 core",
        "",
        f"| plane waves | label solver | band err vs {ref} | band err vs MPB res 32 | same, f̃ ≤ 0.96 only | DOS label err vs {ref} | s / target label |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['plane_waves']}×{r['plane_waves']} | {r['label_solver']} | {r['band_error_vs_reference']:.1e} | {fmt(r['band_error_vs_mpb'], '.1e')} "
            f"| {fmt(r['label_band_error_vs_mpb'], '.1e')} | {r['dos_error_vs_reference']:.1e} | {r['seconds_per_label']:.3f} |"
        )
    target = next(r for r in rows if r["plane_waves"] == P.TARGET_LABEL_OPTS["plane_waves"])
    lines += [
        "",
        f"{ref} DFT reference vs MPB: {fmt(extra['reference_vs_mpb'], '.1e')}; "
        f"exact pixel Fourier coefficients at {extra['pixel_form_factor_plane_waves']}×{extra['pixel_form_factor_plane_waves']}: "
        f"{fmt(extra['pixel_form_factor_vs_mpb'], '.1e')} vs MPB (DFT: {fmt(target['band_error_vs_mpb'], '.1e')})",
        f"target label {P.TARGET_LABEL_OPTS}: {target['seconds_per_label']:.3f} s",
        f"surrogate label {surrogate['opts']}: {surrogate['seconds_per_label']:.4f} s "
        f"({target['seconds_per_label'] / surrogate['seconds_per_label']:.0f}× cheaper than a target label), "
        f"DOS err vs {ref} c4v {surrogate['dos_error_vs_reference']:.1e}",
    ]
    for mpb in mpbs:
        mpb_s = float(np.mean(mpb["seconds"]))
        lines.append(
            f"MPB res 32 (tolerance {mpb['tolerance']:g}, {mpb['k_points']} k, 10 bands, {len(mpb['seconds'])} cells): "
            f"{mpb_s:.2f} s per cell; target label {mpb_s / target['seconds_per_label']:.0f}× faster"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/photonic.json"))
    parser.add_argument("--no-mpb", action="store_true", help="skip the MPB comparison")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    cells = np.array([P.sample_level_set_cell(rng) for _ in range(args.cells)])
    kpoints = P.reduced_kgrid("time_reversal")[0]
    mpbs = []
    if not args.no_mpb and mpb_available():
        mpbs.append(run_mpb(cells, kpoints, MPB_TOLERANCE))
        mpbs.append(run_mpb(cells[: MPB_REFERENCE_SETUP["cells"]], P.KGRID, MPB_REFERENCE_SETUP["tolerance"]))
    rows, extra = target_rows(cells, kpoints, mpbs[0] if mpbs else None)
    surrogate = surrogate_row(rng, args.cells)
    print(report(rows, extra, surrogate, mpbs, args.cells))

    result = {
        "cores_used": 1,
        "cells": args.cells,
        "seed": args.seed,
        "target_label_opts": P.TARGET_LABEL_OPTS,
        "rows": rows,
        **extra,
        "surrogate": surrogate,
        "mpb": [
            {"tolerance": m["tolerance"], "k_points": m["k_points"], "seconds_per_cell": float(np.mean(m["seconds"])),
             "seconds": m["seconds"].tolist()}
            for m in mpbs
        ],
    }
    write_results(args.json, result)


if __name__ == "__main__":
    main()
