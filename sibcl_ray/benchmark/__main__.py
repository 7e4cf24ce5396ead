"""``python -m sibcl_ray.benchmark``: the label-efficiency benchmark (``benchmark.cli``)."""

import sys

from sibcl_ray.benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
