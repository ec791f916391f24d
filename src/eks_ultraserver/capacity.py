"""Reserved and burst GPU capacity beside the UltraServers: instance types, quotas, configuration.

Two kinds of GPU capacity share the cluster with the UltraServers (EKS user guide, "Manage
compute for AI/ML workloads": purchase options On-Demand, Spot, Capacity Blocks and ODCRs):

- **reserved**: On-Demand Capacity Reservations (ODCRs) and Capacity Blocks for other
  accelerated instance types (``reservedCapacity`` in cdk.json), run by an EKS managed node
  group (``constructs/reserved.py``) or, for ODCRs and Capacity Blocks Karpenter may select,
  by Karpenter's ``gpu-reserved`` NodePool;
- **burst**: Karpenter's ``gpu-burst`` NodePool, Spot first with On-Demand as fallback
  (``burstCapacity`` in cdk.json).

This module is part of the shared model: it imports neither aws_cdk nor cdk8s, and
``config.py`` reads the two context keys through :func:`read_capacity`.

Facts used here, and where they come from:

- EFA interface layouts: EC2 user guide, "Maximize network bandwidth on Amazon EC2 instances
  with multiple network cards" (efa-acc-inst-types): the primary interface (card 0, device 0)
  is always ENA (``interface``); if card 0 supports EFA, an ``efa-only`` interface goes at card
  0, device index 1; every other card gets an ``efa-only`` interface at device index 0. The
  page's per-type sections ("Save IP addresses" use case) give exactly that for p5/p5e
  (32 cards), p6-b200 (8 cards) and p6-b300 (17 cards, card 0 ENA only).
- vCPU quotas: Service Quotas codes of EC2's "Running On-Demand ... instances" and "All ...
  Spot Instance Requests" quotas (vCPUs; GPU families default to 0 on new accounts, EC2 user
  guide using-spot-limits / ec2-resource-limits).
- An ODCR counts against the On-Demand quota of its family from the moment it is created
  (EC2 API reference, CreateCapacityReservation: "could also fail if the requested quantity
  exceeds your On-Demand Instance limit").
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from eks_ultraserver.model import (
    CAPACITY_TYPE_LABEL,
    RESERVED_CAPACITY_LABEL,
    Problems,
    describe_reservation_id_problem,
    is_dns1123_label,
    is_reservation_id,
)
from eks_ultraserver.model import INSTANCE_TYPE as _ULTRASERVER_INSTANCE_TYPE
from eks_ultraserver.versions import KARPENTER_AMI_ALIAS

__all__ = [
    "BURST_FAMILIES",
    "CAPACITY_TYPE_LABEL",
    "INSTANCE_TYPES",
    "QUOTAS",
    "RESERVED_CAPACITY_LABEL",
    "ULTRASERVER_FAMILY",
    "ULTRASERVER_INSTANCE_TYPE",
    "Architecture",
    "BurstCapacitySpec",
    "CapacityClass",
    "EfaInterface",
    "GpuInstanceType",
    "QuotaGroup",
    "ReservationKind",
    "ReservedCapacitySpec",
    "ReservedProvisioner",
    "gpu_instance_type",
    "quota_group_of",
    "read_capacity",
    "register_instance_type",
]

#: The instance type and family of the UltraServers: Karpenter must never provision them.
ULTRASERVER_INSTANCE_TYPE = _ULTRASERVER_INSTANCE_TYPE
ULTRASERVER_FAMILY = ULTRASERVER_INSTANCE_TYPE.split(".")[0]


class CapacityClass(enum.StrEnum):
    """Values of ``model.CAPACITY_TYPE_LABEL`` (``eks-ultraserver.io/capacity``)."""

    RESERVED = "reserved"
    BURST = "burst"


class Architecture(enum.StrEnum):
    X86_64 = "x86_64"
    ARM64 = "arm64"

    @property
    def ami_type(self) -> str:
        """The EKS managed node group AMI type with the NVIDIA driver for this architecture."""
        return {"x86_64": "AL2023_x86_64_NVIDIA", "arm64": "AL2023_ARM_64_NVIDIA"}[self.value]

    @property
    def kubernetes_arch(self) -> str:
        return {"x86_64": "amd64", "arm64": "arm64"}[self.value]


@dataclass(frozen=True, kw_only=True, slots=True)
class EfaInterface:
    """One ``efa-only`` interface of a launch template: network card and device index."""

    card: int
    device_index: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class GpuInstanceType:
    """An accelerated instance type a reserved node group can run, with its documented EFA
    layout. Add your own with :func:`register_instance_type`.

    :param name: the EC2 instance type, e.g. ``p5.48xlarge``.
    :param architecture: ``x86_64`` or ``arm64``; picks the AMI type.
    :param gpus: GPUs per instance (``nvidia.com/gpu`` a node advertises).
    :param vcpus: vCPUs per instance (what the vCPU quotas count).
    :param network_cards: network cards of the instance type.
    :param efa: the ``efa-only`` interfaces to create (card, device index), besides the
        primary ENA interface on card 0, device 0. Empty for no EFA.
    :param source: where the layout is documented.
    """

    name: str
    architecture: Architecture
    gpus: int
    vcpus: int
    network_cards: int
    efa: tuple[EfaInterface, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            from eks_ultraserver.model import ConfigurationError

            raise ConfigurationError(problems, subject=f"GpuInstanceType {self.name!r}")

    def problems(self) -> list[str]:
        out = []
        if not _INSTANCE_TYPE_RE.match(self.name or ""):
            out.append(f"name: {self.name!r} is not an EC2 instance type like 'p5.48xlarge'")
        if self.name == ULTRASERVER_INSTANCE_TYPE:
            out.append(f"name: {self.name!r} runs only inside UltraServers; use ultraServers")
        if not isinstance(self.architecture, Architecture):
            out.append(f"architecture: {self.architecture!r} is not an Architecture")
        for attr in ("gpus", "vcpus", "network_cards"):
            value = getattr(self, attr)
            if not isinstance(value, int) or value < 1:
                out.append(f"{attr}: {value!r} is not a positive integer")
        seen = set()
        for i, iface in enumerate(self.efa):
            if not isinstance(iface, EfaInterface):
                out.append(f"efa[{i}]: {iface!r} is not an EfaInterface")
                continue
            if isinstance(self.network_cards, int) and not 0 <= iface.card < self.network_cards:
                out.append(f"efa[{i}].card: {iface.card} is not a card of {self.network_cards}")
            if (iface.card, iface.device_index) == (0, 0):
                out.append(f"efa[{i}]: card 0, device 0 is the primary interface, which is never efa-only")
            if iface.card in seen:
                out.append(f"efa[{i}]: card {iface.card} already has an efa-only interface (one per card)")
            seen.add(iface.card)
        return out

    @property
    def family(self) -> str:
        return self.name.split(".")[0]

    @property
    def ami_type(self) -> str:
        return self.architecture.ami_type

    @property
    def efa_devices(self) -> int:
        """``vpc.amazonaws.com/efa`` devices a node of this type advertises."""
        return len(self.efa)


_INSTANCE_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_FAMILY_RE = re.compile(r"^[a-z][a-z0-9-]*$")
_SIZE_RE = re.compile(r"^[a-z0-9]+$")


def _save_ip_layout(cards: int, *, card0_efa: bool) -> tuple[EfaInterface, ...]:
    """The EC2 page's "Save IP addresses" use case: efa-only at card 0 device 1 (when card 0
    supports EFA), then efa-only at device 0 on every other card."""
    out = [EfaInterface(card=0, device_index=1)] if card0_efa else []
    out += [EfaInterface(card=c) for c in range(1, cards)]
    return tuple(out)


_EC2_PAGE = "EC2 user guide, efa-acc-inst-types"

#: Instance types with a documented EFA layout. Extend with :func:`register_instance_type`.
INSTANCE_TYPES: dict[str, GpuInstanceType] = {
    t.name: t
    for t in (
        # "p5.48xlarge and p5e.48xlarge instances support 32 network cards": ENA primary,
        # efa-only on card 0 device 1 and on cards 1-31 device 0 (32 EFA devices).
        GpuInstanceType(
            name="p5.48xlarge",
            architecture=Architecture.X86_64,
            gpus=8,
            vcpus=192,
            network_cards=32,
            efa=_save_ip_layout(32, card0_efa=True),
            source=f"{_EC2_PAGE}, P5 and P5e, use case 1",
        ),
        GpuInstanceType(
            name="p5e.48xlarge",
            architecture=Architecture.X86_64,
            gpus=8,
            vcpus=192,
            network_cards=32,
            efa=_save_ip_layout(32, card0_efa=True),
            source=f"{_EC2_PAGE}, P5 and P5e, use case 1",
        ),
        # 16 network cards and 16 EFA interfaces (DescribeInstanceTypes: MaximumNetworkCards,
        # EfaInfo.MaximumEfaInterfaces); the page has no P5en section, so its basic
        # configuration applies: efa-only on card 0 device 1, then cards 1-15 device 0.
        GpuInstanceType(
            name="p5en.48xlarge",
            architecture=Architecture.X86_64,
            gpus=8,
            vcpus=192,
            network_cards=16,
            efa=_save_ip_layout(16, card0_efa=True),
            source=f"{_EC2_PAGE}, basic configuration (16 cards from DescribeInstanceTypes)",
        ),
        # "8 GPUs and 8 network cards": ENA primary, efa-only on card 0 device 1 and on
        # cards 1-7 device 0.
        GpuInstanceType(
            name="p6-b200.48xlarge",
            architecture=Architecture.X86_64,
            gpus=8,
            vcpus=192,
            network_cards=8,
            efa=_save_ip_layout(8, card0_efa=True),
            source=f"{_EC2_PAGE}, P6-B200, use case 1",
        ),
        # "8 GPUs and 17 network cards, where the primary network card supports only an ENA
        # network interface": efa-only on cards 1-16 device 0.
        GpuInstanceType(
            name="p6-b300.48xlarge",
            architecture=Architecture.X86_64,
            gpus=8,
            vcpus=192,
            network_cards=17,
            efa=_save_ip_layout(17, card0_efa=False),
            source=f"{_EC2_PAGE}, P6-B300, use case 1",
        ),
    )
}


def register_instance_type(spec: GpuInstanceType) -> GpuInstanceType:
    """Adds (or replaces) an instance type in :data:`INSTANCE_TYPES`, before reading the
    configuration or creating node groups."""
    INSTANCE_TYPES[spec.name] = spec
    return spec


def gpu_instance_type(value: str | GpuInstanceType, where: str, problems: Problems) -> GpuInstanceType | None:
    """The table entry for an instance type name (or the object itself)."""
    if isinstance(value, GpuInstanceType):
        return value
    spec = INSTANCE_TYPES.get(value) if isinstance(value, str) else None
    if spec is None:
        if value == ULTRASERVER_INSTANCE_TYPE:
            problems.add(
                f"{where}: {value!r} runs only inside UltraServers; list its Capacity Blocks in "
                "ultraServers instead"
            )
        else:
            problems.add(
                f"{where}: {value!r} has no EFA layout in eks_ultraserver.capacity.INSTANCE_TYPES; "
                f"use one of {', '.join(sorted(INSTANCE_TYPES))}, or add it with "
                "register_instance_type(GpuInstanceType(...)) before synth"
            )
    return spec


# --------------------------------------------------------------------------------------
# vCPU quotas
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Configuration values
# --------------------------------------------------------------------------------------


class ReservationKind(enum.StrEnum):
    """``reservedCapacity[].capacityType``."""

    #: On-Demand Capacity Reservation: node group ``CapacityType: ON_DEMAND`` with the
    #: reservation targeted in the launch template.
    ODCR = "odcr"
    #: Capacity Block for ML: ``CapacityType: CAPACITY_BLOCK``, market type capacity-block.
    CAPACITY_BLOCK = "capacity-block"


class ReservedProvisioner(enum.StrEnum):
    """``reservedCapacity[].provisioner``: who launches the reserved nodes."""

    #: An EKS managed node group of fixed size (the default): EFA layout, RAID0 instance store.
    NODEGROUP = "nodegroup"
    #: Karpenter's gpu-reserved NodePool (``capacityReservationSelectorTerms``): nodes come
    #: and go with pending pods; EFA interfaces as in the table for the types it lists.
    KARPENTER = "karpenter"


@dataclass(frozen=True, kw_only=True, slots=True)
class ReservedCapacitySpec:
    """One ``reservedCapacity`` entry: an ODCR (by id or resource group) or a Capacity Block."""

    name: str
    instance_type: str
    instance_count: int
    kind: ReservationKind = ReservationKind.ODCR
    capacity_reservation_id: str | None = None
    resource_group_arn: str | None = None
    availability_zone: str | None = None
    provisioner: ReservedProvisioner = ReservedProvisioner.NODEGROUP

    @property
    def target(self) -> str:
        """The reservation id or the resource group ARN."""
        return self.capacity_reservation_id or self.resource_group_arn or ""


@dataclass(frozen=True, kw_only=True, slots=True)
class BurstCapacitySpec:
    """``burstCapacity``: Karpenter's gpu-burst NodePool."""

    #: Karpenter ``karpenter.k8s.aws/instance-family`` values, e.g. ("g6e", "p5").
    instance_families: tuple[str, ...]
    #: ``karpenter.k8s.aws/instance-size`` values; empty: any size of those families.
    instance_sizes: tuple[str, ...] = ()
    #: NodePool limit on ``nvidia.com/gpu``.
    max_gpus: int
    #: NodePool limit on ``cpu``. Default ``None``: no cpu limit (the GPU limit bounds it).
    max_vcpus: int | None = None
    #: Spot first with On-Demand as fallback (True), or On-Demand only (False).
    spot: bool = True
    #: EC2NodeClass AMI alias (AL2023 picks the NVIDIA variant for NVIDIA instances).
    ami_alias: str = KARPENTER_AMI_ALIAS
    #: How long a node must be empty before Karpenter removes it.
    consolidate_after: str = "10m"

    @property
    def capacity_types(self) -> tuple[str, ...]:
        return ("spot", "on-demand") if self.spot else ("on-demand",)

    def efa_instance_types(self) -> tuple[GpuInstanceType, ...]:
        """The instance types of :data:`INSTANCE_TYPES` with an EFA layout that the pool can
        pick (family in ``instance_families``, size in ``instance_sizes`` or any size), by
        name. Each gets a NodePool and EC2NodeClass of its own (its efa-only interfaces fit
        no other type), with the same ``max_gpus`` / ``max_vcpus`` limits: Karpenter's
        limits apply per NodePool."""
        sizes = set(self.instance_sizes)
        return tuple(
            sorted(
                (
                    t
                    for t in INSTANCE_TYPES.values()
                    if t.efa
                    and t.family in self.instance_families
                    and (not sizes or t.name.split(".", 1)[1] in sizes)
                ),
                key=lambda t: t.name,
            )
        )

    def has_plain_pool(self) -> bool:
        """Whether anything is left for the pool without EFA interfaces: False only when
        every family x size named is an EFA type. Without sizes, always (families have sizes
        the table does not list)."""
        if not self.instance_sizes:
            return True
        names = {t.name for t in self.efa_instance_types()}
        return not all(f"{f}.{s}" in names for f in self.instance_families for s in self.instance_sizes)

    def vcpu_demand(self) -> dict[QuotaGroup, int]:
        """The most vCPUs the pools can run in each quota group at their limits, summed over
        the pools (each NodePool has its own limits):

        - the plain pool: ``max_gpus`` times the family's most vCPUs per GPU
          (:data:`BURST_FAMILIES`), the largest over its families of one group; a family
          outside the table counts ``max_vcpus`` (required then);
        - each EFA instance type's pool: ``max_gpus`` times that type's vCPUs per GPU;

        each capped by ``max_vcpus``."""

        def capped(bound: int) -> int:
            return min(bound, self.max_vcpus) if self.max_vcpus is not None else bound

        out: dict[QuotaGroup, int] = {}
        if self.has_plain_pool():
            plain: dict[QuotaGroup, int] = {}
            for family in self.instance_families:
                group = quota_group_of(family)
                if group is None:
                    continue
                per_gpu = BURST_FAMILIES.get(family)
                bound = capped(self.max_gpus * per_gpu if per_gpu else (self.max_vcpus or 0))
                plain[group] = max(plain.get(group, 0), bound)
            out.update(plain)
        for itype in self.efa_instance_types():
            group = quota_group_of(itype.family)
            if group is not None:
                out[group] = out.get(group, 0) + capped(self.max_gpus * itype.vcpus // itype.gpus)
        return out


# --------------------------------------------------------------------------------------
# Reading cdk.json context
# --------------------------------------------------------------------------------------

_AZ_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]?(-[a-z0-9]+-\d+)?[a-z]$")
_RG_ARN_RE = re.compile(r"^arn:aws[a-z-]*:resource-groups:[a-z0-9-]+:\d{12}:group/[A-Za-z0-9_.-]{1,128}$")
_DURATION_RE = re.compile(r"^([0-9]+(s|m|h))+$")
_ALIAS_RE = re.compile(r"^al2023@(latest|v\d{8})$")

