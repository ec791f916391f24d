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
  UltraServer's instance count (or 0 with ``scaled_to_zero``, for upgrades).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam

from constructs import Construct
from eks_ultraserver.constructs.efa import EfaSecurityGroup, network_interfaces
from eks_ultraserver.constructs.iam import node_role
from eks_ultraserver.constructs.jsii_calls import attr, base64, is_token, shared
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
from eks_ultraserver.versions import (
    MIN_AMI_RELEASE_DATE,
    SUPPORTED_KUBERNETES_VERSIONS,
    parse_kubernetes_version,
)

_TAINT_EFFECTS = {
    "NoSchedule": "NO_SCHEDULE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
}
_RELEASE_VERSION_RE = re.compile(r"^(\d+\.\d+)\.\d+-(\d{8})$")
_MIN_KUBERNETES = SUPPORTED_KUBERNETES_VERSIONS[0]


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
        problems.raise_if_any(f"UltraServerNodeGroup {id!r}")

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
        tags = [
            {"Key": "eks-ultraserver:ultraserver", "Value": name},
            {"Key": "eks-ultraserver:capacity-reservation-id", "Value": capacity_reservation_id},
        ]
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
            tags=tags,
            user_data=user_data,
        )
        # Plain CfnResources with CloudFormation-cased properties: one jsii call per
        # resource instead of ~25 typed struct conversions and runtime type checks
        # (measured: ~18 ms -> ~3 ms per UltraServer). The template is the same.
        self.launch_template = cdk.CfnResource(
            self,
            "LaunchTemplate",
            type="AWS::EC2::LaunchTemplate",
            properties={"LaunchTemplateData": launch_template_data},
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
        nodegroup = {
            "ClusterName": attr(cluster, "cluster_name"),
            "NodeRole": attr(self.node_role, "role_arn"),
            "Subnets": shared([attr(s, "subnet_id") for s in subnets]),
            "CapacityType": "CAPACITY_BLOCK",
            "AmiType": "AL2023_ARM_64_NVIDIA",
            "LaunchTemplate": {
                "Id": self.launch_template.ref,
                # the Reference itself: jsii passes it as an object (one call, not two)
                "Version": self.launch_template.get_att("LatestVersionNumber"),
            },
            "ScalingConfig": {
                "MinSize": size,
                "DesiredSize": size,
                "MaxSize": us_type.instance_count,
            },
            "Labels": node_labels,
            "Tags": {
                "eks-ultraserver:ultraserver": name,
                "eks-ultraserver:ultraserver-type": us_type.value,
                "eks-ultraserver:capacity-reservation-id": capacity_reservation_id,
            },
        }
        nodegroup.update(
            optional_nodegroup_properties(
                taints=taints,
                kubernetes_version=kubernetes_version,
                release_version=release_version,
                nodegroup_name=nodegroup_name,
            )
        )
        self.nodegroup = cdk.CfnResource(self, "Resource", type="AWS::EKS::Nodegroup", properties=nodegroup)

    @property
    def nodegroup_name(self) -> str:
        """The node group's name (a CloudFormation attribute)."""
        return self.nodegroup.get_att("NodegroupName").to_string()


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
            out.append(f"taints[{i}]: {taint!r} is not an eks_ultraserver.Taint")
        else:
            out.extend(taint.problems(f"taints[{i}]"))
    if not 20 <= root_volume_size_gib <= 16384:
        out.append(f"root_volume_size_gib: {root_volume_size_gib!r} is out of range; use 20 to 16384")
    if not 1 <= http_put_response_hop_limit <= 64:
        out.append(
            f"http_put_response_hop_limit: {http_put_response_hop_limit!r} is out of range; use 1 to 64"
        )
    return out


def gpu_launch_template_data(
    *,
    instance_type: str,
    market_type: str | None,
    capacity_reservation: Mapping[str, object],
    http_put_response_hop_limit: int,
    network_interfaces: list[dict],
    root_volume_size_gib: int,
    tags: list[dict],
    user_data: str | None,
) -> dict:
    """``LaunchTemplateData`` of a GPU node group on reserved capacity, in CloudFormation
    casing: instance type, market type (``capacity-block`` for Capacity Blocks, none for
    ODCRs), the ``CapacityReservationSpecification``, IMDSv2, the EFA interfaces, an
    encrypted gp3 root volume, tags and MIME user data. No ``ImageId``, ``SubnetId``,
    instance profile or shutdown behaviour (EKS user guide, capacity-blocks-mng and
    launch-templates)."""
    data: dict = {"InstanceType": instance_type}
    if market_type is not None:
        data["InstanceMarketOptions"] = shared({"MarketType": market_type})
    data["CapacityReservationSpecification"] = dict(capacity_reservation)
    # Parts every node group of an environment repeats are sent to jsii once (``shared``).
    data["MetadataOptions"] = shared(
        {
            "HttpEndpoint": "enabled",
            "HttpTokens": "required",
            "HttpPutResponseHopLimit": http_put_response_hop_limit,
        }
    )
    data["NetworkInterfaces"] = shared(network_interfaces)
    data["BlockDeviceMappings"] = shared(
        [
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
    )
    data["TagSpecifications"] = [
        {"ResourceType": t, "Tags": tags} for t in ("instance", "volume", "network-interface")
    ]
    if user_data:
        data["UserData"] = base64(user_data)
    return data


def nodegroup_taints(taints: Sequence[Taint]) -> list[dict]:
    """``AWS::EKS::Nodegroup`` ``Taints`` (effects in the EKS API's spelling)."""
    return [
        {
            "Key": t.key,
            **({"Value": t.value} if t.value else {}),
            "Effect": _TAINT_EFFECTS[t.effect],
        }
        for t in taints
    ]


def optional_nodegroup_properties(
    *,
    taints: Sequence[Taint],
    kubernetes_version: str | None,
    release_version: str | None,
    nodegroup_name: str | None,
) -> dict:
    """``Taints``, ``Version``, ``ReleaseVersion`` and ``NodegroupName``, where given."""
    out: dict = {"Taints": shared(nodegroup_taints(taints))} if taints else {}
    for key, value in (
        ("Version", kubernetes_version),
        ("ReleaseVersion", release_version),
        ("NodegroupName", nodegroup_name),
    ):
        if value is not None:
            out[key] = value
    return out


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
        try:
            too_old = parse_kubernetes_version(version) < parse_kubernetes_version(_MIN_KUBERNETES)
        except ValueError:
            out.append(f"kubernetes_version: {version!r} is not a Kubernetes version; use one of {allowed}")
        else:
            if too_old:
                where = "kubernetes_version" if explicit else "cluster"
                out.append(
                    f"{where}: Kubernetes {version} is too old; DRA (ComputeDomains) needs "
                    f"{_MIN_KUBERNETES} or later: use one of {allowed}"
                )
    if release_version is not None:
        match = _RELEASE_VERSION_RE.match(release_version)
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
