"""The label-efficiency benchmark: test error against labels, per method, in one harness.

``cli`` is ``python -m sibcl_ray.benchmark`` (flags, checks before Ray), ``run`` the Ray
orchestration (pretraining runs, then fine-tuning cells as Ray tasks, resumable), ``report``
the tables, label savings and plot from finished cells. As ``search/`` is for ``tune``.

    python -m sibcl_ray.benchmark --problem phc --preset quick --methods sibcl,sl
"""

from sibcl_ray.benchmark.cli import Cell, load_hparams, main
from sibcl_ray.benchmark.report import aggregate, label_savings, write_report

__all__ = ["Cell", "aggregate", "label_savings", "load_hparams", "main", "write_report"]
