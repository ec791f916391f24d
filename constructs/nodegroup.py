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

from collections.abc import Mapping, Sequence
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks as eks_cfn  # the L1 CfnNodegroup (aws_eks_v2 has none)
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam

from constructs import Construct
from eks_ultraserver.constructs.efa import EfaSecurityGroup, network_interfaces
from eks_ultraserver.constructs.iam import node_role
from eks_ultraserver.constructs.jsii_calls import attr, is_token
from eks_ultraserver.constructs.node_config import mime_user_data, node_config
from eks_ultraserver.model import (
    CAPACITY_RESERVATION_LABEL,
    EFA_LAYOUT_LABEL,
    GPU_TAINT,
    INSTANCE_TYPE,
    ULTRASERVER_LABEL,
    ULTRASERVER_TYPE_LABEL,
    EfaLayout,
    InstanceStorePolicy,
    Problems,
    Taint,
    UltraServerType,
    describe_reservation_id_problem,
    is_dns1123_label,
    is_label_key,
    is_label_value,
    is_reservation_id,
    parse_enum,
    parse_ultraserver_type,
)
from eks_ultraserver.patterns import AMI_RELEASE_VERSION_RE
from eks_ultraserver.versions import (
    MIN_AMI_RELEASE_DATE,
    MIN_KUBERNETES,
    SUPPORTED_KUBERNETES_VERSIONS,
    KubernetesVersion,
)

_TAINT_EFFECTS = {
    "NoSchedule": "NO_SCHEDULE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
}


