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

EFA interfaces: one EC2NodeClass (and NodePool) per EFA instance type
--------------------------------------------------------------------------
Without ``spec.networkInterfaces``, Karpenter gives a node whose pod asks for
``vpc.amazonaws.com/efa`` an ENA+EFA interface (``efa``) on *every* network card, each with
VPC IPs (32 on a p5.48xlarge). With ``spec.networkInterfaces`` (Karpenter 1.11+, CRD
v1.14.1: ``networkCardIndex``, ``deviceIndex``, ``interfaceType`` ``interface`` |
``efa-only``) the class fixes the layout, and Karpenter drops every instance type the
layout does not fit (``compatibility.go``: a card index past the type's cards, or more
efa-only interfaces than its ``MaximumEfaInterfaces``, makes the type incompatible). A
layout "valid for all" the types of a mixed pool (g6e and p5, any size) would therefore
be no layout at all, or would silently drop the non-EFA types. So:

- each instance type of ``capacity.INSTANCE_TYPES`` with an EFA layout that a pool can pick
  gets its own EC2NodeClass and NodePool, named ``<pool>-<type with '-' for '.'>`` (e.g.
  ``gpu-burst-p5-48xlarge``), limited to that instance type, with the layout the managed
  node groups use for it (EC2 user guide, efa-acc-inst-types, "save IP addresses"): the
  primary ENA interface on card 0 device 0, ``efa-only`` on the documented cards;
- the plain ``gpu-burst`` / ``gpu-reserved`` pool keeps every other type (``NotIn`` the
  EFA types above) and declares no interfaces (a non-EFA family gets none).

All interfaces carry the class's security groups, among them the EKS cluster security
group, which allows all traffic from and to itself, as EFA requires (EC2 user guide,
efa-start). Every burst pool carries the whole ``maxGpus`` / ``maxVcpus`` limit: Karpenter
limits are per NodePool, so with several burst pools the burst total can reach that many
times the limit (the ``Karpenter`` construct warns at synth when that is the case).

Karpenter-provisioned reservations
----------------------------------
Each needs its zone: Karpenter launches into a reservation only from a subnet in the
reservation's zone. The reserved classes select the subnets given as
``reserved_subnet_ids`` by id (the environment passes the subnets of the reservations'
zones, which the burst classes never see), else the discovery-tagged ones, and their
NodePools require ``topology.kubernetes.io/zone`` In the reservations' zones.

