"""``Karpenter``: burst GPU capacity, installed by the same deploy as the UltraServers.

What it creates, following Karpenter's getting-started CloudFormation template for v1.14
(``website/content/en/v1.14/getting-started/getting-started-with-karpenter/cloudformation.yaml``
in aws/karpenter-provider-aws) and its Helm installation step:

- the node role (the EKS node policies plus SSM) and an EKS access entry of type
  ``EC2_LINUX`` for it, so nodes Karpenter launches can join the cluster;
- the controller role, assumed through EKS Pod Identity (``pods.eks.amazonaws.com`` with
  ``sts:TagSession``; the environment installs the eks-pod-identity-agent add-on) by the
  ``karpenter`` service account in ``kube-system``, with the upstream policies statement for
  statement: NodeLifecycle, IAMIntegration, EKSIntegration, Interruption and
  ResourceDiscovery. They are scoped by the cluster's tags (``kubernetes.io/cluster/<name>:
  owned``, ``eks:eks-cluster-name``, ``karpenter.sh/nodepool``, ``karpenter.k8s.aws/
  ec2nodeclass``), so Karpenter can only create, tag and terminate what it launched for this
  cluster, and pass only its own node role. Because the cluster name is part of condition
  *keys*, each document is a JSON string resolved with ``Fn::Sub`` (as upstream does;
  the documents are in ``karpenter_policies.py``);
- the interruption queue (SQS, SSE with SQS-managed keys, TLS enforced, 5-minute retention)
  and EventBridge rules for Spot interruption warnings, rebalance recommendations, instance
  state changes, scheduled changes (AWS Health) and capacity-reservation interruption
  warnings;
- the Helm release (``versions.KARPENTER``, ``oci://public.ecr.aws/karpenter/karpenter``,
  namespace ``kube-system``) with the controller pinned to the system nodes and
  ``AWS_REGION`` set to the stack's Region (``controller.env``): the chart sets none, and
  the controller then asks IMDS, which a pod cannot reach when nodes limit IMDSv2 to one
  hop, as the system nodes do (karpenter-provider-aws #8219: it crash-loops);
- on request (:meth:`Karpenter.add_gpu_capacity`), the ``gpu-burst`` / ``gpu-reserved``
  NodePools and their EC2NodeClasses, one more pair per EFA instance type
  (``charts/karpenter.py``), as a cdk8s chart applied after the Helm release (which
  installs the CRDs).

Tags: every resource here whose CloudFormation type takes tags is an L1/L2 class, so
``cdk.Tags.of(app).add(...)`` reaches it. ``AWS::IAM::ManagedPolicy`` takes no ``Tags`` in
CloudFormation (its schema is not taggable), nor do the queue policy and the custom
resources of the Helm release and the manifest.

Karpenter never provisions UltraServer nodes: the NodePools exclude ``p6e-gb200``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aws_cdk as cdk
import cdk8s
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs

from constructs import Construct
from eks_ultraserver.capacity import BurstCapacitySpec, ReservedCapacitySpec, ReservedProvisioner
from eks_ultraserver.charts.karpenter import DISCOVERY_TAG, KarpenterGpuCapacityChart
from eks_ultraserver.constructs.iam import node_role as new_node_role
from eks_ultraserver.constructs.jsii_calls import is_token
from eks_ultraserver.constructs.karpenter_policies import controller_policies, policy_document
from eks_ultraserver.constructs.nag import suppress, suppress_node_role
from eks_ultraserver.helm.values import (
    deep_merge,
    label_selector_problems,
    tolerations_problems,
    values_problems,
)
from eks_ultraserver.model import (
    SYSTEM_NODE_LABEL,
    SYSTEM_NODE_LABEL_VALUE,
    ConfigurationError,
    Problems,
)
from eks_ultraserver.versions import KARPENTER, ChartVersion

__all__ = ["INTERRUPTION_EVENTS", "Karpenter", "controller_policies"]

#: The service account the chart creates (``serviceAccount.name``) and Pod Identity binds.
SERVICE_ACCOUNT = "karpenter"

#: EventBridge rules of the interruption queue: (construct id, source, detail-type).
INTERRUPTION_EVENTS: tuple[tuple[str, str, str], ...] = (
    ("ScheduledChangeRule", "aws.health", "AWS Health Event"),
    ("SpotInterruptionRule", "aws.ec2", "EC2 Spot Instance Interruption Warning"),
    ("RebalanceRule", "aws.ec2", "EC2 Instance Rebalance Recommendation"),
    ("InstanceStateChangeRule", "aws.ec2", "EC2 Instance State-change Notification"),
    (
        "CapacityReservationInterruptionRule",
        "aws.ec2",
        "EC2 Capacity Reservation Instance Interruption Warning",
    ),
)


def discovery_name(cluster: eks.ICluster) -> str:
    """The default ``karpenter.sh/discovery`` value: the cluster name when it is a plain
    string, else a stable name derived from the cluster's construct path (a tag value on the
    subnets cannot reference the cluster: the cluster already references the subnets)."""
    child = cluster.node.default_child
    name = getattr(child, "name", None) if child is not None else None
    if isinstance(name, str) and name and not is_token(name):
        return name
    return cdk.Names.unique_id(cluster)[-255:]


class Karpenter(Construct):
    """Karpenter for burst (and Karpenter-selected reserved) GPU capacity.

    All arguments after ``id`` are keyword-only. Bad input raises one ``ConfigurationError``.

    :param cluster: the ``aws_eks_v2`` cluster (with a kubectl provider, for Helm).
    :param subnets: subnets Karpenter may launch nodes in; each defined in this app gets the
        ``karpenter.sh/discovery`` tag (imported subnets must carry it already).
    :param security_groups: extra security groups for Karpenter's nodes; tagged the same way.
        The EKS cluster security group is always selected (by id). Default: none.
    :param discovery: the ``karpenter.sh/discovery`` tag value. Default: the cluster name if
        it is a plain string, else a stable name derived from the cluster's construct path.
    :param system_node_selector: where the controller runs. Default: the system nodes
        (``eks-ultraserver.io/node-role: system``); Karpenter must not run on nodes it manages.
    :param system_node_tolerations: extra tolerations for the controller. Default: none
        besides the chart's ``CriticalAddonsOnly``.
    :param node_role: the role of Karpenter's nodes. Default: a new node role.
    :param replicas: controller replicas (required anti-affinity: one per node). Default 2.
    :param chart: the Karpenter chart. Default: ``versions.KARPENTER``.
    :param extra_values: Helm values deep-merged over the library's. Default: none.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: eks.ICluster,
        subnets: Sequence[ec2.ISubnet],
        security_groups: Sequence[ec2.ISecurityGroup] = (),
        discovery: str | None = None,
        system_node_selector: Mapping[str, str] | None = None,
        system_node_tolerations: Sequence[Mapping[str, Any]] = (),
        node_role: iam.IRole | None = None,
        replicas: int = 2,
        chart: ChartVersion = KARPENTER,
        extra_values: Mapping[str, Any] | None = None,
    ) -> None:
        problems = Problems()
        if not subnets:
            problems.add("subnets: none given; give the private subnets Karpenter may launch nodes in")
        if discovery is not None and (not discovery or is_token(discovery) or len(discovery) > 255):
            problems.add(
                f"discovery: {discovery!r} must be a plain string of 1 to 255 characters (a tag "
                "value on the subnets, which the cluster itself references)"
            )
        selector = (
            {SYSTEM_NODE_LABEL: SYSTEM_NODE_LABEL_VALUE}
            if system_node_selector is None
            else dict(system_node_selector)
        )
        problems.extend(label_selector_problems("system_node_selector", selector))
        problems.extend(tolerations_problems("system_node_tolerations", system_node_tolerations))
        problems.extend(values_problems("extra_values", extra_values))
        if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= 10:
            problems.add(f"replicas: {replicas!r} is not an integer from 1 to 10")
        if problems:
            raise ConfigurationError(problems, subject=f"Karpenter {id!r}")

        super().__init__(scope, id)
        self._cluster = cluster
        self.discovery = discovery or discovery_name(cluster)
        self.chart_version = chart
        for taggable in (*subnets, *security_groups):
            cdk.Tags.of(taggable).add(DISCOVERY_TAG, self.discovery)
        self._cluster_sg_id = cluster.cluster_security_group_id

        # ---------------------------------------------------------------- nodes
        self.node_role = node_role or new_node_role(self, "NodeRole")
        self.access_entry = eks.CfnAccessEntry(
            self,
            "NodeAccessEntry",
            cluster_name=cluster.cluster_name,
            principal_arn=self.node_role.role_arn,
            type="EC2_LINUX",
        )

        # ---------------------------------------------------------------- interruptions
        self.interruption_queue = sqs.Queue(
            self,
            "InterruptionQueue",
            retention_period=cdk.Duration.minutes(5),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.interruption_rules: list[events.Rule] = []
        for rule_id, source, detail_type in INTERRUPTION_EVENTS:
            rule = events.Rule(
                self,
                rule_id,
                event_pattern=events.EventPattern(source=[source], detail_type=[detail_type]),
            )
            rule.add_target(targets.SqsQueue(self.interruption_queue))
            self.interruption_rules.append(rule)

        # ---------------------------------------------------------------- controller IAM
        self.controller_role = iam.Role(
            self,
            "ControllerRole",
            assumed_by=iam.ServicePrincipal("pods.eks.amazonaws.com").with_session_tags(),
            description="Karpenter controller, through EKS Pod Identity (eks-ultraserver)",
        )
        variables = {
            "ClusterName": cluster.cluster_name,
            "NodeRoleArn": self.node_role.role_arn,
            "QueueArn": self.interruption_queue.queue_arn,
        }
        self.controller_policies: dict[str, iam.CfnManagedPolicy] = {}
        for name, document in controller_policies().items():
            self.controller_policies[name] = iam.CfnManagedPolicy(
                self,
                f"{name}Policy",
                description=f"Karpenter controller: {name} (eks-ultraserver)",
                roles=[self.controller_role.role_name],
                policy_document=policy_document(document, variables),
            )
        self.pod_identity = eks.CfnPodIdentityAssociation(
            self,
            "PodIdentity",
            cluster_name=cluster.cluster_name,
            namespace=chart.namespace,
            service_account=SERVICE_ACCOUNT,
            role_arn=self.controller_role.role_arn,
        )

        # ---------------------------------------------------------------- Helm
        region_env = {"name": "AWS_REGION", "value": cdk.Stack.of(self).region}
        self.values = deep_merge(
            {
                "settings": {
                    "clusterName": cluster.cluster_name,
                    "interruptionQueue": self.interruption_queue.queue_name,
                },
                "serviceAccount": {"name": SERVICE_ACCOUNT},
                "replicas": replicas,
                "nodeSelector": {"kubernetes.io/os": "linux", **selector},
                "tolerations": [
                    {"key": "CriticalAddonsOnly", "operator": "Exists"},
                    *[dict(t) for t in system_node_tolerations],
                ],
                "controller": {
                    "env": [region_env],
                    "resources": {
                        "requests": {"cpu": "1", "memory": "1Gi"},
                        "limits": {"cpu": "1", "memory": "1Gi"},
                    },
                },
            },
            extra_values,
        )
        # A list in extra_values replaces ours (Helm merge): keep AWS_REGION unless it sets it.
        controller = self.values.get("controller")
        env = controller.get("env") if isinstance(controller, dict) else None
        if isinstance(env, list) and not any(
            isinstance(e, dict) and e.get("name") == "AWS_REGION" for e in env
        ):
            env.append(region_env)
        self.helm_chart = eks.HelmChart(
            self,
            "Chart",
            cluster=cluster,
            chart=chart.chart,
            repository=chart.helm_repository,
            version=chart.version,
            release=chart.release,
            namespace=chart.namespace,
            create_namespace=False,
            values=self.values,
        )
        # The controller needs its permissions and its Pod Identity before it starts.
        for dependency in (*self.controller_policies.values(), self.pod_identity, self.access_entry):
            self.helm_chart.node.add_dependency(dependency)
        self.capacity_manifest: eks.KubernetesManifest | None = None

        # cdk-nag: the findings that are right to keep, with their reasons.
        if node_role is None:
            suppress_node_role(self.node_role)
        suppress(
            self.interruption_queue,
            "AwsSolutions-SQS3",
            "Karpenter's interruption queue: each message is an EC2/Health event Karpenter acts "
            "on within seconds and is worthless after the 5-minute retention; a dead-letter "
            "queue would keep stale events (Karpenter's own template has none).",
        )
        suppress(
            self.controller_policies["ResourceDiscovery"],
            "AwsSolutions-IAM5",
            "Karpenter's ResourceDiscovery statements, as in Karpenter's own CloudFormation "
            "template (getting-started, cloudformation.yaml): EC2 Describe* and pricing calls "
            "accept no resource ARN (limited to the stack's Region by aws:RequestedRegion); "
            "the AMI comes from the public SSM parameters under /aws/service/; and "
            "instance-profile reads cannot be scoped by tag before the profile is known.",
            [
                "Resource::*",
                "Resource::arn:<AWS::Partition>:ssm:<AWS::Region>::parameter/aws/service/*",
                "Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:instance-profile/*",
            ],
        )

    def add_gpu_capacity(
        self,
        *,
        burst: BurstCapacitySpec | None = None,
        reserved: Sequence[ReservedCapacitySpec] = (),
        reserved_subnets: Sequence[ec2.ISubnet] = (),
        burst_subnets: Sequence[ec2.ISubnet] = (),
        id: str = "GpuCapacity",
    ) -> eks.KubernetesManifest:
        """Applies the ``gpu-burst`` / ``gpu-reserved`` NodePools and EC2NodeClasses, and one
        pair per EFA instance type (``charts/karpenter.py``), with
        ``cluster.add_cdk8s_chart``, after the Helm release (which installs the NodePool and
        EC2NodeClass CRDs). ``reserved`` entries whose provisioner is not ``karpenter`` are
        ignored; the others need their ``availability_zone``. Call once.

        :param reserved_subnets: subnets in the reservations' zones, which the reserved
            classes select by id (they are not tagged for discovery, so burst nodes never
            use them). Default: the discovery-tagged subnets (one must be in each
            reservation's zone).
        :param burst_subnets: subnets in the burst pool's zone (``burst.availability_zone``,
            e.g. a Local Zone), which the burst classes select by id. Default: the
            discovery-tagged subnets.

        A pool that shares its GPUs (``sharing``) gets a synth warning: Karpenter counts
        physical GPUs, so ``maxGpus`` bounds those, and it may launch more nodes than the
        shared GPUs need (kubernetes-sigs/karpenter #729).

        With more than one burst pool (an EFA instance type beside other types), a synth
        warning says that each carries the whole ``maxGpus`` limit."""
        chart = KarpenterGpuCapacityChart(
            cdk8s.App(),
            "karpenter-gpu-capacity",
            node_role=self.node_role.role_name,
            discovery=self.discovery,
            burst=burst,
            reserved=reserved,
            security_group_ids=[self._cluster_sg_id],
            reserved_subnet_ids=[s.subnet_id for s in reserved_subnets],
            burst_subnet_ids=[s.subnet_id for s in burst_subnets],
        )
        self.capacity_chart = chart
        shared = [
            (f"reservedCapacity {r.name!r}", r.sharing)
            for r in reserved
            if r.provisioner is ReservedProvisioner.KARPENTER and r.sharing is not None
        ]
        if burst is not None and burst.sharing is not None:
            shared.append((f"burstCapacity (maxGpus {burst.max_gpus})", burst.sharing))
        if shared:
            pools = ", ".join(f"{where}: {s.strategy.value} x{s.replicas}" for where, s in shared)
            cdk.Annotations.of(self).add_warning_v2(
                "eks-ultraserver:karpenter-shared-gpus",
                f"Karpenter pools with shared GPUs ({pools}): Karpenter does not know about GPU "
                "sharing (kubernetes-sigs/karpenter #729) and counts each node's physical GPUs. "
                "The nvidia.com/gpu limit (maxGpus) bounds the physical GPUs, so the pool can "
                "hand out maxGpus x replicas shared GPUs; and when pods are pending, Karpenter "
                "sizes new nodes for one pod per physical GPU, so it may launch more nodes than "
                "the shared GPUs need (the empty ones are removed after consolidateAfter). "
                "See docs/sharing-gpus.md.",
            )
        if burst is not None and len(chart.burst_pools) > 1:
            cpu = f" and {burst.max_vcpus} vCPUs" if burst.max_vcpus is not None else ""
            cdk.Annotations.of(self).add_warning_v2(
                "eks-ultraserver:karpenter-burst-pools",
                f"burstCapacity: {len(chart.burst_pools)} burst NodePools "
                f"({', '.join(chart.burst_pools)}): each EFA instance type has a pool of its own "
                f"so that it gets its EFA interfaces; Karpenter limits are per NodePool, so each may run up to "
                f"{burst.max_gpus} GPUs{cpu} (up to {len(chart.burst_pools) * burst.max_gpus} "
                "GPUs in all). For one pool and one limit, let instanceFamilies / instanceSizes "
                "name one EFA instance type, or none (eks_ultraserver.capacity.INSTANCE_TYPES).",
            )
        manifest = self._cluster.add_cdk8s_chart(id, chart)
        manifest.node.add_dependency(self.helm_chart)
        self.capacity_manifest = manifest
        return manifest
