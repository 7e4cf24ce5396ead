"""Where a result came from: seed, command line, package versions and git commit.

A number in ``summary.json`` or a ``model.json`` is only worth keeping if it can be rerun;
these are the facts a rerun needs and that nothing else records. No Ray or torch import:
versions are read from the installed distributions' metadata.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: The distributions whose versions decide a result.
PACKAGES = ("sibcl_ray", "torch", "ray", "optuna", "numpy", "scipy", "pyarrow")


def package_versions() -> dict[str, str | None]:
    """Installed version of each of :data:`PACKAGES` (None where one is missing), and Python's."""
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(where: Path | None = None) -> str | None:
    """The commit of the source tree this package was imported from, ``+dirty`` when it has
    uncommitted changes; None when it is not a git checkout (an installed wheel)."""
    folder = where or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def command_line(orig_argv: list[str] | None = None, argv: list[str] | None = None) -> str:
    """The command as the user could paste it again: ``python -m <module> <args>`` with the module
    exactly as it was typed after ``-m`` (``sys.orig_argv``), else the program as it was run.

    Read from what Python was given, not rebuilt from a file path: a checkout cloned into a folder
    named ``sibcl_ray`` has two path parts of that name, and ``-m pkg`` runs ``pkg/__main__.py``.

    >>> command_line(["python3", "-u", "-m", "sibcl_ray.tune", "--problem", "phc"],
    ...              ["/x/sibcl_ray/sibcl_ray/tune.py", "--problem", "phc"])
    'python -m sibcl_ray.tune --problem phc'
    """
    orig = list(sys.orig_argv if orig_argv is None else orig_argv)
    args = list(sys.argv if argv is None else argv)[1:]
    for i, word in enumerate(orig[1:], start=1):
        if word == "-m" and i + 1 < len(orig):
            return shlex.join(["python", "-m", orig[i + 1], *args])
        if word.startswith("-m") and len(word) > 2:  # python -msibcl_ray.tune
            return shlex.join(["python", "-m", word[2:], *args])
        if not word.startswith("-"):  # the script: options after it are the program's own
            break
    program = (sys.argv if argv is None else argv)[0]
    head = ["python", program] if program.endswith(".py") else [program]
    return shlex.join(head + args)


def provenance(seed: int) -> dict[str, Any]:
    """The block every ``summary.json``, ``results.json`` and ``model.json`` carries."""
    return {"seed": seed, "command": command_line(), "versions": package_versions(), "git_commit": git_commit()}
