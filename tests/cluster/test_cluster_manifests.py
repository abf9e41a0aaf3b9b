"""cluster/: the launcher YAML and the KubeRay manifests are valid and name the right image, entrypoint, GPUs.

Schemas are the real ones: ray-schema.json shipped in the installed ray package, and the
openAPIV3Schema of KubeRay's RayCluster / RayJob CRDs (shared fixtures). The CRD schemas are made
strict (additionalProperties: false wherever the API server would prune unknown fields), so a
misspelt field fails here as it would with `kubectl apply --validate=strict`.
"""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

import guide_ray
from guide_ray.config.job import load_job

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
IMAGE = f"ghcr.io/guide-ray/guide-ray:{guide_ray.__version__}-ray{ray.__version__}-gpu"


def _load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def _strict(schema: object) -> object:
    """Copy of an OpenAPI v3 schema where objects with `properties` reject unknown keys."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def _crd_schema(shared_dir: Path, name: str) -> dict:
    text = (shared_dir / "fixtures" / "kuberay" / name).read_text()
    crd = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # 1 MB: the C loader is 5x faster
    [v1] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return _strict(v1["schema"]["openAPIV3Schema"])


@pytest.fixture(scope="module")
def raycluster_schema(shared_dir: Path) -> dict:
    return _crd_schema(shared_dir, "ray.io_rayclusters.yaml")


@pytest.fixture(scope="module")
def rayjob_schema(shared_dir: Path) -> dict:
    return _crd_schema(shared_dir, "ray.io_rayjobs.yaml")


def _containers(cluster_spec: dict) -> list[tuple[str, dict]]:
    groups = [("head", cluster_spec["headGroupSpec"])] + [(g["groupName"], g) for g in cluster_spec["workerGroupSpecs"]]
    return [(name, c) for name, g in groups for c in g["template"]["spec"]["containers"]]


def _check_cluster_spec(spec: dict) -> None:
    assert spec["rayVersion"] == ray.__version__
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert spec["authOptions"] == {"mode": "token"}
    for group, container in _containers(spec):
        assert container["image"] == IMAGE, group
        gpus = container["resources"]["limits"].get("nvidia.com/gpu")
        assert gpus == ("1" if group == "gpu" else None), group
    [gpu] = spec["workerGroupSpecs"]
    assert gpu["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert gpu["maxReplicas"] >= 1


def test_launcher_config_matches_rays_schema() -> None:
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = _load("ray-cluster.yaml")
    jsonschema.validate(config, schema)
    assert config["docker"]["image"] == IMAGE
    nodes = config["available_node_types"]
    assert nodes[config["head_node_type"]]["resources"] == {"CPU": 0}
    assert nodes["gpu_1x"]["resources"]["GPU"] == 1 and nodes["gpu_1x"]["max_workers"] == config["max_workers"]
    assert any("/mnt/cluster_storage:/mnt/cluster_storage" in o for o in config["docker"]["run_options"])


def test_launcher_schema_catches_a_misspelt_key() -> None:
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = _load("ray-cluster.yaml")
    config["available_node_types"]["gpu_1x"]["max_worker"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, schema)


def test_raycluster_matches_the_crd(raycluster_schema: dict) -> None:
    manifest = _load("kuberay-raycluster.yaml")
    jsonschema.validate(manifest, raycluster_schema)
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayCluster")
    _check_cluster_spec(manifest["spec"])


def test_rayjob_matches_the_crd_and_runs_the_cluster_job(rayjob_schema: dict) -> None:
    manifest = _load("kuberay-rayjob.yaml")
    jsonschema.validate(manifest, rayjob_schema)
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayJob")
    spec = manifest["spec"]
    _check_cluster_spec(spec["rayClusterSpec"])
    args = shlex.split(spec["entrypoint"])
    assert args[:4] == ["python", "-m", "guide_ray.cli", "run"]
    job_file = Path(args[4])
    assert job_file.parent == Path("/app/jobs")  # where the image keeps the checkout (cluster/README.md)
    job = load_job(ROOT / "jobs" / job_file.name)
    assert job.output_dir.startswith("/mnt/cluster_storage/") and job.manifest.startswith("/mnt/cluster_storage/")
    assert job.resources.gpus_per_actor == 1
    assert spec["backoffLimit"] >= 1 and spec["shutdownAfterJobFinishes"] is True
    assert yaml.safe_load(spec["runtimeEnvYAML"]) == {"env_vars": {"RAY_DEDUP_LOGS": "0"}}


def test_strict_crd_schema_catches_a_misspelt_field(raycluster_schema: dict) -> None:
    manifest = copy.deepcopy(_load("kuberay-raycluster.yaml"))
    manifest["spec"]["workerGroupSpecs"][0]["maxReplica"] = 8
    with pytest.raises(jsonschema.ValidationError, match="maxReplica"):
        jsonschema.validate(manifest, raycluster_schema)


def test_readme_names_the_same_image() -> None:
    readme = (CLUSTER / "README.md").read_text()
    assert IMAGE in readme and f"rayproject/ray:{ray.__version__}" in readme