_RESERVED_KEYS = (
    "name",
    "instanceType",
    "instanceCount",
    "capacityType",
    "capacityReservationId",
    "capacityReservationResourceGroupArn",
    "availabilityZone",
    "provisioner",
)
_BURST_KEYS = (
    "instanceFamilies",
    "instanceSizes",
    "maxGpus",
    "maxVcpus",
    "spot",
    "amiAlias",
    "consolidateAfter",
)

EXAMPLE_RESERVED = [
    {
        "name": "eval",
        "instanceType": "p5.48xlarge",
        "instanceCount": 2,
        "capacityType": "odcr",
        "capacityReservationId": "cr-0123456789abcdef1",
        "availabilityZone": "us-east-1a",
    }
]
EXAMPLE_BURST = {"instanceFamilies": ["g6e", "p5"], "maxGpus": 64, "spot": True}


def _example(key: str, value: Any) -> str:
    return f"e.g. -c {key}='{json.dumps(value, separators=(',', ':'))}'"


def _decode(raw: Any, key: str, example: Any, problems: Problems) -> Any:
    """Values from ``-c`` arrive as strings: decode JSON text."""
    if isinstance(raw, str) and raw.strip()[:1] in "[{":
        try:
            return json.loads(raw)
        except json.JSONDecodeError as err:
            problems.add(
                f"{key}: {raw!r} is not valid JSON ({err.msg} at character {err.pos}); {_example(key, example)}"
            )
            return None
    return raw


