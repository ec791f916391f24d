"""What every GPU node group on reserved capacity shares: its options, their checks, and the
launch template and managed node group they become.

``UltraServerNodeGroup`` (``nodegroup.py``, one UltraServer Capacity Block) and
``ReservedGpuNodeGroup`` (``reserved.py``, an ODCR or a Capacity Block of another GPU type)
differ in what they reserve and how they name it; everything else is here, once:

- ``GpuNodeGroupOptions``: the options both take, each documented with its default (as
  aws-cdk's ``NodegroupProps extends NodegroupOptions``);
- ``gpu_option_problems``: their checks, with one message each;
- ``add_gpu_nodegroup``: the launch template (``TaggedLaunchTemplate``) and the
  ``CfnNodegroup`` they become.

How the constructs take the options. Users keep writing keyword arguments
(``UltraServerNodeGroup(scope, id, cluster=..., labels=..., max_unavailable=2)``). Each
constructor declares its own arguments and takes the shared ones as
``**options: Unpack[GpuNodeGroupKwargs]`` (PEP 692), then builds the frozen dataclass in
one line with ``gpu_options``. Type checkers and IDEs see every shared name and type in the
signature (mypy rejects an unknown or mistyped option at the call); the defaults and their
meaning live once, in ``GpuNodeGroupOptions``. The ``TypedDict`` repeats the dataclass's
names and types because Python cannot derive one from the other statically: mypy checks
that every key fits a dataclass field (``GpuNodeGroupOptions(**options)``), and
``tests/test_gpu_nodegroup_options.py`` checks that both list the same names and types.
Explicit keyword parameters in both constructors were the alternative: the defaults would
be written three times, and kept equal by a test rather than by construction.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypedDict

import aws_cdk as cdk
import jsii
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks as eks_cfn  # the L1 CfnNodegroup (aws_eks_v2 has none)
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam

from constructs import Construct
from eks_ultraserver.constructs.efa import EfaSecurityGroup, efa_network_interfaces
from eks_ultraserver.constructs.jsii_calls import attr, is_token
from eks_ultraserver.constructs.node_config import mime_user_data, node_config
from eks_ultraserver.model import (
    GPU_TAINT,
    InstanceStorePolicy,
    Problems,
    Taint,
    enum_member,
    is_label_key,
    is_label_value,
    parse_enum,
)
from eks_ultraserver.patterns import AMI_RELEASE_VERSION_RE
from eks_ultraserver.versions import SUPPORTED_KUBERNETES_VERSIONS, KubernetesVersion

__all__ = [
    "LAUNCHED_RESOURCE_TYPES",
    "NODE_REPAIR_OVERRIDES",
    "GpuNodeGroupKwargs",
    "GpuNodeGroupOptions",
    "RepairAction",
    "RepairOverride",
    "TaggedLaunchTemplate",
    "VersionRules",
    "add_gpu_nodegroup",
    "cluster_kubernetes_version",
    "efa_group_for",
    "gpu_option_problems",
    "gpu_options",
    "node_repair_config",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class GpuNodeGroupOptions:
    """The options of every GPU node group on reserved capacity, with their defaults.

    ``UltraServerNodeGroup`` and ``ReservedGpuNodeGroup`` take each of them as a keyword
    argument of the same name and default; ``gpu_option_problems`` checks them.
    """

    #: The reservation's Availability Zone (a Local Zone such as ``us-east-1-dfw-2a`` is
    #: one too); when given, every subnet whose zone is known must be in it. Default: only
    #: checks that all subnets share one zone.
    availability_zone: str | None = None
    #: How nodeadm prepares the instance-store NVMe disks (``NodeConfig``
    #: ``spec.instance.localStorage.strategy``): ``RAID0`` (default: one striped array for
    #: kubelet and containerd), ``Mount`` (each disk on its own) or ``none``.
    instance_store: InstanceStorePolicy | str = InstanceStorePolicy.RAID0
    #: Extra Kubernetes node labels (they win over the construct's own labels of the same
    #: key). Default: none beyond the construct's labels.
    labels: Mapping[str, str] | None = None
    #: Node taints. Default: ``nvidia.com/gpu=true:NoSchedule``. Pass ``[]`` for no taints.
    taints: Sequence[Taint] | None = None
    #: The nodes' IAM role (changing it later replaces the node group). Default: a new role
    #: with the managed policies EKS documents (EKS user guide, create-node-role).
    node_role: iam.IRole | None = None
    #: The EFA security group; share one between all GPU node groups of a cluster so that
    #: EFA traffic flows between them. Default: a new self-referencing group for this node
    #: group when it has EFA interfaces.
    efa_security_group: ec2.ISecurityGroup | None = None
    #: Extra security groups for the primary network interface. Default: none.
    security_groups: Sequence[ec2.ISecurityGroup] = ()
    #: The node group's Kubernetes version. Default: the cluster's version when the node
    #: group is created (and it stays there until changed).
    kubernetes_version: str | None = None
    #: The AMI release, e.g. ``1.34.2-20251103`` (UltraServers: v20251103 or later).
    #: Default: the latest release when the node group is created.
    release_version: str | None = None
    #: Set min and desired size to 0 (max stays the instance count). The EKS guide requires
    #: desired size 0 before upgrading a Capacity Block node group: deploy with ``True``,
    #: then change the version, then deploy with ``False`` (EKS user guide,
    #: capacity-blocks-mng). Default: ``False``.
    scaled_to_zero: bool = False
    #: The encrypted gp3 root volume, 20 to 16384 GiB. Default: 100 GiB (kubelet and
    #: containerd live on the instance store with ``RAID0``).
    root_volume_size_gib: int = 100
    #: IMDSv2 hop limit, 1 to 64. Default: 1, so pods without host networking cannot reach
    #: the node role's credentials; raise to 2 only if a workload needs IMDS.
    http_put_response_hop_limit: int = 1
    #: An explicit node group name. Default: generated by CloudFormation.
    nodegroup_name: str | None = None
    #: Nodes an update (launch template, AMI release) replaces at a time, 1 to 100 and at
    #: most the instance count. The node group updates with the ``MINIMAL`` strategy: EKS
    #: terminates this many nodes, then launches their replacements into the freed
    #: reservation capacity (EKS API reference, NodegroupUpdateConfig; the default strategy
    #: launches first, which a fully used reservation refuses). Default: 1 (the EKS default;
    #: a broken launch template costs one node). The instance count replaces the whole node
    #: group in one batch: fastest, and NVLink jobs spanning an UltraServer stop at its
    #: first replaced node anyway.
    max_unavailable: int = 1
    #: EKS node auto repair (``NodeRepairConfig``): ``True`` (default) enables it, one node
    #: at a time, with the accelerator repair actions of ``NODE_REPAIR_OVERRIDES`` (a reboot
    #: where NVIDIA's resolution for the failure is a GPU reset or a reboot: a Capacity
    #: Block has no spare instance); ``False`` disables it (``Enabled: false``). The EKS
    #: node monitoring agent add-on reports the conditions it acts on (docs/node-health.md).
    node_repair: bool = True

    @property
    def node_labels(self) -> dict[str, str]:
        """``labels``, or no labels when not given."""
        return dict(self.labels or {})

    @property
    def node_taints(self) -> list[Taint]:
        """``taints``, or the GPU taint when not given."""
        return [GPU_TAINT] if self.taints is None else list(self.taints)


class GpuNodeGroupKwargs(TypedDict, total=False):
    """``GpuNodeGroupOptions`` as keyword arguments (``**options: Unpack[...]``): the same
    names and types; the defaults and their meaning are the dataclass's."""

    availability_zone: str | None
    instance_store: InstanceStorePolicy | str
    labels: Mapping[str, str] | None
    taints: Sequence[Taint] | None
    node_role: iam.IRole | None
    efa_security_group: ec2.ISecurityGroup | None
    security_groups: Sequence[ec2.ISecurityGroup]
    kubernetes_version: str | None
    release_version: str | None
    scaled_to_zero: bool
    root_volume_size_gib: int
    http_put_response_hop_limit: int
    nodegroup_name: str | None
    max_unavailable: int
    node_repair: bool


