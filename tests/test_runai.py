"""NVIDIA Run:ai (optional): the ``runai`` configuration, the two Helm releases, their
order and placement, and the client secret taken by reference only."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import aws_cdk as cdk
import boto3
import pytest
import yaml
from aws_cdk import aws_eks_v2 as eks
from aws_cdk.assertions import Annotations, Match, Template
from aws_cdk.lambda_layer_kubectl_v35 import KubectlV35Layer
from botocore.stub import Stubber

from constructs import DependencyGroup
from eks_ultraserver.config import read_environment
from eks_ultraserver.constructs.runai import RunAi
from eks_ultraserver.helm.runai import kube_prometheus_stack_values
from eks_ultraserver.helm.values import unknown_keys
from eks_ultraserver.model import SYSTEM_NODE_LABEL, SYSTEM_NODE_LABEL_VALUE, ConfigurationError
from eks_ultraserver.runai_config import RunAiConfig
from eks_ultraserver.versions import KUBE_PROMETHEUS_STACK, RUNAI_CLUSTER

from conftest import ACCOUNT, REGION, UPSTREAM, cfn_lint_errors, synth_environment

HELM = "Custom::AWSCDK-EKS-HelmChart"
SYSTEM = {SYSTEM_NODE_LABEL: SYSTEM_NODE_LABEL_VALUE}
UID = "9f55255e-11ed-47c7-acef-fc4054768dbc"
ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:runai-client-AbCdEf"
#: What the stubbed Secrets Manager holds: must never reach a template or the assembly.
FAKE_SECRET = "fake-runai-client-secret-7Qx2LmZ9pWvK3RtY"
RUNAI = {
    "controlPlaneUrl": "https://acme.run.ai",
    "clusterUid": UID,
    "clientSecretArn": ARN,
    "clusterUrl": "https://runai.example.com",
}


def _config(**overrides) -> RunAiConfig:
    fields = {
        "control_plane_url": "https://acme.run.ai",
        "cluster_uid": UID,
        "client_secret_arn": ARN,
        "cluster_url": "https://runai.example.com",
    } | overrides
    return RunAiConfig(**fields)


def _stack(region: str = REGION):
    app = cdk.App()
    stack = cdk.Stack(app, "Test", env=cdk.Environment(account=ACCOUNT, region=region))
    cluster = eks.Cluster(
        stack,
        "Cluster",
        version=eks.KubernetesVersion.of("1.35"),
        default_capacity=0,
        default_capacity_type=eks.DefaultCapacityType.NODEGROUP,
        kubectl_provider_options=eks.KubectlProviderOptions(kubectl_layer=KubectlV35Layer(stack, "Kubectl")),
    )
    return stack, cluster


def _values(resource: Mapping[str, Any]) -> dict[str, Any]:
    """A release's ``Values``: JSON text, or an ``Fn::Join`` of literal pieces around the
    client secret's reference (which must then be a piece of its own)."""
    value = resource["Properties"]["Values"]
    if isinstance(value, str):
        return json.loads(value)
    separator, pieces = value["Fn::Join"]
    assert separator == "" and all(isinstance(p, str) for p in pieces)
    return json.loads("".join(pieces))


def _releases(template: Mapping[str, Any]) -> dict[str, dict]:
    return {r["Properties"]["Release"]: r for r in template["Resources"].values() if r["Type"] == HELM}


# ---------------------------------------------------------------- configuration


def test_runai_context_is_read_into_the_environment_config():
    context = {
        "ultraServers": [{"capacityReservationId": "cr-0123456789abcdef0", "type": "u-p6e-gb200x36"}],
        "availabilityZone": "us-east-1-dfw-2a",
        "runai": json.dumps(RUNAI | {"clientSecretKey": "clientSecret", "installPrometheus": "false"}),
    }
    config = read_environment(context.get)
    assert config.runai == _config(client_secret_key="clientSecret", install_prometheus=False)


def test_no_runai_key_means_no_runai():
    context = {
        "ultraServers": [{"capacityReservationId": "cr-0123456789abcdef0", "type": "u-p6e-gb200x36"}],
        "availabilityZone": "us-east-1-dfw-2a",
    }
    assert read_environment(context.get).runai is None


