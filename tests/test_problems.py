"""The problem interface: shapes, offsets, metrics and declared invariances of each problem."""

from __future__ import annotations

import numpy as np
import pytest

from sibcl_ray.errors import SibclError
from sibcl_ray.physics import photonic, schrodinger
from sibcl_ray.problems import get_problem


def test_phc_dos_problem() -> None:
    problem = get_problem("phc")
    rng = np.random.default_rng(0)
    x = problem.target_inputs(rng, 2)
    y = problem.target_labels(x)
    assert x.shape == (2, 32, 32) and y.shape == (2, 400) and x.dtype == np.float32
    assert problem.invariances == ("translate", "point_group", "scale")
    # the offset is the exact empty-lattice DOS, so a uniform cell's label minus the offset is ~0
    uniform = np.full((1, 32, 32), 7.0, np.float32)
    deviation = problem.target_labels(uniform) - problem.label_offset()
    assert np.abs(deviation[:, photonic.METRIC_MASK]).sum() < 0.01 * np.abs(problem.label_offset()[photonic.METRIC_MASK]).sum()
    assert np.allclose(problem.errors(y, y), 0)
    assert np.allclose(problem.errors(2 * y, y), 1)  # relative L1 over the metric's points
    xs, ys = problem.surrogate_samples(rng, 2)
    assert xs.shape == (2, 32, 32) and ys.shape == (2, 400)
    assert all(len(np.unique(c)) <= 2 for c in xs)  # a rod and its background


def test_phc_bands_problem_declares_only_translations() -> None:
    problem = get_problem("phc", label="bands")
    assert problem.invariances == ("translate",) and problem.label_dim == 6 * 625
    x = problem.target_inputs(np.random.default_rng(1), 1)
    y = problem.target_labels(x)
    assert y.shape == (1, 3750) and np.isclose(y.min(), 0, atol=1e-9)  # ω = 0 at Γ
    assert np.isfinite(problem.errors(1.1 * y, y)).all() and np.allclose(problem.errors(1.1 * y, y), 0.1, rtol=1e-5)
    assert problem.signature() != get_problem("phc").signature()


@pytest.mark.parametrize("dim", [2, 3])
def test_tise_problem(dim: int) -> None:
    problem = get_problem("tise", dim=dim)
    assert problem.invariances == ("point_group",) and problem.input_shape == (32,) * dim
    assert np.isclose(problem.label_offset()[0], schrodinger.box_energy(dim))
    rng = np.random.default_rng(2)
    x = problem.target_inputs(rng, 2)
    y = problem.target_labels(x)
    assert y.shape == (2, 1) and (y[:, 0] > problem.label_offset()[0]).all()  # a potential ≥ 0 raises E0
    xs, ys = problem.surrogate_samples(rng, 2)
    assert xs.shape == x.shape and np.all(np.abs(ys - y.mean()) < 5)
    assert np.allclose(problem.errors(1.05 * y, y), 0.05, rtol=1e-5)
    qho = get_problem("tise", dim=dim, surrogate="qho")
    vs, es = qho.surrogate_samples(rng, 2)
    assert vs.max() <= 1.0 + 1e-6 and es.shape == (2, 1) and qho.signature() != problem.signature()


def test_problem_options_are_checked() -> None:
    with pytest.raises(SibclError, match="--dim 1 is not supported"):
        get_problem("tise", dim=1)
    with pytest.raises(SibclError, match="unknown problem 'maxwell'"):
        get_problem("maxwell")


@pytest.mark.parametrize("name, options", [("phc", {}), ("phc", {"label": "bands"}), ("tise", {"dim": 2}),
                                           ("tise", {"dim": 3})])
def test_every_problem_names_its_label_for_files_and_plots(name: str, options: dict) -> None:
    """CSV columns, the label axis and the embedding's colour scalar fit the label's shape."""
    problem = get_problem(name, **options)
    columns = problem.label_columns()
    assert len(columns) == problem.label_dim and len(set(columns)) == len(columns)
    axis = problem.label_axis()
    assert axis is None or len(axis[1]) == problem.label_dim
    labels = np.random.default_rng(0).normal(size=(7, problem.label_dim)).astype(np.float32)
    scalar_name, scalar = problem.label_scalar(labels)
    assert scalar.shape == (7,) and scalar_name
    if problem.label_dim == 1:
        assert columns == ["E0"] and np.array_equal(scalar, labels[:, 0])