_OPTION_NAMES = frozenset(f.name for f in fields(GpuNodeGroupOptions))


def gpu_options(owner: type, options: GpuNodeGroupKwargs) -> GpuNodeGroupOptions:
    """The options a construct's ``**options`` received. An unknown name raises the
    ``TypeError`` Python raises for an unknown keyword argument of ``owner.__init__``."""
    for name in options:
        if name not in _OPTION_NAMES:
            raise TypeError(f"{owner.__qualname__}.__init__() got an unexpected keyword argument {name!r}")
    return GpuNodeGroupOptions(**options)


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class VersionRules:
    """What a node group's ``kubernetes_version`` and ``release_version`` must satisfy."""

    #: The release in the message for a malformed ``release_version``.
    release_example: str
    #: The oldest Kubernetes version, and what needs it. ``None``: the version is not checked.
    min_kubernetes: KubernetesVersion | None = None
    min_kubernetes_needed_by: str = ""
    #: The oldest AMI release date (``YYYYMMDD``), and why. ``None``: any release.
    min_release_date: str | None = None
    min_release_reason: str = ""


def gpu_option_problems(
    options: GpuNodeGroupOptions,
    *,
    cluster: eks.ICluster,
    subnets: Sequence[ec2.ISubnet],
    node_count: int | None,
    versions: VersionRules,
    reserves: str,
) -> list[str]:
    """Every problem of the shared options, one message each: the instance store, the
    subnets and their zone, the versions, the labels, taints, root volume and IMDS hop
    limit, then ``max_unavailable``. A construct lists its own arguments' problems first.

    :param cluster: the cluster, whose version the node group runs unless
        ``kubernetes_version`` is given.
    :param subnets: the node group's subnets (checked with ``availability_zone``).
    :param node_count: the node group's size; ``None`` when unknown (an invalid size,
        reported by the construct), which skips the ``max_unavailable`` check.
    :param versions: the version rules of the instance type.
    :param reserves: what the reservation is, for the subnets message (``a Capacity Block``).
    """
    problems = Problems()
    parse_enum("instance_store", options.instance_store, InstanceStorePolicy, problems)
    problems.extend(subnet_problems(subnets, options.availability_zone, reserves=reserves))
    version = options.kubernetes_version or cluster_kubernetes_version(cluster)
    problems.extend(_version_problems(options, version, versions))
    problems.extend(_node_settings_problems(options))
    if node_count is not None:
        problems.extend(_max_unavailable_problems(options.max_unavailable, node_count))
    return list(problems)


