"""Predictions/s of an exported model against the eigensolve it replaces, on the same inputs.

What a user would otherwise do to get a label for a new input is run the solver; this times
``Predictor.predict`` (``sibcl_ray.load_model`` of a model folder) and the problem's own
``target_labels`` on the same random inputs, and prints both rates and their ratio. With
``--model DIR`` it times that folder (e.g. ``sibcl_runs/phc-quick/model``); otherwise a
freshly initialised network of ``--size`` is exported and timed (speed does not depend on
the weights). Prints a table and writes JSON.

    python benchmarks/bench_predict.py --problem phc [--model DIR] [--size small] [--inputs 4096]
    python benchmarks/bench_predict.py --problem tise --dim 3 --solver-inputs 4
    python benchmarks/bench_predict.py --problem tise --dim 2 --multifidelity   # + a -mf model, A/B

With ``--multifidelity`` (a problem with a cheap label) a multi-fidelity network of the same size is
timed too, interleaved with the plain one (two rounds each, the faster kept): what computing the
cheap label inside ``predict`` costs per input.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from results_file import write_results
from sibcl_ray.learning.fidelity import CheapFit
from sibcl_ray.learning.models import SIBCLNet
from sibcl_ray.predictor import export_model, load_model, model_info
from sibcl_ray.problems import get_problem


def _model_folder(problem_name: str, options: dict, size: str, where: Path, cheap: bool = False) -> Path:
    problem = get_problem(problem_name, **options)
    torch.manual_seed(0)
    net = SIBCLNet(problem.network_spec(size), problem.label_dim, 1 if cheap else 0).eval()
    if cheap:  # any fit: speed does not depend on it
        net.set_fit(CheapFit(0.0, 1.0, np.ones((3, problem.label_dim))))
    info = model_info(problem_name=problem_name, problem_options=options, model_size=size,
                      method="sibcl-mf" if cheap else "sibcl", hparams={}, metrics={}, nsam=0, seed=0)
    return export_model(where / ("model-mf" if cheap else "model"), net.state_dict(), info)


def _time_predict(predictor: object, inputs: np.ndarray, batch_size: int) -> float:
    start = time.perf_counter()
    predictor.predict(inputs, batch_size=batch_size)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="phc", choices=("phc", "tise"))
    parser.add_argument("--dim", type=int, default=3, help="tise only")
    parser.add_argument("--model", type=Path, help="a model folder to time (default: a fresh network of --size)")
    parser.add_argument("--size", default="small", choices=("small", "reference"))
    parser.add_argument("--inputs", type=int, default=4096, help="inputs to predict")
    parser.add_argument("--solver-inputs", type=int, default=16, help="inputs to label with the eigensolver")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/predict.json"))
    parser.add_argument("--multifidelity", action="store_true",
                        help="also time a multi-fidelity model (it computes the cheap label), interleaved")
    args = parser.parse_args()

    options = {"dim": args.dim} if args.problem == "tise" else {}
    problem = get_problem(args.problem, **options)
    rng = np.random.default_rng(0)
    inputs = problem.target_inputs(rng, args.inputs)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.model or _model_folder(args.problem, options, args.size, Path(scratch))
        predictor = load_model(folder)
        predictor.predict(inputs[: args.batch_size], batch_size=args.batch_size)  # warm-up: allocator, kernels
        mf_s = None
        if args.multifidelity:
            mf = load_model(_model_folder(args.problem, options, args.size, Path(scratch), cheap=True))
            mf.predict(inputs[: args.batch_size], batch_size=args.batch_size)
            rounds = [(_time_predict(predictor, inputs, args.batch_size), _time_predict(mf, inputs, args.batch_size))
                      for _ in range(2)]
            predict_s, mf_s = min(r[0] for r in rounds), min(r[1] for r in rounds)
        else:
            predict_s = _time_predict(predictor, inputs, args.batch_size)
        size = predictor.info.get("model_size", args.size)
    start = time.perf_counter()
    problem.target_labels(inputs[: args.solver_inputs])
    solver_s = time.perf_counter() - start

    predict_rate, solver_rate = args.inputs / predict_s, args.solver_inputs / solver_s
    rows = [("predict (sibcl_ray.load_model)", args.inputs, predict_s, predict_rate),
            ("eigensolver (problem.target_labels)", args.solver_inputs, solver_s, solver_rate)]
    print(f"\n{args.problem} {options or ''}, {size} model, {predictor.device}, {torch.get_num_threads()} torch threads")
    print(f"| {'what':38s} | inputs | seconds | inputs/s |\n|{'-' * 40}|--------|---------|----------|")
    for what, count, seconds, rate in rows:
        print(f"| {what:38s} | {count:6d} | {seconds:7.2f} | {rate:8.1f} |")
    print(f"prediction is {predict_rate / solver_rate:,.0f}× the solver's rate (one process each)")
    if mf_s is not None:
        print(f"per input: plain model {predict_s / args.inputs * 1e3:.3f} ms, multi-fidelity model (cheap label "
              f"computed inside) {mf_s / args.inputs * 1e3:.3f} ms, {mf_s / predict_s:.2f}× (interleaved, best of 2)")
    write_results(args.json, {"problem": problem.describe(), "model_size": size, "device": str(predictor.device),
                              "threads": torch.get_num_threads(), "batch_size": args.batch_size,
                              "predict": {"inputs": args.inputs, "seconds": predict_s, "per_s": predict_rate},
                              "solver": {"inputs": args.solver_inputs, "seconds": solver_s, "per_s": solver_rate},
                              "ratio": predict_rate / solver_rate,
                              **({"multifidelity": {"inputs": args.inputs, "seconds": mf_s,
                                                    "per_input_ms": mf_s / args.inputs * 1e3,
                                                    "vs_plain": mf_s / predict_s}} if mf_s is not None else {})})


if __name__ == "__main__":
    main()
