"""``ReservedGpuNodeGroup``: an EKS managed node group on an ODCR or a Capacity Block.

For the accelerated instance types beside the UltraServers (p5.48xlarge, p5en.48xlarge,
p6-b200.48xlarge, ...) that a team reserves for evaluation, fine-tuning or inference.
It shares with the UltraServer node group its options, their checks, and the launch
template and node group they become (``gpu_nodegroup.py``: ``GpuNodeGroupOptions``,
``gpu_option_problems``, ``add_gpu_nodegroup``), and with it the speed technique (plain
dicts for struct properties, cached attribute reads).

What it synthesizes, and why:

- a launch template with ``InstanceType``, the reservation in
  ``CapacityReservationSpecification.CapacityReservationTarget`` (a reservation id, or the
  ARN of a Capacity Reservation resource group), no ``ImageId`` (EKS picks the AL2023 NVIDIA
  AMI of the architecture and merges its bootstrap with our MIME user data), no
  ``SubnetId``, IMDSv2 required;

  - ODCR: no market type; by default ``CapacityReservationPreference:
    capacity-reservations-only`` next to the target, so an instance never silently runs (and
    bills) as plain On-Demand when the reservation is full (EC2 API reference,
    CapacityReservationSpecification: preference and target together only with
    ``capacity-reservations-only``). EKS runs ODCRs with a custom launch template and
    ``CapacityType: ON_DEMAND`` (EKS user guide, ml-node-groups; terraform-aws-eks-blueprints
    "targeted-odcr" pattern);
  - Capacity Block: ``InstanceMarketOptions.MarketType: capacity-block`` and ``CapacityType:
    CAPACITY_BLOCK`` (EKS user guide, capacity-blocks-mng), as for the UltraServers;

- the instance type's documented EFA layout (``capacity.INSTANCE_TYPES``): the primary ENA
  interface on card 0, then ``efa-only`` interfaces (card 0 device 1 where card 0 supports
  EFA, every other card at device 0), all with the shared EFA security group;
- user data with a nodeadm ``NodeConfig`` that stripes the instance store (RAID0);
- a managed node group with ``AmiType`` ``AL2023_x86_64_NVIDIA`` or ``AL2023_ARM_64_NVIDIA``,
  no ``InstanceTypes``, min = max = desired = the reserved instance count, the GPU taint,
  and the labels ``eks-ultraserver.io/capacity=reserved`` and
  ``eks-ultraserver.io/reserved-capacity=<name>`` for routing (Karpenter's
  ``karpenter.sh/capacity-type`` does not exist on managed node groups), and with
  ``sharing`` ``nvidia.com/device-plugin.config=<config name>`` (docs/sharing-gpus.md);
- ``UpdateConfig: {UpdateStrategy: MINIMAL, MaxUnavailable: max_unavailable}``: a fully
  used reservation has no spare instance, so an update terminates nodes before launching
  their replacements (EKS API reference, NodegroupUpdateConfig);
- tags: ``Tags.of(scope)`` reaches the node group and the launch template
  (``gpu_nodegroup.TaggedLaunchTemplate``), which passes its tags on to the instances, volumes
  and network interfaces it launches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Unpack

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam

from constructs import Construct
from eks_ultraserver.capacity import (
    DEVICE_PLUGIN_CONFIG_LABEL,
    CapacityClass,
    GpuInstanceType,
    GpuSharingSpec,
    ReservationKind,
    ReservedCapacitySpec,
    gpu_instance_type,
)
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
from eks_ultraserver.constructs.nag import suppress_node_role
from eks_ultraserver.model import (
    CAPACITY_RESERVATION_LABEL,
    CAPACITY_TYPE_LABEL,
    RESERVED_CAPACITY_LABEL,
    Problems,
    describe_reservation_id_problem,
    is_dns1123_label,
    is_reservation_id,
    parse_enum,
)
from eks_ultraserver.patterns import RESOURCE_GROUP_ARN_RE

__all__ = ["ReservedGpuNodeGroup"]

#: Node label: the `vpc.amazonaws.com/efa` devices a reserved node advertises (0 without EFA).
EFA_DEVICES_LABEL = "eks-ultraserver.io/efa-devices"

#: A reserved node group's versions: no oldest Kubernetes version or AMI release; a
#: ``release_version`` must still be well formed and for the node group's Kubernetes version.
RESERVED_VERSIONS = VersionRules(release_example="1.35.2-20260101")


class ReservedGpuNodeGroup(Construct):
    """An EKS managed node group that runs one On-Demand Capacity Reservation (by id or
    resource group) or one Capacity Block of an accelerated instance type.

    All arguments after ``id`` are keyword-only. Bad input raises one ``ConfigurationError``
    listing every problem, before anything is added to the tree.

    :param cluster: the ``aws_eks_v2`` cluster to add the node group to.
    :param name: the reservation's name, a DNS-1123 label of at most 40 characters; the value
        of the ``eks-ultraserver.io/reserved-capacity`` node label.
    :param instance_type: an instance type of ``capacity.INSTANCE_TYPES`` (``p5.48xlarge``,
        ``p5e.48xlarge``, ``p5en.48xlarge``, ``p6-b200.48xlarge``, ``p6-b300.48xlarge``), or a
        ``GpuInstanceType`` of your own (architecture, GPUs, cards, EFA interfaces).
    :param instance_count: instances reserved; the node group's size.
    :param subnets: subnets for the nodes, all in the reservation's zone.
    :param kind: ``odcr`` (default) or ``capacity-block``.
    :param capacity_reservation_id: the reservation's id (``cr-`` and 17 hex digits).
        Give it, or ``resource_group_arn`` (ODCRs only).
    :param resource_group_arn: the ARN of a Capacity Reservation resource group; EC2 launches
        into any reservation of the group with matching attributes.
    :param reservation_only: ODCRs only. ``True`` (default): ``CapacityReservationPreference:
        capacity-reservations-only``, so launches fail rather than run as plain On-Demand when
        the reservation has no free capacity. ``False``: the target alone (EC2 then runs
        instances that find no reserved capacity as On-Demand, at On-Demand prices, when
        targeting a resource group).
    :param efa: create the instance type's EFA interfaces. Default ``True``; ``False`` leaves
        only the primary ENA interface (and no EFA security group).
    :param sharing: share each GPU between pods (``capacity.GpuSharingSpec``: time-slicing or
        MPS): the nodes get the label ``nvidia.com/device-plugin.config=<config name>``,
        which selects the device plugin configuration of that name; the GPU Operator must
        have it (``GpuPlatformAddons(device_plugin_configs=capacity.sharing_configs(...))``,
        which ``UltraServerEnvironment`` passes). Default ``None``: whole GPUs.
    :param options: the options every GPU node group takes (``labels``, ``taints``,
        ``node_role``, ``max_unavailable``, ...), each documented with its default in
        ``GpuNodeGroupOptions`` (``gpu_nodegroup.py``). Here: ``max_unavailable`` at most
        ``instance_count``; ``scaled_to_zero`` keeps max size at ``instance_count``.

    Tags: ``cdk.Tags.of(scope).add(...)`` tags the node group, its launch template and the
    instances, root volumes and network interfaces the launch template launches (EKS does
    not propagate node group tags). Adding or changing such a tag changes the launch
    template, so EKS rolls the nodes (``max_unavailable`` at a time).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: eks.ICluster,
        name: str,
        instance_type: str | GpuInstanceType,
        instance_count: int,
        subnets: Sequence[ec2.ISubnet],
        kind: ReservationKind | str = ReservationKind.ODCR,
        capacity_reservation_id: str | None = None,
        resource_group_arn: str | None = None,
        reservation_only: bool = True,
        efa: bool = True,
        sharing: GpuSharingSpec | None = None,
        **options: Unpack[GpuNodeGroupKwargs],
    ) -> None:
        opts = gpu_options(ReservedGpuNodeGroup, options)
        problems = Problems()
        if not is_dns1123_label(name, max_length=40):
            problems.add(
                f"name: {name!r} is not a DNS-1123 label of at most 40 characters "
                "(lowercase letters, digits, '-')"
            )
        spec = gpu_instance_type(instance_type, "instance_type", problems)
        kind_ = parse_enum("kind", kind, ReservationKind, problems)
        count_ok = (
            not isinstance(instance_count, bool)
            and isinstance(instance_count, int)
            and 1 <= instance_count <= 1000
        )
        if not count_ok:
            problems.add(f"instance_count: {instance_count!r} is not an integer from 1 to 1000")
        problems.extend(
            _target_problems(kind_, capacity_reservation_id, resource_group_arn, reservation_only)
        )
        problems.extend(
            gpu_option_problems(
                opts,
                cluster=cluster,
                subnets=subnets,
                node_count=instance_count if count_ok else None,
                versions=RESERVED_VERSIONS,
                reserves="a reservation",
            )
        )
        given_sharing: object = sharing
        if given_sharing is not None and not isinstance(given_sharing, GpuSharingSpec):
            problems.add(
                f"sharing: {sharing!r} is not a capacity.GpuSharingSpec (e.g. "
                "GpuSharingSpec(strategy='time-slicing', replicas=4))"
            )
        problems.raise_if_any(f"ReservedGpuNodeGroup {id!r}")
        assert spec is not None and kind_ is not None

        super().__init__(scope, id)
        self.options = opts
        self.reservation_name = name
        self.instance_type = spec
        self.kind = kind_
        self.instance_count = instance_count
        self.capacity_reservation_id = capacity_reservation_id
        self.resource_group_arn = resource_group_arn
        self.efa_devices = spec.efa_devices if efa else 0
        self.sharing = sharing
        # Without EFA interfaces, no EFA group (not even a given one).
        self.efa_security_group = (
            efa_group_for(self, cluster, opts.efa_security_group, efa=True) if self.efa_devices else None
        )
        self.node_role = opts.node_role or _default_node_role(self)

        target = (
            {"CapacityReservationId": capacity_reservation_id}
            if capacity_reservation_id
            else {"CapacityReservationResourceGroupArn": resource_group_arn}
        )
        reservation: dict[str, Any] = {"CapacityReservationTarget": target}
        if kind_ is ReservationKind.ODCR and reservation_only:
            reservation = {"CapacityReservationPreference": "capacity-reservations-only", **reservation}
        reservation_tag = (
            {"eks-ultraserver:capacity-reservation-id": capacity_reservation_id}
            if capacity_reservation_id
            else {"eks-ultraserver:capacity-reservation-group": resource_group_arn or ""}
        )
        block = kind_ is ReservationKind.CAPACITY_BLOCK
        self.launch_template, self.nodegroup = add_gpu_nodegroup(
            self,
            cluster=cluster,
            subnets=subnets,
            options=opts,
            node_role=self.node_role,
            efa_security_group=self.efa_security_group,
            efa_interfaces=[(i.card, i.device_index) for i in spec.efa] if efa else [],
            instance_type=spec.name,
            market_type="capacity-block" if block else None,
            capacity_reservation=reservation,
            capacity_type="CAPACITY_BLOCK" if block else "ON_DEMAND",
            ami_type=spec.ami_type,
            node_count=instance_count,
            labels={
                CAPACITY_TYPE_LABEL: CapacityClass.RESERVED.value,
                RESERVED_CAPACITY_LABEL: name,
                EFA_DEVICES_LABEL: str(self.efa_devices),
                **(
                    {CAPACITY_RESERVATION_LABEL: capacity_reservation_id}
                    if capacity_reservation_id and not is_token(capacity_reservation_id)
                    else {}
                ),
                **({DEVICE_PLUGIN_CONFIG_LABEL: sharing.config_name} if sharing is not None else {}),
            },
            tags={
                "eks-ultraserver:reserved-capacity": name,
                "eks-ultraserver:instance-type": spec.name,
                **reservation_tag,
            },
        )

    @property
    def nodegroup_name(self) -> str:
        """The node group's name (a CloudFormation attribute)."""
        return self.nodegroup.attr_nodegroup_name

    @classmethod
    def from_spec(
        cls,
        scope: Construct,
        id: str,
        *,
        cluster: eks.ICluster,
        spec: ReservedCapacitySpec,
        subnets: Sequence[ec2.ISubnet],
        **kwargs,
    ) -> ReservedGpuNodeGroup:
        """A node group for one ``reservedCapacity`` entry (``provisioner: nodegroup``)."""
        return cls(
            scope,
            id,
            cluster=cluster,
            name=spec.name,
            instance_type=spec.gpu_type or spec.instance_type,
            instance_count=spec.instance_count,
            subnets=subnets,
            kind=spec.kind,
            capacity_reservation_id=spec.capacity_reservation_id,
            resource_group_arn=spec.resource_group_arn,
            availability_zone=spec.availability_zone,
            sharing=spec.sharing,
            **kwargs,
        )


