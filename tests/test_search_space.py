"""Search-space files: the packaged ones load, malformed ones are refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ray import tune

from sibcl_ray.errors import SearchSpaceError
from sibcl_ray.search.space import (default_space_path, load_space, read_search_file, reference_point, starting_points,
                                   to_tune, within)
from sibcl_ray.train.hparams import HPARAMS


@pytest.mark.parametrize("problem", ["phc", "tise"])
def test_packaged_spaces_cover_the_reference(problem: str) -> None:
    space = load_space(default_space_path(problem))
    for key in ("temperature", "aug_strength", "mix_ratio", "lr_pretrain", "lr_finetune"):
        assert isinstance(space[key], dict), key
    reference = {"temperature": 0.1, "aug_strength": 1.0, "mix_ratio": 1 / 3, "lr_pretrain": 1e-4,
                 "lr_finetune": 1e-3, "batch_size": space["batch_size"]["values"][0], "finetune_batch_size": 32,
                 "multifidelity": False}  # the reference learns without the cheap label
    assert within(space, reference)
    assert isinstance(to_tune(space)["temperature"], tune.search.sample.Float)


@pytest.mark.parametrize(
    "text, message",
    [
        ("temprature: 0.1\n", "key 'temprature': unknown parameter; allowed: temperature"),
        ("temperature: {type: gaussian, low: 0.1, high: 1}\n", "type 'gaussian' is not a distribution"),
        ("temperature: {type: uniform, low: 1.0, high: 0.1}\n", "low 1.0 must be below high 0.1"),
        ("temperature: {type: loguniform, low: 0.0, high: 1}\n", "outside the allowed range"),
        ("temperature: {type: uniform, low: a, high: 1}\n", "low 'a' is not a number"),
        ("batch_size: {type: choice, values: [32, 12.5]}\n", "choice value 12.5 is not an integer"),
        ("batch_size: {type: choice, values: []}\n", "non-empty list"),
        ("aug_strength: {type: uniform, low: 0.0, high: 2.0}\n", "high 2.0 is outside the allowed range [0.0, 1.0]"),
        ("temperature: {type: uniform, low: 0.1}\n", "missing 'high'"),
        ("temperature: {type: uniform, low: 0.1, high: 0.5, step: 2}\n", "unexpected 'step'"),
        ("mix_ratio: {type: randint, low: 0, high: 1}\n", "randint is for integer parameters"),
        ("- temperature\n", "must be a non-empty mapping"),
        ("temperature: [1, 2\n", "not valid YAML"),
        ("mix_ratio: true\n", "value True is not a number"),
    ],
)
def test_malformed_space_is_refused_with_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(SearchSpaceError) as info:
        load_space(path)
    assert message in str(info.value)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SearchSpaceError, match="no such file"):
        load_space(tmp_path / "nope.yaml")


def test_every_hparam_has_a_default_inside_its_range() -> None:
    for name, (default, kind, low, high) in HPARAMS.items():
        assert isinstance(default, kind) and low <= default <= high, name


def test_reference_settings_are_the_first_starting_point_then_the_file_s(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(default_space_path("phc").read_text() + "start:\n  - {temperature: 0.3, batch_size: 128}\n")
    space, start = read_search_file(path)
    reference, outside = reference_point(space)
    assert outside is None and reference["temperature"] == 0.1 and reference["batch_size"] == 96
    assert start == [{**reference, "temperature": 0.3, "batch_size": 128}]  # left-out keys take the reference
    assert starting_points(space, start) == [reference, start[0]]
    assert starting_points(space, [reference]) == [reference]  # no repeats


def test_reference_outside_the_space_is_not_a_starting_point(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("temperature: {type: loguniform, low: 0.2, high: 1.0}\nmix_ratio: 0.3\n")
    space, start = read_search_file(path)
    assert reference_point(space) == (None, "temperature") and starting_points(space, start) == []


@pytest.mark.parametrize(
    "text, message",
    [
        ("start: {temperature: 0.2}\n", "'start' must be a list of configurations"),
        ("start: [0.2]\n", "start entry 1: must be a non-empty mapping"),
        ("start: [{temprature: 0.2}]\n", "start entry 1: key 'temprature' is not a parameter of this space"),
        ("start: [{finetune_batch_size: 16}]\n", "start entry 1: key 'finetune_batch_size' is the constant 32"),
        ("start: [{temperature: 0.2}, {temperature: 5.0}]\n", "start entry 2: key 'temperature': value 5.0 is not inside loguniform [0.03, 1.0]"),
        ("start: [{batch_size: 100}]\n", "start entry 1: key 'batch_size': value 100 is not inside choice [64, 96, 128]"),
        ("start: [{temperature: low}]\n", "key 'temperature': value 'low' is not inside"),
    ],
)
def test_malformed_start_entry_is_refused_with_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("temperature: {type: loguniform, low: 0.03, high: 1.0}\n"
                    "batch_size: {type: choice, values: [64, 96, 128]}\nfinetune_batch_size: 32\n" + text)
    with pytest.raises(SearchSpaceError) as info:
        read_search_file(path)
    assert message in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


_KEYS = st.sampled_from([*HPARAMS, "start", "type", "low", "high", "values", "uniform", "choice", "loguniform"]) | st.text(max_size=8) | st.integers(-3, 3)
_SCALARS = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
            | st.text(max_size=8) | st.sampled_from(["uniform", "loguniform", "randint", "lograndint", "choice"]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
                       max_leaves=12)

#: Entries shaped like the real thing (a distribution's keys, plus stray ones) reach the deeper checks.
_ENTRIES = _SCALARS | st.builds(lambda base, extra: {**extra, **base},
                                st.fixed_dictionaries({"type": st.sampled_from(["uniform", "loguniform", "randint",
                                                                                "lograndint", "choice", "normal"])},
                                                      optional={"low": _SCALARS, "high": _SCALARS,
                                                                "values": st.lists(_SCALARS, max_size=4) | _SCALARS}),
                                st.dictionaries(_KEYS, _SCALARS, max_size=2))
_SHAPED = st.builds(lambda space, start: {**space, **({"start": start} if start is not None else {})},
                    st.dictionaries(st.sampled_from(list(HPARAMS)), _ENTRIES, max_size=4),
                    st.none() | st.lists(st.dictionaries(st.sampled_from(list(HPARAMS)) | _KEYS, _SCALARS, max_size=3),
                                         max_size=3) | _SCALARS)


def _assert_one_line_or_valid(path: Path) -> None:
    """The property: a search file either loads into a usable space or is refused with one line."""
    try:
        space, start = read_search_file(path)
    except SearchSpaceError as err:
        message = str(err)
        assert message.startswith(f"search space {path}") and "\n" not in message, message
        return
    to_tune(space)
    for point in starting_points(space, start):
        assert within(space, point), point


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=st.dictionaries(_KEYS, _VALUES, max_size=5) | _SHAPED)
def test_any_yaml_mapping_loads_or_is_one_line(tmp_path: Path, document: dict) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    _assert_one_line_or_valid(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60) | st.sampled_from(["temperature: {type: uniform, low: 0.1, high: [", "? [a, b]\n: 1\n",
                                                    "&a [*a]", "temperature: !!python/object:os.system x\n"]))
def test_any_text_loads_or_is_one_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    _assert_one_line_or_valid(path)
