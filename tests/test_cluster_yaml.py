"""Offline checks of cluster.yaml: Ray's schema, Ray's own config preparation, our rules.

`ray up` has no dry run. It resolves the config in
ray.autoscaler._private.commands._bootstrap_config, in this order:
  1. prepare_config: merges ray/autoscaler/aws/defaults.yaml and fills in per-type
     min/max workers. Pure Python, no AWS SDK.
  2. _import_aws: `import boto3`.
  3. AWSNodeProvider.fillout_available_node_types_resources: EC2 DescribeInstanceTypes
     (boto3 + credentials + network). Failures there are only warnings.
  4. validate_config: JSON schema + cross-field checks. Pure Python.
  5. AWSNodeProvider.bootstrap_config: IAM role, key pair, subnets, security group,
     AMI (boto3 + credentials + network).
These tests run steps 1 and 4 with boto3/botocore made unimportable, to prove they
need no AWS SDK. Our node types set CPU/GPU explicitly, so step 3 would add nothing
that matters here. Steps 2, 3 and 5 need an AWS account and are not run.

prepare_config and validate_config are private Ray APIs (ray.autoscaler._private.util),
so these tests pin Ray 2.60.0. Every project rule below has a mutation test: a
deliberately broken config that the rule must reject.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"

#: The Ray version whose private autoscaler API these tests call (pyproject.toml pins it too).
PINNED_RAY = "2.60.0"
#: --cpus-per-worker of the main cluster job (README "Running on a cluster", cluster.yaml).
MAIN_JOB_CPUS_PER_WORKER = 4
#: Where setup_commands install the package from (file_mounts target).
PACKAGE_MOUNT = "/home/ray/sibcl_ray"
#: Shared storage (EFS) path, the same on every node: --output and --data-dir live under it.
SHARED_MOUNT = "/mnt/sibcl"
#: Where file_mounts put the cluster's token on every node (the container user's ~/.ray/auth_token).
TOKEN_MOUNT = "/home/ray/.ray/auth_token"
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
IMAGE_RE = re.compile(r"^rayproject/ray:(?P<version>\d+\.\d+\.\d+)-py(?P<py>\d+)-(?P<flavor>cpu|gpu|cu\d+)$")

Config = dict[str, Any]


def driver_resource() -> str:
    """The custom resource drivers hold (``sibcl_ray.resources``: imports nothing heavy)."""
    from sibcl_ray.resources import DRIVER_RESOURCE

    return DRIVER_RESOURCE


def check_ray_version() -> None:
    assert ray.__version__ == PINNED_RAY, (
        f"tests/test_cluster_yaml.py calls Ray's private ray.autoscaler._private.util.prepare_config/"
        f"validate_config and was written against Ray {PINNED_RAY}, but Ray {ray.__version__} is installed. "
        f"Re-read those functions and ray/autoscaler/ray-schema.json in the new version, then update "
        f"PINNED_RAY, the image tags in cluster.yaml and the pin in pyproject.toml together."
    )


@pytest.fixture(scope="module")
def ray_util() -> Any:
    check_ray_version()
    from ray.autoscaler._private import util

    return util


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


@pytest.fixture(scope="module")
def raw() -> Config:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def prepare(raw_config: Config, util: Any) -> Config:
    """Ray's prepare_config + validate_config, as `ray up` runs them, with no AWS SDK importable."""
    with pytest.MonkeyPatch.context() as mp:
        for module in ("boto3", "botocore"):
            mp.setitem(sys.modules, module, None)  # `import boto3` now raises ImportError
        prepared = util.prepare_config(copy.deepcopy(raw_config))
        util.validate_config(prepared)
    return prepared


@pytest.fixture(scope="module")
def prepared(raw: Config, ray_util: Any) -> Config:
    return prepare(raw, ray_util)


# ---------------------------------------------------------------- helpers


def worker_types(cfg: Config) -> dict[str, Config]:
    return {name: t for name, t in cfg["available_node_types"].items() if name != cfg["head_node_type"]}


