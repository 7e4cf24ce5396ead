"""Problems: the interface (``base``), the built-ins (``phc``, ``tise``) and the registry that
finds them and installed plugins by name (``registry``)."""

from __future__ import annotations

from sibcl_ray.problems.base import MODEL_SIZES, ModelSpec, Problem, ProblemOption
from sibcl_ray.problems.registry import (ENTRY_POINT_GROUP, available_problems, get_problem, problem_class,
                                        require_cheap_label)

__all__ = ["ENTRY_POINT_GROUP", "MODEL_SIZES", "ModelSpec", "Problem", "ProblemOption", "available_problems", "get_problem",
           "problem_class", "require_cheap_label"]