def subnet_problems(
    subnets: Sequence[ec2.ISubnet], availability_zone: str | None, *, reserves: str
) -> list[str]:
    """Subnets must exist and share one zone (``availability_zone`` when given)."""
    if not subnets:
        return ["subnets: no subnet given; pass at least one subnet in the reservation's zone"]
    zones = {zone for zone in (attr(s, "availability_zone") for s in subnets) if zone and not is_token(zone)}
    out = []
    if len(zones) > 1:
        out.append(
            f"subnets: the subnets are in {len(zones)} zones ({', '.join(sorted(zones))}); "
            f"{reserves} lives in one zone: give only subnets in the reservation's zone"
        )
    if availability_zone and zones and zones != {availability_zone}:
        out.append(
            f"subnets: zone(s) {', '.join(sorted(zones))} differ from availability_zone "
            f"{availability_zone!r}; give only subnets in the reservation's zone"
        )
    return out


def cluster_kubernetes_version(cluster: eks.ICluster) -> str | None:
    """The Kubernetes version of a cluster defined in this app, or ``None`` if unknown."""
    child = attr(attr(cluster, "node"), "default_child")
    if child is None or not any(hasattr(t, "version") for t in type(child).__mro__):
        return None
    version = attr(child, "version")
    return version if isinstance(version, str) and not is_token(version) else None


