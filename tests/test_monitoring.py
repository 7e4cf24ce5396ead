"""Monitoring: our metrics through a real Prometheus, and the Grafana dashboard built from code.

The end-to-end test runs a real ``prometheus`` binary (Debian's package: ``.ci/run`` installs it
when missing) on loopback with the repository's ``monitoring/prometheus.yml``, scraping a smoke
search through Ray's service-discovery file, and evaluates every panel's PromQL through
Prometheus's HTTP API as Grafana would (a range query over the run): each returns the run's own
numbers. Grafana itself is not packaged for Debian and is not installed here; its part is the
dashboard JSON, checked structurally, and the folder Ray's provisioning points Grafana at.
"""

from __future__ import annotations

import collections
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sibcl_ray import grafana_dashboard
from sibcl_ray.data import shards
from sibcl_ray.grafana_dashboard import PANELS, Target
from sibcl_ray.monitoring import METRICS
from sibcl_ray.search.outputs import COMPLETED, NON_FINITE, STOPPED
from sibcl_ray.search.trial_counts import outcome_of
from sibcl_ray.session import free_port

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_YML = ROOT / "monitoring" / "prometheus.yml"
SD_FILE = "prom_metrics_service_discovery.json"


def _targets() -> list[tuple[str, Target]]:
    return [(p.title, t) for p in PANELS for t in p.targets]


def test_every_metric_the_package_records_has_a_panel() -> None:
    exprs = " ".join(t.expr for _, t in _targets())
    named = set(re.findall(r"\bray_sibcl_\w+", exprs))
    assert named == {m.exported for m in METRICS.values()}, "a metric without a panel, or a panel without a metric"
    # and the package records metrics only through monitoring.METRICS
    makers = [p.relative_to(ROOT).as_posix() for p in (ROOT / "sibcl_ray").rglob("*.py")
              if re.search(r"ray\.util\.metrics|from ray\.util import metrics", p.read_text())]
    assert makers == ["sibcl_ray/monitoring.py"]


def test_the_repository_dashboard_is_the_generated_one(tmp_path: Path) -> None:
    """Nobody hand-edits the JSON: it is what ``python -m sibcl_ray.grafana_dashboard`` writes."""
    assert (ROOT / grafana_dashboard.REPO_FILE).read_text() == grafana_dashboard.render(), (
        "regenerate it: python -m sibcl_ray.grafana_dashboard")
    model = grafana_dashboard.build()
    assert [v["name"] for v in model["templating"]["list"]] == ["datasource", "SessionName"]
    refs = [(p["title"], t["refId"]) for p in model["panels"] for t in p["targets"]]
    assert len(refs) == len(set(refs)) == len(_targets())
    boxes = {(p["gridPos"]["x"], p["gridPos"]["y"]) for p in model["panels"]}
    assert len(boxes) == len(PANELS)  # no two panels on top of each other
    assert grafana_dashboard.main(["--output", str(tmp_path / "d.json")]) == 0
    assert json.loads((tmp_path / "d.json").read_text())["uid"] == grafana_dashboard.UID
    with pytest.raises(SystemExit) as stop:
        grafana_dashboard.main(["--output", str(tmp_path / "missing" / "d.json")])
    assert stop.value.code == 2


def test_a_trial_outcome_is_read_from_its_last_result_as_trials_csv_does() -> None:
    assert outcome_of({"training_complete": True, "val_error": 0.1}) == COMPLETED
    assert outcome_of({"training_complete": False, "phase": "pretrain"}) == STOPPED
    assert outcome_of({"stopped_reason": "non-finite loss", "training_complete": False}) == NON_FINITE


