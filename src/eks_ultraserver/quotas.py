"""EC2's vCPU quotas of accelerated instances, the burst pool's vCPUs per GPU, and the EKS
quotas an environment's node groups count against.

Part of the shared model (imports neither aws_cdk nor cdk8s). vCPU quotas: Service Quotas
codes of EC2's "Running On-Demand ... instances" and "All ... Spot Instance Requests" quotas
(vCPUs; GPU families default to 0 on new accounts, EC2 user guide using-spot-limits /
ec2-resource-limits). An ODCR counts against the On-Demand quota of its family from the
moment it is created (EC2 API reference, CreateCapacityReservation: "could also fail if the
requested quantity exceeds your On-Demand Instance limit").
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "BURST_FAMILIES",
    "EKS_MANAGED_NODEGROUPS",
    "EKS_NODES_PER_NODEGROUP",
    "QUOTAS",
    "EksQuota",
    "QuotaCodes",
    "QuotaGroup",
    "quota_group_of",
]


class QuotaGroup(enum.StrEnum):
    """EC2's vCPU quota groups that hold accelerated instances."""

    P = "P"
    G_VT = "G and VT"
    INF = "Inf"
    TRN = "Trn"


@dataclass(frozen=True, kw_only=True, slots=True)
class QuotaCodes:
    on_demand: str
    spot: str
    on_demand_name: str
    spot_name: str


#: Service Quotas codes (service code ``ec2``), in vCPUs.
QUOTAS: Mapping[QuotaGroup, QuotaCodes] = {
    QuotaGroup.P: QuotaCodes(
        on_demand="L-417A185B",
        spot="L-7212CCBC",
        on_demand_name="Running On-Demand P instances",
        spot_name="All P Spot Instance Requests",
    ),
    QuotaGroup.G_VT: QuotaCodes(
        on_demand="L-DB2E81BA",
        spot="L-3819A6DF",
        on_demand_name="Running On-Demand G and VT instances",
        spot_name="All G and VT Spot Instance Requests",
    ),
    QuotaGroup.INF: QuotaCodes(
        on_demand="L-1945791B",
        spot="L-B5D1601B",
        on_demand_name="Running On-Demand Inf instances",
        spot_name="All Inf Spot Instance Requests",
    ),
    QuotaGroup.TRN: QuotaCodes(
        on_demand="L-2C3B7624",
        spot="L-5480EFD2",
        on_demand_name="Running On-Demand Trn instances",
        spot_name="All Trn Spot Instance Requests",
    ),
}


def quota_group_of(family: str) -> QuotaGroup | None:
    """The quota group of an instance family (``p5`` -> P, ``g6e`` -> G and VT), or ``None``."""
    if family.startswith("inf"):
        return QuotaGroup.INF
    if family.startswith("trn"):
        return QuotaGroup.TRN
    if family.startswith(("g", "vt")):
        return QuotaGroup.G_VT
    if family.startswith("p"):
        return QuotaGroup.P
    return None


#: NVIDIA GPU families the burst pool may use, with the most vCPUs per GPU of any size in
#: the family (an upper bound of the vCPUs ``maxGpus`` GPUs can cost in quota). Families
#: outside this table need an explicit ``burstCapacity.maxVcpus``.
BURST_FAMILIES: Mapping[str, int] = {
    "g4dn": 64,  # g4dn.16xlarge: 64 vCPUs, 1 GPU
    "g5": 64,  # g5.16xlarge: 64 vCPUs, 1 GPU
    "g5g": 32,  # g5g.16xlarge: 64 vCPUs, 2 GPUs
    "g6": 64,  # g6.16xlarge: 64 vCPUs, 1 GPU
    "g6e": 64,  # g6e.16xlarge: 64 vCPUs, 1 GPU
    "p4d": 12,  # p4d.24xlarge: 96 vCPUs, 8 GPUs
    "p4de": 12,
    "p5": 24,  # p5.48xlarge: 192 vCPUs, 8 GPUs (p5.4xlarge: 16 vCPUs, 1 GPU)
    "p5e": 24,
    "p5en": 24,
    "p6-b200": 24,  # p6-b200.48xlarge: 192 vCPUs, 8 GPUs
    "p6-b300": 24,
}


@dataclass(frozen=True, kw_only=True, slots=True)
class EksQuota:
    """An Amazon EKS quota (Service Quotas service code ``eks``), with its AWS default."""

    code: str
    name: str
    default: int


#: Managed node groups per cluster (EKS user guide, service-quotas; adjustable): an
#: environment has the system node group, one per UltraServer and one per reserved-capacity
#: node group.
EKS_MANAGED_NODEGROUPS = EksQuota(code="L-6D54EA21", name="Managed node groups per cluster", default=30)
#: Nodes per managed node group (adjustable): an UltraServer's group has 18 or 9.
EKS_NODES_PER_NODEGROUP = EksQuota(code="L-BD136A63", name="Nodes per managed node group", default=450)
