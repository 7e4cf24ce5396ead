"""Search-space files (``search_spaces/<problem>.yaml``): parsing and validation.

A file maps hyperparameter names (``train.hparams.HPARAMS``) to either a constant or a
distribution::

    temperature: {type: loguniform, low: 0.02, high: 1.0}
    batch_size: {type: choice, values: [64, 96, 128]}
    finetune_batch_size: 32
    start:                      # optional: configurations the search tries first
      - {temperature: 0.2, batch_size: 128}

The search always starts from the reference settings (``train.hparams`` defaults) when
they lie inside the space, so it cannot end worse on validation than not searching; the
``start`` entries come next (a parameter an entry leaves out takes its reference value).
Everything is checked before Ray starts; a malformed file is refused with one line naming
the file, the key and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sibcl_ray.errors import SearchSpaceError
from sibcl_ray.train.hparams import HPARAMS, with_defaults

#: The key of a search-space file that lists starting configurations instead of a parameter.
START_KEY = "start"

#: distribution type → the keys it takes.
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "uniform": ("low", "high"),
    "loguniform": ("low", "high"),
    "randint": ("low", "high"),
    "lograndint": ("low", "high"),
    "choice": ("values",),
}


def default_space_path(problem: str) -> Path:
    """The search space of a problem without ``--search-space`` (``Problem.search_space_path``)."""
    from sibcl_ray.problems import problem_class

    return problem_class(problem).search_space_path()


def load_space(path: Path) -> dict[str, Any]:
    """The validated search space in ``path``: name → constant or ``{type, …}`` mapping."""
    return read_search_file(path)[0]


def read_search_file(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The validated space in ``path`` and its ``start`` configurations (complete, in the space)."""
    path = Path(path)
    if not path.is_file():
        raise SearchSpaceError(f"search space {path}: no such file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SearchSpaceError(f"search space {path}: not valid YAML{where}") from None
    if not isinstance(raw, dict) or not raw:
        raise SearchSpaceError(f"search space {path}: must be a non-empty mapping of parameter names")
    start = raw.pop(START_KEY, [])
    if not raw:
        raise SearchSpaceError(f"search space {path}: names no parameter, only {START_KEY!r}")
    space = {str(key): _check_entry(path, str(key), value) for key, value in raw.items()}
    return space, _check_start(path, space, start)


def _check_start(path: Path, space: dict[str, Any], start: Any) -> list[dict[str, Any]]:
    """``start:`` as complete configurations of the searched parameters, each inside the space."""
    if start is None:
        return []
    if not isinstance(start, list):
        raise SearchSpaceError(f"search space {path}: {START_KEY!r} must be a list of configurations "
                               "(mappings of parameter names to values)")
    searched = [k for k, v in space.items() if isinstance(v, dict)]
    reference = with_defaults({})
    points = []
    for number, entry in enumerate(start, 1):
        where = f"search space {path}: {START_KEY} entry {number}"
        if not isinstance(entry, dict) or not entry:
            raise SearchSpaceError(f"{where}: must be a non-empty mapping of parameter names to values")
        for key, value in entry.items():
            if key not in space:
                raise SearchSpaceError(f"{where}: key {key!r} is not a parameter of this space; "
                                       f"allowed: {', '.join(searched)}")
            if not isinstance(space[key], dict):
                raise SearchSpaceError(f"{where}: key {key!r} is the constant {space[key]!r} in this space, not searched")
            switch = HPARAMS[key][1] is bool
            if (isinstance(value, bool) != switch or not isinstance(value, (int, float))
                    or not within({key: space[key]}, {key: value})):
                raise SearchSpaceError(f"{where}: key {key!r}: value {value!r} is not inside {_describe(space[key])}")
        point = {}
        for key in searched:
            value = entry.get(key, reference[key])
            if key not in entry and not within({key: space[key]}, {key: value}):
                raise SearchSpaceError(f"{where}: key {key!r} is missing and its reference value {value!r} is not "
                                       f"inside {_describe(space[key])}; give it")
            point[key] = HPARAMS[key][1](value)
        points.append(point)
    return points


def _describe(spec: dict[str, Any]) -> str:
    if spec["type"] == "choice":
        return f"choice {spec['values']}"
    return f"{spec['type']} [{spec['low']}, {spec['high']}]"


def reference_point(space: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The reference settings as a point of ``space`` (searched keys only), or (None, the first
    searched key whose reference value lies outside the space)."""
    reference = with_defaults({})
    point = {}
    for key, spec in space.items():
        if isinstance(spec, dict):
            if not within({key: spec}, {key: reference[key]}):
                return None, key
            point[key] = reference[key]
    return point, None


def starting_points(space: dict[str, Any], start: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the search evaluates first: the reference settings (when inside the space), then
    the file's ``start`` entries, without repeats."""
    reference, _ = reference_point(space)
    points: list[dict[str, Any]] = []
    for point in ([reference] if reference else []) + start:
        if point and point not in points:
            points.append(point)
    return points


def _check_entry(path: Path, key: str, value: Any) -> Any:
    def fail(message: str) -> SearchSpaceError:
        return SearchSpaceError(f"search space {path}: key {key!r}: {message}")

    if key not in HPARAMS:
        raise fail(f"unknown parameter; allowed: {', '.join(HPARAMS)}")
    _, kind, lo, hi = HPARAMS[key]
    if kind is bool:
        return _check_switch(value, fail)

    def check_value(v: Any, what: str) -> None:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not float(v).is_integer()):
            raise fail(f"{what} {v!r} is not {'an integer' if kind is int else 'a number'}")
        if not lo <= v <= hi:
            raise fail(f"{what} {v!r} is outside the allowed range [{lo}, {hi}]")

    if not isinstance(value, dict):
        check_value(value, "value")
        return kind(value)
    dist = value.get("type")
    if not isinstance(dist, str) or dist not in DISTRIBUTIONS:
        raise fail(f"type {dist!r} is not a distribution; allowed: {', '.join(DISTRIBUTIONS)}")
    extra = set(value) - {"type", *DISTRIBUTIONS[dist]}
    missing = [k for k in DISTRIBUTIONS[dist] if k not in value]
    if extra or missing:
        raise fail(f"{dist} takes {', '.join(DISTRIBUTIONS[dist])}" + (f"; unexpected {sorted(extra, key=str)[0]!r}" if extra else f"; missing {missing[0]!r}"))
    if dist == "choice":
        values = value["values"]
        if not isinstance(values, list) or not values:
            raise fail("choice values must be a non-empty list")
        for v in values:
            check_value(v, "choice value")
        return {"type": dist, "values": [kind(v) for v in values]}
    if dist in ("randint", "lograndint") and kind is not int:
        raise fail(f"{dist} is for integer parameters; use uniform or loguniform")
    for bound in ("low", "high"):
        check_value(value[bound], bound)
    if not value["low"] < value["high"]:
        raise fail(f"low {value['low']} must be below high {value['high']}")
    if dist.startswith("log") and value["low"] <= 0:
        raise fail(f"{dist} needs low > 0, got {value['low']}")
    return {"type": dist, "low": kind(value["low"]), "high": kind(value["high"])}


def _check_switch(value: Any, fail: Any) -> Any:
    """An on/off parameter (``multifidelity``): true, false, or {type: choice, values: [false, true]}."""
    if isinstance(value, bool):
        return value
    if isinstance(value, dict) and value.get("type") == "choice" and set(value) == {"type", "values"} \
            and isinstance(value["values"], list) and value["values"] and all(isinstance(v, bool) for v in value["values"]):
        return {"type": "choice", "values": list(value["values"])}
    raise fail(f"{value!r} is not true, false or {{type: choice, values: [false, true]}}")


def to_tune(space: dict[str, Any]) -> dict[str, Any]:
    """Ray Tune's search-space objects for a validated space (constants stay constants)."""
    from ray import tune  # here, not at import: argument errors should not wait for Tune to load

    out: dict[str, Any] = {}
    for key, spec in space.items():
        if not isinstance(spec, dict):
            out[key] = spec
        elif spec["type"] == "choice":
            out[key] = tune.choice(spec["values"])
        elif spec["type"] in ("randint", "lograndint"):  # Tune's upper bound is exclusive
            out[key] = getattr(tune, spec["type"])(spec["low"], spec["high"] + 1)
        else:
            out[key] = getattr(tune, spec["type"])(spec["low"], spec["high"])
    return out


def within(space: dict[str, Any], config: dict[str, Any]) -> bool:
    """Whether every searched value of ``config`` lies inside ``space`` (used by tests and checks)."""
    for key, spec in space.items():
        v = config[key]
        if not isinstance(spec, dict):
            ok = v == spec
        elif spec["type"] == "choice":
            ok = v in spec["values"]
        else:
            ok = spec["low"] <= v <= spec["high"]
        if not ok:
            return False
    return True


def check_batches_split(space: dict[str, Any], workers: int, flag: str) -> None:
    """Refuse batch sizes that do not split evenly over ``workers`` DDP ranks (batch sizes are
    global); a batch size the space leaves out takes its reference value."""
    if workers <= 1:
        return
    reference = with_defaults({})
    for key in ("batch_size", "finetune_batch_size"):
        spec = space.get(key, reference[key])
        if isinstance(spec, dict) and spec["type"] != "choice":
            raise SearchSpaceError(f"{flag} {workers}: {key} is a range ({spec['type']}); with several workers give "
                                   f"a choice of batch sizes divisible by {workers}")
        values = spec["values"] if isinstance(spec, dict) else [spec]
        bad = [v for v in values if int(v) % workers]
        if bad:
            raise SearchSpaceError(f"{flag} {workers}: {key} {bad[0]} does not split evenly across {workers} workers "
                                   f"(batch sizes are global); use batch sizes divisible by {workers}")
