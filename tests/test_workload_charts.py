"""Workload charts: ComputeDomain, IMEX channel check, nvbandwidth and NCCL MPIJobs, MpiJob.

Every emitted object is validated: custom resources against the CRD openAPIV3Schema from
tests/third_party (made strict: an unknown field fails here instead of being pruned
silently by the API server), built-in kinds and every MPIJob pod template with
kubernetes-validate (offline schemas, strict) for each supported Kubernetes version.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import cdk8s
import jsonschema
import kubernetes_validate
import pytest
import yaml

from eks_ultraserver.charts.compute_domain import (
    CHANNEL_CLAIM_NAME,
    ChannelAllocationMode,
    ComputeDomain,
    DraDriverTarget,
)
from eks_ultraserver.charts.manifests import (
    DIGEST_LENGTH,
    benchmark_charts,
    build_app,
    content_digest,
    validation_charts,
)
from eks_ultraserver.charts.mpijob import (
    EFA_DEVICE_CLASS,
    EFA_RESOURCE,
    FORBIDDEN_HOST_PATHS,
    GPU_RESOURCE,
    INSTANCE_STORE_PATH,
    CapacityTarget,
    MpiJob,
    UltraServerTarget,
    Volume,
    max_job_name_length,
)
from eks_ultraserver.charts.validation import (
    NCCL_EFA_ENV,
    VALIDATION_TTL_SECONDS,
    ImexChannelCheck,
    NcclAllReduceJob,
    NvbandwidthJob,
    image_reference_problems,
)
from eks_ultraserver.config import AddonsConfig, DraDriverLine, EnvironmentConfig
from eks_ultraserver.model import ConfigurationError, EfaLayout, UltraServerType
from eks_ultraserver.versions import (
    MPI_OPERATOR,
    NVBANDWIDTH_IMAGE,
    SUPPORTED_KUBERNETES_VERSIONS,
    parse_kubernetes_version,
)

from conftest import PACKAGED_UPSTREAM, UPSTREAM, crd_validator

US72 = UltraServerTarget(name="us-a", type=UltraServerType.U_P6E_GB200X72)
US36 = UltraServerTarget(name="us-b", type=UltraServerType.U_P6E_GB200X36, efa_layout=EfaLayout.ALL_ODD_CARDS)
RID = ["cr-0123456789abcdef0", "cr-0123456789abcdef1"]
#: A test nccl-tests image named by its component versions (none is pinned by the library).
NCCL_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/nccl-tests:efa1.41.0-ofiv1.14.2-ncclv2.27.3-1"


# --------------------------------------------------------------------------------------
# Schemas (loaded once per session: the MPIJob CRD is ~300 KB)
# --------------------------------------------------------------------------------------


def _crd_validator(path: Path, version: str) -> jsonschema.Draft7Validator:
    with open(path) as f:
        docs = [d for d in yaml.load_all(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if d]
    (crd,) = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    return crd_validator(crd, version)


@pytest.fixture(scope="session")
def crds():
    return {
        ("ComputeDomain", DraDriverLine.KUBERNETES_SIGS): _crd_validator(
            UPSTREAM / "computedomain-crd-dra-driver-nvidia-gpu-v0.4.1.yaml", "v1beta1"
        ),
        ("ComputeDomain", DraDriverLine.NGC): _crd_validator(
            UPSTREAM / "computedomain-crd-v25.8.0.yaml", "v1beta1"
        ),
        ("MPIJob", None): _crd_validator(
            PACKAGED_UPSTREAM / f"mpi-operator-{MPI_OPERATOR.version}.yaml", "v2beta1"
        ),
    }


def _errors(validator, obj) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


def _k8s_validate(obj: dict, min_version: str = "1.33") -> None:
    for version in SUPPORTED_KUBERNETES_VERSIONS:
        if parse_kubernetes_version(version) >= parse_kubernetes_version(min_version):
            kubernetes_validate.validate(obj, version, strict=True)


def validate_object(obj: dict, crds, line: DraDriverLine) -> None:
    """Raises (pytest failure or ValidationError) unless ``obj`` is valid."""
    name = obj["metadata"]["name"]
    assert len(name) <= 63 and name == name.lower(), name
    kind = obj["kind"]
    if kind == "ComputeDomain":
        assert obj["apiVersion"] == "resource.nvidia.com/v1beta1"
        assert _errors(crds[("ComputeDomain", line)], obj) == []
    elif kind == "MPIJob":
        assert obj["apiVersion"] == "kubeflow.org/v2beta1"
        assert _errors(crds[("MPIJob", None)], obj) == []
        for role, replica in obj["spec"]["mpiReplicaSpecs"].items():
            pod_template = {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": f"{name}-{role.lower()}"},
                "template": replica["template"],
            }
            _k8s_validate(pod_template)
    elif kind == "ResourceClaimTemplate":
        # resource.k8s.io/v1 exists from Kubernetes 1.34 (DRANET's minimum) on.
        assert obj["apiVersion"] == "resource.k8s.io/v1"
        _k8s_validate(obj, min_version="1.34")
    elif kind in ("Pod", "Job"):
        _k8s_validate(obj)
    else:  # pragma: no cover - a new kind needs a validator here
        pytest.fail(f"no schema check for kind {kind}")


def test_strict_schemas_catch_unknown_fields(crds):
    """GIVEN the strict CRD schemas and kubernetes-validate WHEN a field is misspelt
    THEN both reject it (the check below is not vacuous)."""
    cd: dict[str, Any] = {
        "apiVersion": "resource.nvidia.com/v1beta1",
        "kind": "ComputeDomain",
        "metadata": {"name": "x"},
        "spec": {"numNodes": 1, "channel": {"resourceClaimTemplate": {"name": "x-channel"}}},
    }
    assert _errors(crds[("ComputeDomain", DraDriverLine.NGC)], cd) == []
    typo = {**cd, "spec": {**cd["spec"], "numNode": 1}}
    assert _errors(crds[("ComputeDomain", DraDriverLine.KUBERNETES_SIGS)], typo)
    no_nodes = {**cd, "spec": {"channel": cd["spec"]["channel"]}}
    assert _errors(crds[("ComputeDomain", DraDriverLine.NGC)], no_nodes), "25.8 requires numNodes"
    assert _errors(crds[("ComputeDomain", DraDriverLine.KUBERNETES_SIGS)], no_nodes) == []
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "containers": [{"name": "c", "image": "i", "resources": {"claims": [{"name": "ch"}]}}],
            "resourceClaims": [{"name": "ch", "resourceClaimTemplateName": "t"}],
        },
    }
    kubernetes_validate.validate(pod, "1.33", strict=True)  # DRA fields are known in 1.33
    pod["spec"]["resourceClaims"][0]["resourceClaimTemplate"] = "t"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, "1.33", strict=True)


# --------------------------------------------------------------------------------------
# Environments: one app per configuration, built once
# --------------------------------------------------------------------------------------

DEFAULT_CONTEXT: dict[str, Any] = {
    "ultraServers": [{"capacityReservationId": RID[0], "type": "u-p6e-gb200x72", "name": "us-1"}],
    "availabilityZone": "us-east-1-dfw-2a",
}
TWO_CONTEXT: dict[str, Any] = {
    "ultraServers": [
        {"capacityReservationId": RID[0], "type": "u-p6e-gb200x72", "name": "us-a"},
        {"capacityReservationId": RID[1], "type": "u-p6e-gb200x36", "name": "us-b"},
    ],
    "availabilityZone": "us-east-1-dfw-2a",
    "kubernetesVersion": "1.34",
    "efaLayout": "all-odd-cards",
    "draDriverLine": "nvidia-dra-driver-gpu",
    "efaMode": "dranet",
}


def _synth(context):
    config = EnvironmentConfig.from_mapping(context)
    app = build_app(config, "unused", nccl_image=NCCL_IMAGE)
    return config, {c.node.id: c.to_json() for c in app.charts}


def _chart(charts, base):
    """The objects of the chart whose id is ``base`` or, for a validation chart, ``base``
    followed by its content digest."""
    (key,) = [
        k for k in charts if k == base or re.fullmatch(rf"{re.escape(base)}-[0-9a-f]{{{DIGEST_LENGTH}}}", k)
    ]
    return charts[key]


@pytest.fixture(scope="module")
def default_env():
    """GIVEN cdk.json's shape: one u-p6e-gb200x72, per-gpu EFA, kubernetes-sigs DRA line."""
    return _synth(DEFAULT_CONTEXT)