def test_every_bad_runai_key_is_reported_at_once_with_its_context_key():
    bad = {
        "controlPlaneUrl": "http://acme.run.ai",
        "clusterUid": "not-a-uuid",
        "clientSecretArn": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/runai",
        "clusterUrl": "runai.example.com",
        "version": "latest",
        "installPrometheus": "maybe",
        "clientSecret": FAKE_SECRET,
    }
    context = {
        "ultraServers": [{"capacityReservationId": "cr-0123456789abcdef0", "type": "u-p6e-gb200x36"}],
        "availabilityZone": "us-east-1-dfw-2a",
        "runai": json.dumps(bad),
    }
    with pytest.raises(ConfigurationError) as err:
        read_environment(context.get)
    text = str(err.value)
    for expected in (
        "runai.controlPlaneUrl: 'http://acme.run.ai' is not an https:// URL",
        "runai.clusterUid: 'not-a-uuid' is not a UUID",
        "runai.clientSecretArn: 'arn:aws:ssm:",
        "is not an AWS Secrets Manager secret ARN",
        "runai.clusterUrl: 'runai.example.com' is not an https:// URL",
        "runai.version: 'latest' is not a chart version",
        "runai: unknown key(s) 'clientSecret'",
    ):
        assert expected in text
    assert "runai.installPrometheus" in text


def test_a_secret_outside_the_configured_regions_partition_is_refused_at_read():
    context = {
        "ultraServers": [{"capacityReservationId": "cr-0123456789abcdef0", "type": "u-p6e-gb200x36"}],
        "availabilityZone": "us-east-1-dfw-2a",
        "region": "us-gov-west-1",
        "runai": json.dumps(RUNAI),
    }
    with pytest.raises(
        ConfigurationError,
        match=r"runai.clientSecretArn: .* partition 'aws', but region 'us-gov-west-1' is in 'aws-us-gov'",
    ):
        read_environment(context.get)


def test_runai_must_be_an_object():
    context = {
        "ultraServers": [{"capacityReservationId": "cr-0123456789abcdef0", "type": "u-p6e-gb200x36"}],
        "availabilityZone": "us-east-1-dfw-2a",
        "runai": '["https://acme.run.ai"]',
    }
    with pytest.raises(ConfigurationError, match=r"runai: \['https://acme.run.ai'\] is not an object"):
        read_environment(context.get)


def test_in_python_the_fields_are_named():
    with pytest.raises(ConfigurationError, match=r"cluster_uid: 'x' is not a UUID") as err:
        _config(cluster_uid="x", client_secret_arn="secret")
    assert "client_secret_arn: 'secret' is not an AWS Secrets Manager secret ARN" in str(err.value)


def test_the_reference_names_the_secret_and_its_json_key():
    assert _config().client_secret_reference == f"{{{{resolve:secretsmanager:{ARN}:SecretString:::}}}}"
    assert (
        _config(client_secret_key="clientSecret").client_secret_reference
        == f"{{{{resolve:secretsmanager:{ARN}:SecretString:clientSecret::}}}}"
    )


# ---------------------------------------------------------------- values


def test_every_prometheus_stack_key_the_library_sets_exists_in_the_chart():
    """Checked against kube-prometheus-stack 88.5.3's values.yaml and its kube-state-metrics
    subchart 8.4.0 (tests/third_party/README.md says why not 88.6.5's)."""
    values = kube_prometheus_stack_values(system_node_selector=SYSTEM)
    defaults = yaml.safe_load((UPSTREAM / "kube-prometheus-stack-values-88.5.3.yaml").read_text())
    ksm = yaml.safe_load((UPSTREAM / "kube-state-metrics-values-8.4.0.yaml").read_text())
    parent = {k: v for k, v in values.items() if k != "kube-state-metrics"}
    assert unknown_keys(parent, defaults) == []
    assert unknown_keys(values["kube-state-metrics"], ksm) == []
    assert "kube-state-metrics" in defaults  # the subchart's values go under its name
    assert unknown_keys({"prometheusOperator": {"nodeSelectr": SYSTEM}}, defaults) == [
        "prometheusOperator.nodeSelectr"
    ]


# ---------------------------------------------------------------- the construct


