"""The checks of ``UltraServerEnvironment``'s arguments: every problem at once, in one
``ConfigurationError`` raised before anything is built."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import aws_ec2 as ec2

from eks_ultraserver.capacity import BurstCapacitySpec, ReservedCapacitySpec
from eks_ultraserver.config import (
    AddonsConfig,
    EndpointAccess,
    UltraServerSpec,
    public_access_cidr_problems,
)
from eks_ultraserver.constructs.addons import AddonsPlan, GpuPlatformAddons
from eks_ultraserver.constructs.cluster import SYSTEM_NODE_SELECTOR
from eks_ultraserver.constructs.network import (
    ULTRASERVER_SUBNET_CIDR,
    network_problems,
    reserved_subnet_cidr,
    subnet_cidr_problems,
    subnet_size_problems,
)
from eks_ultraserver.constructs.shards import fleet_problems, shard_count_problems
from eks_ultraserver.model import ConfigurationError, ControlPlaneTier, EfaLayout, Problems, parse_enum
from eks_ultraserver.settings import GPU_NODE_PODS, VpcCniConfig
from eks_ultraserver.sharding import validation_jobs_problems
from eks_ultraserver.versions import SUPPORTED_KUBERNETES_VERSIONS


@dataclass(frozen=True, kw_only=True, slots=True)
class Fleet:
    """The size of an environment's fleet at most, for the control plane and the subnet."""

    #: Nodes of the cluster: UltraServers (18 or 9 each), reserved capacity, the system node
    #: group at its maximum and the burst pool at its GPU limit (one GPU per node at least).
    nodes: int
    #: GPUs of the same (a lower bound of the pods: one per GPU).
    gpus: int
    #: Nodes in the UltraServer subnet: UltraServers and reserved capacity in their zone.
    subnet_nodes: int

    @classmethod
    def of(
        cls,
        *,
        ultraservers: Sequence[UltraServerSpec],
        availability_zone: str,
        reserved_capacity: Sequence[ReservedCapacitySpec] = (),
        burst_capacity: BurstCapacitySpec | None = None,
        system_nodes: int = 2,
    ) -> Fleet:
        ultra_nodes = sum(u.instance_count for u in ultraservers)
        ultra_gpus = sum(u.type.gpu_count for u in ultraservers)
        reserved_nodes = sum(r.instance_count for r in reserved_capacity)
        reserved_gpus = sum(
            r.instance_count * (r.gpu_type.gpus if r.gpu_type else 0) for r in reserved_capacity
        )
        in_zone = sum(
            r.instance_count
            for r in reserved_capacity
            if (r.availability_zone or availability_zone) == availability_zone
        )
        burst = burst_capacity.max_gpus if burst_capacity is not None else 0
        return cls(
            nodes=ultra_nodes + reserved_nodes + 2 * system_nodes + burst,
            gpus=ultra_gpus + reserved_gpus + burst,
            subnet_nodes=ultra_nodes + in_zone,
        )


#: The VPC CNI settings a refusal suggests when they need fewer addresses than the ones
#: given: a few warm addresses above the pods a GPU node runs (no prefix delegation).
FRUGAL_VPC_CNI = VpcCniConfig(warm_ip_target=2, minimum_ip_target=GPU_NODE_PODS)


def subnet_problems(
    *,
    fleet: Fleet,
    vpc: ec2.IVpc | None,
    ultraserver_subnet_cidr: str,
    vpc_cni: VpcCniConfig | None,
    problems: Problems,
    zone_nodes: Mapping[str, int] | None = None,
) -> None:
    """The new UltraServer subnet's place, and whether the fleet's addresses fit in it and
    in the reserved-capacity subnet of each other zone (``zone_nodes``: the reserved nodes
    of each zone but the UltraServers'). An existing VPC's subnets are the user's: their
    size is not known at synth."""
    if vpc is not None:
        return
    found = Problems()
    subnet_cidr_problems(ultraserver_subnet_cidr, found)
    problems.extend(found)
    if found:
        return
    per_node = (vpc_cni or VpcCniConfig()).addresses_per_node()
    frugal = FRUGAL_VPC_CNI.addresses_per_node()
    lower = (
        (json.dumps(FRUGAL_VPC_CNI.to_context(), separators=(",", ":")), frugal)
        if frugal < per_node
        else None
    )
    subnet_size_problems(
        ultraserver_subnet_cidr,
        nodes=fleet.subnet_nodes,
        addresses_per_node=per_node,
        lower=lower,
        problems=problems,
    )
    for zone, nodes in sorted((zone_nodes or {}).items()):
        subnet_size_problems(
            reserved_subnet_cidr(zone),
            nodes=nodes,
            addresses_per_node=per_node,
            lower=lower,
            problems=problems,
            key=f"reservedCapacity in {zone}",
            larger=(
                "or a reservation in the UltraServers' zone, or your own VPC and subnets (vpcId + "
                "ultraServerSubnetIds), or your own ReservedGpuNodeGroup with your subnets"
            ),
        )


def _other_zone_nodes(reserved: Sequence[ReservedCapacitySpec], zone: str) -> dict[str, int]:
    """Reserved nodes of each zone other than the UltraServers' ``zone``."""
    out: dict[str, int] = {}
    for spec in reserved:
        other = spec.availability_zone or zone
        if other != zone:
            out[other] = out.get(other, 0) + spec.instance_count
    return out