@pytest.fixture(scope="module")
def two_env():
    """GIVEN two UltraServers (x72 + x36), all-odd-cards EFA, the NGC DRA line and DRANET."""
    return _synth(TWO_CONTEXT)


def _one(objs, kind):
    (obj,) = [o for o in objs if o["kind"] == kind]
    return obj


def _pod_specs(objs):
    for o in objs:
        if o["kind"] == "Pod":
            yield "pod", o["spec"], o["metadata"]
        if o["kind"] == "Job":
            yield "pod", o["spec"]["template"]["spec"], o["spec"]["template"]["metadata"]
        if o["kind"] == "MPIJob":
            for role, r in o["spec"]["mpiReplicaSpecs"].items():
                yield role, r["template"]["spec"], r["template"]["metadata"]


def test_chart_ids_are_stable(default_env, two_env):
    """THEN the charts (and their ids, used as construct ids by the stack) are, in order:
    validation per UltraServer (named with their content digest), then NCCL per
    UltraServer, then NCCL across all; the same configuration gives the same ids."""
    digest = rf"-[0-9a-f]{{{DIGEST_LENGTH}}}"
    patterns = ["imex-channel-check-us-1" + digest, "nvbandwidth-us-1" + digest, "nccl-us-1"]
    assert [re.fullmatch(p, k) is not None for p, k in zip(patterns, default_env[1], strict=True)] == [
        True
    ] * 3
    bases = ["imex-channel-check-us-a", "nvbandwidth-us-a", "imex-channel-check-us-b", "nvbandwidth-us-b"]
    assert [k.rsplit("-", 1)[0] for k in list(two_env[1])[:4]] == bases
    assert list(two_env[1])[4:] == ["nccl-us-a", "nccl-us-b", "nccl-all-ultraservers"]
    config = EnvironmentConfig.from_mapping(TWO_CONTEXT)
    app = cdk8s.App()
    assert [c.node.id for c in validation_charts(app, config)] == list(two_env[1])[:4]
    assert [c.node.id for c in benchmark_charts(app, config, image=NCCL_IMAGE)] == list(two_env[1])[4:]


@pytest.mark.parametrize("env", ["default_env", "two_env"])
def test_every_object_is_schema_valid(env, request, crds):
    """THEN every object of every chart validates against its CRD or Kubernetes schema."""
    config, charts = request.getfixturevalue(env)
    line = config.addons.dra_driver_line
    kinds = set()
    for objs in charts.values():
        for obj in objs:
            validate_object(obj, crds, line)
            kinds.add(obj["kind"])
    expected = {"ComputeDomain", "MPIJob", "Job"} | ({"ResourceClaimTemplate"} if env == "two_env" else set())
    assert kinds == expected, "no bare Pod"