def _version_problems(options: GpuNodeGroupOptions, version: str | None, rules: VersionRules) -> list[str]:
    out = []
    allowed = ", ".join(SUPPORTED_KUBERNETES_VERSIONS)
    if version is not None and rules.min_kubernetes is not None:
        parsed = KubernetesVersion.of(version)
        if parsed is None:
            out.append(f"kubernetes_version: {version!r} is not a Kubernetes version; use one of {allowed}")
        elif parsed < rules.min_kubernetes:
            where = "kubernetes_version" if options.kubernetes_version else "cluster"
            out.append(
                f"{where}: Kubernetes {version} is too old; {rules.min_kubernetes_needed_by} needs "
                f"{rules.min_kubernetes} or later: use one of {allowed}"
            )
    release_version = options.release_version
    if release_version is not None:
        match = AMI_RELEASE_VERSION_RE.match(release_version)
        if not match:
            out.append(
                f"release_version: {release_version!r} is not an EKS AMI release version; "
                f"expected e.g. {rules.release_example!r}"
            )
        else:
            if rules.min_release_date is not None and match.group(2) < rules.min_release_date:
                out.append(
                    f"release_version: {release_version!r} is older than v{rules.min_release_date}; "
                    f"{rules.min_release_reason}"
                )
            if version is not None and match.group(1) != version:
                out.append(
                    f"release_version: {release_version!r} is for Kubernetes {match.group(1)}, "
                    f"but the node group runs {version}"
                )
    return out


def _node_settings_problems(options: GpuNodeGroupOptions) -> list[str]:
    """Problems of the node labels, taints, root volume size and IMDS hop limit."""
    out = []
    for key, value in options.node_labels.items():
        if not is_label_key(key):
            out.append(f"labels: key {key!r} is not a valid Kubernetes label key")
        if not is_label_value(value):
            out.append(f"labels[{key!r}]: {value!r} is not a valid Kubernetes label value")
    for i, taint in enumerate(options.node_taints):
        if not isinstance(taint, Taint):
            out.append(f"taints[{i}]: {taint!r} is not an eks_ultraserver.Taint")  # type: ignore[unreachable]
        else:
            out.extend(taint.problems(f"taints[{i}]"))
    size, hops = options.root_volume_size_gib, options.http_put_response_hop_limit
    if not 20 <= size <= 16384:
        out.append(f"root_volume_size_gib: {size!r} is out of range; use 20 to 16384")
    if not 1 <= hops <= 64:
        out.append(f"http_put_response_hop_limit: {hops!r} is out of range; use 1 to 64")
    repair: object = options.node_repair  # typed bool, but Python callers may pass anything
    if not isinstance(repair, bool):
        out.append(f"node_repair: {repair!r} is not a boolean; use True or False")
    return out


def _max_unavailable_problems(max_unavailable: object, node_count: int) -> list[str]:
    """``max_unavailable`` must be an integer from 1 to 100 (EKS API reference,
    NodegroupUpdateConfig) and at most the node group's size."""
    limit = min(100, node_count)
    if (
        isinstance(max_unavailable, bool)
        or not isinstance(max_unavailable, int)
        or not 1 <= max_unavailable <= limit
    ):
        return [
            f"max_unavailable: {max_unavailable!r} is out of range; use an integer from 1 to "
            f"{limit} (EKS allows 1 to 100, and the node group has {node_count} nodes)"
        ]
    return []


# --------------------------------------------------------------------------------------
# Node auto repair
# --------------------------------------------------------------------------------------


class RepairAction(enum.StrEnum):
    """What EKS node auto repair does to a managed node (CloudFormation
    ``NodeRepairConfigOverrides.RepairAction``)."""

    REPLACE = "Replace"
    REBOOT = "Reboot"
    NO_ACTION = "NoAction"


