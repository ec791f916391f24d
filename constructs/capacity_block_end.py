"""``CapacityBlockEndHandler``: cordons, marks and optionally drains the nodes of Capacity
Blocks that end soon (docs: capacity-block-end).

A Lambda function (``eks_ultraserver/lambdas/capacity_block_end/handler.py``, standard
library and boto3 only) runs every :data:`~eks_ultraserver.settings.CAPACITY_BLOCK_END_SCHEDULE_MINUTES`
minutes from an EventBridge schedule. It reads each watched block's end from EC2
(``DescribeCapacityReservations``), and ``notice_minutes`` before it cordons the block's
nodes, labels and annotates them with the end, publishes one message to the notification
topic and, with ``evict``, evicts their pods (not DaemonSet or mirror pods) with a grace
period, so jobs get SIGTERM and can checkpoint before EKS scales the node group down (40
minutes before the end; EKS user guide, capacity-blocks-mng) and EC2 terminates the
instances (from 30 minutes before the end; EC2 user guide, capacity-blocks-monitor).

The watched reservations are written at synth to ``reservations.json`` beside the handler
in the function's code asset (a Lambda environment holds at most 4 KB, too little for
hundreds of UltraServers). Nothing is downloaded or bundled: the asset is the package's
own file and that JSON.

Permissions, as narrow as the APIs allow: ``ec2:DescribeCapacityReservations`` on ``*``
(the action has no resource-level permission: Service Authorization Reference, Amazon EC2),
``sns:Publish`` on the topic and ``kms:GenerateDataKey``/``kms:Decrypt`` on its key,
``eks:DescribeCluster`` on the cluster (its endpoint and CA). In the cluster: an EKS access
entry maps the function's role to the Kubernetes group :data:`KUBERNETES_GROUP`, bound to a
ClusterRole of nodes get/list/patch, pods list and pods/eviction create, nothing more.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns

from constructs import Construct
from eks_ultraserver.capacity import (
    RESERVED_CAPACITY_LABEL,
    ReservationKind,
    ReservedCapacitySpec,
    ReservedProvisioner,
)
from eks_ultraserver.config import CapacityBlockEndConfig, UltraServerSpec
from eks_ultraserver.constructs.nag import suppress
from eks_ultraserver.model import (
    ULTRASERVER_LABEL,
    Problems,
    describe_reservation_id_problem,
    is_reservation_id,
)
from eks_ultraserver.settings import CAPACITY_BLOCK_END_SCHEDULE_MINUTES
from eks_ultraserver.synth_files import process_directory
from eks_ultraserver.versions import LAMBDA_PYTHON_RUNTIME

#: The Kubernetes group of the function's access entry (bound to :data:`CLUSTER_ROLE_NAME`).
KUBERNETES_GROUP = "eks-ultraserver:capacity-block-end"
#: The ClusterRole (and ClusterRoleBinding) of the handler.
CLUSTER_ROLE_NAME = "eks-ultraserver-capacity-block-end"
#: The label Karpenter puts on nodes it launches into a capacity reservation (Karpenter
#: docs, well-known labels, ``karpenter.k8s.aws/capacity-reservation-id``).
KARPENTER_RESERVATION_LABEL = "karpenter.k8s.aws/capacity-reservation-id"
#: The handler's package (its folder is the function's code).
HANDLER_PACKAGE = "eks_ultraserver.lambdas.capacity_block_end"


def cluster_role() -> dict[str, Any]:
    """The ClusterRole: what the handler needs and nothing more."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": CLUSTER_ROLE_NAME},
        "rules": [
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
            {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
        ],
    }


