"""``RunAi``: the optional NVIDIA Run:ai cluster component and the Prometheus stack it needs.

Two ``aws_eks_v2.HelmChart`` releases, installed through the cluster's kubectl provider as
``GpuPlatformAddons`` installs its charts (values as one JSON property override, controllers
on the system nodes):

1. ``kube-prometheus-stack`` (``versions.KUBE_PROMETHEUS_STACK``), unless the user has a
   Prometheus Operator already (``RunAiConfig.install_prometheus``): Run:ai lists
   Prometheus as a prerequisite of every installation (Run:ai docs "Prerequisites and
   Features"); the chart installs its CRDs (``crds/``) on first install;
2. ``runai-cluster`` (``versions.RUNAI_CLUSTER``), after the Prometheus release and after
   the dependables given (the GPU platform add-ons: GPU Operator, DRA driver, MPI operator;
   Run:ai's other prerequisites, already in the environment).

The client secret reaches the release as a CloudFormation dynamic reference
(``{{resolve:secretsmanager:...}}``) inside the release's ``Values`` property: neither the
template nor any file of the cloud assembly holds it. CloudFormation resolves it with the
deploying role's permissions, so the kubectl handler needs no Secrets Manager access (no
IAM change, nothing for cdk-nag). What this costs is in docs/runai.md, "The client secret":
the aws-eks-v2 kubectl handler prints every request it gets to its CloudWatch log group,
resolved properties included.

Not installed, and why (docs/runai.md): an ingress controller and the TLS certificate of the
cluster URL (the user's domain, DNS and load balancer exposure), Knative Serving (inference
workloads only).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from aws_cdk import Annotations, CfnResource, Stack, Token
from aws_cdk import aws_eks_v2 as eks

from constructs import Construct, IDependable
from eks_ultraserver.helm.runai import kube_prometheus_stack_values, runai_cluster_values
from eks_ultraserver.helm.values import parse_version, with_version
from eks_ultraserver.model import Problems
from eks_ultraserver.runai_config import RunAiConfig, partition_of_region, secret_arn_partition
from eks_ultraserver.versions import (
    KUBE_PROMETHEUS_STACK,
    RUNAI_CLUSTER,
    RUNAI_GPU_FRACTIONS_MIN_GPU_OPERATOR,
    ChartVersion,
)

__all__ = ["RunAi"]


class RunAi(Construct):
    """NVIDIA Run:ai's cluster component, connected to a Run:ai control plane.

    All arguments after ``id`` are keyword-only. Bad input raises one
    ``ConfigurationError`` listing every problem, before anything is added to the tree.

    :param cluster: the ``aws_eks_v2`` cluster, created with a kubectl provider.
    :param config: the control plane URL, cluster UID and URL, and the ARN of the Secrets
        Manager secret holding the client secret (``runai_config.RunAiConfig``; from
        cdk.json: ``runai``). The secret must be in the stack's partition.
    :param system_node_selector: node labels of the system nodes; Run:ai's services
        (``global.affinity``, required) and the Prometheus stack's controllers are pinned to
        them. Default: not pinned (Run:ai's own default: prefer nodes labelled
        ``node-role.kubernetes.io/runai-system``).
    :param after: what the releases are installed after, e.g. ``GpuPlatformAddons.ready``
        (the GPU Operator must run before Run:ai's cluster component). Default: nothing.
    :param gpu_operator_version: the environment's GPU Operator chart version; synth warns
        when it is older than ``versions.RUNAI_GPU_FRACTIONS_MIN_GPU_OPERATOR`` (Run:ai's
        GPU fractions need it). Default: not checked.

    Attributes: ``runai_cluster`` and ``prometheus`` (``aws_eks_v2.HelmChart``; ``prometheus``
    is ``None`` with ``install_prometheus=False``); ``releases`` (key -> ``ChartVersion``
    installed); ``values`` (key -> Helm values, the client secret as its reference).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: eks.ICluster,
        config: RunAiConfig,
        system_node_selector: Mapping[str, str] | None = None,
        after: IDependable | None = None,
        gpu_operator_version: str | None = None,
    ) -> None:
        problems = Problems()
        given: object = config  # typed, but Python callers may pass anything
        if not isinstance(given, RunAiConfig):
            problems.add(f"config: {given!r} is not a runai_config.RunAiConfig")
        else:
            partition = _stack_partition(Stack.of(scope))
            found = secret_arn_partition(config.client_secret_arn)
            if partition is not None and found is not None and found != partition:
                problems.add(
                    f"runai.clientSecretArn (config.client_secret_arn): {config.client_secret_arn!r} is "
                    f"in partition {found!r}, "
                    f"but the stack deploys to partition {partition!r}; CloudFormation resolves the "
                    "secret in the stack's partition: give a secret there"
                )
        older = False
        if gpu_operator_version is not None:
            have = parse_version(gpu_operator_version)
            if have is None:
                problems.add(
                    f"gpu_operator_version: {gpu_operator_version!r} is not a version such as 'v26.3.3'"
                )
            else:
                older = have < (parse_version(RUNAI_GPU_FRACTIONS_MIN_GPU_OPERATOR) or (0, 0, 0))
        problems.raise_if_any(f"RunAi {id!r}")
        assert isinstance(config, RunAiConfig)

        super().__init__(scope, id)
        self._cluster = cluster
        self.config = config
        self.releases: dict[str, ChartVersion] = {}
        self.values: dict[str, dict[str, Any]] = {}

        self.prometheus: eks.HelmChart | None = None
        if config.install_prometheus:
            self.prometheus = self._helm(
                "prometheus",
                "KubePrometheusStack",
                KUBE_PROMETHEUS_STACK,
                kube_prometheus_stack_values(system_node_selector=system_node_selector),
            )
        chart = with_version(RUNAI_CLUSTER, config.version)
        if config.repository:
            chart = _with_repository(chart, config.repository)
        self.runai_cluster = self._helm(
            "runaiCluster",
            "RunAiCluster",
            chart,
            runai_cluster_values(config, system_node_selector=system_node_selector),
        )
        if self.prometheus is not None:
            self.runai_cluster.node.add_dependency(self.prometheus)
        if after is not None:
            self.node.add_dependency(after)

        # CloudFormation resolves the dynamic reference into the release's properties, and
        # aws_eks_v2's kubectl handler logs every request it receives (kubectl-handler
        # index.py): the resolved client secret reaches its CloudWatch log group.
        Annotations.of(self).add_warning_v2(
            "eks-ultraserver:runai-secret-in-kubectl-handler-logs",
            "runai: CloudFormation resolves the client secret's Secrets Manager reference at deploy "
            "time, and the cluster's kubectl handler (aws_eks_v2) writes the request it receives, "
            "resolved values included, to its CloudWatch log group "
            "(/aws/lambda/<stack>-...KubectlProviderHandler...). The secret is in no template and "
            "nowhere in cdk.out, but restrict who can read that log group and rotate the secret "
            "if it was readable more widely (docs/runai.md).",
        )
        if older:
            Annotations.of(self).add_warning_v2(
                "eks-ultraserver:runai-gpu-fractions-need-gpu-operator",
                f"runai: the GPU Operator is {gpu_operator_version}; Run:ai's GPU fractions need GPU "
                f"Operator {RUNAI_GPU_FRACTIONS_MIN_GPU_OPERATOR} or later with CUDA driver r615 or "
                "later (Run:ai v3.0 support matrix). Whole-GPU scheduling works; fractional GPU "
                "requests do not until both are upgraded (docs/runai.md).",
            )

    def _helm(self, key: str, id: str, chart: ChartVersion, values: dict[str, Any]) -> eks.HelmChart:
        helm = eks.HelmChart(
            self,
            id,
            cluster=self._cluster,
            chart=chart.chart,
            repository=chart.helm_repository,
            version=chart.version,
            release=chart.release,
            namespace=chart.namespace,
            create_namespace=True,
        )
        resource = helm.node.find_child("Resource").node.default_child
        assert isinstance(resource, CfnResource)
        resource.add_property_override(
            "Values", _values_property(values, self.config.client_secret_reference)
        )
        self.releases[key] = chart
        self.values[key] = values
        return helm


def _values_property(values: dict[str, Any], reference: str) -> str | dict[str, Any]:
    """The release's ``Values`` as JSON text. Where the text holds the client secret's dynamic
    reference, an ``Fn::Join`` of the text around it and the reference as an element of its
    own: CloudFormation resolves the reference either way, and linters that read a dynamic
    reference up to the last ``}}`` of a string (cfn-lint's E1050) see it whole."""
    text = json.dumps(values, sort_keys=True, separators=(",", ":"))
    if reference not in text:
        return text
    parts: list[str] = []
    for i, piece in enumerate(text.split(reference)):
        if i:
            parts.append(reference)
        parts.append(piece)
    # a literal Fn::Join: aws_cdk.Fn.join folds literal strings back into one
    return {"Fn::Join": ["", parts]}


def _stack_partition(stack: Stack) -> str | None:
    """The stack's partition when synth knows it (a concrete Region or partition)."""
    if not Token.is_unresolved(stack.region):
        return partition_of_region(stack.region)
    if not Token.is_unresolved(stack.partition):
        return stack.partition
    return None


def _with_repository(chart: ChartVersion, repository: str) -> ChartVersion:
    return dataclasses.replace(chart, repository=repository)