def cluster_kubernetes_version(cluster: eks.ICluster) -> str | None:
    """The Kubernetes version of a cluster defined in this app, or ``None`` if unknown."""
    child = attr(attr(cluster, "node"), "default_child")
    if child is None or not any(hasattr(t, "version") for t in type(child).__mro__):
        return None
    version = attr(child, "version")
    return version if isinstance(version, str) and not is_token(version) else None


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
    :param availability_zone: the reservation's zone; when given, every subnet whose zone
        is known must be in it. Default: only checks that all subnets share one zone.
    :param efa_layout: ``per-gpu`` (default: efa-only on cards 1, 5, 9, 13, 4 x 400 Gbps),
        ``all-odd-cards`` (efa-only on cards 1..15) or ``none``.
    :param instance_store: ``RAID0`` (default: nodeadm stripes the 3 NVMe disks for kubelet
        and containerd), ``Mount`` or ``none``.
    :param labels: extra Kubernetes node labels. Default: none beyond the UltraServer labels.
    :param taints: node taints. Default: ``nvidia.com/gpu=true:NoSchedule``. Pass ``[]`` for
        no taints.
    :param node_role: the nodes' IAM role (changing it later replaces the node group).
        Default: a new role with the managed policies EKS documents.
    :param efa_security_group: the EFA security group; share one between all UltraServers
        of a cluster. Default: a new self-referencing group for this node group.
    :param security_groups: extra security groups for the primary interface. Default: none.
    :param kubernetes_version: the node group's Kubernetes version. Default: the cluster's
        version when the node group is created (and it stays there until changed).
    :param release_version: the AMI release, e.g. ``1.34.2-20251103`` (v20251103 or later).
        Default: the latest release when the node group is created.
    :param scaled_to_zero: set min and desired size to 0 (max stays the instance count).
        The EKS guide requires desired size 0 before upgrading a Capacity Block node group:
        deploy with ``True``, then change the version, then deploy with ``False``.
    :param root_volume_size_gib: the encrypted gp3 root volume. Default: 100 GiB (kubelet
        and containerd live on the instance store with RAID0).
    :param http_put_response_hop_limit: IMDSv2 hop limit. Default: 1, so pods without host
        networking cannot reach the node role's credentials; raise to 2 only if a workload
        needs IMDS.
    :param nodegroup_name: an explicit node group name. Default: generated by CloudFormation.
    :param max_unavailable: nodes an update (launch template, AMI release) replaces at a time,
        1 to 100 and at most the instance count. The node group updates with the ``MINIMAL``
        strategy: EKS terminates this many nodes, then launches their replacements into the
        freed reservation slots. Default: 1 (the EKS default; a broken launch template costs
        one node). The instance count replaces the whole UltraServer in one batch: fastest,
        and NVLink jobs spanning it stop at the first replaced node anyway.

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
        availability_zone: str | None = None,
        efa_layout: EfaLayout | str = EfaLayout.PER_GPU,
        instance_store: InstanceStorePolicy | str = InstanceStorePolicy.RAID0,
        labels: Mapping[str, str] | None = None,
        taints: Sequence[Taint] | None = None,
        node_role: iam.IRole | None = None,
        efa_security_group: ec2.ISecurityGroup | None = None,
        security_groups: Sequence[ec2.ISecurityGroup] = (),
        kubernetes_version: str | None = None,
        release_version: str | None = None,
        scaled_to_zero: bool = False,
        root_volume_size_gib: int = 100,
        http_put_response_hop_limit: int = 1,
        nodegroup_name: str | None = None,
        max_unavailable: int = 1,
    ) -> None:
        # Validate everything before creating any child construct: bad input leaves
        # nothing half-built in the tree.
        problems = Problems()
        if not is_token(capacity_reservation_id) and not is_reservation_id(capacity_reservation_id):
            problems.add(describe_reservation_id_problem("capacity_reservation_id", capacity_reservation_id))
        us_type = parse_ultraserver_type("ultraserver_type", ultraserver_type, problems)
        layout = parse_enum("efa_layout", efa_layout, EfaLayout, problems)
        store = parse_enum("instance_store", instance_store, InstanceStorePolicy, problems)
        if name is None:
            name = capacity_reservation_id if is_reservation_id(capacity_reservation_id) else id.lower()
        if not is_dns1123_label(name):
            problems.add(
                f"name: {name!r} is not a DNS-1123 label; use at most 63 lowercase letters, "
                "digits and '-', starting and ending with a letter or digit"
            )
        problems.extend(subnet_problems(subnets, availability_zone))
        version = kubernetes_version or cluster_kubernetes_version(cluster)
        problems.extend(_version_problems(kubernetes_version, version, release_version))
        labels = dict(labels or {})
        taints = [GPU_TAINT] if taints is None else list(taints)
        problems.extend(
            node_settings_problems(
                labels=labels,
                taints=taints,
                root_volume_size_gib=root_volume_size_gib,
                http_put_response_hop_limit=http_put_response_hop_limit,
            )
        )
        if us_type is not None:
            problems.extend(max_unavailable_problems(max_unavailable, us_type.instance_count))
        problems.raise_if_any(f"UltraServerNodeGroup {id!r}")
        assert us_type is not None and layout is not None and store is not None

        super().__init__(scope, id)
        self.ultraserver_name = name
        self.ultraserver_type = us_type
        self.capacity_reservation_id = capacity_reservation_id
        self.efa_layout = layout
        self.instance_count = us_type.instance_count

        if efa_security_group is None and layout is not EfaLayout.NONE:
            efa_security_group = EfaSecurityGroup(self, "EfaSecurityGroup", vpc=cluster.vpc).security_group
        self.efa_security_group = efa_security_group
        self.node_role = node_role or _default_node_role(self)

        efa_groups = [attr(efa_security_group, "security_group_id")] if efa_security_group else []
        primary_groups = (
            [attr(cluster, "cluster_security_group_id")]
            + efa_groups
            + [attr(sg, "security_group_id") for sg in security_groups]
        )
        user_data = mime_user_data([c for c in (node_config(instance_store=store),) if c is not None])
        launch_template_data = gpu_launch_template_data(
            instance_type=INSTANCE_TYPE,
            market_type="capacity-block",
            capacity_reservation={
                "CapacityReservationTarget": {"CapacityReservationId": capacity_reservation_id}
            },
            http_put_response_hop_limit=http_put_response_hop_limit,
            network_interfaces=network_interfaces(
                layout=layout, primary_groups=primary_groups, efa_groups=efa_groups
            ),
            root_volume_size_gib=root_volume_size_gib,
            user_data=user_data,
        )

        size = 0 if scaled_to_zero else us_type.instance_count
        node_labels = {
            ULTRASERVER_LABEL: name,
            ULTRASERVER_TYPE_LABEL: us_type.value,
            EFA_LAYOUT_LABEL: layout.value,
            **(
                {CAPACITY_RESERVATION_LABEL: capacity_reservation_id}
                if not is_token(capacity_reservation_id)
                else {}
            ),
            **labels,
        }
        self.launch_template, self.nodegroup = gpu_nodegroup(
            self,
            launch_template_data=launch_template_data,
            cluster_name=attr(cluster, "cluster_name"),
            node_role=attr(self.node_role, "role_arn"),
            subnets=[attr(s, "subnet_id") for s in subnets],
            capacity_type="CAPACITY_BLOCK",
            ami_type="AL2023_ARM_64_NVIDIA",
            scaling_config={"minSize": size, "desiredSize": size, "maxSize": us_type.instance_count},
            labels=node_labels,
            tags={
                "eks-ultraserver:ultraserver": name,
                "eks-ultraserver:ultraserver-type": us_type.value,
                "eks-ultraserver:capacity-reservation-id": capacity_reservation_id,
            },
            max_unavailable=max_unavailable,
            **optional_nodegroup_properties(
                taints=taints,
                kubernetes_version=kubernetes_version,
                release_version=release_version,
                nodegroup_name=nodegroup_name,
            ),
        )

    @property
    def nodegroup_name(self) -> str:
        """The node group's name (a CloudFormation attribute)."""
        return self.nodegroup.attr_nodegroup_name