def cluster_role_binding() -> dict[str, Any]:
    """Binds :func:`cluster_role` to the access entry's group."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": CLUSTER_ROLE_NAME},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": CLUSTER_ROLE_NAME,
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": KUBERNETES_GROUP}],
    }


@dataclass(frozen=True, slots=True)
class WatchedBlock:
    """One Capacity Block the handler watches: a name for messages, its reservation id, and
    the label selector of its nodes."""

    name: str
    capacity_reservation_id: str
    label_selector: str

    @classmethod
    def for_ultraserver(cls, spec: UltraServerSpec) -> WatchedBlock:
        return cls(spec.name, spec.capacity_reservation_id, f"{ULTRASERVER_LABEL}={spec.name}")

    @classmethod
    def for_reserved(cls, spec: ReservedCapacitySpec) -> WatchedBlock | None:
        """A ``reservedCapacity`` Capacity Block (``None`` for an ODCR): node groups label
        their nodes with the entry's name; Karpenter with the reservation id."""
        rid = spec.capacity_reservation_id
        if spec.kind is not ReservationKind.CAPACITY_BLOCK or not rid:
            return None
        if spec.provisioner is ReservedProvisioner.KARPENTER:
            return cls(spec.name, rid, f"{KARPENTER_RESERVATION_LABEL}={rid}")
        return cls(spec.name, rid, f"{RESERVED_CAPACITY_LABEL}={spec.name}")

    def to_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "capacityReservationId": self.capacity_reservation_id,
            "labelSelector": self.label_selector,
        }


_SELECTOR_RE = re.compile(r"^[A-Za-z0-9./_-]+=[A-Za-z0-9._-]{1,63}$")


