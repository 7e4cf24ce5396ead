"""Parallel efficiency of Ray label generation: the same target labels on 1 and on 2 CPUs.

Each run starts its own local Ray with ``num_cpus`` CPUs and generates ``--samples`` fresh
target labels (no reuse) through the production path (``sibcl_ray.data.generate``).
Efficiency = (throughput on N CPUs) / (N × throughput on 1 CPU). Prints a table, writes JSON.

    python benchmarks/bench_generation.py [--problem phc] [--samples 200] [--shard-size 25]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import ray

from results_file import write_results
from sibcl_ray.data.generate import generate


def run(problem: str, options: dict, samples: int, shard_size: int, cpus: int) -> dict:
    with tempfile.TemporaryDirectory() as root:
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        try:
            report = generate(problem, options, {"test": samples}, Path(root), seed=123, shard_size=shard_size,
                              progress=False)
        finally:
            ray.shutdown()
    return {"cpus": cpus, "samples": samples, "seconds": report.seconds, "samples_per_s": report.samples_per_second}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="phc")
    parser.add_argument("--dim", type=int, help="tise only")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--shard-size", type=int, default=25)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/generation.json"))
    args = parser.parse_args()
    options = {"dim": args.dim} if args.dim else {}
    rows = [run(args.problem, options, args.samples, args.shard_size, cpus) for cpus in (1, 2)]
    base = rows[0]["samples_per_s"]
    for row in rows:
        row["efficiency"] = row["samples_per_s"] / (row["cpus"] * base)
    print(f"{args.problem} target labels, {args.samples} per run, {args.shard_size} per task")
    print("| CPUs | seconds | labels/s | parallel efficiency |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['cpus']} | {r['seconds']:.1f} | {r['samples_per_s']:.2f} | {100 * r['efficiency']:.0f}% |")
    write_results(args.json, {"problem": args.problem, "rows": rows})


if __name__ == "__main__":
    main()
