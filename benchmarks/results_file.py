"""Where every benchmark script records its figures: one JSON file that also says what machine
and which library versions produced them (BENCHMARKS.md quotes these files)."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

#: Libraries whose versions are recorded when the benchmark has imported them (nothing is imported here).
_LIBRARIES = ("numpy", "scipy", "torch", "ray", "optuna", "pyarrow")
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def machine() -> dict[str, Any]:
    """CPU model and count, OS, Python, the versions of the loaded libraries and thread limits."""
    cpuinfo = Path("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
              if line.startswith("model name")] if cpuinfo.exists() else []
    return {"cpu": models[0] if models else platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "libraries": {name: getattr(sys.modules[name], "__version__", "?") for name in _LIBRARIES if name in sys.modules},
            "thread_limits": {name: os.environ[name] for name in _THREAD_VARIABLES if name in os.environ}}


def write_results(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` plus the machine description to ``path`` (folders created) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=1))
    print(f"wrote {path}")