def strings(value: Any) -> Iterator[str]:
    """Every string (keys included) anywhere in a parsed config."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def start_commands(cfg: Config) -> list[str]:
    return list(cfg.get("head_start_ray_commands", [])) + list(cfg.get("worker_start_ray_commands", []))


def effective_image(cfg: Config, node_type: str) -> str | None:
    """The image a node type runs, resolved like Ray's autoscaler/updater do."""
    docker = cfg.get("docker", {})
    if node_type == cfg["head_node_type"]:
        return docker.get("head_image", docker.get("image"))
    merged = {**docker, **cfg["available_node_types"][node_type].get("docker", {})}
    return merged.get("worker_image", merged.get("image"))


def effective_setup(cfg: Config, node_type: str) -> list[str]:
    """Setup commands a node type runs (prepared config: setup_commands already merged in)."""
    if node_type == cfg["head_node_type"]:
        return list(cfg["head_setup_commands"])
    return list(cfg["available_node_types"][node_type].get("worker_setup_commands", cfg["worker_setup_commands"]))


# ---------------------------------------------------------------- (a) + (b): Ray's own checks


def test_ray_version_is_the_pinned_one() -> None:
    check_ray_version()


def test_raw_yaml_matches_ray_schema(raw: Config, schema: dict) -> None:
    jsonschema.validate(raw, schema)


def test_prepared_config_matches_ray_schema(prepared: Config, schema: dict) -> None:
    jsonschema.validate(prepared, schema)


def test_ray_prepare_and_validate_config_accept_it(prepared: Config) -> None:
    # `prepared` already ran prepare_config + validate_config; check what they filled in.
    assert prepared["cluster_name"] == "sibcl"
    assert prepared["available_node_types"][prepared["head_node_type"]]["max_workers"] == 0
    assert all("max_workers" in t and "min_workers" in t for t in prepared["available_node_types"].values())


@pytest.mark.parametrize("mutate, error", [
    (lambda c: c.update(unknown_top_level_key=1), jsonschema.ValidationError),
    (lambda c: c["available_node_types"]["head"]["resources"].update(trial_driver=0.5), jsonschema.ValidationError),
    (lambda c: c["available_node_types"]["gpu_worker"]["docker"].update(image="x"), jsonschema.ValidationError),
])
def test_schema_rejects_broken_configs(raw: Config, schema: dict, mutate: Callable, error: type) -> None:
    broken = copy.deepcopy(raw)
    mutate(broken)
    with pytest.raises(error):
        jsonschema.validate(broken, schema)


@pytest.mark.parametrize("mutate, match", [
    (lambda c: c["available_node_types"]["gpu_worker"].update(min_workers=20), "max_workers"),
    (lambda c: c.update(head_node_type="nope"), "head_node_type"),
])
def test_ray_validate_config_rejects_broken_configs(raw: Config, ray_util: Any, mutate: Callable, match: str) -> None:
    broken = copy.deepcopy(raw)
    mutate(broken)
    with pytest.raises(ValueError, match=match):
        prepare(broken, ray_util)


def test_validation_needs_no_aws_sdk(raw: Config, ray_util: Any) -> None:
    # prepare() blocks boto3/botocore; make sure that blocking is real, so the checks above prove something.
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "boto3", None)
        with pytest.raises(ImportError):
            import boto3  # noqa: F401


# ---------------------------------------------------------------- (c): project rules


def rule_images_pinned(raw: Config, prepared: Config) -> None:
    images = [effective_image(prepared, name) for name in prepared["available_node_types"]]
    images += [prepared["docker"].get(k) for k in ("image", "head_image", "worker_image")]
    for image in filter(None, images):
        m = IMAGE_RE.match(image)
        assert m, f"{image!r} is not a pinned rayproject/ray:<version>-py<NN>-<cpu|gpu|cuNNN> image"
        assert m["version"] == ray.__version__, f"{image!r} does not match the installed Ray {ray.__version__}"
    assert all(images[: len(prepared["available_node_types"])]), "every node type must run a pinned Ray image"


def rule_gpu_image_on_gpu_nodes(raw: Config, prepared: Config) -> None:
    for name, node in prepared["available_node_types"].items():
        flavor = IMAGE_RE.match(effective_image(prepared, name) or "")
        assert flavor, f"{name}: no pinned image"
        has_gpu = node["resources"].get("GPU", 0) > 0
        assert (flavor["flavor"] != "cpu") == has_gpu, (
            f"{name}: GPU={node['resources'].get('GPU', 0)} but runs {effective_image(prepared, name)!r}"
        )