@pytest.mark.parametrize("env", ["default_env", "two_env"])
def test_every_pod_claims_its_compute_domain_and_tolerates_the_gpu_taint(env, request):
    """THEN in every chart: one ComputeDomain; every GPU pod (and the check pod) claims its
    channel by the template name the ComputeDomain declares; every container claim is
    declared by its pod; every pod tolerates nvidia.com/gpu:NoSchedule and is pinned to
    its UltraServers' nodes with an NVLink clique label."""
    config, charts = request.getfixturevalue(env)
    names = {u.name for u in config.ultraservers}
    for chart_id, objs in charts.items():
        cd = _one(objs, "ComputeDomain")
        template = cd["spec"]["channel"]["resourceClaimTemplate"]["name"]
        assert template == f"{cd['metadata']['name']}-channel"
        for role, spec, _meta in _pod_specs(objs):
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
                "tolerations"
            ]
            (term,) = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
                "nodeSelectorTerms"
            ]
            by_key = {e["key"]: e for e in term["matchExpressions"]}
            assert set(by_key["eks-ultraserver.io/ultraserver"]["values"]) <= names
            assert by_key["nvidia.com/gpu.clique"]["operator"] == "Exists"
            declared = {c["name"]: c for c in spec.get("resourceClaims", [])}
            for container in spec["containers"]:
                for claim in container.get("resources", {}).get("claims", []):
                    assert claim["name"] in declared, (chart_id, role, claim)
            if role in ("pod", "Worker"):
                assert declared[CHANNEL_CLAIM_NAME]["resourceClaimTemplateName"] == template, chart_id
            else:
                assert CHANNEL_CLAIM_NAME not in declared, "the launcher needs no IMEX channel"