def test_runai_cluster_and_prometheus_releases_on_system_nodes():
    stack, cluster = _stack()
    gpu_operator = DependencyGroup()
    RunAi(stack, "RunAi", cluster=cluster, config=_config(), system_node_selector=SYSTEM, after=gpu_operator)
    template = Template.from_stack(stack)
    template.has_resource_properties(
        HELM,
        {
            "Release": RUNAI_CLUSTER.release,
            "Chart": "runai-cluster",
            "Repository": "https://helm.ngc.nvidia.com/nvidia/runai-oss",
            "Version": RUNAI_CLUSTER.version,
            "Namespace": "runai",
            "CreateNamespace": True,
        },
    )
    template.has_resource_properties(
        HELM,
        {
            "Release": "prometheus",
            "Chart": "kube-prometheus-stack",
            "Repository": "https://prometheus-community.github.io/helm-charts",
            "Version": KUBE_PROMETHEUS_STACK.version,
            "Namespace": "monitoring",
        },
    )
    releases = _releases(template.to_json())
    runai = _values(releases["runai-cluster"])
    reference = f"{{{{resolve:secretsmanager:{ARN}:SecretString:::}}}}"
    assert reference in releases["runai-cluster"]["Properties"]["Values"]["Fn::Join"][1]
    assert runai["controlPlane"] == {
        "url": "https://acme.run.ai",
        "clientSecret": f"{{{{resolve:secretsmanager:{ARN}:SecretString:::}}}}",
    }
    assert runai["cluster"] == {"uid": UID, "url": "https://runai.example.com"}
    terms = runai["global"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {
            "matchExpressions": [
                {"key": SYSTEM_NODE_LABEL, "operator": "In", "values": [SYSTEM_NODE_LABEL_VALUE]}
            ]
        }
    ]
    prometheus = _values(releases["prometheus"])
    assert prometheus["grafana"] == {"enabled": False}
    for path in (
        ("prometheusOperator", "nodeSelector"),
        ("prometheusOperator", "admissionWebhooks", "patch", "nodeSelector"),
        ("prometheus", "prometheusSpec", "nodeSelector"),
        ("alertmanager", "alertmanagerSpec", "nodeSelector"),
        ("kube-state-metrics", "nodeSelector"),
    ):
        node = prometheus
        for key in path:
            node = node[key]
        assert node == SYSTEM, path


def test_runai_cluster_is_installed_after_prometheus():
    stack, cluster = _stack()
    RunAi(stack, "RunAi", cluster=cluster, config=_config())
    resources = Template.from_stack(stack).to_json()["Resources"]
    ids = {r["Properties"]["Release"]: k for k, r in resources.items() if r["Type"] == HELM}
    assert ids["prometheus"] in resources[ids["runai-cluster"]]["DependsOn"]


def test_without_prometheus_only_the_runai_release():
    stack, cluster = _stack()
    runai = RunAi(stack, "RunAi", cluster=cluster, config=_config(install_prometheus=False))
    assert runai.prometheus is None
    assert list(_releases(Template.from_stack(stack).to_json())) == ["runai-cluster"]


def test_version_and_private_ecr_repository_overrides():
    stack, cluster = _stack()
    repo = f"oci://{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/charts"
    RunAi(stack, "RunAi", cluster=cluster, config=_config(version="3.0.20", repository=repo))
    Template.from_stack(stack).has_resource_properties(
        HELM, {"Release": "runai-cluster", "Version": "3.0.20", "Repository": f"{repo}/runai-cluster"}
    )


def test_a_secret_of_another_partition_is_refused():
    stack, cluster = _stack(region="cn-north-1")
    with pytest.raises(
        ConfigurationError,
        match=r"runai.clientSecretArn \(config.client_secret_arn\): .* partition 'aws', .* 'aws-cn'",
    ):
        RunAi(stack, "RunAi", cluster=cluster, config=_config())
    assert stack.node.try_find_child("RunAi") is None


def test_an_old_gpu_operator_warns_that_fractions_need_a_newer_one():
    stack, cluster = _stack()
    RunAi(stack, "RunAi", cluster=cluster, config=_config(), gpu_operator_version="v26.3.3")
    Annotations.from_stack(stack).has_warning(
        "*", Match.string_like_regexp("GPU fractions need GPU Operator v26.7.1")
    )
    stack2, cluster2 = _stack()
    RunAi(stack2, "RunAi", cluster=cluster2, config=_config(), gpu_operator_version="v26.7.1")
    assert not Annotations.from_stack(stack2).find_warning("*", Match.string_like_regexp("GPU fractions"))


