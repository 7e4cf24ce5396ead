"""The catalogue of bad inputs (README "Errors"): each gets one line, exit status 2, no traceback.

Every case here is refused before Ray starts, so the whole catalogue runs in seconds per case.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
SPACE_UNKNOWN = "temprature: 0.1\n"
SPACE_LOW_HIGH = "temperature: {type: uniform, low: 1.0, high: 0.1}\n"
CONFIG_DISTRIBUTION = "temperature: {type: uniform, low: 0.1, high: 0.2}\n"
PRESET_UNKNOWN = "base: smoke\nn_unlabeld: 300\n"
SPACE_BAD_START = "temperature: {type: loguniform, low: 0.03, high: 1.0}\nstart:\n  - {temperature: 5.0}\n"

# (command module, arguments, expected start of the error line). {tmp} is a scratch folder,
# {file} a regular file in it, {space_unknown}/{space_low_high}/{config_dist} files holding the texts above.
CATALOGUE = [
    ("tune", ["--problem", "maxwell"], "error: unknown problem 'maxwell': allowed values are phc, tise, composite, or package.module:Class"),
    ("tune", ["--problem", "phc", "--preset", "huge"], "error: unknown preset 'huge': allowed values are smoke, quick, curve, paper"),
    ("tune", ["--problem", "phc", "--nsam", "0"], "error: --nsam 0 is out of range: preset 'quick' has a labelled pool of 1..200"),
    ("tune", ["--problem", "phc", "--nsam", "5000"], "error: --nsam 5000 is out of range: preset 'quick' has a labelled pool of 1..200"),
    ("tune", ["--problem", "phc", "--num-samples", "0"], "error: --num-samples 0 must be at least 1"),
    ("tune", ["--problem", "phc", "--finetune-seeds", "0"], "error: --finetune-seeds 0 must be at least 1"),
    ("tune", ["--problem", "phc", "--workers-per-trial", "0"], "error: --workers-per-trial 0 must be at least 1"),
    ("tune", ["--problem", "phc", "--max-concurrent", "0"], "error: --max-concurrent 0 must be at least 1"),
    ("tune", ["--problem", "phc", "--cpus-per-worker", "0"], "error: --cpus-per-worker 0.0 must be > 0"),
    ("tune", ["--problem", "phc", "--gpus-per-worker", "-1"], "error: --cpus-per-worker 1.0 must be > 0 and --gpus-per-worker -1.0 must be >= 0"),
    ("tune", ["--problem", "phc", "--dim", "2"], "error: --dim 2 is not an option of --problem 'phc'; it applies to --problem tise"),
    ("tune", ["--problem", "tise", "--dim", "4"], "error: --dim 4 is not supported: allowed values are 2, 3"),
    ("tune", ["--problem", "tise", "--surrogate", "dft"], "error: --surrogate 'dft' is unknown: allowed values are lowres, qho"),
    ("tune", ["--problem", "phc", "--label", "gaps"], "error: --label 'gaps' is unknown: allowed values are dos, bands"),
    ("tune", ["--problem", "phc", "--search-space", "/nonexistent.yaml"], "error: search space /nonexistent.yaml: no such file"),
    ("tune", ["--problem", "phc", "--preset", "{tmp}/sizes.yaml"], "error: --preset {tmp}/sizes.yaml: no such file"),
    ("benchmark", ["--problem", "phc", "--preset", "{preset_unknown}"], "error: --preset {preset_unknown}: unknown key 'n_unlabeld'; allowed: base, name, n_unlabeled"),
    ("tune", ["--problem", "phc", "--search-space", "{space_unknown}"], "error: search space {space_unknown}: key 'temprature': unknown parameter"),
    ("tune", ["--problem", "phc", "--search-space", "{space_low_high}"], "error: search space {space_low_high}: key 'temperature': low 1.0 must be below high 0.1"),
    ("tune", ["--problem", "phc", "--search-space", "{space_bad_start}"], "error: search space {space_bad_start}: start entry 1: key 'temperature': value 5.0 is not inside loguniform [0.03, 1.0]"),
    ("tune", ["--problem", "phc", "--workers-per-trial", "5"], "error: --workers-per-trial 5: batch_size 64 does not split evenly across 5 workers"),
    ("tune", ["--problem", "phc", "--tracker", "neptune"], "error: --tracker 'neptune' is unknown: allowed values are mlflow, wandb, aim"),
    ("tune", ["--problem", "phc", "--tracker", "wandb"], "error: --tracker wandb needs the wandb package, which is not installed: pip install wandb"),
    ("benchmark", ["--problem", "phc", "--workers-per-run", "0"], "error: --workers-per-run 0 must be at least 1"),
    ("benchmark", ["--problem", "phc", "--max-concurrent", "0"], "error: --max-concurrent 0 must be at least 1"),
    ("benchmark", ["--problem", "phc", "--workers-per-run", "5"], "error: --workers-per-run 5: batch_size 96 does not split evenly across 5 workers"),
    ("tune", ["--problem", "phc", "--storage", "ftp://host/runs"], "error: --storage ftp://host/runs: unsupported URI scheme 'ftp'"),
    ("tune", ["--problem", "phc", "--data-dir", "{file}/data"], "error: --data-dir {file}/data: {file} is a file, not a folder"),
    ("tune", ["--problem", "phc", "--output", "{file}/out"], "error: --output {file}/out: {file} is a file, not a folder"),
    ("tune", ["--problem", "phc", "--output", "{tmp}/fresh", "--resume"], "error: --resume: no search named phc-quick-* to resume in {tmp}/fresh/tune"),
    ("tune", ["--problem", "phc", "--address", "nohost"], "error: --address 'nohost' is not HOST:PORT, ray://HOST:PORT or auto"),
    ("tune", ["--problem", "phc", "--address", "127.0.0.1:1"], "error: cannot reach a Ray cluster at --address 127.0.0.1:1 (Connection refused)"),
    ("generate", ["--problem", "phc", "--count", "train=many"], "error: --count 'train=many' is not SPLIT=N"),
    ("generate", ["--problem", "phc", "--splits", "training"], "error: --splits: unknown split 'training': allowed values are unlabeled, surrogate, train, val, test"),
    ("generate", ["--problem", "tise", "--label", "bands"], "error: --label bands is not an option of --problem 'tise'; it applies to --problem phc or composite"),
    ("generate", ["--problem", "phc", "--data-dir", "{file}"], "error: --data-dir {file}: {file} is a file, not a folder"),
    ("benchmark", ["--problem", "phc", "--methods", "sibcl,byol"], "error: unknown method 'byol': allowed values are sibcl, ssl, tl, tl-i, sl, sl-i, sibcl-al, ssl-al, tl-al, fit-mf, sl-mf, tl-mf, sibcl-mf"),
    ("benchmark", ["--problem", "composite", "--methods", "sibcl-mf"], "error: --methods sibcl-mf needs a per-input cheap label and problem 'composite' declares none: use sibcl, or a problem that has one (phc, tise)"),
    ("benchmark", ["--problem", "phc", "--methods", "sibcl-al", "--nsam", "5000"], "error: --nsam 5000: sibcl-al picks its labels from the unlabeled pool of 2000 inputs; give budgets up to that"),
    ("benchmark", ["--problem", "phc", "--nsam", "50,lots"], "error: --nsam '50,lots' is not a comma-separated list of integers"),
    ("benchmark", ["--problem", "phc", "--seeds", "0"], "error: --seeds 0 must be at least 1"),
    ("benchmark", ["--problem", "phc", "--config", "{config_dist}"], "error: --config {config_dist}: key 'temperature' is a distribution"),
    ("tune", ["--problem", "phc", "--nsam", "abc"], "error: argument --nsam: invalid int value: 'abc'; python -m sibcl_ray.tune --help lists every option and its allowed values"),
    ("benchmark", ["--problem", "phc", "--address", "nohost"], "error: --address 'nohost' is not HOST:PORT"),
]


@pytest.mark.parametrize("module, args, expected", CATALOGUE, ids=[f"{c[0]}:{' '.join(c[1])}" for c in CATALOGUE])
def test_bad_input_gets_one_line(tmp_path: Path, module: str, args: list[str], expected: str) -> None:
    names = {"tmp": str(tmp_path), "file": str(tmp_path / "a_file"), "space_unknown": str(tmp_path / "unknown.yaml"),
             "space_low_high": str(tmp_path / "low_high.yaml"), "config_dist": str(tmp_path / "config.yaml"),
             "space_bad_start": str(tmp_path / "bad_start.yaml"), "preset_unknown": str(tmp_path / "unknown_preset.yaml")}
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "unknown.yaml").write_text(SPACE_UNKNOWN)
    (tmp_path / "low_high.yaml").write_text(SPACE_LOW_HIGH)
    (tmp_path / "config.yaml").write_text(CONFIG_DISTRIBUTION)
    (tmp_path / "bad_start.yaml").write_text(SPACE_BAD_START)
    (tmp_path / "unknown_preset.yaml").write_text(PRESET_UNKNOWN)
    before = sorted(tmp_path.rglob("*"))
    args = [a.format(**names) for a in args]
    if module != "generate" and "--output" not in args:
        args += ["--output", str(tmp_path / "out")]
    result = subprocess.run([sys.executable, "-m", f"sibcl_ray.{module}", *args], cwd=tmp_path,
                            env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(expected.format(**names)), lines[0]
    assert sorted(tmp_path.rglob("*")) == before, "a refused command wrote files"
    assert in_readme(lines[0], str(tmp_path)), f"README's error catalogue has no row for: {lines[0]}"


def readme_rows() -> list[tuple[str, re.Pattern[str]]]:
    """(input cell, message pattern) of every row of the README's "Errors" tables. A message cell
    is read up to its first "…"; " / " separates alternatives; PATH, FILE and DIR stand for any path."""
    text = README.read_text()
    start = text.index("\n## Errors")
    section = text[start:text.index("\n## ", start + 1)]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith(("| input", "|---")):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        for alternative in cells[-1].split(" / "):
            prefix = alternative.split("…")[0].replace("`", "").rstrip()
            if prefix:
                rows.append((cells[0], re.compile(re.sub(r"\b(PATH|FILE|DIR)\b", r"\\S+", re.escape(prefix)))))
    return rows


def in_readme(message: str, tmp: str) -> bool:
    """Whether an error line (temporary folder left out of its paths) is a row of the README's catalogue."""
    text = message.removeprefix("error: ").replace(tmp + "/", "")
    return any(pattern.match(text) for _, pattern in readme_rows())


def test_every_readme_row_of_a_flag_is_run_here() -> None:
    """The README's catalogue rows for a flag of tune / benchmark / generate are exactly what this file runs:
    a row whose message no command here produces is a stale row. The multi-node row needs a cluster
    (tests/test_session.py)."""
    text = README.read_text()
    first_table = text[text.index("\n## Errors"):text.index("`python -m sibcl_ray.predict`")]
    expected = [e.format(**{k: f"/t/{k}" for k in ("tmp", "file", "space_unknown", "space_low_high", "config_dist",
                                                   "space_bad_start", "preset_unknown")})
                for _, _, e in CATALOGUE]
    expected = [e.removeprefix("error: ").replace("/t/tmp/", "") for e in expected]
    flag_rows = [(cell, pattern) for cell, pattern in readme_rows()
                 if cell.startswith("`--") and f"| {cell} |" in first_table and "multi-node" not in cell]
    assert len(flag_rows) >= 30
    stale = [cell for cell, pattern in flag_rows if not any(pattern.match(e) for e in expected)]
    assert not stale, f"README rows no test here produces: {stale}"
