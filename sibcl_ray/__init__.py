"""sibcl_ray: SIB-CL (surrogate- and invariance-boosted contrastive learning) on Ray.

Layers, each importable without the ones below it:
- ``physics``: input generators and eigensolvers (NumPy/SciPy only);
- ``problems``: what a problem is (inputs, labels, errors, invariances), NumPy only;
- ``data``: Parquet shards, manifests and resumable Ray label generation;
- ``learning``: torch losses, batched invariance transforms and models;
- ``train``: the Ray Train loop and checkpoints;
- ``search``: search spaces and the Ray Tune driver.
"""

__version__ = "0.1.0"
