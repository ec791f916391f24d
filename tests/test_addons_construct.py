"""GpuPlatformAddons: releases, namespaces, repositories, versions, install order, the
MPI operator chart asset, switching through cdk.json context, and refusals."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_eks_v2 as eks
from aws_cdk.assertions import Annotations, Match
from aws_cdk.lambda_layer_kubectl_v35 import KubectlV35Layer

from constructs import Dependable
from eks_ultraserver.config import AddonsConfig, DraDriverLine, EfaMode, EnvironmentConfig
from eks_ultraserver.constructs.addons import GpuPlatformAddons
from eks_ultraserver.helm.dra_driver import DraDriverValues
from eks_ultraserver.helm.gpu_operator import GpuOperatorValues
from eks_ultraserver.model import SYSTEM_NODE_LABEL, SYSTEM_NODE_LABEL_VALUE, ConfigurationError
from eks_ultraserver.versions import (
    DRA_DRIVER,
    DRA_DRIVER_LEGACY,
    DRANET,
    EFA_DEVICE_PLUGIN,
    GPU_OPERATOR,
    MPI_OPERATOR,
)

from conftest import ACCOUNT, LOCAL_ZONE, PACKAGED_UPSTREAM, REGION, template_of

HELM = "Custom::AWSCDK-EKS-HelmChart"
SYSTEM = {SYSTEM_NODE_LABEL: SYSTEM_NODE_LABEL_VALUE}
MPI_MANIFEST = str(PACKAGED_UPSTREAM / f"mpi-operator-{MPI_OPERATOR.version}.yaml")


def _stack(version: str = "1.35", context: dict | None = None):
    app = cdk.App(context=context)
    stack = cdk.Stack(app, "Test", env=cdk.Environment(account=ACCOUNT, region=REGION))
    cluster = eks.Cluster(
        stack,
        "Cluster",
        version=eks.KubernetesVersion.of(version),
        default_capacity=0,
        default_capacity_type=eks.DefaultCapacityType.NODEGROUP,
        kubectl_provider_options=eks.KubectlProviderOptions(kubectl_layer=KubectlV35Layer(stack, "Kubectl")),
    )
    return stack, cluster


def _context(**overrides):
    """cdk.json context as `cdk synth -c` delivers it (JSON objects as strings)."""
    context = {
        "ultraServers": [
            {"capacityReservationId": "cr-0123456789abcdef0", "type": "u-p6e-gb200x72", "name": "us-1"}
        ],
        "availabilityZone": LOCAL_ZONE,
        "mpiOperatorManifest": MPI_MANIFEST,
    }
    context.update(overrides)
    return EnvironmentConfig.from_mapping(context)


def _helm_releases(tpl):
    """logical id -> (properties with Values parsed, DependsOn)."""
    out = {}
    for logical_id, res in tpl["Resources"].items():
        if res["Type"] == HELM:
            props = dict(res["Properties"])
            props["Values"] = json.loads(props["Values"])
            out[logical_id] = (props, res.get("DependsOn", []))
    return out


def _release(tpl, construct_id):
    (found,) = [v for k, v in _helm_releases(tpl).items() if k.startswith(construct_id)]
    return found


@pytest.fixture(scope="module")
def default():
    """GIVEN the default context (no add-on keys) and system nodes WHEN synthesized once."""
    stack, cluster = _stack()
    config = _context()
    addons = GpuPlatformAddons(
        stack,
        "Addons",
        cluster=cluster,
        addons=config.addons,
        kubernetes_version=config.kubernetes_version,
        system_node_selector=SYSTEM,
    )
    return addons, template_of(stack).to_json()


@pytest.fixture(scope="module")
def switched():
    """GIVEN -c draDriverLine=nvidia-dra-driver-gpu -c efaMode=dranet, a GPU Operator version
    and a value override, on Kubernetes 1.34, without a system selector WHEN synthesized."""
    stack, cluster = _stack("1.34")
    config = _context(
        kubernetesVersion="1.34",
        draDriverLine="nvidia-dra-driver-gpu",
        efaMode="dranet",
        addonVersions='{"gpuOperator":"v25.3.4","draDriver":"25.12.0"}',
        addonValues='{"gpuOperator":{"dcgmExporter":{"enabled":false}},"dranet":{"verbosity":2}}',
    )
    addons = GpuPlatformAddons(
        stack,
        "Addons",
        cluster=cluster,
        addons=config.addons,
        kubernetes_version=config.kubernetes_version,
    )
    return addons, template_of(stack).to_json()


@pytest.fixture(scope="module")
def unsynthesized():
    """A stack with a cluster, never synthesized, for constructs that must be refused."""
    return _stack()


# --------------------------------------------------------------------------------------
# Releases
# --------------------------------------------------------------------------------------


def test_default_installs_each_release_with_the_pinned_chart(default):
    _, tpl = default
    expected = {
        "AddonsGpuOperator": (
            "gpu-operator",
            GPU_OPERATOR.repository,
            GPU_OPERATOR.version,
            "gpu-operator",
            "gpu-operator",
        ),
        # OCI: the kubectl handler `helm pull`s the repository, which must name the chart
        "AddonsDraDriver": (
            "dra-driver-nvidia-gpu",
            "oci://registry.k8s.io/dra-driver-nvidia/charts/dra-driver-nvidia-gpu",
            DRA_DRIVER.version,
            "nvidia-dra-driver-gpu",
            "nvidia-dra-driver-gpu",
        ),
        "AddonsEfaDevicePlugin": (
            "aws-efa-k8s-device-plugin",
            "https://aws.github.io/eks-charts",
            EFA_DEVICE_PLUGIN.version,
            "kube-system",
            "aws-efa-k8s-device-plugin",
        ),
    }
    for construct_id, (chart, repository, version, namespace, release) in expected.items():
        props, _ = _release(tpl, construct_id)
        assert (props["Chart"], props["Repository"], props["Version"]) == (chart, repository, version)
        assert (props["Namespace"], props["Release"]) == (namespace, release)
        assert props["CreateNamespace"] is True
    assert len(_helm_releases(tpl)) == 4, "no DRANET next to the EFA device plugin"


def test_mpi_operator_is_a_chart_asset_not_an_inline_manifest(default):
    _, tpl = default
    props, _ = _release(tpl, "AddonsMpiOperator")
    assert props["Release"] == "mpi-operator" and props["Namespace"] == MPI_OPERATOR.namespace
    assert props["ChartAssetURL"].startswith("s3://") and props["ChartAssetURL"].endswith(".zip")
    assert "Chart" not in props and "Repository" not in props and "Version" not in props
    text = json.dumps(tpl)
    assert "mpijobs.kubeflow.org" not in text, "the CRD is not in the template"
    assert not any(r["Type"] == "Custom::AWSCDK-EKS-KubernetesResource" for r in tpl["Resources"].values())


def test_mpi_chart_asset_hash_is_stable_between_synths(default, switched):
    assert (
        _release(default[1], "AddonsMpiOperator")[0]["ChartAssetURL"]
        == _release(switched[1], "AddonsMpiOperator")[0]["ChartAssetURL"]
    )


def test_mpi_chart_deploys_the_crd_as_a_template_helm_upgrades(default):
    addons, _ = default
    chart = addons.mpi_operator_chart
    assert chart.release.version == MPI_OPERATOR.version
    assert "templates/00-customresourcedefinition-mpijobs.kubeflow.org.yaml" in chart.files
    assert not [f for f in chart.files if f.startswith("crds/")], "Helm never upgrades crds/"


def test_synth_writes_nothing_in_a_home_or_cache_directory(tmp_path, monkeypatch):
    # GIVEN an empty home and cache directory, and no cache setting
    home, cache = tmp_path / "home", tmp_path / "xdg-cache"
    home.mkdir()
    cache.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("EKS_ULTRASERVER_CACHE_DIR", raising=False)
    # WHEN the add-ons are planned and synthesized
    stack, cluster = _stack()
    addons = GpuPlatformAddons(stack, "Addons", cluster=cluster, kubernetes_version="1.35")
    props, _ = _release(template_of(stack).to_json(), "AddonsMpiOperator")
    # THEN the chart asset exists, from a temporary directory, and nothing was written there
    assert props["ChartAssetURL"].startswith("s3://")
    assert addons.mpi_operator_chart.path.is_dir()
    assert Path(tempfile.gettempdir()) in addons.mpi_operator_chart.path.parents
    assert list(home.rglob("*")) == [] and list(cache.rglob("*")) == []


def test_warns_that_an_unstaged_chart_asset_cannot_be_deployed():
    # GIVEN cdk synth --no-staging (the CLI sets this context key)
    stack, cluster = _stack(context={"aws:cdk:disable-asset-staging": True})
    # WHEN the add-ons are added THEN the user learns the assembly points at a temporary
    # directory that is gone once synth ends
    GpuPlatformAddons(stack, "Addons", cluster=cluster, kubernetes_version="1.35")
    Annotations.from_stack(stack).has_warning(
        "/Test/Addons", Match.string_like_regexp("Asset staging is disabled .* cannot be deployed")
    )


def test_install_order_dra_driver_after_gpu_operator(default):
    _, tpl = default
    helm_ids = set(_helm_releases(tpl))
    (gpu_operator,) = [k for k in helm_ids if k.startswith("AddonsGpuOperator")]
    _, dra_deps = _release(tpl, "AddonsDraDriver")
    assert gpu_operator in dra_deps
    for other in ("AddonsGpuOperator", "AddonsEfaDevicePlugin", "AddonsMpiOperator"):
        _, deps = _release(tpl, other)
        assert not helm_ids & set(deps), f"{other} waits for no other add-on"


def test_values_in_the_template_are_the_builders_with_nulls_kept(default):
    addons, tpl = default
    gpu, _ = _release(tpl, "AddonsGpuOperator")
    dra, _ = _release(tpl, "AddonsDraDriver")
    assert gpu["Values"] == GpuOperatorValues(system_node_selector=SYSTEM).values()
    assert dra["Values"] == DraDriverValues(system_node_selector=SYSTEM).values()
    assert dra["Values"]["controller"]["affinity"] is None  # a JSON null reaches Helm
    efa, _ = _release(tpl, "AddonsEfaDevicePlugin")
    assert efa["Values"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    mpi, _ = _release(tpl, "AddonsMpiOperator")
    assert mpi["Values"] == {"nodeSelector": SYSTEM}
    assert addons.values["draDriver"] == dra["Values"]


def test_attributes_expose_each_release_and_a_ready_dependable(default):
    addons, _ = default
    assert set(addons.charts) == {"gpuOperator", "draDriver", "efaDevicePlugin", "mpiOperator"}
    assert addons.charts["gpuOperator"] is addons.gpu_operator
    assert addons.charts["draDriver"] is addons.dra_driver
    assert addons.charts["efaDevicePlugin"] is addons.efa
    assert addons.charts["mpiOperator"] is addons.mpi_operator
    assert addons.releases["gpuOperator"] == GPU_OPERATOR
    assert addons.releases["mpiOperator"] == MPI_OPERATOR
    assert addons.efa_mode is EfaMode.DEVICE_PLUGIN
    assert addons.dra_driver_line is DraDriverLine.KUBERNETES_SIGS
    roots = Dependable.of(addons.ready).dependency_roots
    assert sorted(r.node.path for r in roots) == sorted(c.node.path for c in addons.charts.values())


def test_a_workload_can_depend_on_every_add_on():
    # GIVEN a manifest that depends on `ready` WHEN synthesized THEN it waits for all four
    stack, cluster = _stack()
    addons = GpuPlatformAddons(
        stack,
        "Addons",
        cluster=cluster,
        kubernetes_version="1.35",
        mpi_operator_manifest=MPI_MANIFEST,
    )
    workload = cluster.add_manifest(
        "Workload", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "w"}}
    )
    workload.node.add_dependency(addons.ready)
    tpl = template_of(stack).to_json()
    (deps,) = [
        r.get("DependsOn", []) for k, r in tpl["Resources"].items() if k.startswith("ClustermanifestWorkload")
    ]
    helm_ids = set(_helm_releases(tpl))
    assert helm_ids <= set(deps) and len(helm_ids) == 4


# --------------------------------------------------------------------------------------
# Switching through context
# --------------------------------------------------------------------------------------


def test_switched_dra_line_efa_mode_and_versions(switched):
    addons, tpl = switched
    gpu, _ = _release(tpl, "AddonsGpuOperator")
    assert gpu["Version"] == "v25.3.4"
    assert gpu["Values"]["dcgmExporter"] == {"enabled": False, "serviceMonitor": {"enabled": False}}
    assert "operator" not in gpu["Values"], "no system selector given: the operator is not pinned"
    dra, dra_deps = _release(tpl, "AddonsDraDriver")
    assert (dra["Chart"], dra["Repository"], dra["Version"]) == (
        DRA_DRIVER_LEGACY.chart,
        DRA_DRIVER_LEGACY.repository,
        "25.12.0",
    )
    assert dra["Values"]["controller"] == {"nodeSelector": None, "affinity": None, "tolerations": []}
    assert any(d.startswith("AddonsGpuOperator") for d in dra_deps)
    dranet, _ = _release(tpl, "AddonsDranet")
    assert (dranet["Chart"], dranet["Repository"], dranet["Version"], dranet["Namespace"]) == (
        DRANET.chart,
        DRANET.repository,
        DRANET.version,
        "kube-system",
    )
    assert dranet["Values"]["verbosity"] == 2
    assert not [k for k in _helm_releases(tpl) if k.startswith("AddonsEfaDevicePlugin")]
    assert addons.efa_mode is EfaMode.DRANET and set(addons.charts) == {
        "gpuOperator",
        "draDriver",
        "dranet",
        "mpiOperator",
    }


# --------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------


def test_every_problem_is_reported_at_once_and_nothing_is_built(unsynthesized, tmp_path):
    stack, cluster = unsynthesized
    tampered = tmp_path / "mpi.yaml"
    tampered.write_text("kind: Namespace\n")
    # an unknown component is the AddonsConfig's own problem: refused when it is built
    with pytest.raises(ConfigurationError, match="addonVersions: unknown component 'gpuOprator'"):
        AddonsConfig(versions={"gpuOprator": "v1"})
    config = AddonsConfig(
        efa_mode=EfaMode.DRANET,
        versions={"gpuOperator": "v26.7.0"},
        mpi_operator_manifest=str(tampered),
    )
    with pytest.raises(ConfigurationError) as err:
        GpuPlatformAddons(stack, "Bad", cluster=cluster, addons=config, kubernetes_version="1.33")
    text = str(err.value)
    assert "ships the ComputeDomain CRD" in text
    assert "'dranet' needs Kubernetes 1.34 or later" in text
    assert "has SHA-256" in text
    assert len(err.value.problems) == 3
    assert stack.node.try_find_child("Bad") is None


def test_refuses_settings_for_both_efa_components(unsynthesized):
    stack, cluster = unsynthesized
    # the AddonsConfig refuses it when it is built, before any construct sees it
    with pytest.raises(
        ConfigurationError,
        match=r"addonValues\.dranet: given, but efaMode is 'device-plugin'.*never run together",
    ):
        config = AddonsConfig(values={"dranet": {"verbosity": 2}}, mpi_operator_manifest=MPI_MANIFEST)
        GpuPlatformAddons(stack, "Both", cluster=cluster, addons=config, kubernetes_version="1.35")


def test_refuses_cdk_tokens_in_values(unsynthesized):
    stack, cluster = unsynthesized
    config = AddonsConfig(
        values={"gpuOperator": {"operator": {"annotations": {"arn": cluster.cluster_arn}}}},
        mpi_operator_manifest=MPI_MANIFEST,
    )
    with pytest.raises(
        ConfigurationError,
        match=r"addonValues\.gpuOperator\.operator\.annotations\.arn: CDK tokens are not supported",
    ):
        GpuPlatformAddons(stack, "Tokens", cluster=cluster, addons=config, kubernetes_version="1.35")


def test_refuses_a_bad_system_selector_once(unsynthesized):
    stack, cluster = unsynthesized
    with pytest.raises(ConfigurationError) as err:
        GpuPlatformAddons(
            stack,
            "Selector",
            cluster=cluster,
            kubernetes_version="1.35",
            system_node_selector={"role": "not a label value!"},
            mpi_operator_manifest=MPI_MANIFEST,
        )
    # every builder checks the selector; the construct reports the problem once
    assert err.value.problems == (
        "system_node_selector['role']: 'not a label value!' is not a valid Kubernetes label value",
    )


# --------------------------------------------------------------------------------------
# Snapshot
# --------------------------------------------------------------------------------------


def test_snapshot(default, snapshot_json):
    _, tpl = default
    addons = {k: v for k, v in tpl["Resources"].items() if k.startswith("Addons")}
    for res in addons.values():
        if res["Type"] == HELM:
            res["Properties"] = {**res["Properties"], "Values": json.loads(res["Properties"]["Values"])}
    assert addons == snapshot_json


# --------------------------------------------------------------------------------------
# Validation jobs in the stack (validationJobs=true)
# --------------------------------------------------------------------------------------

TWO_ULTRASERVERS = json.dumps(
    [
        {"capacityReservationId": "cr-0aaaaaaaaaaaaaaa1", "type": "u-p6e-gb200x72", "name": "us-a"},
        {"capacityReservationId": "cr-0aaaaaaaaaaaaaaa2", "type": "u-p6e-gb200x36", "name": "us-b"},
    ]
)


@pytest.fixture(scope="module")
def validation_env():
    """GIVEN two UltraServers and validationJobs=true WHEN the app is synthesized (once)."""
    from conftest import synth_environment

    return synth_environment({"validationJobs": "true", "ultraServers": TWO_ULTRASERVERS})


def _check_manifests(synth) -> dict[str, dict]:
    """The stack's manifests that hold validation objects, by logical id."""
    out = {}
    for logical_id, res in synth.template["Resources"].items():
        if res["Type"] != "Custom::AWSCDK-EKS-KubernetesResource":
            continue
        manifest = res["Properties"]["Manifest"]
        if isinstance(manifest, str) and "eks-ultraserver.io/check" in manifest:
            out[logical_id] = res
    return out