@dataclass(frozen=True, kw_only=True, slots=True)
class RepairOverride:
    """One ``NodeRepairConfigOverrides`` entry: ``action`` when the node monitoring agent
    sets ``condition`` to unhealthy with ``reason`` for ``wait_minutes``."""

    reason: str
    action: RepairAction
    #: NVIDIA's resolution for the failure, which the action follows.
    why: str
    condition: str = "AcceleratedHardwareReady"
    #: The EKS default wait for ``AcceleratedHardwareReady`` (EKS user guide, node-repair).
    wait_minutes: int = 10

    def to_cfn(self) -> dict[str, Any]:
        """The entry as CloudFormation writes it (``NodeRepairConfigOverrides`` item)."""
        return {
            "NodeMonitoringCondition": self.condition,
            "NodeUnhealthyReason": self.reason,
            "MinRepairWaitTimeMins": self.wait_minutes,
            "RepairAction": str(self.action),
        }


def _xid(code: int, action: RepairAction, why: str) -> RepairOverride:
    return RepairOverride(reason=f"NvidiaXID{code}Error", action=action, why=why)


_RESET = "RESET_GPU: reset the GPU; a reboot resets every GPU of the node"
_REBOOT, _REPLACE = RepairAction.REBOOT, RepairAction.REPLACE

#: The repair actions of GPU node groups, by ``AcceleratedHardwareReady`` reason: a reboot
#: wherever NVIDIA's resolution for the failure is a GPU reset, a node reboot or an
#: instance restart; a replacement only where a reboot cannot help (the hardware is gone or
#: needs service). A Capacity Block or an ODCR has no spare instance: a replacement needs
#: a free slot in the reservation, which a fully used one has only once the old instance
#: is gone, while a reboot keeps the instance.
#:
#: ============================ ======= ==================================================
#: Reason                       Action  Why (NVIDIA resolution bucket)
#: ============================ ======= ==================================================
#: ``NvidiaXID{46,48,62,64,95,  Reboot  RESET_GPU / WORKFLOW_XID_48: reset the GPU, then
#: 109,110,119,120,136,140,             reboot if it persists
#: 143,155,156,158}Error``
#: ``NvidiaXID63Error``         Reboot  a row remap, applied at the next GPU reset (NVIDIA:
#:                                      IGNORE; EC2 advises replacing an instance whose
#:                                      remaps repeat: XID 64 then follows)
#: ``NvidiaXID74Error``,        Reboot  WORKFLOW_NVLINK_ERR: reset the GPU or reboot
#: ``NvidiaNVLinkError``
#: ``NvidiaXID151Error``        Reboot  RESTART_VM: restart the instance
#: ``NvidiaDoubleBitError``     Reboot  WORKFLOW_XID_48: reset the GPU
#: ``NvidiaFabricError``,       Reboot  the NVLink fabric and the Fabric Manager service
#: ``FabricManagerNotRunning``          initialise again at boot
#: ``NvidiaXID54Error``         Replace CHECK_MECHANICALS: auxiliary power not connected
#: ``NvidiaXID79Error``         Replace RESTART_BM: the GPU fell off the bus; only a power
#:                                      cycle brings it back, which a reboot is not
#: ``NvidiaDeviceCountMismatch`` Replace a GPU is missing from the bus (as XID 79)
#: ``NvidiaXID142Error``        Replace CONTACT_SUPPORT: no automated recovery
#: ============================ ======= ==================================================
#:
#: Sources: the EKS user guide pages "Automatically repair nodes in EKS clusters"
#: (node-repair: ``AcceleratedHardwareReady`` is repaired after 10 minutes by ``Replace`` or
#: ``Reboot`` depending on the reason; ``Reboot`` needs managed node groups) and "Detect
#: node health issues with the EKS node monitoring agent" (node-health-nma: the reasons);
#: the agent's source (aws/eks-node-monitoring-agent ``pkg/reasons/reasons.go`` for the
#: names, ``monitors/nvidia/dcgm/dcgm_policies.go`` for the well-known XIDs, each with its
#: resolution bucket from NVIDIA's Xid catalog, docs.nvidia.com "Analyzing Xid Errors with
#: the Xid Catalog"). Other reasons and conditions (``DCGMError``, ``KernelReady``,
#: ``NetworkingReady``, ``Ready``, ...) keep EKS' defaults. A reboot that does not clear
#: the failure leaves the condition set: EKS reboots again after the wait; replace such a
#: node by hand (docs/node-health.md).
NODE_REPAIR_OVERRIDES: tuple[RepairOverride, ...] = (
    *(_xid(code, _REBOOT, _RESET) for code in (46, 48, 62, 64, 95, 109, 110, 119, 120, 136, 140, 143)),
    *(_xid(code, _REBOOT, _RESET) for code in (155, 156, 158)),
    _xid(63, _REBOOT, "row remapping event: the remap takes effect at the next GPU reset"),
    _xid(74, _REBOOT, "WORKFLOW_NVLINK_ERR: reset the GPU or reboot the node"),
    _xid(151, _REBOOT, "RESTART_VM: restart the instance"),
    RepairOverride(reason="NvidiaNVLinkError", action=_REBOOT, why="WORKFLOW_NVLINK_ERR: reset or reboot"),
    RepairOverride(reason="NvidiaDoubleBitError", action=_REBOOT, why="WORKFLOW_XID_48: reset the GPU"),
    RepairOverride(reason="NvidiaFabricError", action=_REBOOT, why="the NVLink fabric trains again at boot"),
    RepairOverride(
        reason="FabricManagerNotRunning", action=_REBOOT, why="the Fabric Manager service starts at boot"
    ),
    _xid(54, _REPLACE, "CHECK_MECHANICALS: auxiliary power not connected"),
    _xid(79, _REPLACE, "RESTART_BM: the GPU fell off the bus; a power cycle, not a reboot"),
    RepairOverride(reason="NvidiaDeviceCountMismatch", action=_REPLACE, why="a GPU is missing from the bus"),
    _xid(142, _REPLACE, "CONTACT_SUPPORT: no automated recovery"),
)

