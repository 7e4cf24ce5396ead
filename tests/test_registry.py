"""Every registered problem, built in or installed as a plugin, walked through the whole
interface (pdearena's registry-test pattern): a plugin that gets something wrong fails here."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest
import torch

from sibcl_ray.errors import SibclError
from sibcl_ray.learning.models import SIBCLNet
from sibcl_ray.learning.transforms import make_augmenter
from sibcl_ray.presets import PRESETS, Preset, get_preset
from sibcl_ray.problems import MODEL_SIZES, available_problems, get_problem, problem_class
from sibcl_ray.search.space import load_space

NAMES = list(available_problems())


def test_the_built_ins_are_registered() -> None:
    assert NAMES[:2] == ["phc", "tise"]


@pytest.mark.parametrize("name", NAMES)
def test_every_problem_honours_the_interface_on_real_labels(name: str) -> None:
    problem = get_problem(name)
    assert problem.signature()["problem"] == problem.name  # datasets are keyed by it
    rng = np.random.default_rng(0)
    x = problem.target_inputs(rng, 3)
    lo, hi = problem.input_range
    assert x.shape == (3, *problem.input_shape) and x.dtype == np.float32 and lo <= x.min() and x.max() <= hi
    y = problem.target_labels(x)
    assert y.shape == (3, problem.label_dim) and np.isfinite(y).all()
    assert problem.label_offset().shape == (problem.label_dim,)
    assert np.allclose(problem.errors(y, y), 0) and (problem.errors(1.1 * y + 0.1, y) > 0).all()
    xs, ys = problem.surrogate_samples(rng, 2)
    assert xs.shape == (2, *problem.input_shape) and ys.shape == (2, problem.label_dim) and np.isfinite(ys).all()

    # the declared invariances are exact: transformed inputs, solved again, give the same labels
    augment = make_augmenter(problem.invariances, 1.0, problem.input_range)
    encoded = torch.from_numpy((x - lo) / (hi - lo))
    moved = augment(encoded, torch.Generator().manual_seed(1)).numpy() * (hi - lo) + lo
    assert not np.allclose(moved, x)  # the transforms did something
    again = problem.target_labels(moved.astype(np.float32))
    assert problem.errors(again, y).max() < 1e-3, problem.errors(again, y)


@pytest.mark.parametrize("name", NAMES)
def test_every_problem_brings_a_valid_space_options_presets_and_models(name: str) -> None:
    cls = problem_class(name)
    problem = cls()
    assert isinstance(load_space(cls.search_space_path()), dict)
    keywords = inspect.signature(cls.__init__).parameters
    assert all(option.name in keywords for option in cls.options), [o.name for o in cls.options]
    fields = {f.name for f in dataclasses.fields(Preset)}
    for preset, changes in cls.preset_overrides.items():
        assert preset in PRESETS and set(changes) <= fields, (preset, changes)
        get_preset(preset, problem=name)  # and the result is a consistent preset
    for size in MODEL_SIZES:
        spec = problem.network_spec(size)
        assert spec.dim == len(problem.input_shape)
        net = SIBCLNet(spec, problem.label_dim).eval()
        with torch.no_grad():
            prediction, projection = net(torch.rand(1, *problem.input_shape)), net(torch.rand(1, *problem.input_shape), "project")
        assert prediction.shape == (1, problem.label_dim) and torch.isfinite(prediction).all()
        assert projection.shape == (1, spec.projector_widths[-1])


@pytest.mark.parametrize("name", NAMES)
def test_medium_is_small_twice_as_wide_for_every_problem(name: str) -> None:
    problem = get_problem(name)
    small, medium = problem.network_spec("small"), problem.network_spec("medium")
    assert medium.conv_widths == tuple(2 * w for w in small.conv_widths)
    assert medium.fc_widths == tuple(2 * w for w in small.fc_widths)
    assert (medium.kernel, medium.pools, medium.padding) == (small.kernel, small.pools, small.padding)
    sizes = [sum(p.numel() for p in SIBCLNet(problem.network_spec(s), problem.label_dim).encoder.parameters())
             for s in MODEL_SIZES]
    assert sizes[0] < sizes[1]
    if name in ("phc", "tise"):
        assert sizes[1] < sizes[2]  # between the CPU-sized network and the paper's
    with pytest.raises(SibclError, match="model size 'huge' is unknown: allowed values are small, medium, reference"):
        problem.network_spec("huge")


def test_a_problem_is_found_by_module_and_class_and_a_wrong_one_is_one_line() -> None:
    assert get_problem("sibcl_ray.problems.tise:GroundStateEnergy", dim=2).input_shape == (32, 32)
    with pytest.raises(SibclError, match="cannot load sibcl_ray.nowhere:Thing"):
        problem_class("sibcl_ray.nowhere:Thing")
    with pytest.raises(SibclError, match="is not a sibcl_ray.problems.Problem subclass"):
        problem_class("sibcl_ray.presets:Preset")
    with pytest.raises(SibclError, match="unknown problem 'maxwell': allowed values are phc, tise"):
        problem_class("maxwell")