def _default_node_role(scope: Construct) -> iam.IRole:
    role = node_role(scope, "NodeRole")
    suppress_node_role(role)
    return role


def _target_problems(
    kind: ReservationKind | None,
    reservation_id: str | None,
    group_arn: str | None,
    reservation_only: bool,
) -> list[str]:
    out = []
    if reservation_id is None and group_arn is None:
        out.append(
            "capacity_reservation_id / resource_group_arn: give one: the reservation's id "
            "('cr-' and 17 hex digits) or a Capacity Reservation resource group ARN"
        )
    elif reservation_id is not None and group_arn is not None:
        out.append(
            "capacity_reservation_id / resource_group_arn: both given; a launch template targets "
            "one reservation or one resource group"
        )
    if reservation_id is not None and not is_token(reservation_id) and not is_reservation_id(reservation_id):
        out.append(describe_reservation_id_problem("capacity_reservation_id", reservation_id))
    if group_arn is not None:
        if not is_token(group_arn) and not RESOURCE_GROUP_ARN_RE.match(group_arn):
            out.append(
                f"resource_group_arn: {group_arn!r} is not a resource group ARN like "
                "'arn:aws:resource-groups:us-east-1:123456789012:group/my-odcrs'"
            )
        if kind is ReservationKind.CAPACITY_BLOCK:
            out.append(
                "resource_group_arn: a Capacity Block is targeted by its reservation id "
                "(EKS user guide, capacity-blocks-mng); give capacity_reservation_id"
            )
    if kind is ReservationKind.CAPACITY_BLOCK and reservation_only is not True:
        out.append(
            "reservation_only: applies to ODCRs only; a Capacity Block's instances never run "
            "outside the block (leave the default)"
        )
    return out