# --------------------------------------------------------------------------------------
# Shared with the other GPU node groups (constructs/reserved.py)
# --------------------------------------------------------------------------------------


def node_settings_problems(
    *,
    labels: Mapping[str, str],
    taints: Sequence[Taint],
    root_volume_size_gib: int,
    http_put_response_hop_limit: int,
) -> list[str]:
    """Problems of the node labels, taints, root volume size and IMDS hop limit."""
    out = []
    for key, value in labels.items():
        if not is_label_key(key):
            out.append(f"labels: key {key!r} is not a valid Kubernetes label key")
        if not is_label_value(value):
            out.append(f"labels[{key!r}]: {value!r} is not a valid Kubernetes label value")
    for i, taint in enumerate(taints):
        if not isinstance(taint, Taint):
            out.append(f"taints[{i}]: {taint!r} is not an eks_ultraserver.Taint")  # type: ignore[unreachable]
        else:
            out.extend(taint.problems(f"taints[{i}]"))
    if not 20 <= root_volume_size_gib <= 16384:
        out.append(f"root_volume_size_gib: {root_volume_size_gib!r} is out of range; use 20 to 16384")
    if not 1 <= http_put_response_hop_limit <= 64:
        out.append(
            f"http_put_response_hop_limit: {http_put_response_hop_limit!r} is out of range; use 1 to 64"
        )
    return out


def max_unavailable_problems(max_unavailable: object, node_count: int) -> list[str]:
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


def gpu_launch_template_data(
    *,
    instance_type: str,
    market_type: str | None,
    capacity_reservation: Mapping[str, object],
    http_put_response_hop_limit: int,
    network_interfaces: list[dict],
    root_volume_size_gib: int,
    user_data: str | None,
) -> dict:
    """``LaunchTemplateData`` of a GPU node group on reserved capacity, in CloudFormation
    casing: instance type, market type (``capacity-block`` for Capacity Blocks, none for
    ODCRs), the ``CapacityReservationSpecification``, IMDSv2, the EFA interfaces, an
    encrypted gp3 root volume and MIME user data (``gpu_nodegroup`` adds the tags). No
    ``ImageId``, ``SubnetId``, instance profile or shutdown behaviour (EKS user guide,
    capacity-blocks-mng and launch-templates)."""
    data: dict = {"InstanceType": instance_type}
    if market_type is not None:
        data["InstanceMarketOptions"] = {"MarketType": market_type}
    data["CapacityReservationSpecification"] = dict(capacity_reservation)
    data["MetadataOptions"] = {
        "HttpEndpoint": "enabled",
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": http_put_response_hop_limit,
    }
    data["NetworkInterfaces"] = network_interfaces
    data["BlockDeviceMappings"] = [
        {
            "DeviceName": "/dev/xvda",
            "Ebs": {
                "VolumeSize": root_volume_size_gib,
                "VolumeType": "gp3",
                "Encrypted": True,
                "DeleteOnTermination": True,
            },
        }
    ]
    if user_data:
        # The intrinsic itself, as Fn.base64 renders it: no call into Node.js.
        data["UserData"] = {"Fn::Base64": user_data}
    return data


def nodegroup_taints(taints: Sequence[Taint]) -> list[dict]:
    """``CfnNodegroup`` ``taints`` (effects in the EKS API's spelling)."""
    return [
        {
            "key": t.key,
            **({"value": t.value} if t.value else {}),
            "effect": _TAINT_EFFECTS[t.effect],
        }
        for t in taints
    ]


def optional_nodegroup_properties(
    *,
    taints: Sequence[Taint],
    kubernetes_version: str | None,
    release_version: str | None,
    nodegroup_name: str | None,
) -> dict[str, Any]:
    """``CfnNodegroup`` keyword arguments ``taints``, ``version``, ``release_version`` and
    ``nodegroup_name``, where given."""
    out: dict[str, Any] = {"taints": nodegroup_taints(taints)} if taints else {}
    for key, value in (
        ("version", kubernetes_version),
        ("release_version", release_version),
        ("nodegroup_name", nodegroup_name),
    ):
        if value is not None:
            out[key] = value
    return out


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