def test_a_warning_says_the_resolved_secret_reaches_the_kubectl_handler_logs():
    """The one place the secret's value does reach: the kubectl handler's log group, which
    the user must restrict; synth says so."""
    stack, cluster = _stack()
    RunAi(stack, "RunAi", cluster=cluster, config=_config(), gpu_operator_version="v26.7.1")
    Annotations.from_stack(stack).has_warning(
        "*", Match.string_like_regexp("kubectl handler .* writes the request .* restrict who can read")
    )


# ---------------------------------------------------------------- in the environment


@pytest.fixture(scope="module")
def runai_env():
    return synth_environment({"runai": json.dumps(RUNAI)})


def test_environment_installs_runai_after_the_gpu_operator(runai_env):
    resources = runai_env.template["Resources"]
    ids = {r["Properties"]["Release"]: k for k, r in resources.items() if r["Type"] == HELM}
    assert {"runai-cluster", "prometheus", "gpu-operator"} <= set(ids)
    for release in ("runai-cluster", "prometheus"):
        depends = resources[ids[release]]["DependsOn"]
        assert ids["gpu-operator"] in depends
        assert ids["nvidia-dra-driver-gpu"] in depends
    Annotations.from_stack(runai_env.stack).has_warning(
        "*", Match.string_like_regexp("runai: the GPU Operator is v26.3.3")
    )


def test_environment_with_runai_passes_cfn_lint(runai_env):
    assert cfn_lint_errors(runai_env.template) == []


def test_environment_with_runai_leaves_no_cdk_nag_error(tmp_path: Path):
    """The releases add no IAM or Lambda resource: nothing new for AwsSolutions (the
    kubectl handler gets no Secrets Manager permission; CloudFormation resolves the
    reference with the deploying role)."""
    from test_quality import _nag_environment

    run = _nag_environment({"runai": json.dumps(RUNAI)}, tmp_path)
    assert run.failure is None
    assert run.findings("error") == []
    policies = [
        json.dumps(r["Properties"])
        for path in tmp_path.glob("*.template.json")
        for r in json.loads(path.read_text())["Resources"].values()
        if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::Role", "AWS::IAM::ManagedPolicy")
    ]
    assert policies  # the templates were read
    assert not any("secretsmanager:GetSecretValue" in p for p in policies)


def test_environment_without_runai_has_no_runai_release():
    resources = synth_environment({}).template["Resources"]
    releases = {r["Properties"]["Release"] for r in resources.values() if r["Type"] == HELM}
    assert not releases & {"runai-cluster", "prometheus"}


def test_the_client_secret_never_reaches_the_cloud_assembly(tmp_path: Path):
    """GIVEN Secrets Manager (stubbed) holding FAKE_SECRET behind the configured ARN
    WHEN the app synthesizes to a directory
    THEN no file of the assembly (templates, nested templates, assets, manifest) contains
    the value, the runai-cluster release holds the dynamic reference instead, and synth
    never asked Secrets Manager for the secret."""
    from eks_ultraserver.app import build_app

    client = boto3.client(
        "secretsmanager", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    stubber.add_response(
        "get_secret_value",
        {"ARN": ARN, "Name": "runai-client", "SecretString": FAKE_SECRET},
        {"SecretId": ARN},
    )
    base = json.loads((Path(__file__).resolve().parent.parent / "cdk.json").read_text())["context"]
    app = cdk.App(
        context=base | {"runai": json.dumps(RUNAI)},
        outdir=str(tmp_path),
        builtin_cloud_formation_validation=False,
    )
    real_client = boto3.client
    calls: list[str] = []

    def client_factory(service, *args, **kwargs):
        calls.append(service)
        return client if service == "secretsmanager" else real_client(service, *args, **kwargs)

    with stubber, mock.patch("boto3.client", side_effect=client_factory):
        build_app(app, stack_name="RunAiSecretScan")
        app.synth()
    assert "secretsmanager" not in calls

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".template.json") for p in files)
    assert any(p.is_dir() and p.name.startswith("asset.") for p in tmp_path.iterdir())
    needle = FAKE_SECRET.encode()
    leaks = [str(p.relative_to(tmp_path)) for p in files if needle in p.read_bytes()]
    assert leaks == []

    reference = f"{{{{resolve:secretsmanager:{ARN}:SecretString:::}}}}"
    template = json.loads((tmp_path / "RunAiSecretScan.template.json").read_text())
    values = [
        _values(r)
        for r in template["Resources"].values()
        if r["Type"] == HELM and r["Properties"]["Release"] == "runai-cluster"
    ]
    assert values and values[0]["controlPlane"]["clientSecret"] == reference
