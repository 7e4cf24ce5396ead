"""A trained predictor outside Ray: export the selected model to a folder, load it, predict.

A model folder holds ``model.pt`` (the network's ``state_dict`` only, loadable with
``torch.load(..., weights_only=True)``) and ``model.json`` (what the weights mean: the
problem and its options, the :class:`ModelSpec`, input shape and physical range, the label
offset and axis, the hyperparameters, validation and test error, and provenance). Every
search writes one to ``<output>/model``; ``python -m sibcl_ray.benchmark --export`` one per cell.

Example::

    >>> import numpy as np, sibcl_ray
    >>> predictor = sibcl_ray.load_model("sibcl_runs/phc-quick/model")   # doctest: +SKIP
    >>> eps = np.full((32, 32), 1.0); eps[8:24, 8:24] = 13.0               # one unit cell, ε in [1, 20]
    >>> dos = predictor.predict(eps)                                       # doctest: +SKIP
    >>> dos.shape                                                          # doctest: +SKIP
    (1, 400)

A multi-fidelity model (``sl-mf``, ``tl-mf``, ``sibcl-mf``, or a search that chose
``multifidelity: true``) takes the same physical inputs: the predictor runs the problem's cheap
solver on them itself (``Problem.cheap_labels``, NumPy, batched) and returns the closed-form fit
on that cheap label plus the network's residual; ``model.json`` records the cheap label and the fit
(``cheap_label``).

No Ray here: a predictor needs torch and the problem definitions only.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from sibcl_ray.errors import InputError, ModelFolderError
from sibcl_ray.learning.fidelity import CheapFit
from sibcl_ray.learning.models import SIBCLNet
from sibcl_ray.problems import Problem, get_problem
from sibcl_ray.problems.base import ModelSpec
from sibcl_ray.provenance import provenance

MODEL_FORMAT = "sibcl_ray.model/1"
WEIGHTS_FILE = "model.pt"
INFO_FILE = "model.json"
#: Inputs may sit this far (relative to the range's width) outside the physical range:
#: float32 storage of a value on the boundary is not an error.
RANGE_TOLERANCE = 1e-5


class Predictor:
    """A trained SIB-CL network and the problem it was trained on, ready for physical inputs.

    ``predict`` takes inputs in physical units (e.g. ε for ``phc``, V for ``tise``), maps
    them to the [0, 1] the network saw, runs the predictor head in batches (on a GPU when
    there is one) and returns labels in physical units, the label offset added back.
    """

    def __init__(self, net: SIBCLNet, problem: Problem, info: dict[str, Any], device: torch.device | None = None) -> None:
        self.problem, self.info = problem, info
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.net = net.to(self.device).eval()
        self._offset = problem.label_offset()

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.problem.input_shape)

    def check_inputs(self, inputs: np.ndarray) -> np.ndarray:
        """Inputs as a float32 batch of shape ``(N, *input_shape)``; one input gains the batch axis.

        Raises :class:`InputError` (one line naming the bad value and what is allowed) for a
        wrong shape, NaN/inf or values outside the problem's physical range.
        """
        x = np.asarray(inputs)
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise InputError(f"inputs have dtype {x.dtype}: allowed are real numbers")
        if x.shape == self.input_shape:
            x = x[None]
        if x.ndim != len(self.input_shape) + 1 or x.shape[1:] != self.input_shape:
            raise InputError(f"inputs have shape {x.shape}: allowed are {self.input_shape} (one input) or "
                             f"(N, {', '.join(map(str, self.input_shape))}) for {self.problem.name}")
        if len(x) == 0:
            raise InputError("inputs are empty: at least one input is needed")
        bad = ~np.isfinite(x)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InputError(f"input {where[0]} holds {x[where]} at {where[1:]}: allowed are finite values only")
        lo, hi = self.problem.input_range
        slack = RANGE_TOLERANCE * (hi - lo)
        if x.min() < lo - slack or x.max() > hi + slack:
            index = int(np.argmax((x < lo - slack).reshape(len(x), -1).any(1) | (x > hi + slack).reshape(len(x), -1).any(1)))
            raise InputError(f"input {index} has values in [{x[index].min():g}, {x[index].max():g}]: allowed is the "
                             f"physical range [{lo:g}, {hi:g}] of {self.problem.name}")
        return x.astype(np.float32, copy=False)

    @torch.no_grad()
    def _run(self, inputs: np.ndarray, head: Callable[[torch.Tensor], torch.Tensor], batch_size: int,
             progress: Callable[[int], None] | None) -> np.ndarray:
        x = self.check_inputs(inputs)
        if batch_size < 1:
            raise InputError(f"batch size {batch_size} must be at least 1")
        lo, hi = self.problem.input_range
        outputs = []
        for i in range(0, len(x), batch_size):
            chunk = torch.from_numpy((x[i : i + batch_size] - lo) / (hi - lo)).float().to(self.device)
            outputs.append(head(chunk).float().cpu().numpy())
            if progress is not None:
                progress(len(chunk))
        return np.concatenate(outputs)

    def predict(self, inputs: np.ndarray, batch_size: int = 256,
                progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Labels in physical units, shape ``(N, label_dim)``, never below the label's physical floor
        (``Problem.physical``: no negative DOS); ``progress(n)`` after each batch of n. A
        multi-fidelity model computes each input's cheap label first (``cheap_labels``)."""
        net = self.net
        if not net.cheap_dim:
            return self.problem.physical(self._run(inputs, lambda x: net(x, head="predict"), batch_size, progress)
                                         + self._offset)
        x = self.check_inputs(inputs)
        cheap = self.cheap_labels(x, batch_size)
        batches = iter(range(0, len(x), max(1, batch_size)))

        def residual(chunk: torch.Tensor) -> torch.Tensor:
            start = next(batches)
            c = torch.from_numpy(cheap[start : start + len(chunk)]).to(self.device)
            return net(chunk, head="residual", cheap=c)

        out = self._run(x, residual, batch_size, progress).astype(np.float64)
        return self.problem.physical((out + net.fit().predict(cheap) + self._offset).astype(np.float32))

    def cheap_labels(self, inputs: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The problem's cheap label of each input (its coarse solver, NumPy), in batches of ``batch_size``."""
        x = self.check_inputs(inputs)
        step = max(1, batch_size)
        return np.concatenate([self.problem.cheap_labels(x[i : i + step]) for i in range(0, len(x), step)])

    def features(self, inputs: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The encoder's representation of each input, shape ``(N, representation size)``."""
        return self._run(inputs, self.net.encoder, batch_size, None)

    def errors(self, inputs: np.ndarray, labels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Per-input error of the predictions against true labels, in the problem's published metric."""
        return self.problem.errors(self.predict(inputs, batch_size), np.asarray(labels, np.float32))


def build_predictor(problem_name: str, problem_options: dict[str, Any], spec: ModelSpec,
                    weights: dict[str, torch.Tensor], info: dict[str, Any] | None = None,
                    device: torch.device | None = None) -> Predictor:
    """A predictor from weights in memory (a checkpoint's selected model, or ``model.pt``)."""
    problem = get_problem(problem_name, **problem_options)
    cheap_dim = cheap_inputs(weights, spec)
    if cheap_dim and problem.cheap_label is None:
        raise ModelFolderError(f"the weights are a multi-fidelity network, and problem {problem.name!r} declares no "
                               "cheap label to feed it")
    net = SIBCLNet(spec, problem.label_dim, cheap_dim)
    net.load_state_dict(weights)
    return Predictor(net, problem, info or {}, device)


def cheap_inputs(weights: dict[str, torch.Tensor], spec: ModelSpec) -> int:
    """How many cheap-label components a network's predictor reads (0: not a multi-fidelity network)."""
    if "cheap_coef" not in weights:
        return 0
    return int(weights["predictor.0.weight"].shape[1]) - spec.fc_widths[-1]


def cheap_label_info(problem: Problem, weights: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """``model.json``'s record of a multi-fidelity network's cheap label: what it is and the fit the
    network's residual is added to (``physical_coef``: a, b, d of label ≈ a + b·c + d·c², per label
    component, the label offset included); None for a plain network."""
    if "cheap_coef" not in weights:
        return None
    norm = weights["cheap_norm"].double().cpu().numpy()
    fit = CheapFit(float(norm[0]), float(norm[1]), weights["cheap_coef"].double().cpu().numpy())
    physical = fit.physical()
    physical[0] += problem.label_offset()
    return {"what": problem.cheap_label, "fit_of": "label - label_offset", **fit.to_dict(),
            "physical_coef": physical.tolist()}


def model_info(*, problem_name: str, problem_options: dict[str, Any], model_size: str, method: str,
               hparams: dict[str, Any], metrics: dict[str, Any], nsam: int, seed: int) -> dict[str, Any]:
    """The ``model.json`` of a trained model: everything needed to use and to trust its weights."""
    problem = get_problem(problem_name, **problem_options)
    axis = problem.label_axis()
    return {
        "format": MODEL_FORMAT, "problem": problem_name, "problem_options": problem_options,
        "problem_signature": problem.signature(), "model_size": model_size,
        "model_spec": asdict(problem.network_spec(model_size)), "input_shape": list(problem.input_shape),
        "input_range": list(problem.input_range), "label_name": problem.label_name, "label_dim": problem.label_dim,
        "label_offset": problem.label_offset().tolist(),
        "label_axis": None if axis is None else {"name": axis[0], "values": axis[1].tolist()},
        "method": method, "hparams": hparams, "nsam": nsam,
        **{k: metrics[k] for k in ("val_error", "test_error", "test_error_std", "n_test") if k in metrics},
        **provenance(seed),
    }


def export_model(folder: Path, weights: dict[str, torch.Tensor], info: dict[str, Any]) -> Path:
    """Write ``model.pt`` and ``model.json`` into ``folder``; returns the folder.

    Each file is written to a temporary name and renamed, so a folder never holds weights
    from one model beside the description of another for longer than one rename.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cheap = cheap_label_info(get_problem(info["problem"], **info["problem_options"]), weights) \
        if "problem" in info else None
    if cheap is not None:
        info = {**info, "cheap_label": cheap}
    tmp = folder / f".{WEIGHTS_FILE}.{os.getpid()}.tmp"
    torch.save({k: v.detach().cpu() for k, v in weights.items()}, tmp)
    os.replace(tmp, folder / WEIGHTS_FILE)
    tmp = folder / f".{INFO_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(info, indent=1) + "\n")
    os.replace(tmp, folder / INFO_FILE)
    return folder


def read_model_info(path: Path | str) -> dict[str, Any]:
    """``model.json`` of a model folder, checked to be ours; :class:`ModelFolderError` otherwise."""
    folder = Path(path).expanduser()
    if folder.name == INFO_FILE:
        folder = folder.parent
    if not folder.exists():
        raise ModelFolderError(f"model folder {folder} does not exist: pass the model/ folder a search wrote "
                               "(<output>/model)")
    if not folder.is_dir():
        raise ModelFolderError(f"model {folder} is a file: pass the folder holding {INFO_FILE} and {WEIGHTS_FILE}")
    try:
        info = json.loads((folder / INFO_FILE).read_text())
    except FileNotFoundError:
        raise ModelFolderError(f"{folder} is not a sibcl_ray model folder: it has no {INFO_FILE} "
                               "(a search writes one in <output>/model)") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelFolderError(f"{folder / INFO_FILE} is not valid JSON: the folder is damaged") from None
    if not isinstance(info, dict) or info.get("format") != MODEL_FORMAT:
        found = info.get("format") if isinstance(info, dict) else type(info).__name__
        raise ModelFolderError(f"{folder / INFO_FILE} has format {found!r}: allowed is {MODEL_FORMAT!r}, "
                               "written by a sibcl_ray search or benchmark")
    if not (folder / WEIGHTS_FILE).is_file():
        raise ModelFolderError(f"{folder} has {INFO_FILE} but no {WEIGHTS_FILE}: the folder is incomplete")
    return info


def load_model(path: Path | str, device: str | torch.device | None = None) -> Predictor:
    """The :class:`Predictor` stored in a model folder (``<output>/model`` of a search).

    Weights are read with ``torch.load(weights_only=True)``: a model folder never runs code.
    """
    info = read_model_info(path)
    folder = Path(path).expanduser()
    folder = folder.parent if folder.name == INFO_FILE else folder
    try:
        weights = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a damaged or non-tensor file
        raise ModelFolderError(f"{folder / WEIGHTS_FILE} cannot be read as weights ({type(err).__name__}): "
                               "the folder is damaged") from None
    spec_fields = dict(info["model_spec"])
    spec = ModelSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec_fields.items()})
    try:
        predictor = build_predictor(info["problem"], info["problem_options"], spec, weights, info,
                                    torch.device(device) if device is not None else None)
    except RuntimeError as err:  # load_state_dict: missing or mis-shaped tensors
        raise ModelFolderError(f"{folder / WEIGHTS_FILE} does not match the network {INFO_FILE} describes: "
                               f"{str(err).splitlines()[0]}") from None
    if not np.allclose(predictor.problem.label_offset(), np.asarray(info["label_offset"], np.float32), atol=1e-6):
        raise ModelFolderError(f"{folder} was trained with another label offset than this version of "
                               f"{info['problem']} uses: predict with the sibcl_ray version in {INFO_FILE}")
    return predictor