def gpu_nodegroup(
    scope: Construct,
    *,
    launch_template_data: Mapping[str, Any],
    max_unavailable: int,
    tags: Mapping[str, str],
    **nodegroup: Any,
) -> tuple[TaggedLaunchTemplate, eks_cfn.CfnNodegroup]:
    """The ``LaunchTemplate`` and the managed node group (``Resource``) of a GPU node group
    on reserved capacity.

    :param launch_template_data: ``LaunchTemplateData`` in CloudFormation casing, without
        ``TagSpecifications`` (see ``gpu_launch_template_data``).
    :param max_unavailable: ``UpdateConfig.MaxUnavailable``, with ``UpdateStrategy:
        MINIMAL`` (validated by ``max_unavailable_problems``).
    :param tags: tags of the node group, the launch template and what it launches.
    :param nodegroup: keyword arguments of ``aws_eks.CfnNodegroup`` (nested values in its
        camelCase: ``scaling_config={"minSize": ...}``), ``launch_template``,
        ``update_config`` and ``tags`` excepted.

    The node group is the typed ``CfnNodegroup``: CDK's tag aspect reaches it and merges
    ``Tags.of(scope)`` into its ``Tags`` map. The launch template is a
    ``TaggedLaunchTemplate``.
    """
    launch_template = TaggedLaunchTemplate(
        scope, "LaunchTemplate", launch_template_data=launch_template_data, tags=tags
    )
    nodegroup_resource = eks_cfn.CfnNodegroup(
        scope,
        "Resource",
        launch_template={
            "id": launch_template.ref,
            "version": launch_template.attr_latest_version_number,
        },
        update_config={"updateStrategy": "MINIMAL", "maxUnavailable": max_unavailable},
        tags=dict(tags),
        **nodegroup,
    )
    return launch_template, nodegroup_resource


def _default_node_role(scope: Construct) -> iam.IRole:
    return node_role(scope, "NodeRole")


def subnet_problems(
    subnets: Sequence[ec2.ISubnet], availability_zone: str | None, *, what: str = "a Capacity Block"
) -> list[str]:
    """Subnets must exist and share one zone (``availability_zone`` when given)."""
    if not subnets:
        return ["subnets: no subnet given; pass at least one subnet in the reservation's zone"]
    zones = {zone for zone in (attr(s, "availability_zone") for s in subnets) if zone and not is_token(zone)}
    out = []
    if len(zones) > 1:
        out.append(
            f"subnets: the subnets are in {len(zones)} zones ({', '.join(sorted(zones))}); "
            f"{what} lives in one zone: give only subnets in the reservation's zone"
        )
    if availability_zone and zones and zones != {availability_zone}:
        out.append(
            f"subnets: zone(s) {', '.join(sorted(zones))} differ from availability_zone "
            f"{availability_zone!r}; give only subnets in the reservation's zone"
        )
    return out


def _version_problems(explicit: str | None, version: str | None, release_version: str | None) -> list[str]:
    out = []
    allowed = ", ".join(SUPPORTED_KUBERNETES_VERSIONS)
    if version is not None:
        parsed = KubernetesVersion.of(version)
        if parsed is None:
            out.append(f"kubernetes_version: {version!r} is not a Kubernetes version; use one of {allowed}")
        else:
            if parsed < MIN_KUBERNETES:
                where = "kubernetes_version" if explicit else "cluster"
                out.append(
                    f"{where}: Kubernetes {version} is too old; DRA (ComputeDomains) needs "
                    f"{MIN_KUBERNETES} or later: use one of {allowed}"
                )
    if release_version is not None:
        match = AMI_RELEASE_VERSION_RE.match(release_version)
        if not match:
            out.append(
                f"release_version: {release_version!r} is not an EKS AMI release version; "
                "expected e.g. '1.34.2-20251103'"
            )
        else:
            if match.group(2) < MIN_AMI_RELEASE_DATE:
                out.append(
                    f"release_version: {release_version!r} is older than v{MIN_AMI_RELEASE_DATE}; "
                    "P6e-GB200 needs release v20251103 or later (NVIDIA driver 580, CDMM)"
                )
            if version is not None and match.group(1) != version:
                out.append(
                    f"release_version: {release_version!r} is for Kubernetes {match.group(1)}, "
                    f"but the node group runs {version}"
                )
    return out
