"""sibcl-composite: a sibcl_ray problem plugin, the effective conductivity of a random periodic two-phase composite.

Installing this package registers ``composite`` in the ``sibcl_ray.problems`` entry-point
group, so ``python -m sibcl_ray.tune --problem composite`` finds it. The physics modules
(``microstructure``, ``homogenise``, ``bounds``, ``surrogates``) are NumPy only; ``problem``
adapts them to sibcl_ray's :class:`~sibcl_ray.problems.base.Problem`.
"""

from sibcl_composite.problem import EffectiveConductivity

__version__ = "0.1.0"
__all__ = ["EffectiveConductivity", "__version__"]