def rule_trial_driver_only_on_head(raw: Config, prepared: Config) -> None:
    resource = driver_resource()
    head = prepared["available_node_types"][prepared["head_node_type"]]["resources"]
    assert head.get(resource, 0) >= 1, f"the head node type must offer the {resource!r} resource"
    for name, node in worker_types(prepared).items():
        assert resource not in node["resources"], f"{name} offers {resource!r}: drivers could pin an autoscaled worker"
    # CPU 0 explicitly: otherwise AWS autodetection advertises all vCPUs and label tasks,
    # Ray Data reads and Train workers land on the head.
    assert head.get("CPU") == 0, f"head resources must set CPU: 0 explicitly, got {head}"
    assert head.get("GPU", 0) == 0, "the head must not offer GPUs"


def rule_driver_slots_cover_gpus(raw: Config, prepared: Config) -> None:
    slots = prepared["available_node_types"][prepared["head_node_type"]]["resources"].get(driver_resource(), 0)
    gpus = sum(t["resources"].get("GPU", 0) * t["max_workers"] for t in worker_types(prepared).values())
    assert slots >= gpus, f"{slots} trial-driver slots would cap concurrency below the cluster's {gpus} GPUs"


def rule_workers_scale_from_zero(raw: Config, prepared: Config) -> None:
    workers = worker_types(prepared)
    assert any(t["resources"].get("GPU", 0) >= 1 for t in workers.values()), "no GPU worker type"
    assert any(t["resources"].get("CPU", 0) >= 1 and not t["resources"].get("GPU") for t in workers.values()), \
        "no CPU-only worker type for label generation"
    for name, node in workers.items():
        assert node["min_workers"] == 0, f"{name}: min_workers must be 0 (pay for idle nodes only explicitly)"
        assert node["max_workers"] >= 1, f"{name}: max_workers must allow at least one node"


def rule_gpu_worker_leaves_cpus_for_ray_data(raw: Config, prepared: Config) -> None:
    for name, node in worker_types(prepared).items():
        gpus = node["resources"].get("GPU", 0)
        if gpus:
            cpus = node["resources"].get("CPU")
            assert cpus is not None, f"{name}: set CPU explicitly (the autoscaler plans with it)"
            assert cpus >= gpus * MAIN_JOB_CPUS_PER_WORKER + 1, (
                f"{name}: {cpus} CPUs for {gpus} Train worker(s) of {MAIN_JOB_CPUS_PER_WORKER} CPUs leaves none "
                "for Ray Data (it hangs when Train workers hold every CPU)"
            )


def rule_nothing_binds_all_interfaces(raw: Config, prepared: Config) -> None:
    for text in strings(prepared):
        assert "0.0.0.0" not in text and "::/0" not in text, f"public bind or world-open rule in {text!r}"


def rule_dashboard_host_is_localhost(raw: Config, prepared: Config) -> None:
    assert "head_start_ray_commands" in raw, (
        "set head_start_ray_commands explicitly: Ray's AWS defaults start the dashboard on 0.0.0.0"
    )
    head_starts = [c for c in prepared["head_start_ray_commands"] if re.search(r"\bray start\b.*--head\b", c)]
    assert len(head_starts) == 1, f"expected one `ray start --head`, got {head_starts}"
    hosts = re.findall(r"--dashboard-host[= ](\S+)", head_starts[0])
    assert hosts == ["127.0.0.1"], f"`ray start --head` must pass --dashboard-host=127.0.0.1 explicitly, got {hosts}"
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head_starts[0], "the head would launch no workers"
    for cmd in prepared["worker_start_ray_commands"]:
        assert "--dashboard-host" not in cmd and "--head" not in cmd, f"worker start command {cmd!r}"


def rule_resources_only_in_node_types(raw: Config, prepared: Config) -> None:
    for cmd in start_commands(prepared):
        for flag in ("--num-cpus", "--num-gpus", "--resources"):
            assert flag not in cmd, (
                f"{flag} in {cmd!r}: node resources belong in available_node_types "
                "(the autoscaler passes them as RAY_OVERRIDE_RESOURCES, which overrides the flag)"
            )


