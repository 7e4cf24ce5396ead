"""Registry of problems by name; the one place that maps a CLI value to a problem."""

from __future__ import annotations

from typing import Any, Callable

from sibcl_ray.errors import SibclError
from sibcl_ray.problems.base import ModelSpec, Problem


def _phc(**options: Any) -> Problem:
    from sibcl_ray.problems.phc import PhotonicCrystalDOS

    return PhotonicCrystalDOS(**options)


def _tise(**options: Any) -> Problem:
    from sibcl_ray.problems.tise import GroundStateEnergy

    return GroundStateEnergy(**options)


PROBLEMS: dict[str, Callable[..., Problem]] = {"phc": _phc, "tise": _tise}


def get_problem(name: str, **options: Any) -> Problem:
    """The problem called ``name``, built with its ``options`` (e.g. ``dim=2`` for tise)."""
    if name not in PROBLEMS:
        raise SibclError(f"unknown problem {name!r}: allowed values are {', '.join(sorted(PROBLEMS))}")
    return PROBLEMS[name](**options)


__all__ = ["PROBLEMS", "ModelSpec", "Problem", "get_problem"]
