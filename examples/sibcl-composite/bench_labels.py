"""Measure what the README quotes: label and surrogate cost, surrogate quality, discretisation error.

    python examples/sibcl-composite/bench_labels.py [--maps 200]

Single-threaded NumPy work; a few seconds at the default size.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sibcl_composite import homogenise, microstructure, surrogates


def _seconds(fn, repeats: int = 3) -> float:
    """Best wall time of ``repeats`` calls (the machine may be shared)."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    maps = microstructure.sample_maps(rng, args.maps).astype(np.float64)
    print(f"input generation: {1e3 * (time.perf_counter() - start) / args.maps:.2f} ms/map")

    labels = homogenise.effective_conductivity(maps)
    _, iterations = homogenise.solve_cell_problems(maps)
    batched = _seconds(lambda: homogenise.effective_conductivity(maps)) / args.maps
    single = _seconds(lambda: [homogenise.effective_conductivity(m[None]) for m in maps[:20]]) / 20
    print(f"target label (32×32 CG): {1e3 * batched:.2f} ms/label batched, {1e3 * single:.2f} ms/label one at a time; "
          f"CG iterations median {np.median(iterations):.0f}, max {iterations.max()}")

    mean = maps.mean(axis=(1, 2))
    for name, fn in (("coarse c=2 (16×16)", lambda: surrogates.coarse_labels(maps, 2)),
                     ("coarse c=4 (8×8)", lambda: surrogates.coarse_labels(maps, 4)),
                     ("coarse c=8 (4×4)", lambda: surrogates.coarse_labels(maps, 8)),
                     ("bounds (HS midpoint)", lambda: surrogates.bounds_labels(maps))):
        cheap = fn()
        cost = _seconds(fn) / args.maps
        r_raw = np.corrcoef(cheap, labels)[0, 1]
        r_norm = np.corrcoef(cheap / mean, labels / mean)[0, 1]
        error = np.mean(np.abs(cheap - labels) / labels)
        print(f"surrogate {name:22s}: {1e3 * cost:.4f} ms/label ({batched / cost:6.0f}× cheaper), "
              f"r(σ_eff) {r_raw:.4f}, r(σ_eff/⟨σ⟩) {r_norm:.4f}, mean |rel err| {error:.4f}")

    subset = maps[:60]
    refined = homogenise.effective_conductivity(np.kron(subset, np.ones((1, 4, 4))))
    gap = labels[:60] / refined - 1.0
    print(f"label vs the same pixel map on a 4× finer grid: mean {gap.mean():+.4f}, worst {gap.min():+.4f}")

    s1, s2 = 1.0, 10.0
    for n in (16, 32, 64, 128, 256):
        i = np.arange(n)
        board = np.where((i[:, None] < n // 2) ^ (i[None, :] < n // 2), s1, s2)[None]
        value = homogenise.effective_conductivity(board)[0]
        print(f"checkerboard 1:10, {n:3d}²: σ_eff/√(σ1σ2) − 1 = {value / np.sqrt(s1 * s2) - 1:+.4f}")


if __name__ == "__main__":
    main()