#: Nodes EKS repairs at a time in one node group: one (a Capacity Block has no spare, and
#: an NVLink job spanning the UltraServer stops at its first repaired node anyway).
MAX_PARALLEL_NODES_REPAIRED = 1


def node_repair_config(enabled: bool) -> dict[str, Any]:
    """The node group's ``NodeRepairConfig`` as CloudFormation writes it: enabled, one node
    at a time, with ``NODE_REPAIR_OVERRIDES``; or ``{"Enabled": False}``. The unhealthy node
    thresholds stay EKS' defaults (no repair while more than 20% of a node group of more
    than five nodes is unhealthy: EKS user guide, node-repair).

    Written with ``add_property_override`` rather than as the ``CfnNodegroup`` struct: the
    25 overrides would go through jsii's struct conversion for every node group (about
    1.4 ms of synth per UltraServer, measured at 1,000 UltraServers)."""
    if not enabled:
        return {"Enabled": False}
    return {
        "Enabled": True,
        "MaxParallelNodesRepairedCount": MAX_PARALLEL_NODES_REPAIRED,
        "NodeRepairConfigOverrides": [o.to_cfn() for o in NODE_REPAIR_OVERRIDES],
    }


# --------------------------------------------------------------------------------------
# The launch template and the node group
# --------------------------------------------------------------------------------------


#: ``CfnNodegroup`` taint effects, in the EKS API's spelling.
_TAINT_EFFECTS = {
    "NoSchedule": "NO_SCHEDULE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
}


def efa_group_for(
    scope: Construct, cluster: eks.ICluster, given: ec2.ISecurityGroup | None, *, efa: bool
) -> ec2.ISecurityGroup | None:
    """The node group's EFA security group: ``given`` (the ``efa_security_group`` option),
    else a new ``EfaSecurityGroup`` under ``scope`` when ``efa`` (the node group has EFA
    interfaces), else none."""
    if given is None and efa:
        return EfaSecurityGroup(scope, "EfaSecurityGroup", vpc=cluster.vpc).security_group
    return given