@pytest.mark.parametrize("env", ["default_env", "two_env"])
def test_mpijob_numbers_agree(env, request):
    """THEN for every MPIJob: -np = workers x slotsPerWorker, --map-by ppr:<slots>:node,
    one GPU per slot, at most 4, the ComputeDomain sized to the workers, and single-
    UltraServer jobs keep their workers in one clique by pod affinity."""
    config, charts = request.getfixturevalue(env)
    for objs in charts.values():
        if not any(o["kind"] == "MPIJob" for o in objs):
            continue
        job, cd = _one(objs, "MPIJob"), _one(objs, "ComputeDomain")
        spec = job["spec"]
        slots = spec["slotsPerWorker"]
        worker = spec["mpiReplicaSpecs"]["Worker"]
        workers = worker["replicas"]
        args = spec["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]["args"]
        assert args[args.index("-np") + 1] == str(workers * slots)
        assert args[args.index("--map-by") + 1] == f"ppr:{slots}:node"
        assert 1 <= slots <= 4
        limits = worker["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits[GPU_RESOURCE] == slots
        assert cd["spec"]["numNodes"] == workers
        us_values = worker["template"]["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"]
        pod_affinity = worker["template"]["spec"]["affinity"].get("podAffinity")
        if len(us_values) == 1:
            (rule,) = pod_affinity["requiredDuringSchedulingIgnoredDuringExecution"]
            assert rule["topologyKey"] == "nvidia.com/gpu.clique"
            labels = worker["template"]["metadata"]["labels"]
            assert rule["labelSelector"]["matchLabels"].items() <= labels.items()
            nodes = {u.name: u.instance_count for u in config.ultraservers}[us_values[0]]
            assert workers <= nodes
        else:
            assert pod_affinity is None, "workers of a multi-UltraServer job span cliques"
            assert sorted(us_values) == sorted(u.name for u in config.ultraservers)


def test_nvbandwidth_job_is_the_eks_guide_job(default_env):
    """THEN the nvbandwidth job is the EKS guide's: its image, 2 workers x 4 GPUs, workers
    running the image's sshd as mpiuser, the memcpy read CE test case."""
    objs = _chart(default_env[1], "nvbandwidth-us-1")
    spec = _one(objs, "MPIJob")["spec"]
    launcher = spec["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]
    worker = spec["mpiReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    assert launcher["image"] == worker["image"] == NVBANDWIDTH_IMAGE
    assert launcher["command"] == ["mpirun"]
    assert launcher["args"][-3:] == ["nvbandwidth", "-t", "multinode_device_to_device_memcpy_read_ce"]
    assert launcher["args"][:2] == ["--bind-to", "core"]
    assert spec["mpiReplicaSpecs"]["Worker"]["replicas"] == 2 and spec["slotsPerWorker"] == 4
    assert worker["command"] == ["/usr/sbin/sshd", "-De", "-f", "/home/mpiuser/.sshd_config"]
    assert worker["resources"]["limits"] == {GPU_RESOURCE: 4}
    assert spec["sshAuthMountPath"] == "/home/mpiuser/.ssh"
    assert spec["launcherCreationPolicy"] == "WaitForWorkersReady"
    assert spec["runPolicy"]["cleanPodPolicy"] == "Running"


def test_imex_check_pod_lists_the_channel(default_env):
    """THEN the check is a Job whose pod runs once, lists the channel directory and fails
    without channel0."""
    objs = _chart(default_env[1], "imex-channel-check-us-1")
    pod = _one(objs, "Job")["spec"]["template"]
    assert pod["spec"]["restartPolicy"] == "Never"
    (container,) = pod["spec"]["containers"]
    script = container["args"][0]
    assert "ls -la /dev/nvidia-caps-imex-channels" in script
    assert "test -c /dev/nvidia-caps-imex-channels/channel0" in script
    assert script.startswith("set -eu;")
    assert "limits" not in container["resources"], "the check needs no GPU"
    assert _one(objs, "ComputeDomain")["spec"]["numNodes"] == 1


def test_nccl_jobs_use_every_gpu_and_the_efa_layout(default_env, two_env):
    """THEN an NCCL job uses every node of its UltraServers, 4 ranks each, MNNVL and NVLS on
    and exported to the ranks, and each worker takes the layout's EFA devices: the device
    plugin's resource, or with DRANET a claim on efa.networking.k8s.aws of that count."""
    cases = [
        (_chart(default_env[1], "nccl-us-1"), 18, 4, "device-plugin"),
        (two_env[1]["nccl-us-a"], 18, 8, "dranet"),
        (two_env[1]["nccl-us-b"], 9, 8, "dranet"),
        (two_env[1]["nccl-all-ultraservers"], 27, 8, "dranet"),
    ]
    for objs, workers, efa, mode in cases:
        spec = _one(objs, "MPIJob")["spec"]
        assert spec["mpiReplicaSpecs"]["Worker"]["replicas"] == workers
        launcher = spec["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in launcher["env"]}
        assert env["NCCL_MNNVL_ENABLE"] == "1" and env["NCCL_NVLS_ENABLE"] == "1"
        assert env["FI_PROVIDER"] == "efa" and env["NCCL_NET"] == "AWS Libfabric"
        assert env["FI_EFA_USE_DEVICE_RDMA"] == "1"
        args = launcher["args"]
        exported = {args[i + 1] for i, a in enumerate(args) if a == "-x"}
        assert set(env) <= exported
        assert args[args.index("-np") + 1] == str(workers * 4)
        wspec = spec["mpiReplicaSpecs"]["Worker"]["template"]["spec"]
        limits = wspec["containers"][0]["resources"]["limits"]
        if mode == "device-plugin":
            assert limits[EFA_RESOURCE] == efa
            assert not any(o["kind"] == "ResourceClaimTemplate" for o in objs)
        else:
            assert EFA_RESOURCE not in limits
            rct = _one(objs, "ResourceClaimTemplate")
            (request,) = rct["spec"]["spec"]["devices"]["requests"]
            assert request["exactly"] == {
                "deviceClassName": EFA_DEVICE_CLASS,
                "allocationMode": "ExactCount",
                "count": efa,
            }
            claims = {c["name"]: c for c in wspec["resourceClaims"]}
            assert claims["efa"]["resourceClaimTemplateName"] == rct["metadata"]["name"]
        assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in wspec["volumes"]


def test_validation_names_end_in_the_digest_of_their_content():
    """GIVEN the validation charts of one configuration WHEN built twice, and once with a
    change THEN an unchanged check keeps its names, a changed check gets new names (so an
    immutable ComputeDomain or Job spec is never updated in place), and every name and
    reference in a chart carries the same digest, the digest of the chart's objects."""
    config = EnvironmentConfig.from_mapping(DEFAULT_CONTEXT)
    first = validation_charts(cdk8s.App(), config)
    again = validation_charts(cdk8s.App(), config)
    changed = validation_charts(cdk8s.App(), config, namespace="checks")
    assert [c.node.id for c in first] == [c.node.id for c in again]
    assert not {c.node.id for c in first} & {c.node.id for c in changed}
    for chart in first + changed:
        name = chart.node.id
        objs = chart.to_json()
        assert {o["metadata"]["name"] for o in objs} == {name}
        cd = _one(objs, "ComputeDomain")
        assert cd["spec"]["channel"]["resourceClaimTemplate"]["name"] == f"{name}-channel"
        _stem, digest = name.rsplit("-", 1)
        # the digest is that of the objects with the name masked: stable across the rename
        assert digest == content_digest(objs, name)
        assert len(digest) == DIGEST_LENGTH


def test_validation_names_fit_with_the_longest_ultraserver_name(crds):
    """GIVEN an UltraServer name of 40 characters (the longest allowed) WHEN the validation
    charts are built THEN their names are cut to leave room for the digest and stay valid
    (63 characters; the MPIJob's worker pod names too)."""
    long_name = "u" * 40
    context = {**DEFAULT_CONTEXT, "ultraServers": [dict(DEFAULT_CONTEXT["ultraServers"][0], name=long_name)]}
    config = EnvironmentConfig.from_mapping(context)
    check, nvb = validation_charts(cdk8s.App(), config)
    assert len(check.node.id) == 63 and check.node.id.startswith("imex-channel-check-uuu")
    assert len(nvb.node.id + "-worker-1") <= 63
    for chart in (check, nvb):
        for obj in chart.to_json():
            validate_object(obj, crds, DraDriverLine.KUBERNETES_SIGS)


def test_validation_checks_delete_themselves_when_finished(default_env):
    """THEN the IMEX check is a Job (one try, no bare Pod) and the nvbandwidth MPIJob has a
    TTL: both go away a day after they finish."""
    job = _one(_chart(default_env[1], "imex-channel-check-us-1"), "Job")
    assert job["apiVersion"] == "batch/v1"
    assert job["spec"]["ttlSecondsAfterFinished"] == VALIDATION_TTL_SECONDS == 86_400
    assert job["spec"]["backoffLimit"] == 0
    mpijob = _one(_chart(default_env[1], "nvbandwidth-us-1"), "MPIJob")
    assert mpijob["spec"]["runPolicy"]["ttlSecondsAfterFinished"] == VALIDATION_TTL_SECONDS
    kept = ImexChannelCheck(cdk8s.App(), "k", ultraserver=US72, ttl_seconds_after_finished=None)
    assert "ttlSecondsAfterFinished" not in _one(kept.to_json(), "Job")["spec"]
    with pytest.raises(ConfigurationError, match=r"ttl_seconds_after_finished: -1 is not a whole number"):
        NvbandwidthJob(cdk8s.App(), "n", ultraserver=US72, ttl_seconds_after_finished=-1)


def test_nccl_job_fails_rather_than_fall_back_to_sockets(default_env, two_env):
    """THEN every NCCL job with EFA devices forces the aws-ofi-nccl plugin (NCCL_NET), the EFA
    provider and device RDMA, exported to every rank, and mounts no /dev/infiniband; a job
    without EFA devices (NVLink only) sets none of them."""
    for charts, base in ((default_env[1], "nccl-us-1"), (two_env[1], "nccl-all-ultraservers")):
        spec = _one(_chart(charts, base), "MPIJob")["spec"]
        for role in ("Launcher", "Worker"):
            pod = spec["mpiReplicaSpecs"][role]["template"]["spec"]
            env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
            assert NCCL_EFA_ENV.items() <= env.items()
            for volume in pod.get("volumes", []):
                assert "hostPath" not in volume or not volume["hostPath"]["path"].startswith("/dev")
        args = spec["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]["args"]
        exported = {args[i + 1] for i, a in enumerate(args) if a == "-x"}
        assert {"NCCL_NET", "FI_PROVIDER", "FI_EFA_USE_DEVICE_RDMA"} <= exported
    no_efa = UltraServerTarget(name="us-n", type=UltraServerType.U_P6E_GB200X36, efa_layout=EfaLayout.NONE)
    job = NcclAllReduceJob(cdk8s.App(), "n", ultraservers=[no_efa], image=NCCL_IMAGE)
    launcher = _one(job.to_json(), "MPIJob")["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]
    names = {e["name"] for e in launcher["containers"][0]["env"]}
    assert not names & set(NCCL_EFA_ENV), "no EFA devices: NVLink only, nothing to force"


@pytest.mark.parametrize(
    ("image", "accepted"),
    [
        ("public.ecr.aws/u1m6g1t5/nccl-tests-arm64:latest", False),
        ("public.ecr.aws/u1m6g1t5/nccl-tests-arm64", False),
        ("localhost:5000/nccl-tests", False),
        ("", False),
        (None, False),
        (NCCL_IMAGE, True),
        ("localhost:5000/nccl-tests:v2.15.2", True),
        ("public.ecr.aws/u1m6g1t5/nccl-tests-arm64@sha256:" + "0" * 64, True),
    ],
)
def test_nccl_image_must_name_a_version_or_a_digest(image, accepted):
    """GIVEN an image reference THEN only a version tag or a digest is accepted, and the
    refusal names the argument, the value and the fix."""
    problems = image_reference_problems("image", image)
    assert (problems == []) is accepted
    if not accepted:
        with pytest.raises(ConfigurationError, match=r"image: .*(names no version|is not a container image)"):
            NcclAllReduceJob(cdk8s.App(), "x", ultraservers=[US72], image=image)


def test_nccl_image_is_required():
    """THEN there is no default image: building the job without one is a TypeError."""
    with pytest.raises(TypeError, match="image"):
        NcclAllReduceJob(cdk8s.App(), "x", ultraservers=[US72])  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "path", ["/dev/infiniband", "/dev/infiniband/uverbs0", "/dev", "/", "//dev/infiniband/"]
)
def test_mpijob_refuses_a_dev_infiniband_host_path(path):
    """GIVEN a hostPath volume that is or contains /dev/infiniband THEN refused with the reason."""
    assert FORBIDDEN_HOST_PATHS == ("/dev/infiniband",)
    with pytest.raises(
        ConfigurationError, match=r"volumes\[0\]\.host_path: .* would mount /dev/infiniband.*aws-do-eks #63"
    ):
        _user_job(cdk8s.App(), volumes=[Volume(name="ib", mount_path="/dev/infiniband", host_path=path)])
    _user_job(cdk8s.App(), volumes=[Volume(name="ok", mount_path="/data", host_path="/mnt/k8s-disks/0/data")])


def test_ngc_line_always_writes_num_nodes(two_env):
    """THEN on the NGC line (whose CRD requires numNodes) every ComputeDomain has it."""
    for objs in two_env[1].values():
        assert isinstance(_one(objs, "ComputeDomain")["spec"]["numNodes"], int)


# --------------------------------------------------------------------------------------
# The general MpiJob and ComputeDomain
# --------------------------------------------------------------------------------------


def _user_job(app, **overrides):
    args: dict[str, Any] = {
        "name": "train-llm",
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1.0",
        "command": ["python", "/app/train.py", "--epochs", "3"],
        "ultraservers": [US72],
        "workers": 18,
        "efa_devices": 4,
        "env": {"NCCL_MNNVL_ENABLE": "1", "HF_HOME": "/scratch/hf"},
        "volumes": [
            Volume(name="scratch", mount_path="/scratch", size_limit="2Ti"),
            Volume(name="cache", mount_path="/cache", host_path=f"{INSTANCE_STORE_PATH}/cache"),
        ],
    }
    args.update(overrides)
    return MpiJob(app, args["name"], **args)


@pytest.fixture(scope="module")
def user_job():
    """GIVEN a user's training job on one UltraServer with EFA, env and two volumes."""
    return _user_job(cdk8s.App())


def test_user_job_is_valid_and_wired(user_job, crds):
    """THEN it validates, claims its ComputeDomain's channel, mounts the volumes on the
    workers, and passes its environment to the ranks."""
    objs = user_job.to_json()
    for obj in objs:
        validate_object(obj, crds, DraDriverLine.KUBERNETES_SIGS)
    cd, job = _one(objs, "ComputeDomain"), _one(objs, "MPIJob")
    assert cd["metadata"]["name"] == job["metadata"]["name"] == "train-llm"
    worker = job["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"]
    assert worker["resourceClaims"] == [
        {
            "name": CHANNEL_CLAIM_NAME,
            "resourceClaimTemplateName": cd["spec"]["channel"]["resourceClaimTemplate"]["name"],
        }
    ]
    assert worker["volumes"] == [
        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        {"name": "scratch", "emptyDir": {"sizeLimit": "2Ti"}},
        {"name": "cache", "hostPath": {"path": "/mnt/k8s-disks/0/cache", "type": "DirectoryOrCreate"}},
    ]
    assert [m["mountPath"] for m in worker["containers"][0]["volumeMounts"]] == [
        "/dev/shm",
        "/scratch",
        "/cache",
    ]
    args = job["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]["args"]
    assert args == [
        "--map-by", "ppr:4:node", "-np", "72",
        "-x", "NCCL_MNNVL_ENABLE", "-x", "HF_HOME",
        "python", "/app/train.py", "--epochs", "3",
    ]  # fmt: skip
    assert user_job.ranks == 72 and user_job.launcher_job_name == "train-llm-launcher"
    assert "command" not in worker["containers"][0], "workers run the operator's default sshd"


def test_partial_node_workers_get_an_elastic_compute_domain(crds):
    """GIVEN workers of 2 GPUs (two per node) WHEN built THEN the ComputeDomain is elastic
    (numNodes 0), because the node count is not the worker count; on a driver that needs
    the count the caller must give it."""
    job = _user_job(cdk8s.App(), workers=4, slots_per_worker=2, efa_devices=0)
    assert _one(job.to_json(), "ComputeDomain")["spec"]["numNodes"] == 0
    gate_off = DraDriverTarget(imex_daemons_with_dns_names=False)
    with pytest.raises(
        ConfigurationError, match=r"compute_domain_nodes: needed, because workers take 2 of the 4 GPUs"
    ):
        _user_job(cdk8s.App(), workers=4, slots_per_worker=2, dra_driver=gate_off)
    job = _user_job(cdk8s.App(), workers=4, slots_per_worker=2, dra_driver=gate_off, compute_domain_nodes=2)
    assert _one(job.to_json(), "ComputeDomain")["spec"]["numNodes"] == 2


def test_multi_ultraserver_job_spans_them(crds):
    """GIVEN two UltraServers WHEN a job has more workers than one of them holds THEN it is
    accepted (EFA between them), pinned to both, without clique pod affinity."""
    job = _user_job(cdk8s.App(), ultraservers=[US72, US36], workers=27)
    objs = job.to_json()
    for obj in objs:
        validate_object(obj, crds, DraDriverLine.KUBERNETES_SIGS)
    worker = _one(objs, "MPIJob")["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"]
    assert "podAffinity" not in worker["affinity"]
    assert not job.single_domain and job.ranks == 108


def test_compute_domain_construct(crds):
    """GIVEN a ComputeDomain with every option THEN it validates against both CRDs and
    exposes the claim snippets workloads use."""
    chart = cdk8s.Chart(cdk8s.App(), "c")
    cd = ComputeDomain(
        chart,
        "cd",
        name="my-job",
        num_nodes=0,
        allocation_mode=ChannelAllocationMode.ALL,
        resource_claim_template_name="my-job.imex",
        labels={"team": "research"},
    )
    (obj,) = chart.to_json()
    assert obj["spec"] == {
        "numNodes": 0,
        "channel": {"allocationMode": "All", "resourceClaimTemplate": {"name": "my-job.imex"}},
    }
    assert obj["metadata"]["labels"] == {"team": "research"}
    for line in DraDriverLine:
        assert _errors(crds[("ComputeDomain", line)], obj) == []
    assert cd.pod_resource_claim() == {
        "name": "compute-domain-channel",
        "resourceClaimTemplateName": "my-job.imex",
    }
    assert ComputeDomain.container_claim() == {"name": "compute-domain-channel"}


def test_dra_driver_target_from_addons():
    """GIVEN add-on settings THEN the DRA driver target follows the line, the version
    override and the IMEXDaemonsWithDNSNames gate; 0 is elastic on 25.8+ and 0.4."""
    assert DraDriverTarget.from_addons(AddonsConfig()).elastic_supported
    ngc = DraDriverTarget.from_addons(AddonsConfig(dra_driver_line=DraDriverLine.NGC))
    assert ngc.chart_version == "25.8.0" and ngc.elastic_supported
    old = DraDriverTarget.from_addons(
        AddonsConfig(dra_driver_line=DraDriverLine.NGC, versions={"draDriver": "25.3.2"})
    )
    assert not old.elastic_supported
    gate_off = DraDriverTarget.from_addons(
        AddonsConfig(values={"draDriver": {"featureGates": {"IMEXDaemonsWithDNSNames": False}}})
    )
    assert not gate_off.elastic_supported
    assert "IMEXDaemonsWithDNSNames=false" in gate_off.describe()


# --------------------------------------------------------------------------------------
# Validation: one ConfigurationError per call, naming each problem
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"slots_per_worker": 8},
            r"slots_per_worker: 8 is not allowed; a p6e-gb200\.36xlarge node has 4 GPUs, so use 1 to 4",
        ),
        ({"gpus_per_worker": 5}, r"gpus_per_worker: 5 is not allowed"),
        (
            {"workers": 19},
            r"workers: 19 is more than the 18 nodes of UltraServer 'us-a' \(u-p6e-gb200x72\); a job on one UltraServer",
        ),
        (
            {"workers": 28, "ultraservers": [US72, US36]},
            r"workers: 28 is more than the 27 nodes of UltraServers 'us-a', 'us-b'",
        ),
        ({"workers": 0}, r"workers: 0 is not a whole number of worker pods"),
        ({"ranks": 70}, r"ranks: 70 does not equal workers x slots_per_worker = 18 x 4 = 72"),
        (
            {"efa_devices": 5},
            r"efa_devices: 5 is more than the 4 EFA devices per node that EFA layout 'per-gpu' provides; use 0 to 4",
        ),
        (
            {
                "efa_devices": 1,
                "ultraservers": [
                    UltraServerTarget(
                        name="x", type=UltraServerType.U_P6E_GB200X36, efa_layout=EfaLayout.NONE
                    )
                ],
                "workers": 2,
            },
            r"efa_devices: 1 is more than the 0 EFA devices per node that EFA layout 'none' provides",
        ),
        ({"name": "Train_LLM"}, r"name: 'Train_LLM' is not a DNS-1123 label starting with a letter"),
        ({"name": "1train"}, r"name: '1train' is not a DNS-1123 label starting with a letter"),
        (
            {"name": "a" * 54},
            r"has 54 characters; with 18 workers the pod name .* would exceed 63, so use at most 53",
        ),
        ({"namespace": "Prod"}, r"namespace: 'Prod' is not a DNS-1123 label"),
        ({"command": []}, r"command: \[\] must be a non-empty list"),
        ({"image": ""}, r"image: '' is not a container image reference"),
        ({"ultraservers": []}, r"ultraservers: empty"),
        ({"ultraservers": [US72, US72]}, r"ultraservers\[1\]: UltraServer 'us-a' is listed twice"),
        (
            {"mpirun_args": ["-np", "8"]},
            r"mpirun_args\[0\]: '-np' sets the rank count, which MpiJob derives; use ranks= instead",
        ),
        ({"mpirun_args": ["--map-by", "node"]}, r"mpirun_args\[0\]: '--map-by' sets the process mapping"),
        ({"env": {"BAD=NAME": "1"}}, r"env: 'BAD=NAME' is not a valid environment variable name"),
        (
            {"volumes": [Volume(name="s", mount_path="scratch")]},
            r"volumes\[0\]\.mount_path: 'scratch' is not an absolute path",
        ),
        (
            {"volumes": [Volume(name="s", mount_path="/dev/shm")]},
            r"volumes\[0\]\.mount_path: '/dev/shm' is already mounted by shared_memory",
        ),
        (
            {"volumes": [Volume(name="s", mount_path="/s", host_path="/mnt/x", size_limit="1Ti")]},
            r"volumes\[0\]\.size_limit: '1Ti' applies only to an emptyDir",
        ),
        ({"efa_mode": "rdma"}, r"efa_mode: 'rdma' is not allowed; use one of 'device-plugin', 'dranet'"),
        (
            {"channel_allocation_mode": "Many"},
            r"channel_allocation_mode: 'Many' is not allowed; use one of 'Single', 'All'",
        ),
        ({"compute_domain_nodes": -1}, r"compute_domain_nodes: -1 is not a whole number of nodes"),
        ({"compute_domain_nodes": 19}, r"compute_domain_nodes: 19 is more than the 18 nodes"),
        ({"clean_pod_policy": "Sometimes"}, r"clean_pod_policy: 'Sometimes' is not allowed"),
        ({"labels": {"team": "a b"}}, r"labels\['team'\]: 'a b' is not a valid Kubernetes label value"),
        (
            {
                "compute_domain_nodes": 0,
                "dra_driver": DraDriverTarget(line=DraDriverLine.NGC, version="25.3.2"),
            },
            r"compute_domain_nodes: 0 \(elastic\) is not accepted by the DRA driver nvidia-dra-driver-gpu 25\.3\.2",
        ),
    ],
)
def test_mpijob_validation(overrides, message):
    """GIVEN one bad argument WHEN the job is built THEN one ConfigurationError names it,
    and no chart was added to the app."""
    app = cdk8s.App()
    with pytest.raises(ConfigurationError, match=message) as err:
        _user_job(app, **overrides)
    assert len(err.value.problems) == 1, err.value.problems
    assert app.charts == []


def test_every_problem_is_reported_at_once():
    """GIVEN five bad numbers and a bad name WHEN built THEN one error lists all of them."""
    with pytest.raises(ConfigurationError) as err:
        _user_job(cdk8s.App(), name="Bad_Name", slots_per_worker=8, workers=20, ranks=5, efa_devices=9)
    text = str(err.value)
    assert text.startswith("invalid MpiJob 'Bad_Name' (5 problems):")
    for arg in ("name:", "slots_per_worker:", "workers:", "efa_devices:", "ranks:"):
        assert f"  - {arg}" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "My_Domain", "num_nodes": 1}, r"name: 'My_Domain' is not a DNS-1123 label"),
        ({"name": "cd", "num_nodes": -2}, r"num_nodes: -2 is not a whole number of nodes"),
        (
            {"name": "cd", "num_nodes": 0, "dra_driver": DraDriverTarget(imex_daemons_with_dns_names=False)},
            r"num_nodes: 0 \(elastic\) is not accepted by the DRA driver dra-driver-nvidia-gpu 0\.4\.1 with IMEXDaemonsWithDNSNames=false",
        ),
        (
            {"name": "cd", "num_nodes": 1, "allocation_mode": "Some"},
            r"allocation_mode: 'Some' is not allowed",
        ),
        (
            {"name": "cd", "num_nodes": 1, "resource_claim_template_name": "A B"},
            r"resource_claim_template_name: 'A B' is not a valid",
        ),
    ],
)
def test_compute_domain_validation(kwargs, message):
    """GIVEN one bad ComputeDomain argument THEN one ConfigurationError names it."""
    chart = cdk8s.Chart(cdk8s.App(), "c")
    with pytest.raises(ConfigurationError, match=message):
        ComputeDomain(chart, "cd", **kwargs)


