"""Finding a problem by name: the built-ins, installed plugins, or ``package.module:Class``.

A plugin is any installed package that lists its :class:`~sibcl_ray.problems.base.Problem`
subclass under the entry-point group ``sibcl_ray.problems`` (its ``pyproject.toml``:
``[project.entry-points."sibcl_ray.problems"] composite = "sibcl_composite:EffectiveConductivity"``).
Every Ray worker resolves the same name the same way, so a plugin needs nothing else.

    >>> from sibcl_ray.problems.registry import available_problems, get_problem
    >>> "phc" in available_problems()
    True
    >>> get_problem("tise", dim=2).input_shape
    (32, 32)
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from sibcl_ray.errors import SibclError
from sibcl_ray.problems.base import Problem

#: Entry-point group under which installed packages register problems.
ENTRY_POINT_GROUP = "sibcl_ray.problems"
#: The problems that ship with sibcl_ray, as ``module:Class`` (imported only when used).
BUILT_IN = {"phc": "sibcl_ray.problems.phc:PhotonicCrystalDOS", "tise": "sibcl_ray.problems.tise:GroundStateEnergy"}


def _plugins() -> dict[str, str]:
    """Installed plugins: name → ``module:Class``; a built-in name cannot be taken over."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in BUILT_IN}


def available_problems() -> dict[str, str]:
    """Every problem that ``--problem`` accepts by name, built-ins first: name → ``module:Class``."""
    return {**BUILT_IN, **dict(sorted(_plugins().items()))}


def problem_class(name: str) -> type[Problem]:
    """The class behind ``name``: a registered name, or ``package.module:Class``."""
    target = available_problems().get(name)
    if target is None and ":" not in name:
        raise SibclError(f"unknown problem {name!r}: allowed values are {', '.join(available_problems())}, "
                         "or package.module:Class")
    module_name, _, class_name = (target or name).partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise SibclError(f"problem {name!r}: cannot load {module_name}:{class_name} ({err})") from None
    if not (isinstance(cls, type) and issubclass(cls, Problem)):
        raise SibclError(f"problem {name!r}: {module_name}:{class_name} is not a sibcl_ray.problems.Problem subclass")
    return cls


def get_problem(name: str, **options: Any) -> Problem:
    """The problem called ``name``, built with its ``options`` (e.g. ``dim=2`` for tise)."""
    return problem_class(name)(**options)


def require_cheap_label(name: str, what: str, plain: str | None = None) -> None:
    """Refuse ``what`` (a ``-mf`` method, the ``multifidelity`` knob) in one line (``SibclError``)
    unless problem ``name`` declares a per-input cheap label (``Problem.cheap_label``); ``plain``
    names what to use instead."""
    if problem_class(name).cheap_label is not None:
        return
    having = [n for n in available_problems() if _has_cheap_label(n)]
    instead = f"use {plain}, or " if plain else "use "
    raise SibclError(f"{what} needs a per-input cheap label and problem {name!r} declares none: {instead}a problem "
                     f"that has one ({', '.join(having) or 'none installed'})")


def _has_cheap_label(name: str) -> bool:
    try:
        return problem_class(name).cheap_label is not None
    except SibclError:  # a plugin that fails to load does not decide this message
        return False
