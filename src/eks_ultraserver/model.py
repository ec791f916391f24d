"""The shared model: UltraServer types, EFA layouts, labels and validation helpers.

Both sides of the library meet here: ``constructs/`` (AWS CDK) and ``charts/`` (cdk8s)
import this module, and it imports neither of them.

Facts and their sources (EC2 and EKS user guides) are summarised next to each value.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Self, TypeVar

from eks_ultraserver import patterns

#: The stack the CDK app (``app.py``) places the environment in, and the one the
#: command-line tool reads when no ``--stack-name`` is given.
STACK_NAME = "UltraServerEnvironment"

E = TypeVar("E", bound=enum.StrEnum)

# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class ConfigurationError(ValueError):
    """Bad input, reported as one message that lists every problem found.

    Each problem names the argument (or ``cdk.json`` context key), the value given and
    what is allowed.
    """

    def __init__(self, problems: Iterable[str], *, subject: str = "configuration") -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        n = len(self.problems)
        lines = [f"invalid {subject} ({n} problem{'s' if n != 1 else ''}):"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class Problems:
    """Collects validation problems, then raises them once."""

    def __init__(self) -> None:
        self._items: list[str] = []

    def add(self, message: str) -> None:
        self._items.append(message)

    def extend(self, messages: Iterable[str]) -> None:
        self._items.extend(messages)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def raise_if_any(self, subject: str = "configuration") -> None:
        if self._items:
            raise ConfigurationError(self._items, subject=subject)


# --------------------------------------------------------------------------------------
# Hardware
# --------------------------------------------------------------------------------------

#: The only EC2 instance type inside a P6e-GB200 UltraServer.
INSTANCE_TYPE = "p6e-gb200.36xlarge"
GPUS_PER_INSTANCE = 4
#: Network cards of p6e-gb200.36xlarge (EC2 user guide, efa-acc-inst-types).
NETWORK_CARDS = 17


class UltraServerType(enum.StrEnum):
    """What a Capacity Block reserves. Not an EC2 instance type."""

    U_P6E_GB200X36 = "u-p6e-gb200x36"
    U_P6E_GB200X72 = "u-p6e-gb200x72"

    @property
    def instance_count(self) -> int:
        """Instances (Kubernetes nodes) in one UltraServer of this type."""
        return {"u-p6e-gb200x36": 9, "u-p6e-gb200x72": 18}[self.value]

    @property
    def gpu_count(self) -> int:
        return self.instance_count * GPUS_PER_INSTANCE

    @property
    def instance_type(self) -> str:
        return INSTANCE_TYPE


class EfaLayout(enum.StrEnum):
    """Which network cards carry an EFA interface (EC2 user guide, section P6e-GB200).

    Card 0 is always the primary ENA interface. Odd cards 1..15 are efa-only capable at
    400 Gbps; the GPUs reach the network through card groups (1,3), (5,7), (9,11), (13,15).
    """

    #: One efa-only interface per GPU group, on cards 1, 5, 9, 13: 4 x 400 Gbps.
    #: Nodes advertise ``vpc.amazonaws.com/efa: 4``.
    PER_GPU = "per-gpu"
    #: efa-only on every odd card 1, 3, ..., 15: 8 interfaces.
    ALL_ODD_CARDS = "all-odd-cards"
    #: No EFA: only the primary ENA interface (traffic between UltraServers over TCP).
    NONE = "none"

    @property
    def efa_cards(self) -> tuple[int, ...]:
        return {
            "per-gpu": (1, 5, 9, 13),
            "all-odd-cards": (1, 3, 5, 7, 9, 11, 13, 15),
            "none": (),
        }[self.value]

    @property
    def efa_devices(self) -> int:
        """``vpc.amazonaws.com/efa`` devices a node advertises with this layout."""
        return len(self.efa_cards)


# --------------------------------------------------------------------------------------
# Cluster scale: the control plane tier and the documented limits
# --------------------------------------------------------------------------------------


class ControlPlaneTier(enum.StrEnum):
    """The EKS Provisioned Control Plane scaling tier (``AWS::EKS::Cluster``
    ``ControlPlaneScalingConfig.Tier``; the CloudFormation schema's allowed values). Every tier
    but ``standard`` is billed per hour on top of the cluster's hourly charge (Amazon EKS
    pricing)."""

    #: EKS's default: the control plane scales with demand, with no guaranteed capacity.
    STANDARD = "standard"
    TIER_XL = "tier-xl"
    TIER_2XL = "tier-2xl"
    TIER_4XL = "tier-4xl"
    TIER_8XL = "tier-8xl"
    TIER_ULTRA = "tier-ultra"

    @property
    def api_request_concurrency_seats(self) -> int | None:
        """The tier's documented API request concurrency (seats), ``None`` where the guide
        gives no figure (:data:`CONTROL_PLANE_TIER_SEATS`)."""
        return CONTROL_PLANE_TIER_SEATS.get(self)


#: Where the tier figures below come from (the only figures per tier that the guide gives).
CONTROL_PLANE_TIER_SOURCE = (
    "Amazon EKS User Guide, 'Amazon EKS Provisioned Control Plane', section 'Control Plane "
    "Scaling Tiers' (awsdocs/amazon-eks-user-guide, latest/ug/clusters/"
    "eks-provisioned-control-plane-introduction.adoc; read 2026-12-02)"
)
#: API request concurrency (seats) per tier, the same for EKS 1.28 and later. The guide
#: documents no node or pod count per tier and no figure for tier-8xl or tier-ultra; it
#: advises load testing on the highest tier (4XL) and choosing from the tier utilization
#: metrics (``apiserver_flowcontrol_current_executing_seats_total``). So no tier is derived
#: from a fleet's size here.
CONTROL_PLANE_TIER_SEATS: Mapping[ControlPlaneTier, int] = MappingProxyType(
    {
        ControlPlaneTier.TIER_XL: 1_700,
        ControlPlaneTier.TIER_2XL: 3_400,
        ControlPlaneTier.TIER_4XL: 6_800,
    }
)
#: The tier the guide says to load test on ("using the highest tier (4XL)").
CONTROL_PLANE_TIER_TO_LOAD_TEST = ControlPlaneTier.TIER_4XL
#: Nodes per EKS cluster at most (AWS Containers blog, "Under the hood: Amazon EKS ultra
#: scale clusters", 2025-07-16: "clusters with up to 100,000 nodes").
EKS_MAX_NODES_PER_CLUSTER = 100_000
#: The largest cluster upstream Kubernetes is tested at (kubernetes.io, "Considerations for
#: large clusters": no more than 5,000 nodes, 150,000 total pods). Past either, the standard
#: tier (no guaranteed capacity) is not enough to plan on.
KUBERNETES_LARGE_CLUSTER_NODES = 5_000
KUBERNETES_LARGE_CLUSTER_PODS = 150_000


def control_plane_tier_advice(
    tier: ControlPlaneTier | None, *, nodes: int, gpus: int
) -> list[tuple[str, str]]:
    """What a fleet of ``nodes`` nodes and ``gpus`` GPUs (a lower bound of its pods: one
    pod per GPU) needs of the control plane that ``tier`` (``None``: not set, EKS's
    standard) does not give, as (warning id, message) pairs; empty when nothing documented
    stands against it. Only documented limits are used (see :data:`CONTROL_PLANE_TIER_SEATS`)."""
    out: list[tuple[str, str]] = []
    if nodes > EKS_MAX_NODES_PER_CLUSTER:
        out.append(
            (
                "nodes-per-cluster",
                f"{nodes:,} nodes exceed EKS's {EKS_MAX_NODES_PER_CLUSTER:,} nodes per cluster "
                "(ultra scale clusters), whatever the control plane tier: split the fleet over "
                "two environments",
            )
        )
    if tier in (None, ControlPlaneTier.STANDARD) and (
        nodes > KUBERNETES_LARGE_CLUSTER_NODES or gpus > KUBERNETES_LARGE_CLUSTER_PODS
    ):
        seats = ", ".join(f"{t.value} {s:,}" for t, s in CONTROL_PLANE_TIER_SEATS.items())
        out.append(
            (
                "control-plane-tier",
                f"{nodes:,} nodes and {gpus:,} GPUs (at least as many pods) are past upstream "
                f"Kubernetes' tested {KUBERNETES_LARGE_CLUSTER_NODES:,} nodes / "
                f"{KUBERNETES_LARGE_CLUSTER_PODS:,} pods, on the standard control plane tier, whose "
                "capacity EKS does not guarantee. Set controlPlaneTier (construct argument "
                f"control_plane_tier) to {CONTROL_PLANE_TIER_TO_LOAD_TEST.value!r}, the tier the "
                "EKS guide says to load test on, then keep it or step down by the tier utilization "
                "metrics; the guide gives API request concurrency per tier "
                f"({seats} seats), no node or pod count. Provisioned tiers are billed per hour.",
            )
        )
    return out


class InstanceStorePolicy(enum.StrEnum):
    """How nodeadm prepares the 3 x 7.5 TB instance-store NVMe disks."""

    #: Stripe all disks into one RAID0 array for kubelet and containerd.
    RAID0 = "RAID0"
    #: Mount each disk separately under /mnt/k8s-disks.
    MOUNT = "Mount"
    #: Leave the disks alone (not mounted; the AMI's default).
    NONE = "none"


# --------------------------------------------------------------------------------------
# Labels and taints shared by node groups and workloads
# --------------------------------------------------------------------------------------

LABEL_PREFIX = "eks-ultraserver.io"
#: Names the UltraServer (one NVLink domain) a node belongs to.
ULTRASERVER_LABEL = f"{LABEL_PREFIX}/ultraserver"
#: The UltraServer type of a node (u-p6e-gb200x36 or u-p6e-gb200x72).
ULTRASERVER_TYPE_LABEL = f"{LABEL_PREFIX}/ultraserver-type"
#: The Capacity Block (reservation id) a node runs on.
CAPACITY_RESERVATION_LABEL = f"{LABEL_PREFIX}/capacity-reservation"
#: The EFA layout of a node group, so workloads can size their EFA requests.
EFA_LAYOUT_LABEL = f"{LABEL_PREFIX}/efa-layout"

#: Marks the on-demand system nodes where controllers run (never an UltraServer).
SYSTEM_NODE_LABEL = f"{LABEL_PREFIX}/node-role"
SYSTEM_NODE_LABEL_VALUE = "system"

#: Which kind of GPU capacity a node is, beside the UltraServers: ``reserved`` (ODCR and
#: Capacity Block node groups, Karpenter's gpu-reserved pool) or ``burst`` (Karpenter's
#: gpu-burst pool). Karpenter's ``karpenter.sh/capacity-type`` (spot | on-demand | reserved)
#: exists only on Karpenter nodes; this label is on managed node groups too.
CAPACITY_TYPE_LABEL = f"{LABEL_PREFIX}/capacity"
#: The ``reservedCapacity`` entry (its name) a reserved node runs on.
RESERVED_CAPACITY_LABEL = f"{LABEL_PREFIX}/reserved-capacity"

#: Set at boot by the AL2023 NVIDIA AMI.
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
#: From GPU Feature Discovery: nodes with the same value share multi-node NVLink.
GPU_CLIQUE_LABEL = "nvidia.com/gpu.clique"


@dataclass(frozen=True, kw_only=True, slots=True)
class Taint:
    """A Kubernetes node taint."""

    key: str
    value: str = ""
    effect: str = "NoSchedule"

    _EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

    def problems(self, where: str) -> list[str]:
        out = []
        if not is_label_key(self.key):
            out.append(f"{where}.key: {self.key!r} is not a valid Kubernetes taint key")
        if self.value and not is_label_value(self.value):
            out.append(f"{where}.value: {self.value!r} is not a valid Kubernetes taint value")
        if self.effect not in self._EFFECTS:
            out.append(
                f"{where}.effect: {self.effect!r} is not allowed; use one of " + ", ".join(self._EFFECTS)
            )
        return out

    def toleration(self) -> dict[str, str]:
        """The Kubernetes toleration that tolerates this taint."""
        tol = {"key": self.key, "operator": "Equal", "value": self.value, "effect": self.effect}
        if not self.value:
            tol = {"key": self.key, "operator": "Exists", "effect": self.effect}
        return tol


#: The common taint on GPU nodes: ``nvidia.com/gpu=true:NoSchedule``.
GPU_TAINT = Taint(key="nvidia.com/gpu", value="true", effect="NoSchedule")

# --------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------

# The patterns and their predicates live in patterns.py (one copy of each); re-exported
# here, where the rest of the library has always found them.
RESERVATION_ID_RE = patterns.RESERVATION_ID_RE
is_reservation_id = patterns.is_reservation_id
is_dns1123_label = patterns.is_dns1123_label
is_dns1123_subdomain = patterns.is_dns1123_subdomain
is_label_value = patterns.is_label_value
is_label_key = patterns.is_label_key


def describe_reservation_id_problem(where: str, value: object) -> str:
    return (
        f"{where}: {value!r} is not a Capacity Reservation id; expected 'cr-' followed by "
        "17 lowercase hexadecimal digits, e.g. 'cr-0123456789abcdef0'"
    )


def parse_ultraserver_type(where: str, value: object, problems: Problems) -> UltraServerType | None:
    """Parses an UltraServer type, explaining the common mix-up with the instance type."""
    found = enum_member(UltraServerType, value)
    if found is None:
        allowed = ", ".join(repr(t.value) for t in UltraServerType)
        hint = ""
        if value == INSTANCE_TYPE:
            hint = (
                f" ({INSTANCE_TYPE!r} is the EC2 instance type inside an UltraServer; a "
                "Capacity Block reserves a whole UltraServer)"
            )
        problems.add(f"{where}: {value!r} is not an UltraServer type; use one of {allowed}{hint}")
    return found


def enum_member(enum_type: type[E], value: object) -> E | None:
    """The member of ``enum_type`` whose value is ``value`` (or that is ``value``), else None."""
    for member in enum_type:
        if member is value or member.value == value:
            return member
    return None


def parse_enum(where: str, value: object, enum_type: type[E], problems: Problems) -> E | None:
    """The member of ``enum_type`` named by ``value``; records a problem (naming the allowed
    values) and returns None when there is none."""
    found = enum_member(enum_type, value)
    if found is None:
        allowed = ", ".join(repr(t.value) for t in enum_type)
        problems.add(f"{where}: {value!r} is not allowed; use one of {allowed}")
    return found


# --------------------------------------------------------------------------------------
# Value objects that validate themselves
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Naming:
    """How a value object's problems name its fields.

    Direct Python use (the default): the field names, e.g. ``instance_count``. The cdk.json
    reader: the context keys under the entry's path, e.g.
    ``reservedCapacity[0].instanceCount``, with an example ``-c`` flag where one helps.
    """

    #: the path of the object itself, e.g. ``reservedCapacity[0]``; empty in Python use
    where: str = ""
    #: field -> the key shown; fields not listed show as themselves
    keys: Mapping[str, str] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    #: True when reading cdk.json context (messages then show ``-c`` examples)
    context: bool = False

    def key(self, field: str) -> str:
        """The bare key of ``field`` (no path)."""
        return self.keys.get(field, field)

    def __call__(self, field: str) -> str:
        """The full name of ``field``: the path and the key."""
        key = self.key(field)
        return f"{self.where}.{key}" if self.where else key

    def entry(self, *fields: str) -> str:
        """What a problem of several fields together is reported under: the object's path,
        or (Python use) the fields' names."""
        return self.where or " / ".join(self.key(f) for f in fields)

    def example(self, key: str, value: object) -> str:
        """``"; e.g. -c key='value'"`` when reading context, else nothing; a value that is
        not a string is written as compact JSON."""
        if not self.context:
            return ""
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        return f"; e.g. -c {key}='{text}'"


