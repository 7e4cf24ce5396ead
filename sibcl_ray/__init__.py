"""sibcl_ray: SIB-CL (surrogate- and invariance-boosted contrastive learning) on Ray.

Layers, each importable without the ones below it:
- ``physics``: input generators and eigensolvers (NumPy/SciPy only);
- ``problems``: what a problem is (inputs, labels, errors, invariances), NumPy only;
- ``data``: Parquet shards, manifests and resumable Ray label generation;
- ``learning``: torch losses, batched invariance transforms and models;
- ``train``: the Ray Train loop and checkpoints;
- ``search``: search spaces and the Ray Tune driver;
- ``predictor``: a trained model folder loaded for predictions (torch only, no Ray).

``tests/test_layers.py`` holds the whole order, module by module, and fails on an import back up
or a circle.

Use a trained model::

    >>> import sibcl_ray
    >>> predictor = sibcl_ray.load_model("sibcl_runs/phc-quick/model")  # doctest: +SKIP
    >>> predictor.predict(cells).shape                                  # doctest: +SKIP
    (N, 400)
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_model", "__version__"]


def __getattr__(name: str) -> Any:
    """``load_model`` on first use, so ``import sibcl_ray`` stays free of torch."""
    if name == "load_model":
        from sibcl_ray.predictor import load_model

        return load_model
    raise AttributeError(f"module 'sibcl_ray' has no attribute {name!r}")