def read_capacity(
    get: Callable[[str], Any], problems: Problems, kubernetes_version: str
) -> tuple[tuple[ReservedCapacitySpec, ...], BurstCapacitySpec | None]:
    """Reads ``reservedCapacity`` and ``burstCapacity`` with ``get(key)``, adding every
    problem to ``problems`` (each naming the key, the value, what is allowed and an example
    ``-c`` flag). ``kubernetes_version`` is accepted for rules that depend on it."""
    del kubernetes_version  # no version-dependent rule yet; the signature is the contract
    return _read_reserved(get, problems), _read_burst(get, problems)


def _read_reserved(get: Callable[[str], Any], problems: Problems) -> tuple[ReservedCapacitySpec, ...]:
    key = "reservedCapacity"
    raw = get(key)
    if raw is None or raw == "":
        return ()
    value = _decode(raw, key, EXAMPLE_RESERVED, problems)
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.add(f"{key}: {value!r} is not a list of reservations; {_example(key, EXAMPLE_RESERVED)}")
        return ()
    out: list[ReservedCapacitySpec] = []
    for i, entry in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(entry, dict):
            problems.add(f"{where}: {entry!r} is not an object; {_example(key, EXAMPLE_RESERVED)}")
            continue
        spec = _read_reserved_entry(where, entry, problems)
        if spec is not None:
            out.append(spec)
    seen: dict[str, int] = {}
    for i, spec in enumerate(out):
        for what, v in (("name", spec.name), ("reservation", spec.target)):
            tag = f"{what}:{v}"
            if tag in seen:
                problems.add(
                    f"{key}: {what} {v!r} appears more than once (entries {seen[tag]} and {i}); "
                    "list each reservation once, with a unique name"
                )
            seen.setdefault(tag, i)
    return tuple(out)


