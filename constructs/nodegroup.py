"""``UltraServerNodeGroup``: an EKS managed node group for one UltraServer Capacity Block.

What it synthesizes, and why (EKS user guide, capacity-blocks-mng and
ml-eks-nvidia-ultraserver; EC2 user guide, efa-acc-inst-types):

- a launch template with ``InstanceType: p6e-gb200.36xlarge``, ``InstanceMarketOptions.
  MarketType: capacity-block`` and the reservation as ``CapacityReservationTarget``; no
  ``ImageId`` (EKS picks the AL2023 ARM64 NVIDIA AMI and merges its bootstrap with our
  MIME user data), no ``SubnetId``, no instance profile, no shutdown behaviour, IMDSv2
  required;
- the EFA interface layout of the EC2 guide (see ``efa.py``);
- user data with a nodeadm ``NodeConfig`` that stripes the instance store (RAID0);
- a managed node group with ``CapacityType: CAPACITY_BLOCK``, ``AmiType:
  AL2023_ARM_64_NVIDIA``, no ``InstanceTypes`` and min = max = desired = the
  UltraServer's instance count (or 0 with ``scaled_to_zero``, for upgrades);
- ``UpdateConfig: {UpdateStrategy: MINIMAL, MaxUnavailable: max_unavailable}``: a full
  Capacity Block has no spare instance, so an update must terminate a node before it can
  launch its replacement (EKS API reference, NodegroupUpdateConfig: the minimal strategy
  "terminates the old instances before launching the new instances", useful "with hardware
  accelerators such as GPUs"; the default strategy launches first, which a fully used
  reservation cannot serve);
- tags: the node group is the typed ``aws_eks.CfnNodegroup`` and the launch template a
  ``TaggedLaunchTemplate``, so ``Tags.of(scope)`` reaches both, and the launch template
  passes its tags on to the instances, volumes and network interfaces it launches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Unpack

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam

from constructs import Construct
from eks_ultraserver.constructs.gpu_nodegroup import (
    GpuNodeGroupKwargs,
    VersionRules,
    add_gpu_nodegroup,
    efa_group_for,
    gpu_option_problems,
    gpu_options,
)
from eks_ultraserver.constructs.iam import node_role
from eks_ultraserver.constructs.jsii_calls import is_token
from eks_ultraserver.model import (
    CAPACITY_RESERVATION_LABEL,
    EFA_LAYOUT_LABEL,
    INSTANCE_TYPE,
    ULTRASERVER_LABEL,
    ULTRASERVER_TYPE_LABEL,
    EfaLayout,
    Problems,
    UltraServerType,
    describe_reservation_id_problem,
    is_dns1123_label,
    is_reservation_id,
    parse_enum,
    parse_ultraserver_type,
)
from eks_ultraserver.versions import MIN_AMI_RELEASE_DATE, MIN_KUBERNETES

__all__ = ["ULTRASERVER_VERSIONS", "UltraServerNodeGroup"]

#: An UltraServer node group's versions: DRA (ComputeDomains) needs Kubernetes 1.33, the
#: GB200 nodes the AMI release of v20251103 (NVIDIA driver 580, CDMM).
ULTRASERVER_VERSIONS = VersionRules(
    release_example="1.34.2-20251103",
    min_kubernetes=MIN_KUBERNETES,
    min_kubernetes_needed_by="DRA (ComputeDomains)",
    min_release_date=MIN_AMI_RELEASE_DATE,
    min_release_reason=f"P6e-GB200 needs release v{MIN_AMI_RELEASE_DATE} or later (NVIDIA driver 580, CDMM)",
)


class UltraServerNodeGroup(Construct):
    """An EKS managed node group that runs one UltraServer Capacity Block.

    All arguments after ``id`` are keyword-only.

    :param cluster: the ``aws_eks_v2`` cluster to add the node group to (Kubernetes 1.33 or
        later: DRA needs it).
    :param capacity_reservation_id: the Capacity Block's reservation id, ``cr-`` followed by
        17 hexadecimal digits.
    :param ultraserver_type: ``u-p6e-gb200x36`` (9 instances) or ``u-p6e-gb200x72``
        (18 instances). Not the EC2 instance type.
    :param subnets: subnets for the nodes, all in the reservation's Availability Zone
        (which may be a Local Zone such as ``us-east-1-dfw-2a``).
    :param name: the UltraServer's name, a DNS-1123 label; it becomes the value of the
        ``eks-ultraserver.io/ultraserver`` node label. Default: the reservation id.
    :param efa_layout: ``per-gpu`` (default: efa-only on cards 1, 5, 9, 13, 4 x 400 Gbps),
        ``all-odd-cards`` (efa-only on cards 1..15) or ``none``.
    :param options: the options every GPU node group takes (``labels``, ``taints``,
        ``node_role``, ``max_unavailable``, ...), each documented with its default in
        ``GpuNodeGroupOptions`` (``gpu_nodegroup.py``). Here: ``kubernetes_version`` 1.33
        or later; ``release_version`` v20251103 or later; ``max_unavailable`` at most the
        instance count (18 or 9), which replaces the whole UltraServer in one batch;
        ``scaled_to_zero`` keeps max size at the instance count, for the two-step upgrade.

    Tags: ``cdk.Tags.of(scope).add(...)`` tags the node group, its launch template and the
    instances, root volumes and network interfaces the launch template launches (EKS does
    not propagate node group tags: EKS API reference, TagResource). Adding or changing such
    a tag changes the launch template, so EKS rolls the nodes (``max_unavailable`` at a time).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: eks.ICluster,
        capacity_reservation_id: str,
        ultraserver_type: UltraServerType | str,
        subnets: Sequence[ec2.ISubnet],
        name: str | None = None,
        efa_layout: EfaLayout | str = EfaLayout.PER_GPU,
        **options: Unpack[GpuNodeGroupKwargs],
    ) -> None:
        opts = gpu_options(UltraServerNodeGroup, options)
        # Validate everything before creating any child construct: bad input leaves
        # nothing half-built in the tree.
        problems = Problems()
        if not is_token(capacity_reservation_id) and not is_reservation_id(capacity_reservation_id):
            problems.add(describe_reservation_id_problem("capacity_reservation_id", capacity_reservation_id))
        us_type = parse_ultraserver_type("ultraserver_type", ultraserver_type, problems)
        layout = parse_enum("efa_layout", efa_layout, EfaLayout, problems)
        if name is None:
            name = capacity_reservation_id if is_reservation_id(capacity_reservation_id) else id.lower()
        if not is_dns1123_label(name):
            problems.add(
                f"name: {name!r} is not a DNS-1123 label; use at most 63 lowercase letters, "
                "digits and '-', starting and ending with a letter or digit"
            )
        problems.extend(
            gpu_option_problems(
                opts,
                cluster=cluster,
                subnets=subnets,
                node_count=us_type.instance_count if us_type is not None else None,
                versions=ULTRASERVER_VERSIONS,
                reserves="a Capacity Block",
            )
        )
        problems.raise_if_any(f"UltraServerNodeGroup {id!r}")
        assert us_type is not None and layout is not None

        super().__init__(scope, id)
        self.options = opts
        self.ultraserver_name = name
        self.ultraserver_type = us_type
        self.capacity_reservation_id = capacity_reservation_id
        self.efa_layout = layout
        self.instance_count = us_type.instance_count
        # A given EFA group stays on the primary interface with the layout ``none`` too.
        self.efa_security_group = efa_group_for(
            self, cluster, opts.efa_security_group, efa=layout is not EfaLayout.NONE
        )
        self.node_role = opts.node_role or _default_node_role(self)
        self.launch_template, self.nodegroup = add_gpu_nodegroup(
            self,
            cluster=cluster,
            subnets=subnets,
            options=opts,
            node_role=self.node_role,
            efa_security_group=self.efa_security_group,
            efa_interfaces=[(card, 0) for card in layout.efa_cards],
            instance_type=INSTANCE_TYPE,
            market_type="capacity-block",
            capacity_reservation={
                "CapacityReservationTarget": {"CapacityReservationId": capacity_reservation_id}
            },
            capacity_type="CAPACITY_BLOCK",
            ami_type="AL2023_ARM_64_NVIDIA",
            node_count=us_type.instance_count,
            labels={
                ULTRASERVER_LABEL: name,
                ULTRASERVER_TYPE_LABEL: us_type.value,
                EFA_LAYOUT_LABEL: layout.value,
                **(
                    {CAPACITY_RESERVATION_LABEL: capacity_reservation_id}
                    if not is_token(capacity_reservation_id)
                    else {}
                ),
            },
            tags={
                "eks-ultraserver:ultraserver": name,
                "eks-ultraserver:ultraserver-type": us_type.value,
                "eks-ultraserver:capacity-reservation-id": capacity_reservation_id,
            },
        )

    @property
    def nodegroup_name(self) -> str:
        """The node group's name (a CloudFormation attribute)."""
        return self.nodegroup.attr_nodegroup_name


def _default_node_role(scope: Construct) -> iam.IRole:
    return node_role(scope, "NodeRole")
