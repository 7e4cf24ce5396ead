"""Cost and accuracy of the `tise` label solver against the reference eigsh.

Same potentials, same run: the reference `eigsh(H, k=2, which='SA')` (ARPACK,
tol=0) and `ground_state_energy` (preconditioned LOBPCG) per sample, plus the
batched `ground_state_energies`, the `lowres` surrogate, the oscillator
surrogate and the input generator.  Single-threaded BLAS/FFT (set before NumPy
is imported) so numbers compare with docs/method.md's one-core measurements.

    python benchmarks/bench_schrodinger.py --n-samples 10 --dim 2 3
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse.linalg as sla  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from results_file import write_results  # noqa: E402
from sibcl_ray.physics.schrodinger import (  # noqa: E402
    ground_state_energies,
    ground_state_energy,
    hamiltonian,
    lowres_energies,
    sample_oscillator,
    sample_potential,
)


def _per_call(fn: Callable[[], object], calls: int) -> tuple[float, object]:
    """Mean seconds per call over `calls` calls, and the last result."""
    start = time.perf_counter()
    for _ in range(calls):
        result = fn()
    return (time.perf_counter() - start) / calls, result


def _timed_each(fn: Callable[[np.ndarray], float], Vs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample wall times and results of fn over Vs."""
    times, values = [], []
    for V in Vs:
        start = time.perf_counter()
        values.append(fn(V))
        times.append(time.perf_counter() - start)
    return np.array(times), np.array(values)


def _eigsh_reference(V: np.ndarray) -> float:
    return float(sla.eigsh(hamiltonian(V), k=2, which="SA", tol=0)[0].min())


def bench_dim(dim: int, n_samples: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    Vs = np.stack([sample_potential(rng, dim) for _ in range(n_samples)])
    gen_s = (time.perf_counter() - start) / n_samples

    ref_t, ref_e = _timed_each(_eigsh_reference, Vs)
    ours_t, ours_e = _timed_each(ground_state_energy, Vs)
    start = time.perf_counter()
    batch_e = ground_state_energies(Vs)
    batch_s = (time.perf_counter() - start) / n_samples

    many = np.tile(Vs, (max(1, 1000 // n_samples),) + (1,) * dim)
    lowres_s, _ = _per_call(lambda: lowres_energies(many), 3)
    osc_s, _ = _per_call(lambda: sample_oscillator(rng, dim), 200)
    rel = np.abs(np.concatenate([ours_e, batch_e]) / np.concatenate([ref_e, ref_e]) - 1)
    return {
        "dim": dim,
        "n_samples": n_samples,
        "unknowns": int((Vs.shape[1] - 2) ** dim),
        "eigsh_s_per_sample": float(ref_t.mean()),
        "eigsh_s_range": [float(ref_t.min()), float(ref_t.max())],
        "ours_s_per_sample": float(ours_t.mean()),
        "ours_s_range": [float(ours_t.min()), float(ours_t.max())],
        "ours_batched_s_per_sample": batch_s,
        "speedup_vs_eigsh": float(ref_t.sum() / ours_t.sum()),
        "max_rel_diff_vs_eigsh": float(rel.max()),
        "lowres_batched_s_per_sample": lowres_s / len(many),
        "oscillator_s_per_sample": osc_s,
        "sample_potential_s_per_sample": gen_s,
    }


def _table(rows: list[dict[str, float]]) -> str:
    lines = [
        "| dim | samples | eigsh(k=2, SA) s/sample | ours s/sample (min–max) | ours batched s/sample "
        "| speed-up | max rel. diff E0 | lowres s/sample | oscillator s/sample | sample_potential s/sample |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dim']}D | {r['n_samples']} | {r['eigsh_s_per_sample']:.3g} "
            f"({r['eigsh_s_range'][0]:.2g}–{r['eigsh_s_range'][1]:.2g}) "
            f"| {r['ours_s_per_sample']:.3g} ({r['ours_s_range'][0]:.2g}–{r['ours_s_range'][1]:.2g}) "
            f"| {r['ours_batched_s_per_sample']:.3g} | {r['speedup_vs_eigsh']:.1f}× "
            f"| {r['max_rel_diff_vs_eigsh']:.1e} | {r['lowres_batched_s_per_sample']:.1e} "
            f"| {r['oscillator_s_per_sample']:.1e} | {r['sample_potential_s_per_sample']:.1e} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=10)
    parser.add_argument("--dim", type=int, nargs="+", default=[2, 3], choices=[2, 3])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/schrodinger.json"))
    args = parser.parse_args()

    rows = [bench_dim(dim, args.n_samples, args.seed) for dim in args.dim]
    print(_table(rows))
    write_results(args.json, {"results": rows})


if __name__ == "__main__":
    main()