def test_a_search_waits_for_its_last_values_to_be_scraped_only_with_a_prometheus(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray exports every 10 s and a local Ray's agent ends with the command: measured on a quick search,
    the last trial's end never reached Prometheus without this wait."""
    from sibcl_ray import monitoring

    monkeypatch.delenv("RAY_metrics_report_interval_ms", raising=False)
    window = 10 + monitoring.SCRAPE_INTERVAL_S  # Ray's default export interval, then one scrape
    monkeypatch.setattr(monitoring, "_last_recorded", [time.monotonic() - window + 0.5])
    monkeypatch.delenv("RAY_PROMETHEUS_HOST", raising=False)
    assert monitoring.wait_for_export() == 0.0  # no Prometheus set up: nothing to wait for
    monkeypatch.setenv("RAY_PROMETHEUS_HOST", "http://127.0.0.1:9090")
    before = time.monotonic()
    assert 0.2 < monitoring.wait_for_export() <= 0.5 and time.monotonic() - before >= 0.2
    assert monitoring.wait_for_export() == 0.0  # the window has passed
    monkeypatch.setattr(monitoring, "_last_recorded", [])
    assert monitoring.wait_for_export() == 0.0  # nothing recorded in this process


# ------------------------------------------------------------------ end to end


class Prometheus:
    """A real Prometheus on loopback, with the repository's config pointed at one Ray temp dir."""

    def __init__(self, binary: str, ray_tmp: Path, folder: Path) -> None:
        config = yaml.safe_load(PROMETHEUS_YML.read_text())
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        (job,) = config["scrape_configs"]
        (sd,) = job["file_sd_configs"]
        assert sd["files"] == [f"/tmp/ray/{SD_FILE}"]  # Ray's default temp dir, as Ray's own config has it
        sd.update(files=[str(ray_tmp / "ray" / SD_FILE)], refresh_interval="1s")
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = open(folder / "prometheus.log", "w")
        self.process = subprocess.Popen(
            [binary, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'tsdb'}",
             f"--web.listen-address={self.url.removeprefix('http://')}"], stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self) -> None:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"Prometheus did not start: {Path(self.log.name).read_text()[-2000:]}")

    def query_range(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        """Grafana's request for a panel's target: ``/api/v1/query_range``, one point per second."""
        args = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": 1})
        with urllib.request.urlopen(f"{self.url}/api/v1/query_range?{args}", timeout=30) as answer:
            body = json.loads(answer.read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[Prometheus, Path]]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("no `prometheus` binary: `apt-get install prometheus` (.ci/run installs it when missing)")
    ray_tmp = Path(tempfile.mkdtemp(prefix="sibcl-prom-", dir="/tmp"))  # Ray's socket paths must stay short
    server = Prometheus(binary, ray_tmp, tmp_path)
    try:
        yield server, ray_tmp
    finally:
        server.stop()  # by its PID (Popen)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _last(series: dict[str, Any]) -> float:
    return float(series["values"][-1][1])


def _values(series: dict[str, Any]) -> list[float]:
    return [float(v) for _, v in series["values"]]


@pytest.mark.slow
def test_every_panel_query_returns_the_runs_own_numbers_through_a_real_prometheus(
        prometheus: tuple[Prometheus, Path], tmp_path: Path) -> None:
    server, ray_tmp = prometheus
    dashboards = tmp_path / "dashboards"  # Grafana's provisioning folder, shared with Ray's own dashboards
    dashboards.mkdir()
    written = subprocess.run([sys.executable, "-m", "sibcl_ray.grafana_dashboard", "--output",
                              str(dashboards / "sibcl_dashboard.json")], capture_output=True, text=True, timeout=60)
    assert written.returncode == 0, written.stderr
    out, data = tmp_path / "out", tmp_path / "data"
    # token auth stays on (a local run's default); Ray's default export interval (10 s): with
    # RAY_PROMETHEUS_HOST set the search waits for its last values to be scraped (monitoring.wait_for_export)
    env = dict(os.environ, RAY_TMPDIR=str(ray_tmp), PYTHONUNBUFFERED="1", RAY_PROMETHEUS_HOST=server.url,
               RAY_METRICS_GRAFANA_DASHBOARD_OUTPUT_DIR=str(dashboards))
    env.pop("RAY_metrics_report_interval_ms", None)
    start = time.time()
    run = subprocess.run([sys.executable, "-m", "sibcl_ray.tune", "--problem", "phc", "--preset", "smoke",
                          "--num-samples", "1", "--finetune-seeds", "1", "--output", str(out), "--data-dir", str(data)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    end = time.time() + 2
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())

    # Ray's provisioning points Grafana at the folder that holds our dashboard next to Ray's own
    (session,) = [p for p in (ray_tmp / "ray").glob("session_2*")]
    provider = yaml.safe_load((session / "metrics/grafana/provisioning/dashboards/default.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == str(dashboards)
    assert {"sibcl_dashboard.json", "default_grafana_dashboard.json"} <= {p.name for p in dashboards.iterdir()}
    assert (dashboards / "sibcl_dashboard.json").read_text() == grafana_dashboard.render()

    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    gpus = server.query_range(f'ray_node_gpus_available{{SessionName="{session.name}"}}', start, end)
    for title, target in _targets():
        series = server.query_range(target.expr.replace("$SessionName", session.name), start, end)
        expected_any = bool(gpus) if target.needs_gpu else True
        assert bool(series) == expected_any, f"{title}: {target.expr} returned {len(series)} series"
        results[(title, target.legend)] = series

    # labels generated == the rows the split manifests count == the summary's count
    rows = {split.name: sum(e["rows"] for e in shards.read_manifest(split)["shards"].values())
            for split in data.glob("*/*") if (split / "manifest.json").exists()}
    generated = {s["metric"]["split"]: _last(s) for s in results[("Labels generated", "{{problem}} {{split}}")]}
    assert generated == rows and sum(rows.values()) == summary["labels_computed"] == 450
    throughput = results[("Label throughput", "{{problem}} {{split}}")]
    assert {s["metric"]["split"] for s in throughput} == set(rows) and all(v > 0 for s in throughput for v in _values(s))

    # pretraining samples/s: the trial's own reports (Tune's result.json), labelled with its run name
    (trial_dir,) = Path(summary["experiment"]).glob("run_trial_*")
    reports = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
    reported = {r["pretrain_samples_per_s"] for r in reports if r.get("pretrain_samples_per_s")}
    (speed,) = results[("Pretraining samples/s per trial", "{{run}}")]
    assert speed["metric"]["run"] == f"{Path(summary['experiment']).name}-{reports[0]['trial_id']}"
    assert set(_values(speed)) <= reported and _values(speed)

    (best,) = results[("Best validation error", "{{problem}}")]
    assert _last(best) == pytest.approx(summary["val_error"], rel=1e-12)

    with open(out / "trials.csv") as handle:
        outcomes = collections.Counter(row["outcome"] for row in csv.DictReader(handle))
    (started,) = results[("Trials", "started {{problem}}")]
    (running,) = results[("Trials", "running {{problem}}")]
    # (whether the trial is ever seen running depends on where Ray's 10 s export ticks fall in its ~20 s)
    assert _last(started) == summary["n_trials"] == 1 and set(_values(running)) <= {0, 1} and _last(running) == 0
    assert {s["metric"]["outcome"]: _last(s) for s in results[("Trials", "{{outcome}} {{problem}}")]} == outcomes

    cpu = [v for s in results[("Node CPU", "{{instance}}")] for v in _values(s)]
    memory = [v for s in results[("Node memory", "{{instance}}")] for v in _values(s)]
    assert all(0 <= v <= 100 for v in cpu) and max(cpu) > 0 and all(0 < v < 100 for v in memory)
    instances = {s["metric"]["instance"] for key in results for s in results[key] if "instance" in s["metric"]}
    assert instances and all(i.startswith("127.0.0.1:") for i in instances)  # loopback only
