"""The recorded command can be pasted back: the module as typed after ``-m``, from any checkout folder."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRINT_COMMAND = "from sibcl_ray.provenance import command_line\nprint(command_line())\n"


@pytest.mark.parametrize("module, file", [("probe_cmd", "probe_cmd.py"), ("probe_pkg", "probe_pkg/__main__.py")])
def test_command_is_the_module_typed_from_a_folder_named_sibcl_ray(tmp_path: Path, module: str, file: str) -> None:
    """A clone into the default folder name has ``sibcl_ray`` twice in every path: the command must
    still be ``python -m <what was typed>``, and a package's ``__main__`` must not show."""
    checkout = tmp_path / "sibcl_ray"
    (checkout / file).parent.mkdir(parents=True, exist_ok=True)
    (checkout / file).write_text(PRINT_COMMAND)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-m", module, "--problem", "phc", "--nsam", "50"], cwd=checkout,
                            env=env, capture_output=True, text=True, timeout=60, check=True)
    recorded = result.stdout.strip()
    assert recorded == f"python -m {module} --problem phc --nsam 50"
    pasted = subprocess.run([sys.executable, *shlex.split(recorded)[1:]], cwd=checkout, env=env,
                            capture_output=True, text=True, timeout=60)
    assert pasted.returncode == 0 and pasted.stdout.strip() == recorded, pasted.stderr


def test_a_script_is_recorded_as_run() -> None:
    from sibcl_ray.provenance import command_line

    assert command_line(["python", "bench.py", "--x", "1"], ["bench.py", "--x", "1"]) == "python bench.py --x 1"
    assert command_line(["python", "-O", "-msibcl_ray.tune", "--problem", "phc"],
                        ["/any/sibcl_ray/tune.py", "--problem", "phc"]) == "python -m sibcl_ray.tune --problem phc"