class CapacityBlockEndHandler(Construct):
    """The scheduled function that acts on the nodes of Capacity Blocks that end soon.

    All arguments after ``id`` are keyword-only.

    :param cluster: the EKS cluster (its access entries must use the EKS API, as
        ``aws_eks_v2`` clusters do).
    :param blocks: the Capacity Blocks to watch, e.g.
        ``[WatchedBlock.for_ultraserver(spec), ...]`` (at least one; each id once).
    :param topic: the topic that gets one message per ending block. Default: none (the
        nodes are still cordoned and marked; nothing is published).
    :param topic_key: the topic's KMS key, if encrypted. Default: none.
    :param vpc: the VPC of the function, so that it reaches a private cluster endpoint;
        its private subnets with egress (EC2, SNS, STS and EKS APIs through NAT or
        endpoints) are used.
    :param config: notice, eviction and grace period. Default ``CapacityBlockEndConfig()``
        (90 minutes' notice, no eviction). When ``config.enabled`` is false, build nothing
        (the environment then does not create this construct).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: eks.ICluster,
        blocks: Sequence[WatchedBlock],
        vpc: ec2.IVpc,
        topic: sns.ITopic | None = None,
        topic_key: kms.IKey | None = None,
        config: CapacityBlockEndConfig | None = None,
    ) -> None:
        config = config or CapacityBlockEndConfig()
        blocks = list(blocks)
        problems = Problems()
        if not blocks:
            problems.add("blocks: the list is empty; give at least one WatchedBlock")
        seen: set[str] = set()
        for i, block in enumerate(blocks):
            if not is_reservation_id(block.capacity_reservation_id):
                problems.add(
                    describe_reservation_id_problem(
                        f"blocks[{i}].capacity_reservation_id", block.capacity_reservation_id
                    )
                )
            elif block.capacity_reservation_id in seen:
                problems.add(
                    f"blocks[{i}]: {block.capacity_reservation_id!r} is listed twice; watch each block once"
                )
            seen.add(block.capacity_reservation_id)
            if not _SELECTOR_RE.match(block.label_selector):
                problems.add(
                    f"blocks[{i}].label_selector: {block.label_selector!r} is not a 'key=value' label selector"
                )
        problems.raise_if_any(f"CapacityBlockEndHandler {id!r}")

        super().__init__(scope, id)
        self.config = config
        self.blocks = tuple(blocks)
        log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description="Cordons, marks and optionally drains the nodes of Capacity Blocks that end soon",
            runtime=lambda_.Runtime(LAMBDA_PYTHON_RUNTIME, lambda_.RuntimeFamily.PYTHON),
            handler="handler.lambda_handler",
            code=lambda_.Code.from_asset(str(_code_directory(self.blocks))),
            timeout=cdk.Duration.minutes(CAPACITY_BLOCK_END_SCHEDULE_MINUTES - 1),
            memory_size=256,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            log_group=log_group,
            environment={
                "CLUSTER_NAME": cluster.cluster_name,
                "TOPIC_ARN": topic.topic_arn if topic is not None else "",
                "NOTICE_MINUTES": str(config.notice_minutes),
                "EVICT": "true" if config.evict else "false",
                "EVICTION_GRACE_PERIOD_SECONDS": str(config.eviction_grace_period_seconds),
            },
        )
        # The cluster endpoint, private from inside the VPC, accepts only what the cluster
        # security group lets in.
        cluster.connections.allow_from(self.function, ec2.Port.tcp(443), "Capacity Block end handler")
        role = self.function.role
        assert role is not None  # Function made it
        self.role = role
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadCapacityBlockEnds",
                actions=["ec2:DescribeCapacityReservations"],
                resources=["*"],  # no resource-level permission for this action
            )
        )
        if topic is not None:
            role.add_to_principal_policy(
                iam.PolicyStatement(sid="Announce", actions=["sns:Publish"], resources=[topic.topic_arn])
            )
        if topic is not None and topic_key is not None:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="AnnounceEncrypted",
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=[topic_key.key_arn],
                )
            )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="FindCluster", actions=["eks:DescribeCluster"], resources=[cluster.cluster_arn]
            )
        )
        self.access_entry = eks.CfnAccessEntry(
            self,
            "AccessEntry",
            cluster_name=cluster.cluster_name,
            principal_arn=role.role_arn,
            kubernetes_groups=[KUBERNETES_GROUP],
            type="STANDARD",
        )
        self.rbac = cluster.add_manifest("CapacityBlockEndRbac", cluster_role(), cluster_role_binding())
        self.rule = events.Rule(
            self,
            "Schedule",
            description="Runs the Capacity Block end handler",
            schedule=events.Schedule.rate(cdk.Duration.minutes(CAPACITY_BLOCK_END_SCHEDULE_MINUTES)),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )
        # start only once the function can reach and use the Kubernetes API
        self.rule.node.add_dependency(self.access_entry, self.rbac)
        self._acknowledge()

    def _acknowledge(self) -> None:
        suppress(
            self.role,
            "AwsSolutions-IAM4",
            "AWSLambdaBasicExecutionRole (write its own logs) and AWSLambdaVPCAccessExecutionRole "
            "(network interfaces in the VPC, to reach a private cluster endpoint) are the "
            "policies Lambda documents for these needs (Lambda developer guide, "
            "lambda-intro-execution-role, configuration-vpc).",
            [
                "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
                "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
            ],
        )
        suppress(
            self.role.node.try_find_child("DefaultPolicy"),
            "AwsSolutions-IAM5",
            "ec2:DescribeCapacityReservations supports no resource-level permission (Service "
            "Authorization Reference, Amazon EC2): it can only be granted on '*'. It reads only.",
            ["Resource::*"],
        )


def _code_directory(blocks: Sequence[WatchedBlock]) -> Path:
    """A new folder with the handler (the package's file, unchanged) and
    ``reservations.json``: the function's code asset (CDK copies it into the cloud
    assembly, named by its content hash; the folder itself is removed when the process ends)."""
    folder = process_directory("eks-ultraserver-capacity-block-end-")
    source = resources.files(HANDLER_PACKAGE).joinpath("handler.py")
    with resources.as_file(source) as path:
        shutil.copyfile(path, folder / "handler.py")
    (folder / "reservations.json").write_text(
        json.dumps([b.to_json() for b in blocks], indent=1, sort_keys=True) + "\n"
    )
    return folder