def test_elastic_compute_domain_is_accepted_on_ngc_25_8():
    """GIVEN the NGC line at the pinned 25.8.0 THEN numNodes 0 is accepted: its CRD
    recommends 0 with IMEXDaemonsWithDNSNames on (the default), as the EKS guide does."""
    chart = cdk8s.Chart(cdk8s.App(), "c")
    ComputeDomain(chart, "cd", name="cd", num_nodes=0, dra_driver=DraDriverTarget(line=DraDriverLine.NGC))
    assert chart.to_json()[0]["spec"]["numNodes"] == 0


def test_ultraserver_target_validation():
    """GIVEN a bad UltraServer target THEN one error names each bad field."""
    with pytest.raises(
        ConfigurationError, match=r"type: 'p6e-gb200\.36xlarge' is not an UltraServer type"
    ) as err:
        UltraServerTarget(name="US 1", type="p6e-gb200.36xlarge", efa_layout="lots")  # type: ignore[arg-type]
    assert len(err.value.problems) == 3
    # a string (as read from cdk.json) names the type
    assert UltraServerTarget(name="x", type="u-p6e-gb200x36").nodes == 9  # type: ignore[arg-type]


def test_validation_chart_and_nccl_argument_errors():
    """GIVEN bad arguments to the validation charts THEN they fail with named problems."""
    with pytest.raises(ConfigurationError, match=r"workers: 19 is more than the 18 nodes"):
        NvbandwidthJob(cdk8s.App(), "n", ultraserver=US72, workers=19)
    with pytest.raises(ConfigurationError, match=r"name: 'Check' is not a DNS-1123 label"):
        ImexChannelCheck(cdk8s.App(), "i", ultraserver=US72, name="Check")
    with pytest.raises(ConfigurationError, match=r"ultraservers: empty"):
        NcclAllReduceJob(cdk8s.App(), "x", ultraservers=[], image=NCCL_IMAGE)


