"""The checks of ``UltraServerEnvironment``'s arguments: every problem at once, in one
``ConfigurationError`` raised before anything is built."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from aws_cdk import aws_ec2 as ec2

from eks_ultraserver.capacity import ReservedCapacitySpec
from eks_ultraserver.config import (
    AddonsConfig,
    EndpointAccess,
    UltraServerSpec,
    public_access_cidr_problems,
)
from eks_ultraserver.constructs.addons import AddonsPlan, GpuPlatformAddons
from eks_ultraserver.constructs.cluster import SYSTEM_NODE_SELECTOR
from eks_ultraserver.constructs.network import network_problems
from eks_ultraserver.constructs.shards import fleet_problems, shard_count_problems
from eks_ultraserver.model import ConfigurationError, EfaLayout, Problems, parse_enum
from eks_ultraserver.sharding import validation_jobs_problems
from eks_ultraserver.versions import SUPPORTED_KUBERNETES_VERSIONS


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
    try:
        plan = GpuPlatformAddons.plan(
            addons=addons,
            kubernetes_version=kubernetes_version,
            system_node_selector=SYSTEM_NODE_SELECTOR,
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
