"""`sibcl_ray.pictures`: the PNGs a person looks at, drawn from arrays for each kind of label."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from sibcl_ray.pictures import plot_embedding, plot_test_predictions, principal_components, write_model_pictures
from sibcl_ray.problems import get_problem


def _colours(path: Path) -> int:
    pixels = matplotlib.image.imread(path)
    return len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0))


@pytest.mark.parametrize("name, options", [("phc", {}), ("tise", {"dim": 2})])
def test_both_pictures_are_drawn_for_vector_and_scalar_labels(tmp_path: Path, name: str, options: dict) -> None:
    problem = get_problem(name, **options)
    rng = np.random.default_rng(0)
    true = problem.label_offset() + rng.uniform(0.1, 1.0, size=(40, problem.label_dim)).astype(np.float32)
    predicted = true * rng.uniform(0.9, 1.1, size=true.shape).astype(np.float32)
    arrays = {"test_predicted": predicted, "test_true": true, "test_errors": problem.errors(predicted, true),
              "val_features": rng.normal(size=(30, 16)), "val_scalar": rng.uniform(size=30), "val_scalar_name": "E0"}
    written = write_model_pictures(problem, arrays, tmp_path / "pictures", "a test model")
    assert [p.name for p in written] == ["test_predictions.png", "embedding.png"]
    for path in written:
        assert path.stat().st_size > 10_000 and _colours(path) > 50


def test_principal_components_recover_a_planted_direction() -> None:
    rng = np.random.default_rng(1)
    direction = np.zeros(8)
    direction[3] = 1.0
    features = rng.normal(size=(500, 1)) * 10 * direction + rng.normal(size=(500, 8)) * 0.1
    coords, share = principal_components(features)
    assert coords.shape == (500, 2) and share[0] > 0.95 and share[0] + share[1] <= 1.0
    np.testing.assert_allclose(np.abs(coords[:, 0]), np.abs(features[:, 3] - features[:, 3].mean()), atol=0.5)


def test_single_pictures_accept_the_problem_and_paths(tmp_path: Path) -> None:
    problem = get_problem("phc", label="bands")  # a vector label without a physical axis: plotted by component
    true = np.abs(np.random.default_rng(2).normal(size=(5, problem.label_dim))).astype(np.float32) + 0.1
    assert plot_test_predictions(problem, true * 1.05, true, tmp_path / "bands.png").stat().st_size > 10_000
    assert plot_embedding(np.random.default_rng(3).normal(size=(20, 4)), np.arange(20.0), "index",
                          tmp_path / "emb.png", "random").stat().st_size > 10_000