def test_reserved_ultraserver_name_is_refused():
    """GIVEN an UltraServer named like the cross-UltraServer NCCL job THEN a clear error."""
    context = {
        **TWO_CONTEXT,
        "ultraServers": [
            dict(TWO_CONTEXT["ultraServers"][0], name="all-ultraservers"),
            TWO_CONTEXT["ultraServers"][1],
        ],
    }
    config = EnvironmentConfig.from_mapping(context)
    with pytest.raises(
        ConfigurationError, match=r"'nccl-all-ultraservers', which the job across all UltraServers uses"
    ):
        benchmark_charts(cdk8s.App(), config, image=NCCL_IMAGE)


def test_name_length_rule():
    """THEN the longest name keeps '<name>-worker-<last index>' within 63 characters."""
    for workers in (1, 2, 10, 18, 100):
        n = max_job_name_length(workers)
        assert len("a" * n + f"-worker-{workers - 1}") == 63


# --------------------------------------------------------------------------------------
# Snapshots: one per chart
# --------------------------------------------------------------------------------------


def test_snapshot_imex_channel_check(default_env, snapshot_json):
    assert _chart(default_env[1], "imex-channel-check-us-1") == snapshot_json


def test_snapshot_nvbandwidth(default_env, snapshot_json):
    assert _chart(default_env[1], "nvbandwidth-us-1") == snapshot_json


