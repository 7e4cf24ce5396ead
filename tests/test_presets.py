"""Run sizes: the built-in presets, a problem's departures, preset files (checked like search
spaces) and the run_config.yaml a run writes, which repeats it exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sibcl_ray.errors import SibclError
from sibcl_ray.presets import PRESETS, Preset, get_preset, load_preset_file, write_run_config
from sibcl_ray.problems import available_problems


def test_a_problem_departs_from_a_built_in_preset() -> None:
    assert get_preset("quick").n_unlabeled == 2000
    assert get_preset("quick", problem="tise").n_unlabeled == 800  # 3D inputs cost ~30× a 2D cell
    assert get_preset("quick", problem="phc", nsam=200).nsam == 200


def test_a_preset_file_changes_what_it_names_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "laptop-big.yaml"
    path.write_text("base: smoke\nn_unlabeled: 300\nbench_nsam: [10, 20]\npretrain_steps: 7\n")
    preset = get_preset(str(path), problem="phc")
    assert (preset.name, preset.n_unlabeled, preset.bench_nsam, preset.pretrain_steps) == ("laptop-big", 300, (10, 20), 7)
    assert preset.n_surrogate == PRESETS["smoke"].n_surrogate and preset.model_size == "small"


@pytest.mark.parametrize("problem", list(available_problems()))
@pytest.mark.parametrize("name", list(PRESETS))
def test_run_config_repeats_the_run_exactly(tmp_path: Path, name: str, problem: str) -> None:
    resolved = get_preset(name, problem=problem)
    write_run_config(resolved, tmp_path / "run_config.yaml")
    assert get_preset(str(tmp_path / "run_config.yaml"), problem=problem) == resolved


@pytest.mark.parametrize("text, message", [
    ("n_unlabeld: 3\n", "unknown key 'n_unlabeld'; allowed: base, name, n_unlabeled"),
    ("base: huge\n", "base 'huge' is not a preset; allowed: smoke, quick, curve, paper"),
    ("n_val: -1\n", "n_val -1 must be an integer ≥ 1"),
    ("n_val: 2.5\n", "n_val 2.5 must be an integer ≥ 1"),
    ("n_val: true\n", "n_val True must be an integer ≥ 1"),
    ("reduction_factor: 1\n", "reduction_factor 1 must be an integer ≥ 2"),
    ("pretrain_steps: 0\n", "pretrain_steps 0 must be an integer ≥ 1 or null"),
    ("model_size: huge\n", "model_size 'huge' is not allowed; allowed: small, medium, reference"),
    ("bench_nsam: []\n", "bench_nsam [] must be a non-empty list of integers ≥ 1"),
    ("name: 'a b'\n", "name 'a b' may hold letters, digits"),
    ("- 1\n", "must be a mapping of preset fields"),
    ("n_val: [\n", "not valid YAML"),
])
def test_a_malformed_preset_file_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sizes.yaml"
    path.write_text(text)
    with pytest.raises(SibclError) as info:
        load_preset_file(path)
    assert message in str(info.value) and str(info.value).startswith(f"--preset {path}") and "\n" not in str(info.value)


_VALUES = st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True) | st.text(max_size=6) | \
    st.lists(st.integers(-3, 100) | st.text(max_size=3), max_size=3)
_KEYS = st.sampled_from(["base", "name", *Preset.__dataclass_fields__]) | st.text(max_size=6)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=st.dictionaries(_KEYS, _VALUES, max_size=6))
def test_any_yaml_mapping_is_a_preset_or_one_line(tmp_path: Path, document: dict) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    try:
        preset = get_preset(str(path))
    except SibclError as err:
        assert str(err).startswith("--") and "\n" not in str(err), str(err)
        return
    assert isinstance(preset, Preset) and 1 <= preset.nsam <= preset.n_train_pool