def rule_ssh_only_from_one_address(raw: Config, prepared: Config) -> None:
    rules = prepared["provider"].get("security_group", {}).get("IpPermissions", [])
    assert rules, "provider.security_group.IpPermissions must hold the SSH rule"
    for rule in rules:
        assert (rule.get("IpProtocol"), rule.get("FromPort"), rule.get("ToPort")) == ("tcp", 22, 22), (
            f"only SSH may be opened from outside the cluster, got {rule}"
        )
        assert not rule.get("UserIdGroupPairs") and not rule.get("PrefixListIds"), f"unexpected source in {rule}"
        cidrs = [(r["CidrIp"], "/32") for r in rule.get("IpRanges", [])]
        cidrs += [(r["CidrIpv6"], "/128") for r in rule.get("Ipv6Ranges", [])]
        assert cidrs, f"SSH rule without a source address: {rule}"
        for cidr, single_host in cidrs:
            assert cidr.endswith(single_host), f"SSH must come from one address ({single_host}), got {cidr!r}"


def rule_ami_explicit(raw: Config, prepared: Config) -> None:
    for name, node in prepared["available_node_types"].items():
        ami = str(node["node_config"].get("ImageId", ""))
        # "" and "latest_dlami" make Ray pick its built-in Ubuntu 18.04 / CUDA 11.2 DLAMI.
        assert ami.startswith("ami-"), f"{name}: ImageId must name an AMI explicitly, got {ami!r}"


def rule_setup_installs_package(raw: Config, prepared: Config) -> None:
    torch_pin = f"pip install torch=={importlib.metadata.version('torch').split('+')[0]}"
    assert prepared["file_mounts"].get(PACKAGE_MOUNT) == ".", f"file_mounts must sync the repository to {PACKAGE_MOUNT}"
    for name, node in prepared["available_node_types"].items():
        cmds = effective_setup(prepared, name)
        torch_at = [i for i, c in enumerate(cmds) if c.startswith(torch_pin)]
        pkg_at = [i for i, c in enumerate(cmds) if c.strip() == f"pip install {PACKAGE_MOUNT}"]
        assert torch_at and pkg_at and torch_at[0] < pkg_at[0], (
            f"{name}: setup must run `{torch_pin}` before `pip install {PACKAGE_MOUNT}`, got {cmds}"
        )
        cpu_wheel = CPU_TORCH_INDEX in cmds[torch_at[0]]
        has_gpu = node["resources"].get("GPU", 0) > 0
        assert cpu_wheel != has_gpu, f"{name}: GPU={has_gpu} but torch from {'CPU' if cpu_wheel else 'CUDA'} wheel"


def rule_shared_storage_mounted(raw: Config, prepared: Config) -> None:
    assert f"-v {SHARED_MOUNT}:{SHARED_MOUNT}" in prepared["docker"].get("run_options", []), (
        f"containers must see the shared storage at {SHARED_MOUNT}"
    )
    assert any(f" {SHARED_MOUNT}" in c and "mount" in c for c in prepared["initialization_commands"]), (
        f"initialization_commands must mount the shared storage at {SHARED_MOUNT} on the host"
    )


def rule_token_auth_on_every_node(raw: Config, prepared: Config) -> None:
    starts = [c for c in start_commands(prepared) if re.search(r"\bray start\b", c)]
    assert len(starts) == 2, f"expected one head and one worker `ray start`, got {starts}"
    for cmd in starts:
        before = cmd[: cmd.index("ray start")]
        assert re.search(r"\bexport RAY_AUTH_MODE=token\s*;", before), f"{cmd!r} starts Ray without token auth"
    mounts = prepared["file_mounts"]
    assert mounts.get(TOKEN_MOUNT) == "~/.ray/auth_token", (
        f"file_mounts must copy your ~/.ray/auth_token to {TOKEN_MOUNT} on every node, got {mounts}")


def _exported(cmd: str, name: str) -> str | None:
    """The value ``cmd`` exports for ``name`` before it starts Ray (``export A=1 B=2; ray start``)."""
    found = re.findall(rf"\bexport\b[^;]*\b{name}=(\S+?)(?=[;\s])", cmd[: cmd.find("ray start")])
    return found[-1] if found else None