def test_validation_jobs_wait_for_the_node_group_of_their_ultraserver(validation_env):
    """THEN each validation manifest depends on the nested stack that holds the node group of
    the UltraServer it checks (so it is applied once that node group exists) and on every
    add-on release; and it holds Jobs, MPIJobs and ComputeDomains only, no bare Pod."""
    from eks_ultraserver.constructs.environment import ultraserver_shard

    manifests = _check_manifests(validation_env)
    assert len(manifests) == 4, "an IMEX check and an nvbandwidth job per UltraServer"
    nested = {
        logical_id
        for logical_id, res in validation_env.template["Resources"].items()
        if res["Type"] == "AWS::CloudFormation::Stack"
    }
    helm = {k for k, r in validation_env.template["Resources"].items() if r["Type"] == HELM}
    for res in manifests.values():
        objs = json.loads(res["Properties"]["Manifest"])
        assert {o["kind"] for o in objs} in ({"ComputeDomain", "Job"}, {"ComputeDomain", "MPIJob"})
        (job,) = [o for o in objs if o["kind"] in ("Job", "MPIJob")]
        spec = job["spec"]
        pod = (
            spec["template"]["spec"]
            if job["kind"] == "Job"
            else spec["mpiReplicaSpecs"]["Worker"]["template"]["spec"]
        )
        terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        (ultraserver,) = terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"]
        shard = f"UltraServers{ultraserver_shard(ultraserver):02d}"
        depends = set(res["DependsOn"])
        assert [d for d in depends & nested if shard in d], (ultraserver, shard, depends)
        assert helm <= depends, "the CRDs come with the add-ons"


def test_validation_manifests_are_replaced_not_updated(validation_env):
    """THEN each validation manifest's construct id is its chart's digest-suffixed name (a
    changed check is a new resource: created, then the old one deleted, never an in-place
    update of an immutable spec), and creating applies (adopts objects of the same name
    applied by hand from the exported manifests)."""
    import cdk8s

    from eks_ultraserver.charts.manifests import validation_charts

    context = json.loads((Path(__file__).parent.parent / "cdk.json").read_text())["context"]
    config = EnvironmentConfig.from_mapping(context | {"ultraServers": TWO_ULTRASERVERS})
    ids = [c.node.id for c in validation_charts(cdk8s.App(), config)]
    manifests = _check_manifests(validation_env)
    # logical ids are the construct path without '-', plus CDK's hash
    for chart_id in ids:
        assert len([k for k in manifests if chart_id.replace("-", "") in k]) == 1, chart_id
    assert len(manifests) == len(ids)
    for res in manifests.values():
        assert res["Properties"]["Overwrite"] is True
        names = {o["metadata"]["name"] for o in json.loads(res["Properties"]["Manifest"])}
        assert len(names) == 1 and names.pop() in ids
