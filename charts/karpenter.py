"""Karpenter's GPU capacity: EC2NodeClasses and the ``gpu-burst`` / ``gpu-reserved`` NodePools.

- ``gpu-burst``: one NodePool with ``karpenter.sh/capacity-type`` In ``[spot, on-demand]``.
  With both capacity types allowed, Karpenter launches Spot and falls back to On-Demand
  when EC2 reports no Spot capacity (Karpenter docs v1.14, NodePools, "Capacity Type":
  "Karpenter will prioritize reserved capacity, followed by spot, then finally on-demand").
  That is the documented "Spot first, On-Demand fallback", in one pool, without weights.
- ``gpu-reserved`` (only with reservations Karpenter may use): an EC2NodeClass with
  ``capacityReservationSelectorTerms`` (the reservations' ids) and a NodePool limited to
  ``karpenter.sh/capacity-type: reserved``, with a higher weight than ``gpu-burst`` so a
  pod that fits both lands on reserved capacity first.

Both pools:

- never provision UltraServer nodes: requirements exclude the instance type
  ``p6e-gb200.36xlarge`` and the family ``p6e-gb200`` (UltraServers need whole-UltraServer
  Capacity Blocks, DRA and IMEX; see docs/capacity.md);
- are NVIDIA only (``karpenter.k8s.aws/instance-gpu-manufacturer: nvidia``) and taint their
  nodes ``nvidia.com/gpu=true:NoSchedule``, like every GPU node of the cluster;
- protect running jobs: ``consolidationPolicy: WhenEmpty`` (only empty nodes are removed),
  ``expireAfter: Never`` (expiry is forceful in Karpenter v1 and would kill long jobs), and
  a disruption budget of 0 nodes for ``Drifted`` (a new AMI never replaces a busy node);
  Spot interruptions still end Spot nodes (the interruption queue drains them first).

The EC2NodeClasses use the AL2023 alias (Karpenter picks the NVIDIA variant for NVIDIA
instance types), subnets and security groups by the ``karpenter.sh/discovery`` tag, IMDSv2
with hop limit 1, an encrypted gp3 root volume and RAID0 over the instance-store NVMe disks.

Everything here is plain Python and cdk8s (no aws_cdk): the object builders return dicts,
which tests validate against Karpenter's v1.14.1 CRD schemas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cdk8s

from constructs import Construct
from eks_ultraserver.capacity import (
    ULTRASERVER_FAMILY,
    ULTRASERVER_INSTANCE_TYPE,
    BurstCapacitySpec,
    CapacityClass,
    ReservedCapacitySpec,
    ReservedProvisioner,
)
from eks_ultraserver.model import (
    CAPACITY_TYPE_LABEL,
    GPU_TAINT,
    ConfigurationError,
    Problems,
    is_reservation_id,
)

__all__ = [
    "BURST_POOL",
    "DISCOVERY_TAG",
    "EC2_NODE_CLASS_API_VERSION",
    "NODE_POOL_API_VERSION",
    "RESERVED_POOL",
    "KarpenterGpuCapacityChart",
    "burst_node_pool",
    "ec2_node_class",
    "reserved_node_pool",
]

NODE_POOL_API_VERSION = "karpenter.sh/v1"
EC2_NODE_CLASS_API_VERSION = "karpenter.k8s.aws/v1"
#: Tag on the subnets and security groups the EC2NodeClasses select (Karpenter getting
#: started guide): value = the discovery name (by default the cluster name).
DISCOVERY_TAG = "karpenter.sh/discovery"
BURST_POOL = "gpu-burst"
RESERVED_POOL = "gpu-reserved"
#: Weight of the reserved pool (Karpenter tries pools by descending weight; none = 0).
RESERVED_POOL_WEIGHT = 50

#: Requirements that keep Karpenter off UltraServer hardware, in every pool.
NEVER_ULTRASERVERS: tuple[dict[str, Any], ...] = (
    {"key": "node.kubernetes.io/instance-type", "operator": "NotIn", "values": [ULTRASERVER_INSTANCE_TYPE]},
    {"key": "karpenter.k8s.aws/instance-family", "operator": "NotIn", "values": [ULTRASERVER_FAMILY]},
)

_NVIDIA_LINUX: tuple[dict[str, Any], ...] = (
    {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
    {"key": "karpenter.k8s.aws/instance-gpu-manufacturer", "operator": "In", "values": ["nvidia"]},
)


def _disruption(consolidate_after: str) -> dict[str, Any]:
    return {
        "consolidationPolicy": "WhenEmpty",
        "consolidateAfter": consolidate_after,
        "budgets": [
            {"nodes": "10%", "reasons": ["Empty"]},
            {"nodes": "0", "reasons": ["Drifted"]},
        ],
    }


def _taint() -> dict[str, str]:
    return {"key": GPU_TAINT.key, "value": GPU_TAINT.value, "effect": GPU_TAINT.effect}


def ec2_node_class(
    *,
    name: str,
    role: str,
    discovery: str,
    ami_alias: str,
    capacity: CapacityClass,
    security_group_ids: Sequence[str] = (),
    capacity_reservation_ids: Sequence[str] = (),
    root_volume_size_gib: int = 100,
) -> dict[str, Any]:
    """An ``EC2NodeClass`` (karpenter.k8s.aws/v1) for NVIDIA GPU nodes.

    :param role: the node IAM role's name (Karpenter makes the instance profile).
    :param discovery: value of the ``karpenter.sh/discovery`` tag of the subnets and
        security groups to use.
    :param security_group_ids: security groups selected by id besides the tagged ones (the
        EKS cluster security group, which CloudFormation cannot tag).
    :param capacity_reservation_ids: ODCRs / Capacity Blocks this class may launch into.
    """
    spec: dict[str, Any] = {
        "role": role,
        "amiSelectorTerms": [{"alias": ami_alias}],
        "subnetSelectorTerms": [{"tags": {DISCOVERY_TAG: discovery}}],
        "securityGroupSelectorTerms": [{"id": sg} for sg in security_group_ids]
        + [{"tags": {DISCOVERY_TAG: discovery}}],
        "metadataOptions": {
            "httpEndpoint": "enabled",
            "httpProtocolIPv6": "disabled",
            "httpPutResponseHopLimit": 1,
            "httpTokens": "required",
        },
        "blockDeviceMappings": [
            {
                "deviceName": "/dev/xvda",
                "ebs": {
                    "volumeSize": f"{root_volume_size_gib}Gi",
                    "volumeType": "gp3",
                    "encrypted": True,
                    "deleteOnTermination": True,
                },
            }
        ],
        "instanceStorePolicy": "RAID0",
        "tags": {"eks-ultraserver:capacity": capacity.value},
    }
    if capacity_reservation_ids:
        spec["capacityReservationSelectorTerms"] = [{"id": rid} for rid in capacity_reservation_ids]
    return {
        "apiVersion": EC2_NODE_CLASS_API_VERSION,
        "kind": "EC2NodeClass",
        "metadata": {"name": name},
        "spec": spec,
    }


def burst_node_pool(spec: BurstCapacitySpec, *, node_class: str = BURST_POOL) -> dict[str, Any]:
    """The ``gpu-burst`` NodePool: Spot first, On-Demand fallback (or On-Demand only)."""
    requirements = [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": list(spec.capacity_types)},
        {
            "key": "karpenter.k8s.aws/instance-family",
            "operator": "In",
            "values": list(spec.instance_families),
        },
    ]
    if spec.instance_sizes:
        requirements.append(
            {"key": "karpenter.k8s.aws/instance-size", "operator": "In", "values": list(spec.instance_sizes)}
        )
    requirements += [dict(r) for r in _NVIDIA_LINUX] + [dict(r) for r in NEVER_ULTRASERVERS]
    limits: dict[str, Any] = {"nvidia.com/gpu": spec.max_gpus}
    if spec.max_vcpus is not None:
        limits["cpu"] = spec.max_vcpus
    return {
        "apiVersion": NODE_POOL_API_VERSION,
        "kind": "NodePool",
        "metadata": {"name": BURST_POOL},
        "spec": {
            "template": {
                "metadata": {"labels": {CAPACITY_TYPE_LABEL: CapacityClass.BURST.value}},
                "spec": {
                    "nodeClassRef": {
                        "group": "karpenter.k8s.aws",
                        "kind": "EC2NodeClass",
                        "name": node_class,
                    },
                    "requirements": requirements,
                    "taints": [_taint()],
                    "expireAfter": "Never",
                },
            },
            "disruption": _disruption(spec.consolidate_after),
            "limits": limits,
        },
    }


def reserved_node_pool(
    reservations: Sequence[ReservedCapacitySpec],
    *,
    node_class: str = RESERVED_POOL,
    consolidate_after: str = "10m",
) -> dict[str, Any]:
    """The ``gpu-reserved`` NodePool: only ``karpenter.sh/capacity-type: reserved`` capacity,
    i.e. the reservations its EC2NodeClass selects; weight above ``gpu-burst``."""
    types = sorted({r.instance_type for r in reservations})
    requirements = [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["reserved"]},
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": types},
        *[dict(r) for r in _NVIDIA_LINUX],
        *[dict(r) for r in NEVER_ULTRASERVERS],
    ]
    return {
        "apiVersion": NODE_POOL_API_VERSION,
        "kind": "NodePool",
        "metadata": {"name": RESERVED_POOL},
        "spec": {
            "template": {
                "metadata": {"labels": {CAPACITY_TYPE_LABEL: CapacityClass.RESERVED.value}},
                "spec": {
                    "nodeClassRef": {
                        "group": "karpenter.k8s.aws",
                        "kind": "EC2NodeClass",
                        "name": node_class,
                    },
                    "requirements": requirements,
                    "taints": [_taint()],
                    "expireAfter": "Never",
                },
            },
            "disruption": _disruption(consolidate_after),
            "weight": RESERVED_POOL_WEIGHT,
        },
    }


class KarpenterGpuCapacityChart(cdk8s.Chart):
    """The GPU EC2NodeClasses and NodePools, as one cdk8s chart (cluster-scoped objects).

    All arguments after ``id`` are keyword-only.

    :param node_role: the node IAM role's name (a CDK token is fine: it resolves when the
        chart is deployed with ``cluster.add_cdk8s_chart``).
    :param discovery: the ``karpenter.sh/discovery`` tag value of the subnets and security
        groups (a plain string).
    :param burst: the ``gpu-burst`` pool. Default: none.
    :param reserved: ``reservedCapacity`` entries with ``provisioner: karpenter`` (by id);
        entries for node groups are ignored. Default: none (no ``gpu-reserved`` pool).
    :param security_group_ids: security groups selected by id (e.g. the cluster security
        group). Default: only the tagged ones.
    :param ami_alias: the AMI alias of the reserved class. Default: the burst pool's, else
        ``versions.KARPENTER_AMI_ALIAS``.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        node_role: str,
        discovery: str,
        burst: BurstCapacitySpec | None = None,
        reserved: Sequence[ReservedCapacitySpec] = (),
        security_group_ids: Sequence[str] = (),
        ami_alias: str | None = None,
    ) -> None:
        problems = Problems()
        karpenter_reserved = [r for r in reserved if r.provisioner is ReservedProvisioner.KARPENTER]
        if burst is None and not karpenter_reserved:
            problems.add(
                "burst / reserved: nothing to create; give burst capacity or reservations with "
                "provisioner 'karpenter'"
            )
        if not node_role:
            problems.add("node_role: empty; give the node IAM role's name")
        if not isinstance(discovery, str) or not discovery or "${Token[" in discovery:
            problems.add(
                f"discovery: {discovery!r} must be a plain, non-empty string (the "
                f"{DISCOVERY_TAG} tag value of the subnets and security groups)"
            )
        for r in karpenter_reserved:
            if not r.capacity_reservation_id or not is_reservation_id(r.capacity_reservation_id):
                problems.add(
                    f"reserved[{r.name!r}]: Karpenter selects reservations by id; give "
                    "capacity_reservation_id"
                )
        if problems:
            raise ConfigurationError(problems, subject=f"KarpenterGpuCapacityChart {id!r}")
        super().__init__(scope, id)
        alias = ami_alias or (burst.ami_alias if burst else None)
        self.objects: dict[str, dict[str, Any]] = {}
        if burst is not None:
            self._add(
                "BurstNodeClass",
                ec2_node_class(
                    name=BURST_POOL,
                    role=node_role,
                    discovery=discovery,
                    ami_alias=burst.ami_alias,
                    capacity=CapacityClass.BURST,
                    security_group_ids=security_group_ids,
                ),
            )
            self._add("BurstNodePool", burst_node_pool(burst))
        if karpenter_reserved:
            from eks_ultraserver.versions import KARPENTER_AMI_ALIAS

            self._add(
                "ReservedNodeClass",
                ec2_node_class(
                    name=RESERVED_POOL,
                    role=node_role,
                    discovery=discovery,
                    ami_alias=alias or KARPENTER_AMI_ALIAS,
                    capacity=CapacityClass.RESERVED,
                    security_group_ids=security_group_ids,
                    capacity_reservation_ids=[r.capacity_reservation_id for r in karpenter_reserved],
                ),
            )
            self._add(
                "ReservedNodePool",
                reserved_node_pool(
                    karpenter_reserved,
                    consolidate_after=burst.consolidate_after if burst else "10m",
                ),
            )

    def _add(self, id: str, obj: Mapping[str, Any]) -> None:
        self.objects[id] = dict(obj)
        api_object = cdk8s.ApiObject(
            self,
            id,
            api_version=obj["apiVersion"],
            kind=obj["kind"],
            metadata=cdk8s.ApiObjectMetadata(name=obj["metadata"]["name"]),
        )
        api_object.add_json_patch(cdk8s.JsonPatch.add("/spec", obj["spec"]))
