"""`sibcl_ray.predictor`: export a network, load it back with weights_only, predict in physical units."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import sibcl_ray
from sibcl_ray.errors import InputError, ModelFolderError
from sibcl_ray.learning.models import SIBCLNet
from sibcl_ray.physics.dos import FTILDE
from sibcl_ray.predictor import INFO_FILE, WEIGHTS_FILE, export_model, model_info
from sibcl_ray.problems import get_problem


def _export(folder: Path, problem: str, options: dict, zero_head: bool = False, seed: int = 0,
            size: str = "small") -> SIBCLNet:
    """A randomly initialised network of ``size`` (with BatchNorm running statistics set) exported to ``folder``."""
    torch.manual_seed(seed)
    spec = get_problem(problem, **options).network_spec(size)
    net = SIBCLNet(spec, get_problem(problem, **options).label_dim)
    net.train()
    with torch.no_grad():  # give BatchNorm running statistics that are not the identity
        net(torch.rand(64, *get_problem(problem, **options).input_shape))
        if zero_head:
            last = net.predictor[-1]
            last.weight.zero_()
            last.bias.zero_()
    net.eval()
    info = model_info(problem_name=problem, problem_options=options, model_size=size, method="sibcl",
                      hparams={"temperature": 0.1}, metrics={"val_error": 0.5, "test_error": 0.6}, nsam=50, seed=seed)
    export_model(folder, net.state_dict(), info)
    return net


def test_a_medium_network_loads_from_its_folder_alone(tmp_path: Path) -> None:
    net = _export(tmp_path / "model", "tise", {"dim": 2}, size="medium")
    info = json.loads((tmp_path / "model" / INFO_FILE).read_text())
    assert info["model_size"] == "medium" and info["model_spec"]["conv_widths"] == [32, 64, 128]
    potentials = np.random.default_rng(2).uniform(0.0, 1.0, size=(4, 32, 32)).astype(np.float32)
    with torch.no_grad():
        raw = net(torch.from_numpy(potentials)).numpy()[:, 0]
    predicted = sibcl_ray.load_model(tmp_path / "model", device="cpu").predict(potentials)[:, 0]
    np.testing.assert_allclose(predicted - raw, get_problem("tise", dim=2).label_offset()[0], rtol=0, atol=1e-5)


def test_weights_load_with_weights_only_and_predict_in_physical_units(tmp_path: Path) -> None:
    net = _export(tmp_path / "model", "phc", {})
    weights = torch.load(tmp_path / "model" / WEIGHTS_FILE, weights_only=True)  # no pickled code in the folder
    assert set(weights) == set(net.state_dict())
    info = json.loads((tmp_path / "model" / INFO_FILE).read_text())
    assert info["problem"] == "phc" and info["input_shape"] == [32, 32] and info["input_range"] == [1.0, 20.0]
    assert info["seed"] == 0 and info["versions"]["torch"] == torch.__version__ and info["label_dim"] == 400

    predictor = sibcl_ray.load_model(tmp_path / "model", device="cpu")
    eps = np.random.default_rng(0).uniform(1.0, 20.0, size=(5, 32, 32)).astype(np.float32)
    predicted = predictor.predict(eps)
    with torch.no_grad():  # the network sees ε mapped to [0, 1] and predicts the deviation from 2πf̃
        raw = net(torch.from_numpy((eps - 1.0) / 19.0)).numpy()
    np.testing.assert_allclose(predicted, np.maximum(raw + 2 * np.pi * FTILDE, 0.0), rtol=0, atol=1e-5)  # DOS ≥ 0
    assert predictor.predict(eps[0]).shape == (1, 400)  # one input gains the batch axis


def test_predictions_do_not_depend_on_the_batch_size(tmp_path: Path) -> None:
    _export(tmp_path / "model", "tise", {"dim": 2})
    predictor = sibcl_ray.load_model(tmp_path / "model")
    potentials = np.random.default_rng(1).uniform(0.0, 1.0, size=(37, 32, 32))
    whole = predictor.predict(potentials, batch_size=256)
    for batch in (1, 5, 16):
        np.testing.assert_allclose(predictor.predict(potentials, batch_size=batch), whole, rtol=0, atol=1e-6)
    seen: list[int] = []
    predictor.predict(potentials, batch_size=16, progress=seen.append)
    assert seen == [16, 16, 5]


@pytest.mark.parametrize("problem, options, expected", [
    ("phc", {}, 2 * np.pi * FTILDE),                           # the empty lattice's DOS, normalised
    ("tise", {"dim": 2}, np.array([2 * np.pi**2 / (2 * 10.0**2)])),  # E0 of the empty 10×10 box, −½∇²
])
def test_a_network_predicting_zero_returns_the_closed_form_offset(tmp_path: Path, problem: str, options: dict,
                                                                 expected: np.ndarray) -> None:
    """The offset the network does not learn is added back: with the predictor's last layer zeroed,
    predictions are the closed form (tise: the continuum box energy, to the grid's O(h²))."""
    _export(tmp_path / "model", problem, options, zero_head=True)
    predictor = sibcl_ray.load_model(tmp_path / "model")
    lo, hi = predictor.problem.input_range
    predicted = predictor.predict(np.full((3, *predictor.input_shape), (lo + hi) / 2))
    np.testing.assert_allclose(predicted, np.broadcast_to(expected, predicted.shape), rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("inputs, message", [
    (np.ones((2, 16, 16)) * 5, "inputs have shape (2, 16, 16): allowed are (32, 32)"),
    (np.full((2, 32, 32), 0.5), "input 0 has values in [0.5, 0.5]: allowed is the physical range [1, 20] of phc"),
    (np.where(np.arange(2 * 32 * 32).reshape(2, 32, 32) == 1030, np.nan, 5.0), "input 1 holds nan at (0, 6)"),
    (np.zeros((0, 32, 32)), "inputs are empty"),
    (np.array([["a"] * 32] * 32), "inputs have dtype <U1: allowed are real numbers"),
])
def test_bad_inputs_raise_one_line_input_errors(tmp_path: Path, inputs: np.ndarray, message: str) -> None:
    _export(tmp_path / "model", "phc", {})
    predictor = sibcl_ray.load_model(tmp_path / "model")
    with pytest.raises(InputError) as caught:
        predictor.predict(inputs)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert isinstance(caught.value, ValueError)  # Python callers may catch it as a ValueError


def test_foreign_damaged_or_mismatched_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFolderError, match="does not exist"):
        sibcl_ray.load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFolderError, match="is not a sibcl_ray model folder"):
        sibcl_ray.load_model(tmp_path / "empty")
    _export(tmp_path / "model", "phc", {})
    info = json.loads((tmp_path / "model" / INFO_FILE).read_text())
    (tmp_path / "model" / INFO_FILE).write_text(json.dumps({**info, "format": "keras"}))
    with pytest.raises(ModelFolderError, match="has format 'keras'"):
        sibcl_ray.load_model(tmp_path / "model")
    (tmp_path / "model" / INFO_FILE).write_text(json.dumps({**info, "problem": "tise", "problem_options": {"dim": 2}}))
    with pytest.raises(ModelFolderError, match="does not match the network"):
        sibcl_ray.load_model(tmp_path / "model")
    (tmp_path / "model" / INFO_FILE).write_text(json.dumps(info))
    (tmp_path / "model" / WEIGHTS_FILE).write_bytes(b"not a torch file")
    with pytest.raises(ModelFolderError, match="cannot be read as weights"):
        sibcl_ray.load_model(tmp_path / "model")