def check_environment(
    subject: str,
    *,
    ultraservers: Sequence[UltraServerSpec],
    availability_zone: str,
    kubernetes_version: str,
    efa_layout: EfaLayout | str,
    vpc: ec2.IVpc | None,
    ultraserver_subnets: Sequence[ec2.ISubnet] | None,
    endpoint_access: EndpointAccess | str,
    public_access_cidrs: Sequence[str] | None,
    system_nodes: int,
    nat_gateways: int,
    addons: AddonsConfig,
    reserved_capacity: Sequence[ReservedCapacitySpec],
    burst_zone: str | None = None,
    device_plugin_configs: Mapping[str, Mapping[str, Any]] | None = None,
    burst_capacity: BurstCapacitySpec | None = None,
    control_plane_tier: ControlPlaneTier | str | None = None,
    vpc_cni: VpcCniConfig | None = None,
    ultraserver_subnet_cidr: str = ULTRASERVER_SUBNET_CIDR,
    ultraserver_shards: int,
    validation_jobs: bool,
) -> AddonsPlan:
    """Checks the environment's arguments (named as in ``UltraServerEnvironment``) and
    returns the GPU platform's plan (``GpuPlatformAddons.plan``: its values, versions and
    MPI operator manifest, checked too); raises one ``ConfigurationError`` about
    ``subject`` that lists every problem."""
    problems = Problems()
    if kubernetes_version not in SUPPORTED_KUBERNETES_VERSIONS:
        problems.add(
            f"kubernetes_version: {kubernetes_version!r} is not supported; use one of "
            + ", ".join(SUPPORTED_KUBERNETES_VERSIONS)
        )
    _ultraserver_problems(ultraservers, ultraserver_shards, problems)
    if validation_jobs:
        validation_jobs_problems(len(ultraservers), "validation_jobs", problems)
    network_problems(
        availability_zone=availability_zone,
        vpc=vpc,
        ultraserver_subnets=ultraserver_subnets,
        nat_gateways=nat_gateways,
        reserved_zones=[spec.availability_zone for spec in reserved_capacity],
        burst_zone=burst_zone,
        problems=problems,
    )
    if not (1 <= system_nodes <= 50):
        problems.add(f"system_nodes: {system_nodes!r} is out of range; use 1 to 50")
    access = parse_enum("endpoint_access", endpoint_access, EndpointAccess, problems)
    public_access_cidr_problems(
        list(public_access_cidrs)
        if public_access_cidrs is not None and not isinstance(public_access_cidrs, str)
        else public_access_cidrs,
        endpoint_access=access,
        keys=("public_access_cidrs", "endpoint_access"),
        problems=problems,
    )
    parse_enum("efa_layout", efa_layout, EfaLayout, problems)
    if control_plane_tier is not None:
        parse_enum("control_plane_tier", control_plane_tier, ControlPlaneTier, problems)
    if ultraservers and all(isinstance(u, UltraServerSpec) for u in ultraservers):
        subnet_problems(
            fleet=Fleet.of(
                ultraservers=ultraservers,
                availability_zone=availability_zone,
                reserved_capacity=reserved_capacity,
                burst_capacity=burst_capacity,
                system_nodes=system_nodes,
            ),
            vpc=vpc,
            ultraserver_subnet_cidr=ultraserver_subnet_cidr,
            vpc_cni=vpc_cni,
            problems=problems,
            zone_nodes=_other_zone_nodes(reserved_capacity, availability_zone),
        )
    try:
        plan = GpuPlatformAddons.plan(
            addons=addons,
            kubernetes_version=kubernetes_version,
            system_node_selector=SYSTEM_NODE_SELECTOR,
            device_plugin_configs=device_plugin_configs,
            id="GpuPlatform",
        )
    except ConfigurationError as err:
        problems.extend(err.problems)
        raise ConfigurationError(problems, subject=subject) from None
    problems.raise_if_any(subject)
    return plan


def _ultraserver_problems(ultraservers: Sequence[UltraServerSpec], shards: int, problems: Problems) -> None:
    """At least one UltraServer; each an ``UltraServerSpec`` (which checked its own fields
    when it was made); no duplicate id or name; no nested stack fuller than it may be."""
    if not ultraservers:
        problems.add("ultraservers: empty; give at least one Capacity Block")
    given: Sequence[object] = ultraservers
    if not all(isinstance(u, UltraServerSpec) for u in given):
        wrong = [f"[{i}] {u!r}" for i, u in enumerate(given) if not isinstance(u, UltraServerSpec)]
        problems.add(f"ultraservers: not UltraServerSpec values: {', '.join(wrong)}")
        return
    for attr in ("capacity_reservation_id", "name"):
        counts = Counter(getattr(u, attr) for u in ultraservers)  # linear: fleets of thousands
        dupes = sorted(v for v, n in counts.items() if n > 1)
        if dupes:
            problems.add(f"ultraservers: duplicate {attr} {', '.join(map(repr, dupes))}")
    if shard_count_problems(shards, "ultraserver_shards", problems):
        fleet_problems((u.name for u in ultraservers), shards, "ultraserver_shards", problems)