def _read_reserved_entry(
    where: str, entry: Mapping[str, Any], problems: Problems
) -> ReservedCapacitySpec | None:
    before = len(list(problems))
    unknown = sorted(set(entry) - set(_RESERVED_KEYS))
    if unknown:
        problems.add(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
            + ", ".join(map(repr, _RESERVED_KEYS))
        )
    name = entry.get("name")
    if not is_dns1123_label(name, max_length=40):
        problems.add(
            f"{where}.name: {name!r} is not a DNS-1123 label of at most 40 characters "
            "(lowercase letters, digits, '-'); it names the node group and the node label value"
        )
    kind = _enum(f"{where}.capacityType", entry.get("capacityType", "odcr"), ReservationKind, problems)
    provisioner = _enum(
        f"{where}.provisioner", entry.get("provisioner", "nodegroup"), ReservedProvisioner, problems
    )
    itype = entry.get("instanceType")
    if not isinstance(itype, str) or not _INSTANCE_TYPE_RE.match(itype):
        problems.add(f"{where}.instanceType: {itype!r} is not an EC2 instance type like 'p5.48xlarge'")
    elif itype == ULTRASERVER_INSTANCE_TYPE:
        problems.add(
            f"{where}.instanceType: {itype!r} runs only inside UltraServers; list its Capacity "
            "Blocks in ultraServers instead"
        )
    elif provisioner is ReservedProvisioner.NODEGROUP:
        gpu_instance_type(itype, f"{where}.instanceType", problems)
    count = entry.get("instanceCount")
    if isinstance(count, str) and count.isdigit():
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
        problems.add(
            f"{where}.instanceCount: {count!r} is not an integer from 1 to 1000 (the instances reserved)"
        )
    rid = entry.get("capacityReservationId")
    arn = entry.get("capacityReservationResourceGroupArn")
    if rid is None and arn is None:
        problems.add(
            f"{where}: give capacityReservationId ('cr-' and 17 hex digits) or "
            "capacityReservationResourceGroupArn (arn:aws:resource-groups:<region>:<account>:group/<name>)"
        )
    elif rid is not None and arn is not None:
        problems.add(
            f"{where}: give capacityReservationId or capacityReservationResourceGroupArn, not both "
            "(a launch template targets one of them)"
        )
    if rid is not None and not is_reservation_id(rid):
        problems.add(describe_reservation_id_problem(f"{where}.capacityReservationId", rid))
    if arn is not None:
        if not isinstance(arn, str) or not _RG_ARN_RE.match(arn):
            problems.add(
                f"{where}.capacityReservationResourceGroupArn: {arn!r} is not a resource group ARN "
                "like 'arn:aws:resource-groups:us-east-1:123456789012:group/my-odcrs'"
            )
        if kind is ReservationKind.CAPACITY_BLOCK:
            problems.add(
                f"{where}.capacityReservationResourceGroupArn: a Capacity Block is targeted by its "
                "reservation id; use capacityReservationId"
            )
        if provisioner is ReservedProvisioner.KARPENTER:
            problems.add(
                f"{where}.capacityReservationResourceGroupArn: Karpenter selects reservations by id "
                "or tags, not by resource group; use capacityReservationId or provisioner 'nodegroup'"
            )
    zone = entry.get("availabilityZone")
    if zone is not None and (not isinstance(zone, str) or not _AZ_RE.match(zone)):
        problems.add(f"{where}.availabilityZone: {zone!r} is not an Availability Zone name like 'us-east-1a'")
    if zone is None and provisioner is ReservedProvisioner.NODEGROUP:
        problems.add(
            f"{where}.availabilityZone: missing; a node group of a reservation needs subnets in "
            'the reservation\'s zone, e.g. "availabilityZone": "us-east-1a"'
        )
    elif zone is None and provisioner is ReservedProvisioner.KARPENTER:
        # Not guessed (the UltraServers' zone) nor looked up: the reservation's zone is a fact
        # of the reservation, and a wrong one leaves Karpenter without a subnet to launch into.
        problems.add(
            f"{where}.availabilityZone: missing; Karpenter launches into a reservation only "
            "from a subnet in the reservation's zone, and the environment places that subnet "
            'from this key: give the reservation\'s zone, e.g. "availabilityZone": "us-east-1a"'
        )
    if len(list(problems)) > before:
        return None
    return ReservedCapacitySpec(
        name=name,
        instance_type=itype,
        instance_count=count,
        kind=kind,
        capacity_reservation_id=rid,
        resource_group_arn=arn,
        availability_zone=zone,
        provisioner=provisioner,
    )