@pytest.mark.parametrize("problem, options", [("phc", {}), ("phc", {"label": "bands"}), ("tise", {"dim": 2})])
def test_predictions_never_go_below_the_labels_physical_floor(tmp_path: Path, problem: str, options: dict) -> None:
    """A DOS, a frequency and E0 above V ≥ 0 are non-negative: a head that predicts a label far below
    its offset returns the floor, not impossible physics; above the floor nothing changes."""
    net = _export(tmp_path / "model", problem, options, zero_head=True)
    with torch.no_grad():
        net.predictor[-1].bias.fill_(-1.0)  # every prediction one unit below the offset
    export_model(tmp_path / "model", net.state_dict(), json.loads((tmp_path / "model" / INFO_FILE).read_text()))
    prob = get_problem(problem, **options)
    lo, hi = prob.input_range
    inputs = np.random.default_rng(3).uniform(lo, hi, size=(3, *prob.input_shape)).astype(np.float32)
    predicted = sibcl_ray.load_model(tmp_path / "model", device="cpu").predict(inputs)
    expected = np.maximum(prob.label_offset() - 1.0, 0.0)
    assert prob.label_floor == 0.0 and predicted.min() == 0.0
    np.testing.assert_allclose(predicted, np.broadcast_to(expected, predicted.shape), atol=1e-5)