def rule_monitoring_on_head_loopback(raw: Config, prepared: Config) -> None:
    """Prometheus runs on the head, on loopback, with the repository's config; the dashboard finds it
    and Grafana; our Grafana dashboard lies in the folder Ray's Grafana provisioning reads."""
    head_starts = prepared["head_start_ray_commands"]
    (ray_start,) = [c for c in head_starts if re.search(r"\bray start\b.*--head\b", c)]
    proms = [c for c in head_starts if re.search(r"\bprometheus --", c)]
    assert len(proms) == 1, f"the head must start Prometheus once, got {proms}"
    assert head_starts.index(proms[0]) > head_starts.index(ray_start), "start Prometheus after Ray"
    listen = re.findall(r"--web\.listen-address[= ](\S+)", proms[0])
    assert len(listen) == 1 and re.fullmatch(r"127\.0\.0\.1:\d+", listen[0]), (
        f"Prometheus must listen on 127.0.0.1 explicitly (its default is every interface), got {listen}")
    config = re.findall(r"--config\.file[= ](\S+)", proms[0])
    assert config == [f"{PACKAGE_MOUNT}/monitoring/prometheus.yml"], f"Prometheus config {config}"
    assert (ROOT / "monitoring" / "prometheus.yml").is_file()
    assert re.search(r"kill \$\w+", proms[0]) and ".pid" in proms[0], "a restart must stop the old Prometheus by PID"
    assert _exported(ray_start, "RAY_PROMETHEUS_HOST") == f"http://{listen[0]}", "the dashboard must query this Prometheus"
    grafana = _exported(ray_start, "RAY_GRAFANA_HOST") or ""
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", grafana), f"RAY_GRAFANA_HOST={grafana!r}: loopback"
    folder = _exported(ray_start, "RAY_METRICS_GRAFANA_DASHBOARD_OUTPUT_DIR")
    setup = effective_setup(prepared, prepared["head_node_type"])
    writes = [i for i, c in enumerate(setup) if f"sibcl_ray.grafana_dashboard --output {folder}/" in c]
    installs = [i for i, c in enumerate(setup) if c.strip() == f"pip install {PACKAGE_MOUNT}"]
    assert folder and writes and installs and installs[0] < writes[0], (
        f"head setup must write the dashboard into RAY_METRICS_GRAFANA_DASHBOARD_OUTPUT_DIR={folder}, got {setup}")
    assert any(re.search(r"apt-get install .*\bprometheus\b", c) for c in setup), "head setup must install Prometheus"
    for cmd in prepared["worker_start_ray_commands"]:
        assert "prometheus" not in cmd, f"Prometheus belongs on the head only: {cmd!r}"


RULES = {f.__name__.removeprefix("rule_"): f for f in [
    rule_images_pinned, rule_gpu_image_on_gpu_nodes, rule_trial_driver_only_on_head, rule_driver_slots_cover_gpus,
    rule_workers_scale_from_zero, rule_gpu_worker_leaves_cpus_for_ray_data, rule_nothing_binds_all_interfaces,
    rule_dashboard_host_is_localhost, rule_resources_only_in_node_types, rule_ssh_only_from_one_address,
    rule_ami_explicit, rule_setup_installs_package, rule_shared_storage_mounted, rule_token_auth_on_every_node,
    rule_monitoring_on_head_loopback,
]}


@pytest.mark.parametrize("rule", RULES)
def test_cluster_yaml_follows_rule(rule: str, raw: Config, prepared: Config) -> None:
    RULES[rule](raw, prepared)


def _types(c: Config) -> dict[str, Config]:
    return c["available_node_types"]


def _set(path: str, value: Any) -> Callable[[Config], None]:
    def mutate(c: Config) -> None:
        *parents, last = path.split(".")
        for p in parents:
            c = c[int(p)] if isinstance(c, list) else c[p]
        key: Any = int(last) if isinstance(c, list) else last
        if value is _DELETE:
            del c[key]
        else:
            c[key] = value
    return mutate