def add_gpu_nodegroup(
    scope: Construct,
    *,
    cluster: eks.ICluster,
    subnets: Sequence[ec2.ISubnet],
    options: GpuNodeGroupOptions,
    node_role: iam.IRole,
    efa_security_group: ec2.ISecurityGroup | None,
    efa_interfaces: Sequence[tuple[int, int]],
    instance_type: str,
    market_type: str | None,
    capacity_reservation: Mapping[str, object],
    capacity_type: str,
    ami_type: str,
    node_count: int,
    labels: Mapping[str, str],
    tags: Mapping[str, str],
) -> tuple[TaggedLaunchTemplate, eks_cfn.CfnNodegroup]:
    """The ``LaunchTemplate`` and the managed node group (``Resource``) of a GPU node group
    on reserved capacity, from options that ``gpu_option_problems`` found no problem in.

    The launch template (``TaggedLaunchTemplate``): the instance type, the market type
    (``capacity-block`` for Capacity Blocks, none for ODCRs), the
    ``CapacityReservationSpecification``, IMDSv2 required, the primary ENA interface
    (cluster security group, EFA group, ``security_groups``) and one ``efa-only`` interface
    per ``(network card, device index)`` of ``efa_interfaces`` (EFA group only), an
    encrypted gp3 root volume and MIME user data with the nodeadm ``NodeConfig``. No
    ``ImageId``, ``SubnetId``, instance profile or shutdown behaviour (EKS user guide,
    capacity-blocks-mng and launch-templates).

    The node group (the typed ``aws_eks.CfnNodegroup``, which ``Tags.of(scope)`` reaches):
    ``capacity_type``, ``ami_type``, no ``InstanceTypes``, min = desired = ``node_count``
    (0 with ``scaled_to_zero``) and max = ``node_count``, ``labels`` then the options'
    labels, the taints, ``UpdateConfig: {UpdateStrategy: MINIMAL, MaxUnavailable}``,
    ``NodeRepairConfig`` (``node_repair_config``) and ``tags`` (also on the launch template
    and what it launches).

    :param capacity_reservation: ``CapacityReservationSpecification`` in CloudFormation casing.
    """
    efa_groups = [attr(efa_security_group, "security_group_id")] if efa_security_group else []
    primary_groups = (
        [attr(cluster, "cluster_security_group_id")]
        + efa_groups
        + [attr(sg, "security_group_id") for sg in options.security_groups]
    )
    store = enum_member(InstanceStorePolicy, options.instance_store)
    assert store is not None, "checked by gpu_option_problems"
    user_data = mime_user_data([c for c in (node_config(instance_store=store),) if c is not None])
    data: dict = {"InstanceType": instance_type}
    if market_type is not None:
        data["InstanceMarketOptions"] = {"MarketType": market_type}
    data["CapacityReservationSpecification"] = dict(capacity_reservation)
    data["MetadataOptions"] = {
        "HttpEndpoint": "enabled",
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": options.http_put_response_hop_limit,
    }
    data["NetworkInterfaces"] = efa_network_interfaces(
        efa=efa_interfaces, primary_groups=primary_groups, efa_groups=efa_groups
    )
    data["BlockDeviceMappings"] = [
        {
            "DeviceName": "/dev/xvda",
            "Ebs": {
                "VolumeSize": options.root_volume_size_gib,
                "VolumeType": "gp3",
                "Encrypted": True,
                "DeleteOnTermination": True,
            },
        }
    ]
    if user_data:
        # The intrinsic itself, as Fn.base64 renders it: no call into Node.js.
        data["UserData"] = {"Fn::Base64": user_data}
    launch_template = TaggedLaunchTemplate(scope, "LaunchTemplate", launch_template_data=data, tags=tags)

    size = 0 if options.scaled_to_zero else node_count
    optional: dict[str, Any] = {}
    taints = options.node_taints
    if taints:
        optional["taints"] = [
            {"key": t.key, **({"value": t.value} if t.value else {}), "effect": _TAINT_EFFECTS[t.effect]}
            for t in taints
        ]
    for key, value in (
        ("version", options.kubernetes_version),
        ("release_version", options.release_version),
        ("nodegroup_name", options.nodegroup_name),
    ):
        if value is not None:
            optional[key] = value
    nodegroup = eks_cfn.CfnNodegroup(
        scope,
        "Resource",
        cluster_name=attr(cluster, "cluster_name"),
        node_role=attr(node_role, "role_arn"),
        subnets=[attr(s, "subnet_id") for s in subnets],
        capacity_type=capacity_type,
        ami_type=ami_type,
        scaling_config={"minSize": size, "desiredSize": size, "maxSize": node_count},
        labels={**labels, **options.node_labels},
        launch_template={
            "id": launch_template.ref,
            "version": launch_template.attr_latest_version_number,
        },
        update_config={"updateStrategy": "MINIMAL", "maxUnavailable": options.max_unavailable},
        tags=dict(tags),
        **optional,
    )
    nodegroup.add_property_override("NodeRepairConfig", node_repair_config(options.node_repair))
    return launch_template, nodegroup