def test_snapshot_nccl_one_ultraserver(default_env, snapshot_json):
    assert _chart(default_env[1], "nccl-us-1") == snapshot_json


def test_snapshot_nccl_all_ultraservers_dranet(two_env, snapshot_json):
    assert two_env[1]["nccl-all-ultraservers"] == snapshot_json


def test_snapshot_user_mpijob(user_job, snapshot_json):
    assert user_job.to_json() == snapshot_json


# --------------------------------------------------------------------------------------
# Layering
# --------------------------------------------------------------------------------------


def test_charts_never_import_aws_cdk():
    """GIVEN a fresh interpreter WHEN the workload charts and the command are imported
    THEN aws_cdk is not loaded (the manifests command needs no CloudFormation)."""
    code = (
        "import sys\n"
        "import eks_ultraserver.charts.manifests, eks_ultraserver.commands.manifests\n"
        "bad = sorted(m for m in sys.modules if m == 'aws_cdk' or m.startswith('aws_cdk.'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent)


# --------------------------------------------------------------------------------------
# MpiJob on reserved or burst GPU capacity (no UltraServer, no ComputeDomain)
# --------------------------------------------------------------------------------------


def test_mpijob_on_reserved_p5_capacity(crds):
    """GIVEN a job on the 'eval' ODCR's p5.48xlarge nodes WHEN synthesized THEN it selects
    those nodes, uses 8 GPUs and 32 EFA devices per worker, and has no ComputeDomain."""
    app = cdk8s.App()
    job = _user_job(
        app,
        ultraservers=(),
        capacity=CapacityTarget.reserved("eval", gpus_per_node=8, efa_devices=32, nodes=2),
        workers=2,
        slots_per_worker=8,
        efa_devices=32,
        env={},
        volumes=[],
    )
    objs = job.to_json()
    assert [o["kind"] for o in objs] == ["MPIJob"]
    for obj in objs:
        validate_object(obj, crds, DraDriverLine.KUBERNETES_SIGS)
    worker = objs[0]["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"]
    assert worker["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ] == [
        {
            "matchExpressions": [
                {"key": "eks-ultraserver.io/reserved-capacity", "operator": "In", "values": ["eval"]}
            ]
        }
    ]
    assert "podAffinity" not in worker["affinity"] and "resourceClaims" not in worker
    assert worker["containers"][0]["resources"] == {"limits": {GPU_RESOURCE: 8, EFA_RESOURCE: 32}}
    assert job.compute_domain is None and job.ranks == 16


def test_mpijob_on_spot_burst_capacity(crds):
    app = cdk8s.App()
    job = _user_job(
        app,
        ultraservers=(),
        capacity=CapacityTarget.burst(gpus_per_node=4, spot=True),
        workers=3,
        slots_per_worker=4,
        efa_devices=0,
        env={},
        volumes=[],
    )
    (obj,) = job.to_json()
    validate_object(obj, crds, DraDriverLine.KUBERNETES_SIGS)
    launcher = obj["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]
    exprs = launcher["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ][0]["matchExpressions"]
    assert {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]} in exprs
    assert {"key": "eks-ultraserver.io/capacity", "operator": "In", "values": ["burst"]} in exprs


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"capacity": CapacityTarget.reserved("eval", gpus_per_node=8)},
            r"capacity: given together with ultraservers",
        ),
        (
            {
                "ultraservers": (),
                "capacity": CapacityTarget.reserved("eval", gpus_per_node=8),
                "slots_per_worker": 9,
                "workers": 1,
            },
            r"slots_per_worker: 9 is not allowed; a node of that capacity has 8 GPUs",
        ),
        (
            {
                "ultraservers": (),
                "capacity": CapacityTarget.reserved("eval", gpus_per_node=8, efa_devices=32),
                "efa_devices": 33,
                "workers": 1,
            },
            r"efa_devices: 33 is more than the 32 EFA devices per node of the target capacity",
        ),
        (
            {
                "ultraservers": (),
                "capacity": CapacityTarget.reserved("eval", gpus_per_node=8, nodes=2),
                "workers": 3,
                "slots_per_worker": 8,
            },
            r"workers: 3 is more than the 2 nodes of the target capacity",
        ),
        (
            {
                "ultraservers": (),
                "capacity": CapacityTarget.reserved("eval", gpus_per_node=8),
                "workers": 1,
                "compute_domain_nodes": 1,
            },
            r"compute_domain_nodes: given, but a job on capacity= gets no ComputeDomain",
        ),
    ],
)
def test_mpijob_capacity_validation(overrides, message):
    with pytest.raises(ConfigurationError, match=message):
        _user_job(cdk8s.App(), **{"efa_devices": 0, **overrides})


def test_capacity_target_validation():
    with pytest.raises(ConfigurationError, match=r"node_selector: empty.*\n.*gpus_per_node: 0"):
        CapacityTarget(node_selector={}, gpus_per_node=0)