Zones and shared GPUs
---------------------
A burst pool with ``availability_zone`` (``burstCapacity.availabilityZone``, e.g. a Local
Zone) requires ``topology.kubernetes.io/zone`` In that zone, and its classes select the
subnets given as ``burst_subnet_ids`` by id (the environment adds one in that zone).
A pool whose GPUs are shared (``sharing``) labels its nodes
``nvidia.com/device-plugin.config=<config name>`` in the NodePool template, which selects
the GPU Operator's device plugin configuration of that name (docs/sharing-gpus.md).
Karpenter knows nothing of the sharing (kubernetes-sigs/karpenter #729): it counts an
instance type's physical GPUs in its scheduling and in the ``nvidia.com/gpu`` limit, so
``maxGpus`` bounds the physical GPUs and the pool can hand out ``maxGpus x replicas``
shared ones. Reservations that Karpenter provisions in one NodePool share GPUs alike.

Everything here is plain Python and cdk8s (no aws_cdk): the object builders return dicts,
which tests validate against Karpenter's v1.14.1 CRD schemas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cdk8s

from constructs import Construct
from eks_ultraserver.capacity import (
    DEVICE_PLUGIN_CONFIG_LABEL,
    ULTRASERVER_FAMILY,
    ULTRASERVER_INSTANCE_TYPE,
    BurstCapacitySpec,
    CapacityClass,
    GpuInstanceType,
    GpuSharingSpec,
    ReservedCapacitySpec,
    ReservedProvisioner,
)
from eks_ultraserver.model import (
    CAPACITY_TYPE_LABEL,
    GPU_TAINT,
    ConfigurationError,
    Problems,
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
    "efa_network_interfaces",
    "efa_pool_name",
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
#: NodePool and EC2NodeClass names are label values (``karpenter.sh/nodepool``,
#: ``karpenter.k8s.aws/ec2nodeclass``): at most 63 characters.
MAX_POOL_NAME = 63
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
ZONE_LABEL = "topology.kubernetes.io/zone"

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


def _template_labels(capacity: CapacityClass, sharing: GpuSharingSpec | None) -> dict[str, str]:
    """The NodePool template's labels: the capacity class, and the device plugin
    configuration of a pool that shares its GPUs."""
    labels = {CAPACITY_TYPE_LABEL: capacity.value}
    if sharing is not None:
        labels[DEVICE_PLUGIN_CONFIG_LABEL] = sharing.config_name
    return labels


def _taint() -> dict[str, str]:
    return {"key": GPU_TAINT.key, "value": GPU_TAINT.value, "effect": GPU_TAINT.effect}


def efa_network_interfaces(instance_type: GpuInstanceType) -> list[dict[str, Any]]:
    """``spec.networkInterfaces`` for an instance type's documented EFA layout (the one its
    managed node groups use, ``GpuInstanceType.efa``): the primary ENA interface on card 0,
    device 0, then one ``efa-only`` interface per documented (card, device index). Empty for
    a type without EFA (Karpenter's default: one ENA interface)."""
    if not instance_type.efa:
        return []
    return [
        {"networkCardIndex": 0, "deviceIndex": 0, "interfaceType": "interface"},
        *(
            {"networkCardIndex": i.card, "deviceIndex": i.device_index, "interfaceType": "efa-only"}
            for i in instance_type.efa
        ),
    ]


def efa_pool_name(pool: str, instance_type: str) -> str:
    """The NodePool / EC2NodeClass name of one EFA instance type: ``gpu-burst-p5-48xlarge``."""
    return f"{pool}-{instance_type.replace('.', '-')}"


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
    network_interfaces: Sequence[Mapping[str, Any]] = (),
    subnet_ids: Sequence[str] = (),
) -> dict[str, Any]:
    """An ``EC2NodeClass`` (karpenter.k8s.aws/v1) for NVIDIA GPU nodes.

    :param role: the node IAM role's name (Karpenter makes the instance profile).
    :param discovery: value of the ``karpenter.sh/discovery`` tag of the subnets and
        security groups to use.
    :param security_group_ids: security groups selected by id besides the tagged ones (the
        EKS cluster security group, which CloudFormation cannot tag).
    :param capacity_reservation_ids: ODCRs / Capacity Blocks this class may launch into.
    :param network_interfaces: ``spec.networkInterfaces`` (:func:`efa_network_interfaces`).
        Default: none (Karpenter's default interfaces).
    :param subnet_ids: subnets selected by id instead of by the discovery tag (a
        reservation's zone). Default: the discovery-tagged subnets.
    """
    spec: dict[str, Any] = {
        "role": role,
        "amiSelectorTerms": [{"alias": ami_alias}],
        "subnetSelectorTerms": [{"id": sid} for sid in subnet_ids]
        if subnet_ids
        else [{"tags": {DISCOVERY_TAG: discovery}}],
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
    if network_interfaces:
        spec["networkInterfaces"] = [dict(i) for i in network_interfaces]
    return {
        "apiVersion": EC2_NODE_CLASS_API_VERSION,
        "kind": "EC2NodeClass",
        "metadata": {"name": name},
        "spec": spec,
    }


def burst_node_pool(
    spec: BurstCapacitySpec,
    *,
    name: str = BURST_POOL,
    node_class: str | None = None,
    instance_type: str | None = None,
    exclude_instance_types: Sequence[str] = (),
) -> dict[str, Any]:
    """A burst NodePool: Spot first, On-Demand fallback (or On-Demand only).

    :param name: the NodePool's name. Default ``gpu-burst``.
    :param node_class: its EC2NodeClass. Default: the pool's name.
    :param instance_type: limit the pool to this one instance type (an EFA type's pool).
        Default: the families and sizes of ``spec``.
    :param exclude_instance_types: instance types left to other pools (``NotIn``).
    """
    requirements: list[dict[str, Any]] = [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": list(spec.capacity_types)},
    ]
    if instance_type is not None:
        requirements.append({"key": INSTANCE_TYPE_LABEL, "operator": "In", "values": [instance_type]})
    else:
        requirements.append(
            {
                "key": "karpenter.k8s.aws/instance-family",
                "operator": "In",
                "values": list(spec.instance_families),
            }
        )
        if spec.instance_sizes:
            requirements.append(
                {
                    "key": "karpenter.k8s.aws/instance-size",
                    "operator": "In",
                    "values": list(spec.instance_sizes),
                }
            )
        if exclude_instance_types:
            requirements.append(
                {"key": INSTANCE_TYPE_LABEL, "operator": "NotIn", "values": list(exclude_instance_types)}
            )
    if spec.availability_zone:
        requirements.append({"key": ZONE_LABEL, "operator": "In", "values": [spec.availability_zone]})
    requirements += [dict(r) for r in _NVIDIA_LINUX] + [dict(r) for r in NEVER_ULTRASERVERS]
    # Karpenter counts physical GPUs here, shared or not (kubernetes-sigs/karpenter #729).
    limits: dict[str, Any] = {"nvidia.com/gpu": spec.max_gpus}
    if spec.max_vcpus is not None:
        limits["cpu"] = spec.max_vcpus
    return {
        "apiVersion": NODE_POOL_API_VERSION,
        "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"labels": _template_labels(CapacityClass.BURST, spec.sharing)},
                "spec": {
                    "nodeClassRef": {
                        "group": "karpenter.k8s.aws",
                        "kind": "EC2NodeClass",
                        "name": node_class or name,
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
    name: str = RESERVED_POOL,
    node_class: str | None = None,
    consolidate_after: str = "10m",
) -> dict[str, Any]:
    """A reserved NodePool: only ``karpenter.sh/capacity-type: reserved`` capacity, i.e. the
    reservations its EC2NodeClass selects, of their instance types and in their zones;
    weight above the burst pools. The nodes share GPUs as the reservations say (all alike:
    :class:`KarpenterGpuCapacityChart` checks it)."""
    types = sorted({r.instance_type for r in reservations})
    zones = sorted({r.availability_zone for r in reservations if r.availability_zone})
    requirements = [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["reserved"]},
        {"key": INSTANCE_TYPE_LABEL, "operator": "In", "values": types},
    ]
    if zones:
        requirements.append({"key": ZONE_LABEL, "operator": "In", "values": zones})
    requirements += [dict(r) for r in _NVIDIA_LINUX] + [dict(r) for r in NEVER_ULTRASERVERS]
    return {
        "apiVersion": NODE_POOL_API_VERSION,
        "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"labels": _template_labels(CapacityClass.RESERVED, reservations[0].sharing)},
                "spec": {
                    "nodeClassRef": {
                        "group": "karpenter.k8s.aws",
                        "kind": "EC2NodeClass",
                        "name": node_class or name,
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

    One EC2NodeClass and NodePool per EFA instance type a pool can pick (see the module
    docstring), named ``gpu-burst-<type>`` / ``gpu-reserved-<type>``, beside the plain
    ``gpu-burst`` / ``gpu-reserved`` pools for every other type.

    All arguments after ``id`` are keyword-only.

    :param node_role: the node IAM role's name (a CDK token is fine: it resolves when the
        chart is deployed with ``cluster.add_cdk8s_chart``).
    :param discovery: the ``karpenter.sh/discovery`` tag value of the subnets and security
        groups (a plain string).
    :param burst: the burst pools. Default: none.
    :param reserved: ``reservedCapacity`` entries with ``provisioner: karpenter`` (by id,
        each with its ``availability_zone``); entries for node groups are ignored. Default:
        none (no reserved pool).
    :param security_group_ids: security groups selected by id (e.g. the cluster security
        group). Default: only the tagged ones.
    :param reserved_subnet_ids: subnets of the reservations' zones, selected by id by the
        reserved classes. Default: the discovery-tagged subnets (one must be in each
        reservation's zone).
    :param burst_subnet_ids: subnets of the burst pool's zone (``burst.availability_zone``),
        selected by id by the burst classes. Default: the discovery-tagged subnets (one must
        be in that zone when it is set).
    :param ami_alias: the AMI alias of the reserved class. Default: the burst pool's, else
        ``versions.KARPENTER_AMI_ALIAS``.

    ``pools`` lists the NodePool names, ``burst_pools`` those of the burst capacity.
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
        reserved_subnet_ids: Sequence[str] = (),
        burst_subnet_ids: Sequence[str] = (),
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
        for r in karpenter_reserved:  # ReservedCapacitySpec guarantees a Karpenter entry's id
            if not r.availability_zone:
                problems.add(
                    f"reserved[{r.name!r}].availability_zone: missing; Karpenter launches into a "
                    "reservation only from a subnet in the reservation's zone: give the zone "
                    "(reservedCapacity[].availabilityZone in cdk.json)"
                )
        if burst_subnet_ids and (burst is None or not burst.availability_zone):
            problems.add(
                "burst_subnet_ids: given without a burst pool zone; set the burst pool's "
                "availability_zone (burstCapacity.availabilityZone in cdk.json) or leave them out"
            )
        efa_types = burst.efa_instance_types() if burst is not None else ()
        # each spec resolves its type in the table it was checked against (instance_types)
        reserved_gpu_types = {
            t.name: t for r in karpenter_reserved if (t := r.gpu_type) is not None and t.efa
        }
        reserved_types = set(reserved_gpu_types)
        for type_name in sorted({t.name for t in efa_types} | reserved_types):
            longest = efa_pool_name(RESERVED_POOL, type_name)
            if len(longest) > MAX_POOL_NAME:
                problems.add(
                    f"instance type {type_name!r}: the pool name {longest!r} is longer than "
                    f"{MAX_POOL_NAME} characters (a label value)"
                )
        # the reserved pools: one for the non-EFA types, one per EFA type
        groups: dict[str, list[ReservedCapacitySpec]] = {}
        for r in karpenter_reserved:
            key = r.instance_type if r.instance_type in reserved_types else ""
            groups.setdefault(key, []).append(r)
        for key in sorted(groups):
            # one NodePool labels all its nodes alike: its reservations must share alike
            settings = {r.sharing.config_name if r.sharing else "whole GPUs" for r in groups[key]}
            if len(settings) > 1:
                pool = efa_pool_name(RESERVED_POOL, key) if key else RESERVED_POOL
                problems.add(
                    f"reserved[{', '.join(repr(r.name) for r in groups[key])}].sharing: these "
                    f"reservations run in one Karpenter NodePool ({pool!r}), whose nodes all "
                    f"carry one device plugin configuration, but share GPUs differently "
                    f"({', '.join(sorted(settings))}); give them the same sharing, or run "
                    "some with provisioner 'nodegroup'"
                )
        if problems:
            raise ConfigurationError(problems, subject=f"KarpenterGpuCapacityChart {id!r}")
        super().__init__(scope, id)
        alias = ami_alias or (burst.ami_alias if burst else None)
        self.objects: dict[str, dict[str, Any]] = {}
        self.pools: list[str] = []
        self.burst_pools: list[str] = []
        if burst is not None:
            layouts: list[tuple[str, GpuInstanceType | None]] = []
            if burst.has_plain_pool():
                layouts.append((BURST_POOL, None))
            layouts += [(efa_pool_name(BURST_POOL, t.name), t) for t in efa_types]
            for name, efa_type in layouts:
                suffix = name.removeprefix(BURST_POOL)
                self._add(
                    f"BurstNodeClass{suffix}",
                    ec2_node_class(
                        name=name,
                        role=node_role,
                        discovery=discovery,
                        ami_alias=burst.ami_alias,
                        capacity=CapacityClass.BURST,
                        security_group_ids=security_group_ids,
                        network_interfaces=efa_network_interfaces(efa_type) if efa_type else (),
                        subnet_ids=burst_subnet_ids,
                    ),
                )
                self._add(
                    f"BurstNodePool{suffix}",
                    burst_node_pool(
                        burst,
                        name=name,
                        instance_type=efa_type.name if efa_type else None,
                        exclude_instance_types=[t.name for t in efa_types] if efa_type is None else (),
                    ),
                )
                self.burst_pools.append(name)
        if karpenter_reserved:
            from eks_ultraserver.versions import KARPENTER_AMI_ALIAS

            for key in sorted(groups):
                name = efa_pool_name(RESERVED_POOL, key) if key else RESERVED_POOL
                suffix = name.removeprefix(RESERVED_POOL)
                self._add(
                    f"ReservedNodeClass{suffix}",
                    ec2_node_class(
                        name=name,
                        role=node_role,
                        discovery=discovery,
                        ami_alias=alias or KARPENTER_AMI_ALIAS,
                        capacity=CapacityClass.RESERVED,
                        security_group_ids=security_group_ids,
                        capacity_reservation_ids=[r.capacity_reservation_id or "" for r in groups[key]],
                        network_interfaces=efa_network_interfaces(reserved_gpu_types[key]) if key else (),
                        subnet_ids=reserved_subnet_ids,
                    ),
                )
                self._add(
                    f"ReservedNodePool{suffix}",
                    reserved_node_pool(
                        groups[key],
                        name=name,
                        consolidate_after=burst.consolidate_after if burst else "10m",
                    ),
                )

    def _add(self, id: str, obj: Mapping[str, Any]) -> None:
        self.objects[id] = dict(obj)
        if obj["kind"] == "NodePool":
            self.pools.append(obj["metadata"]["name"])
        api_object = cdk8s.ApiObject(
            self,
            id,
            api_version=obj["apiVersion"],
            kind=obj["kind"],
            metadata=cdk8s.ApiObjectMetadata(name=obj["metadata"]["name"]),
        )
        api_object.add_json_patch(cdk8s.JsonPatch.add("/spec", obj["spec"]))