class SelfValidating:
    """Mixin of the frozen value objects that check their own fields, once.

    A subclass implements :meth:`_checked`: check every field, add each problem (named
    through the :class:`Naming` it gets), return the fields normalised (enum members for
    their values, tuples for lists). Two ways in, one set of rules:

    - ``Cls(...)`` (direct Python use): ``__post_init__`` runs the check and raises one
      :class:`ConfigurationError` naming the fields (``subject`` is the class name);
    - ``Cls.parse(where, **fields)`` (the cdk.json reader): returns ``(object, [])``, or
      ``(None, problems)`` with the problems named after the context keys under ``where``,
      so the reader can go on and report every key in one error.

    A field given as :data:`INVALID` was already reported by the reader (e.g. an entry of
    a list that failed): its checks are skipped. Such an object is never built.
    """

    __slots__ = ()

    #: field -> cdk.json key of the field
    CONTEXT_KEYS: ClassVar[Mapping[str, str]] = MappingProxyType({})

    @classmethod
    def _checked(cls, fields: dict[str, Any], name: Naming, problems: Problems) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def _python_naming(cls) -> Naming:
        return Naming()

    def __post_init__(self) -> None:
        given = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        problems = Problems()
        checked = type(self)._checked(dict(given), type(self)._python_naming(), problems)
        problems.raise_if_any(type(self).__name__)
        for key, value in checked.items():
            if value is not given[key]:
                object.__setattr__(self, key, value)

    @classmethod
    def parse(cls, where: str = "", /, **fields: Any) -> tuple[Self | None, list[str]]:
        """The object from ``fields`` (missing ones take their defaults), or ``None`` and
        every problem, named after the context keys under ``where``."""
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in fields:
                continue
            if f.default is not dataclasses.MISSING:
                fields[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                fields[f.name] = f.default_factory()
            else:
                fields[f.name] = None
        problems = Problems()
        checked = cls._checked(dict(fields), Naming(where, cls.CONTEXT_KEYS, context=True), problems)
        if problems or any(v is INVALID for v in checked.values()):
            return None, list(problems)
        return cls(**checked), []


class _Invalid:
    """The type of :data:`INVALID`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "INVALID"


#: A field value the reader already reported as a problem (see :class:`SelfValidating`).
INVALID: Any = _Invalid()