_DELETE = object()
_HEAD_START = ("ulimit -n 65536; export RAY_AUTH_MODE=token; ray start --head --port=6379 "
               "--autoscaling-config=~/ray_bootstrap_config.yaml")

# Each rule, and a config that breaks only that rule (or that rule first).
MUTATIONS = [
    ("images_pinned", _set("docker.image", "rayproject/ray:latest")),
    ("images_pinned", _set("docker.image", "rayproject/ray:2.59.0-py311-cpu")),
    ("gpu_image_on_gpu_nodes", _set("available_node_types.gpu_worker.docker.worker_image",
                                    "rayproject/ray:2.60.0-py311-cpu")),
    ("gpu_image_on_gpu_nodes", _set("available_node_types.gpu_worker.docker", _DELETE)),
    ("trial_driver_only_on_head", lambda c: _types(c)["head"]["resources"].pop("trial_driver")),
    ("trial_driver_only_on_head", lambda c: _types(c)["cpu_worker"]["resources"].update(trial_driver=4)),
    ("trial_driver_only_on_head", lambda c: _types(c)["head"]["resources"].pop("CPU")),
    ("driver_slots_cover_gpus", lambda c: _types(c)["head"]["resources"].update(trial_driver=4)),
    ("workers_scale_from_zero", _set("available_node_types.gpu_worker.min_workers", 1)),
    ("workers_scale_from_zero", _set("available_node_types.cpu_worker.min_workers", 2)),
    ("workers_scale_from_zero", lambda c: _types(c)["gpu_worker"]["resources"].pop("GPU")),
    ("gpu_worker_leaves_cpus_for_ray_data", lambda c: _types(c)["gpu_worker"]["resources"].update(CPU=4)),
    ("nothing_binds_all_interfaces", lambda c: c["docker"]["run_options"].append("-p 0.0.0.0:8265:8265")),
    ("nothing_binds_all_interfaces", lambda c: c["head_start_ray_commands"].__setitem__(
        1, _HEAD_START + " --dashboard-host=0.0.0.0")),
    ("nothing_binds_all_interfaces", lambda c: c.pop("head_start_ray_commands")),  # Ray's default: 0.0.0.0
    ("dashboard_host_is_localhost", lambda c: c["head_start_ray_commands"].__setitem__(1, _HEAD_START)),
    ("dashboard_host_is_localhost", lambda c: c["head_start_ray_commands"].__setitem__(
        1, _HEAD_START + " --dashboard-host=10.0.0.5")),
    ("dashboard_host_is_localhost", lambda c: c.pop("head_start_ray_commands")),  # Ray's default: 0.0.0.0
    ("dashboard_host_is_localhost", lambda c: c["head_start_ray_commands"].__setitem__(
        1, "ray start --head --dashboard-host=127.0.0.1")),  # no --autoscaling-config
    ("resources_only_in_node_types", lambda c: c["head_start_ray_commands"].__setitem__(
        1, c["head_start_ray_commands"][1] + " --resources='{\"trial_driver\": 16}'")),
    ("resources_only_in_node_types", lambda c: c["worker_start_ray_commands"].append("ray start --num-cpus=8")),
    ("ssh_only_from_one_address", _set("provider.security_group.IpPermissions.0.IpRanges.0.CidrIp", "0.0.0.0/0")),
    ("ssh_only_from_one_address", _set("provider.security_group.IpPermissions.0.IpRanges.0.CidrIp", "10.0.0.0/8")),
    ("ssh_only_from_one_address", lambda c: c["provider"]["security_group"]["IpPermissions"].append(
        {"IpProtocol": "tcp", "FromPort": 8265, "ToPort": 8265, "IpRanges": [{"CidrIp": "203.0.113.7/32"}]})),
    ("ssh_only_from_one_address", _set("provider.security_group", _DELETE)),
    ("ssh_only_from_one_address", _set("provider.security_group.IpPermissions.0.IpRanges", [])),
    ("ssh_only_from_one_address", lambda c: c["provider"]["security_group"]["IpPermissions"][0].update(
        Ipv6Ranges=[{"CidrIpv6": "2001:db8::/32"}])),
    ("ami_explicit", _set("available_node_types.gpu_worker.node_config.ImageId", "latest_dlami")),
    ("ami_explicit", _set("available_node_types.head.node_config.ImageId", _DELETE)),
    ("setup_installs_package", _set("available_node_types.gpu_worker.worker_setup_commands",
                                    ["pip install /home/ray/sibcl_ray"])),
    ("setup_installs_package", _set("available_node_types.gpu_worker.worker_setup_commands", _DELETE)),
    ("setup_installs_package", _set("setup_commands.0", "pip install torch==2.13.0")),
    ("setup_installs_package", lambda c: c["setup_commands"].reverse()),
    ("setup_installs_package", _set("file_mounts", {})),
    ("shared_storage_mounted", lambda c: c["docker"]["run_options"].remove(f"-v {SHARED_MOUNT}:{SHARED_MOUNT}")),
    ("shared_storage_mounted", _set("initialization_commands", [])),
    ("token_auth_on_every_node", lambda c: c["worker_start_ray_commands"].__setitem__(
        1, c["worker_start_ray_commands"][1].replace("export RAY_AUTH_MODE=token; ", ""))),
    ("token_auth_on_every_node", lambda c: c["head_start_ray_commands"].__setitem__(
        1, c["head_start_ray_commands"][1].replace("RAY_AUTH_MODE=token", "RAY_AUTH_MODE=disabled"))),
    ("token_auth_on_every_node", lambda c: c["file_mounts"].pop("/home/ray/.ray/auth_token")),
    ("monitoring_on_head_loopback", lambda c: c["head_start_ray_commands"].pop(2)),
    ("monitoring_on_head_loopback", lambda c: _replace_in(c, "head_start_ray_commands", 2,
                                                          " --web.listen-address=127.0.0.1:9090", "")),
    ("monitoring_on_head_loopback", lambda c: _replace_in(c, "head_start_ray_commands", 2,
                                                          "127.0.0.1:9090", "10.0.0.5:9090")),
    ("monitoring_on_head_loopback", lambda c: _replace_in(c, "head_start_ray_commands", 2,
                                                          "monitoring/prometheus.yml", "prometheus.yml")),
    ("monitoring_on_head_loopback", lambda c: _replace_in(c, "head_start_ray_commands", 2, "kill $p", "true")),
    ("monitoring_on_head_loopback", lambda c: _replace_in(c, "head_start_ray_commands", 1,
                                                          "RAY_PROMETHEUS_HOST=http://127.0.0.1:9090",
                                                          "RAY_PROMETHEUS_HOST=http://127.0.0.1:9091")),
    ("monitoring_on_head_loopback", lambda c: _replace_in(c, "head_start_ray_commands", 1,
                                                          "RAY_GRAFANA_HOST=http://127.0.0.1:3000 ", "")),
    ("monitoring_on_head_loopback", lambda c: _replace_in(c, "head_start_ray_commands", 1,
                                                          "OUTPUT_DIR=/home/ray/grafana-dashboards",
                                                          "OUTPUT_DIR=/tmp/elsewhere")),
    ("monitoring_on_head_loopback", lambda c: c["head_setup_commands"].pop(1)),  # no Prometheus installed
    ("monitoring_on_head_loopback", lambda c: c["head_setup_commands"].pop(2)),  # no dashboard written
    ("monitoring_on_head_loopback", lambda c: c["worker_start_ray_commands"].append(c["head_start_ray_commands"][2])),
]


def _replace_in(c: Config, key: str, index: int, old: str, new: str) -> None:
    assert old in c[key][index], f"mutation does not apply: {old!r} not in {c[key][index]!r}"
    c[key][index] = c[key][index].replace(old, new)


def test_every_rule_has_a_mutation() -> None:
    assert {rule for rule, _ in MUTATIONS} == set(RULES)


@pytest.mark.parametrize("rule, mutate", MUTATIONS, ids=[f"{r}-{i}" for i, (r, _) in enumerate(MUTATIONS)])
def test_rule_rejects_broken_config(rule: str, mutate: Callable, raw: Config, ray_util: Any) -> None:
    broken = copy.deepcopy(raw)
    mutate(broken)
    with pytest.raises(AssertionError):
        RULES[rule](broken, prepare(broken, ray_util))


def test_no_ray_session_was_started() -> None:
    assert not ray.is_initialized()