#: Resources a GPU launch template tags at launch besides itself (EC2 API reference,
#: LaunchTemplateTagSpecificationRequest): the instance, its EBS root volume, its ENA and
#: EFA network interfaces.
LAUNCHED_RESOURCE_TYPES = ("instance", "volume", "network-interface")


@jsii.implements(cdk.ITaggableV2)
class TaggedLaunchTemplate(ec2.CfnLaunchTemplate):
    """An ``AWS::EC2::LaunchTemplate`` that ``Tags.of(scope)`` reaches, and that passes its
    tags on to what it launches.

    CDK's tag aspect skips the plain ``CfnLaunchTemplate`` (the resource is not taggable in
    its CloudFormation schema; its tags live in ``TagSpecifications``), and EKS does not
    copy node group tags to anything (EKS API reference, TagResource: "Tags don't propagate
    to any other cluster or AWS resources"). This class carries a ``TagManager`` for the
    resource type ``AWS::EC2::LaunchTemplate``, so ``Tags.of(...)`` (with its priorities
    and include/exclude resource types) applies here, and renders its tags on the
    template itself (``TagSpecifications``: ``launch-template``) and on what it launches
    (``LaunchTemplateData.TagSpecifications``: ``instance``, ``volume``,
    ``network-interface``): the instances are where cost allocation needs them. Changing a
    tag changes the launch template data; EKS then replaces the nodes.

    ``launch_template_data`` is CloudFormation-cased (``InstanceType``) and written as an
    override of the typed resource: no struct conversion, and the tags render through
    ``TagManager.rendered_tags`` in Node.js, with no call back into Python at synth. Only
    the tag aspect asks Python for ``cdk_tag_manager``: two calls per launch template and
    tag applied with ``Tags.of``.

    :param launch_template_data: ``LaunchTemplateData`` without ``TagSpecifications``.
    :param tags: the tags this construct gives (``Tags.of`` adds its own).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        launch_template_data: Mapping[str, Any],
        tags: Mapping[str, str],
    ) -> None:
        super().__init__(scope, id, launch_template_data={})
        self._tag_manager = cdk.TagManager(cdk.TagType.KEY_VALUE, "AWS::EC2::LaunchTemplate", dict(tags))
        rendered = self._tag_manager.rendered_tags
        data = dict(launch_template_data)
        data["TagSpecifications"] = [{"ResourceType": t, "Tags": rendered} for t in LAUNCHED_RESOURCE_TYPES]
        self.add_override(
            "Properties",
            {
                "LaunchTemplateData": data,
                "TagSpecifications": [{"ResourceType": "launch-template", "Tags": rendered}],
            },
        )

    @property
    def cdk_tag_manager(self) -> cdk.TagManager:
        """The launch template's tags (``ITaggableV2``)."""
        return self._tag_manager
