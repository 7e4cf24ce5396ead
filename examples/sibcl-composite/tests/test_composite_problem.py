"""The `composite` problem as sibcl_ray sees it: interface, data, declared invariances, surrogates, plugin."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sibcl_ray.errors import SibclError
from sibcl_ray.problems.base import Problem
from sibcl_composite import EffectiveConductivity, microstructure, surrogates
from sibcl_composite.homogenise import effective_conductivity


@pytest.fixture(scope="module")
def problem() -> EffectiveConductivity:
    return EffectiveConductivity()


@pytest.fixture(scope="module")
def inputs(problem: EffectiveConductivity) -> np.ndarray:
    return problem.target_inputs(np.random.default_rng(7), 48)


@pytest.fixture(scope="module")
def labels(problem: EffectiveConductivity, inputs: np.ndarray) -> np.ndarray:
    return problem.target_labels(inputs)


# --- interface and data -------------------------------------------------------------------------


def test_is_a_complete_problem(problem: EffectiveConductivity) -> None:
    assert isinstance(problem, Problem) and problem.name == "composite"
    assert problem.input_shape == (32, 32) and problem.label_dim == 1
    assert problem.input_range == (1.0, 100.0)
    assert problem.finetune_loss in ("l1", "mse", "log_l1") and problem.surrogate_loss in ("l1", "mse", "log_l1")
    assert problem.label_columns() == ["sigma_eff_over_mean"]
    assert "composite" in problem.describe()


def test_inputs_are_two_phase_maps_inside_the_physical_range(problem: EffectiveConductivity, inputs: np.ndarray) -> None:
    lo, hi = problem.input_range
    assert inputs.shape == (48, 32, 32) and inputs.dtype == np.float32
    assert inputs.min() >= lo and inputs.max() <= hi
    assert all(len(np.unique(m)) == 2 for m in inputs)
    fills = np.array([(m == m.max()).mean() for m in inputs])
    assert fills.min() < 0.25 and fills.max() > 0.75  # fill ~ U(0.01, 0.99), not stuck near one value


def test_phase_conductivities_are_log_uniform() -> None:
    """log σ uniform on [0, log 100]: mean log σ = log 10, and a tenth of draws below 10^0.2."""
    rng = np.random.default_rng(0)
    draws = np.log10(np.array([microstructure.sample_phases(rng) for _ in range(4000)]).ravel())
    assert draws.mean() == pytest.approx(1.0, abs=0.03)
    assert np.mean(draws < 0.2) == pytest.approx(0.1, abs=0.015)


def test_inputs_are_reproducible_from_the_seed(problem: EffectiveConductivity) -> None:
    a = problem.target_inputs(np.random.default_rng(3), 4)
    b = problem.target_inputs(np.random.default_rng(3), 4)
    c = problem.target_inputs(np.random.default_rng(4), 4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_normalised_labels_are_sigma_eff_over_the_mean(inputs: np.ndarray, labels: np.ndarray) -> None:
    raw = EffectiveConductivity(label="sigma_eff").target_labels(inputs[:6])
    means = inputs[:6].astype(np.float64).mean(axis=(1, 2))
    assert labels.shape == (48, 1) and labels.dtype == np.float32 and raw.shape == (6, 1)
    np.testing.assert_allclose(labels[:6, 0], raw[:, 0] / means, rtol=1e-6)


def test_normalised_labels_lie_between_the_wiener_bounds(inputs: np.ndarray, labels: np.ndarray) -> None:
    maps = inputs.astype(np.float64)
    ratio = 1.0 / np.mean(1.0 / maps, axis=(1, 2)) / maps.mean(axis=(1, 2))
    assert np.all(labels[:, 0] <= 1.0 + 1e-6) and np.all(labels[:, 0] >= ratio * (1 - 1e-6))
    assert labels.min() < 0.5  # high-contrast maps are far from the arithmetic bound


def test_offset_and_error_metric(problem: EffectiveConductivity) -> None:
    assert problem.label_offset().shape == (1,) and problem.label_offset()[0] == 1.0
    assert EffectiveConductivity(label="sigma_eff").label_offset()[0] == 0.0
    errors = problem.errors(np.array([[0.55], [0.2]]), np.array([[0.5], [0.25]]))
    np.testing.assert_allclose(errors, [0.1, 0.2])


def test_signature_names_everything_that_changes_the_data() -> None:
    base = EffectiveConductivity().signature()
    json.dumps(base)
    assert EffectiveConductivity().signature() == base
    variants = [EffectiveConductivity(label="sigma_eff"), EffectiveConductivity(surrogate="bounds"),
                EffectiveConductivity(coarsen=2), EffectiveConductivity(resolution=64)]
    assert all(v.signature() != base for v in variants)
    assert EffectiveConductivity(surrogate="bounds", coarsen=2).signature() == EffectiveConductivity(surrogate="bounds").signature()


@pytest.mark.parametrize("options", [{"label": "dos"}, {"surrogate": "qho"}, {"coarsen": 3}, {"coarsen": 1},
                                     {"resolution": 4}])
def test_bad_options_are_user_errors(options: dict) -> None:
    with pytest.raises(SibclError):
        EffectiveConductivity(**options)


def test_model_specs_are_2d_periodic_and_build(problem: EffectiveConductivity) -> None:
    torch = pytest.importorskip("torch")
    from sibcl_ray.learning.models import SIBCLNet

    for size in ("small", "reference"):
        spec = problem.model_spec(size)
        assert spec.dim == 2 and spec.padding == "circular"
        net = SIBCLNet(spec, problem.label_dim).eval()
        assert net(torch.zeros(2, 32, 32)).shape == (2, 1)
    with pytest.raises(SibclError):
        problem.model_spec("huge")


# --- declared invariances, checked through sibcl_ray's own transforms --------------------------


def test_declared_invariances_are_known_to_the_learning_code() -> None:
    pytest.importorskip("torch")
    from sibcl_ray.learning.transforms import make_augmenter

    assert EffectiveConductivity().invariances == ("translate", "point_group", "scale")
    assert EffectiveConductivity(label="sigma_eff").invariances == ("translate", "point_group")
    for label in ("normalised", "sigma_eff"):
        p = EffectiveConductivity(label=label)
        make_augmenter(p.invariances, 1.0, p.input_range)


@pytest.mark.parametrize("label", ["normalised", "sigma_eff"])
def test_every_point_group_op_with_a_random_shift_is_exact(inputs: np.ndarray, label: str) -> None:
    """All 8 C4v ops (i → n−1−i mirrors, as training applies them), each with a random periodic shift."""
    torch = pytest.importorskip("torch")
    from sibcl_ray.learning.transforms import apply_geometry

    p = EffectiveConductivity(label=label)
    maps = np.repeat(inputs[:2], 8, axis=0)  # 2 maps × 8 ops
    ops = torch.arange(8).repeat(2)
    shifts = torch.randint(-16, 17, (16, 2), generator=torch.Generator().manual_seed(1))
    moved = apply_geometry(torch.from_numpy(maps), ops, shifts).numpy()
    assert not np.array_equal(moved, maps)
    np.testing.assert_allclose(p.target_labels(moved), p.target_labels(maps), rtol=2e-6)


def test_scale_is_exact_for_the_normalised_label_only(inputs: np.ndarray, labels: np.ndarray) -> None:
    """sibcl_ray's ``scale`` transform (on encoded inputs, as in training) leaves σ_eff/⟨σ⟩ alone
    up to float32 rounding, and multiplies σ_eff by the same s: so only the former claims it."""
    torch = pytest.importorskip("torch")
    from sibcl_ray.learning.transforms import random_scale

    p = EffectiveConductivity()
    lo, hi = p.input_range
    maps = inputs[:8]
    encoded = torch.from_numpy((maps - lo) / (hi - lo)).float()
    scaled = (lo + random_scale(1.0, p.input_range)(encoded, torch.Generator().manual_seed(0)).numpy() * (hi - lo))
    factors = scaled.astype(np.float64).mean(axis=(1, 2)) / maps.astype(np.float64).mean(axis=(1, 2))
    assert np.abs(np.log(factors)).max() > 0.1  # the transform really rescaled
    assert scaled.min() >= lo * (1 - 1e-6) and scaled.max() <= hi * (1 + 1e-6)
    np.testing.assert_allclose(p.target_labels(scaled), labels[:8], rtol=1e-5)
    raw = EffectiveConductivity(label="sigma_eff")
    np.testing.assert_allclose(raw.target_labels(scaled)[:, 0], factors * raw.target_labels(maps)[:, 0], rtol=1e-5)


# --- surrogates ---------------------------------------------------------------------------------


def test_coarse_surrogate_is_close(inputs: np.ndarray, labels: np.ndarray) -> None:
    """8×8 geometric-mean solve: r = 0.99 on σ_eff/⟨σ⟩, 2.6% mean error; its cost (~36× cheaper)
    is measured by bench_labels.py, not asserted here (speed lives in benchmarks)."""
    maps = inputs.astype(np.float64)
    cheap = surrogates.coarse_labels(maps, 4) / maps.mean(axis=(1, 2))
    assert np.corrcoef(cheap, labels[:, 0])[0, 1] > 0.97
    assert np.mean(np.abs(cheap - labels[:, 0]) / labels[:, 0]) < 0.05


def test_bounds_surrogate_is_free_and_correlated(inputs: np.ndarray, labels: np.ndarray) -> None:
    maps = inputs.astype(np.float64)
    cheap = surrogates.bounds_labels(maps) / maps.mean(axis=(1, 2))
    assert np.corrcoef(cheap, labels[:, 0])[0, 1] > 0.85
    assert np.mean(np.abs(cheap - labels[:, 0]) / labels[:, 0]) < 0.15


def test_coarse_graining_keeps_point_group_and_block_translations(inputs: np.ndarray) -> None:
    maps = inputs[:2].astype(np.float64)
    base = surrogates.coarse_labels(maps, 4)
    for moved in (maps[:, ::-1, :], np.swapaxes(maps, 1, 2), np.roll(maps, (4, -8), axis=(1, 2))):
        np.testing.assert_allclose(surrogates.coarse_labels(np.ascontiguousarray(moved), 4), base, rtol=1e-9)
    uniform = np.full((1, 32, 32), 5.0)
    np.testing.assert_allclose(surrogates.coarse_grain(uniform, 4), np.full((1, 8, 8), 5.0), rtol=1e-15)
    pair = np.tile(np.array([[1.0, 100.0], [100.0, 1.0]]), (4, 4))[None]  # 2×2 checkerboard blocks
    np.testing.assert_allclose(surrogates.coarse_grain(pair, 2), np.full((1, 4, 4), 10.0), rtol=1e-12)


@pytest.mark.parametrize("surrogate", ["coarse", "bounds"])
def test_surrogate_samples_look_like_targets(surrogate: str) -> None:
    p = EffectiveConductivity(surrogate=surrogate)
    x, y = p.surrogate_samples(np.random.default_rng(11), 6)
    assert x.shape == (6, 32, 32) and x.dtype == np.float32 and y.shape == (6, 1) and y.dtype == np.float32
    assert np.all(np.isfinite(y)) and np.all(y > 0) and np.all(y <= 1.0 + 1e-6)


# --- the plugin ---------------------------------------------------------------------------------


def test_entry_point_names_this_class() -> None:
    from importlib.metadata import PackageNotFoundError, distribution, entry_points

    try:
        distribution("sibcl-composite")
    except PackageNotFoundError:
        pytest.skip("sibcl-composite is not installed (pip install -e examples/sibcl-composite)")
    found = {ep.name: ep for ep in entry_points(group="sibcl_ray.problems")}
    assert "composite" in found and found["composite"].load() is EffectiveConductivity


def test_sibcl_ray_finds_the_plugin_by_name() -> None:
    from sibcl_ray.problems import get_problem

    p = get_problem("composite", label="sigma_eff")
    assert isinstance(p, EffectiveConductivity) and p.label == "sigma_eff"