def _read_burst(get: Callable[[str], Any], problems: Problems) -> BurstCapacitySpec | None:
    key = "burstCapacity"
    raw = get(key)
    if raw is None or raw == "" or raw is False or raw == "false":
        return None
    value = _decode(raw, key, EXAMPLE_BURST, problems)
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.add(f"{key}: {value!r} is not an object; {_example(key, EXAMPLE_BURST)}")
        return None
    before = len(list(problems))
    unknown = sorted(set(value) - set(_BURST_KEYS))
    if unknown:
        problems.add(
            f"{key}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
            + ", ".join(map(repr, _BURST_KEYS))
        )
    families = value.get("instanceFamilies")
    if not isinstance(families, list) or not families or not all(isinstance(f, str) for f in families):
        problems.add(
            f"{key}.instanceFamilies: {families!r} is not a non-empty list of instance families; "
            f"{_example(key, EXAMPLE_BURST)}"
        )
        families = []
    gpu_families = []
    for f in families:
        if not _FAMILY_RE.match(f):
            problems.add(f"{key}.instanceFamilies: {f!r} is not an instance family like 'g6e' or 'p5'")
        elif f == ULTRASERVER_FAMILY:
            problems.add(
                f"{key}.instanceFamilies: {f!r} is the UltraServer family; Karpenter never provisions "
                "UltraServer nodes (no DRA/IMEX setup, and they are sold only as whole UltraServers): "
                "remove it"
            )
        elif quota_group_of(f) not in (QuotaGroup.P, QuotaGroup.G_VT):
            problems.add(
                f"{key}.instanceFamilies: {f!r} is not an NVIDIA GPU family (P or G); the pool uses "
                "the AL2023 NVIDIA AMI and the nvidia.com/gpu taint"
            )
        else:
            gpu_families.append(f)
    if len(set(families)) != len(families):
        problems.add(f"{key}.instanceFamilies: {families!r} lists a family twice")
    sizes = value.get("instanceSizes", [])
    if not isinstance(sizes, list) or not all(isinstance(s, str) and _SIZE_RE.match(s) for s in sizes):
        problems.add(
            f"{key}.instanceSizes: {sizes!r} is not a list of sizes like ['12xlarge', '48xlarge'] "
            "(omit it for every size)"
        )
        sizes = []
    max_gpus = _positive_int(
        value.get("maxGpus"),
        f"{key}.maxGpus",
        problems,
        required=True,
        why="the NodePool limit on nvidia.com/gpu, e.g. 64",
    )
    max_vcpus = _positive_int(
        value.get("maxVcpus"), f"{key}.maxVcpus", problems, required=False, why="the NodePool limit on cpu"
    )
    unknown_families = [f for f in gpu_families if f not in BURST_FAMILIES]
    if max_vcpus is None and unknown_families:
        problems.add(
            f"{key}.maxVcpus: missing, and family(ies) {', '.join(unknown_families)} have no "
            f"vCPU-per-GPU bound in the library's table ({', '.join(BURST_FAMILIES)}); give "
            "maxVcpus (the NodePool limit on cpu, which the quota check compares with the quotas)"
        )
    spot = value.get("spot", True)
    if spot in ("true", "false"):
        spot = spot == "true"
    if not isinstance(spot, bool):
        problems.add(
            f"{key}.spot: {spot!r} is not a boolean (true: Spot first, On-Demand fallback; false: On-Demand only)"
        )
    alias = value.get("amiAlias", KARPENTER_AMI_ALIAS)
    if not isinstance(alias, str) or not _ALIAS_RE.match(alias):
        problems.add(
            f"{key}.amiAlias: {alias!r} is not an AL2023 alias; use 'al2023@latest' or a release "
            "such as 'al2023@v20251103'"
        )
    after = value.get("consolidateAfter", "10m")
    if not isinstance(after, str) or not _DURATION_RE.match(after):
        problems.add(f"{key}.consolidateAfter: {after!r} is not a duration like '10m' or '1h'")
    if len(list(problems)) > before:
        return None
    return BurstCapacitySpec(
        instance_families=tuple(families),
        instance_sizes=tuple(sizes),
        max_gpus=max_gpus,
        max_vcpus=max_vcpus,
        spot=spot,
        ami_alias=alias,
        consolidate_after=after,
    )


def _positive_int(value: Any, where: str, problems: Problems, *, required: bool, why: str) -> int | None:
    if value is None:
        if required:
            problems.add(f"{where}: missing; {why}")
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
        problems.add(f"{where}: {value!r} is not an integer from 1 to 100000; {why}")
        return None
    return value


def _enum(where: str, value: Any, enum_type: type[enum.StrEnum], problems: Problems):
    try:
        return enum_type(value)
    except ValueError:
        problems.add(
            f"{where}: {value!r} is not allowed; use one of " + ", ".join(repr(e.value) for e in enum_type)
        )
        return None
