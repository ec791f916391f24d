"""Reserved and burst GPU capacity beside the UltraServers: the two specs and their reader.

Two kinds of GPU capacity share the cluster with the UltraServers (EKS user guide, "Manage
compute for AI/ML workloads": purchase options On-Demand, Spot, Capacity Blocks and ODCRs):

- **reserved**: On-Demand Capacity Reservations (ODCRs) and Capacity Blocks for other
  accelerated instance types (``reservedCapacity`` in cdk.json), run by an EKS managed node
  group (``constructs/reserved.py``) or, for ODCRs and Capacity Blocks Karpenter may select,
  by Karpenter's ``gpu-reserved`` NodePool;
- **burst**: Karpenter's ``gpu-burst`` NodePool, Spot first with On-Demand as fallback
  (``burstCapacity`` in cdk.json).

``ReservedCapacitySpec`` and ``BurstCapacitySpec`` check their own fields
(``model.SelfValidating``); :func:`read_capacity` reads the two context keys into them.
The instance-type table lives in ``instance_types.py``, the vCPU quotas in ``quotas.py``;
their names stay importable from here. Part of the shared model: imports neither aws_cdk
nor cdk8s.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from eks_ultraserver.instance_types import (
    INSTANCE_TYPES,
    ULTRASERVER_FAMILY,
    ULTRASERVER_INSTANCE_TYPE,
    Architecture,
    EfaInterface,
    GpuInstanceType,
    gpu_instance_type,
    with_instance_types,
)
from eks_ultraserver.model import (
    CAPACITY_TYPE_LABEL,
    RESERVED_CAPACITY_LABEL,
    Naming,
    Problems,
    SelfValidating,
    describe_reservation_id_problem,
    is_dns1123_label,
    is_reservation_id,
    parse_enum,
)
from eks_ultraserver.patterns import (
    AL2023_ALIAS_RE,
    AVAILABILITY_ZONE_RE,
    DURATION_RE,
    INSTANCE_FAMILY_RE,
    INSTANCE_SIZE_RE,
    INSTANCE_TYPE_RE,
    RESOURCE_GROUP_ARN_RE,
    matches,
)
from eks_ultraserver.quotas import BURST_FAMILIES, QUOTAS, QuotaCodes, QuotaGroup, quota_group_of
from eks_ultraserver.versions import KARPENTER_AMI_ALIAS

__all__ = [
    "BURST_FAMILIES",
    "CAPACITY_TYPE_LABEL",
    "DEVICE_PLUGIN_CONFIG_LABEL",
    "EXAMPLE_BURST",
    "EXAMPLE_RESERVED",
    "GPU_RESOURCE",
    "INSTANCE_TYPES",
    "MAX_SHARING_REPLICAS",
    "QUOTAS",
    "RESERVED_CAPACITY_LABEL",
    "ULTRASERVER_FAMILY",
    "ULTRASERVER_INSTANCE_TYPE",
    "Architecture",
    "BurstCapacitySpec",
    "CapacityClass",
    "EfaInterface",
    "GpuInstanceType",
    "GpuSharingSpec",
    "QuotaCodes",
    "QuotaGroup",
    "ReservationKind",
    "ReservedCapacitySpec",
    "ReservedProvisioner",
    "SharingStrategy",
    "gpu_instance_type",
    "quota_group_of",
    "read_capacity",
    "sharing_configs",
    "with_instance_types",
]


class CapacityClass(enum.StrEnum):
    """Values of ``model.CAPACITY_TYPE_LABEL`` (``eks-ultraserver.io/capacity``)."""

    RESERVED = "reserved"
    BURST = "burst"


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


class SharingStrategy(enum.StrEnum):
    """``sharing.strategy`` of a reserved or burst pool: how the NVIDIA device plugin shares
    each GPU (NVIDIA/k8s-device-plugin v0.19.3, api/config/v1/sharing.go)."""

    #: CUDA time-slicing (``sharing.timeSlicing``): replicas take turns on the whole GPU,
    #: with no memory or fault isolation between them.
    TIME_SLICING = "time-slicing"
    #: CUDA MPS (``sharing.mps``): replicas run at once, each limited to 1/replicas of the
    #: GPU's memory and compute; full GPUs only (no MIG).
    MPS = "mps"


#: The resource each pool shares (the device plugin's ``resources[].name``).
GPU_RESOURCE = "nvidia.com/gpu"
#: The node label that selects a named device plugin configuration (GPU Operator
#: "Time-Slicing GPUs in Kubernetes"; k8s-device-plugin config-manager ``--node-label``).
DEVICE_PLUGIN_CONFIG_LABEL = "nvidia.com/device-plugin.config"
#: Most replicas per GPU the library accepts (the device plugin sets no upper bound; this
#: one catches typos: MPS gives each replica 1/replicas of the GPU's memory).
MAX_SHARING_REPLICAS = 64


@dataclass(frozen=True, kw_only=True, slots=True)
class GpuSharingSpec(SelfValidating):
    """``sharing`` of a ``reservedCapacity`` entry or of ``burstCapacity``: the NVIDIA device
    plugin shares each GPU of the pool's nodes between ``replicas`` pods.

    The device plugin's config format (NVIDIA/k8s-device-plugin v0.19.3,
    ``api/config/v1/{config,replicas}.go``): ``replicas`` at least 2; ``sharing.timeSlicing``
    and ``sharing.mps`` are exclusive (one strategy per pool); ``renameByDefault`` advertises
    ``nvidia.com/gpu.shared`` instead of ``nvidia.com/gpu``; ``failRequestsGreaterThanOne``
    makes a pod asking for more than one replica fail (it would not get more of the GPU).
    For MPS the device plugin forces ``failRequestsGreaterThanOne`` to true
    (``config.go``, ``NewConfig``): it defaults to true here and ``false`` is refused.
    MPS runs on full GPUs only; no pool of this library uses MIG (and UltraServer nodes
    never share, see ``settings.ULTRASERVER_SHARING_REFUSAL``).
    """

    CONTEXT_KEYS: ClassVar[Mapping[str, str]] = {
        "strategy": "strategy",
        "replicas": "replicas",
        "rename_by_default": "renameByDefault",
        "fail_requests_greater_than_one": "failRequestsGreaterThanOne",
    }

    #: ``time-slicing`` or ``mps``.
    strategy: SharingStrategy
    #: Pods that share each GPU: 2 to :data:`MAX_SHARING_REPLICAS`.
    replicas: int
    #: Advertise the shared GPUs as ``nvidia.com/gpu.shared``. Default ``False``: pods keep
    #: asking for ``nvidia.com/gpu``.
    rename_by_default: bool = False
    #: Refuse pods that ask for more than one replica. Default ``None``: the device plugin's
    #: (false for time-slicing, true for MPS, which forces it); resolved to a bool.
    fail_requests_greater_than_one: bool | None = None

    @classmethod
    def _checked(cls, fields: dict[str, Any], name: Naming, problems: Problems) -> dict[str, Any]:
        out = dict(fields)
        strategy = parse_enum(name("strategy"), fields["strategy"], SharingStrategy, problems)
        out["strategy"] = strategy or fields["strategy"]
        replicas = fields["replicas"]
        if isinstance(replicas, str) and replicas.isdigit():
            out["replicas"] = replicas = int(replicas)
        if (
            isinstance(replicas, bool)
            or not isinstance(replicas, int)
            or not 2 <= replicas <= MAX_SHARING_REPLICAS
        ):
            problems.add(
                f"{name('replicas')}: {replicas!r} is not an integer from 2 to {MAX_SHARING_REPLICAS} "
                "(the pods that share each GPU; the device plugin needs at least 2)"
            )
        for attr in ("rename_by_default", "fail_requests_greater_than_one"):
            value = fields[attr]
            if value in ("true", "false"):
                out[attr] = value = value == "true"
            if value is not None and not isinstance(value, bool):
                problems.add(f"{name(attr)}: {value!r} is not a boolean (true or false)")
        fail = out["fail_requests_greater_than_one"]
        if strategy is SharingStrategy.MPS:
            if fail is False:
                problems.add(
                    f"{name('fail_requests_greater_than_one')}: false is not allowed with "
                    f"{name.key('strategy')} 'mps': the device plugin forces it to true for MPS "
                    "(a replica is a fixed share of the GPU, and two of them would not be one "
                    "larger share); omit it or give true"
                )
            out["fail_requests_greater_than_one"] = True
        elif fail is None:
            out["fail_requests_greater_than_one"] = False
        return out

    @property
    def config_name(self) -> str:
        """The name of this setting's device plugin configuration (a key of the GPU
        Operator's ``devicePlugin.config.data`` and the value of the nodes'
        ``nvidia.com/device-plugin.config`` label): the strategy and the replicas, e.g.
        ``time-slicing-4``, with ``-renamed`` when ``rename_by_default`` and ``-strict`` for
        time-slicing that fails requests for more than one replica. Equal settings share
        one name."""
        name = f"{self.strategy.value}-{self.replicas}"
        if self.rename_by_default:
            name += "-renamed"
        if self.strategy is SharingStrategy.TIME_SLICING and self.fail_requests_greater_than_one:
            name += "-strict"
        return name

    @property
    def resource_name(self) -> str:
        """The resource pods request: ``nvidia.com/gpu.shared`` with ``rename_by_default``
        (the device plugin's ``DefaultSharedRename``), else ``nvidia.com/gpu``."""
        return f"{GPU_RESOURCE}.shared" if self.rename_by_default else GPU_RESOURCE

    def device_plugin_config(self) -> dict[str, Any]:
        """The device plugin configuration (``version: v1``) as a dict: ``sharing.timeSlicing``
        or ``sharing.mps`` with ``renameByDefault``, ``failRequestsGreaterThanOne`` and one
        ``nvidia.com/gpu`` resource with ``replicas``. No ``flags``: the GPU Operator starts
        the plugin with its flags as environment variables (``GDRCOPY_ENABLED``, the MIG
        strategy, the driver root), which take precedence over a config file's
        (k8s-device-plugin ``NewConfig``: "(1) command line, (2) environment variable, (3)
        config file")."""
        key = "mps" if self.strategy is SharingStrategy.MPS else "timeSlicing"
        return {
            "version": "v1",
            "sharing": {
                key: {
                    "renameByDefault": self.rename_by_default,
                    "failRequestsGreaterThanOne": bool(self.fail_requests_greater_than_one),
                    "resources": [{"name": GPU_RESOURCE, "replicas": self.replicas}],
                }
            },
        }


def _sharing(value: Any, name: Naming, problems: Problems) -> Any:
    """A pool's ``sharing``: ``None``, a :class:`GpuSharingSpec`, or (cdk.json) an object
    with its keys, parsed here under ``<pool>.sharing``."""
    if value is None or isinstance(value, GpuSharingSpec):
        return value
    where = name("sharing")
    if not isinstance(value, Mapping):
        problems.add(
            f"{where}: {value!r} is not an object like "
            '{"strategy": "time-slicing", "replicas": 4} (strategy time-slicing or mps)'
        )
        return None
    keys = GpuSharingSpec.CONTEXT_KEYS
    unknown = sorted(set(value) - set(keys.values()))
    if unknown:
        problems.add(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
            + ", ".join(map(repr, keys.values()))
        )
    missing = [k for k in ("strategy", "replicas") if k not in value]
    if missing:
        problems.add(
            f"{where}: missing {', '.join(map(repr, missing))}; e.g. "
            '{"strategy": "time-slicing", "replicas": 4}'
        )
        return None
    spec, found = GpuSharingSpec.parse(where, **{attr: value[k] for attr, k in keys.items() if k in value})
    problems.extend(found)
    return spec if not unknown else None


def _table(value: object, problems: Problems | None = None) -> Mapping[str, GpuInstanceType]:
    """``value`` when it is an instance-type table (else the library's, and a problem)."""
    if isinstance(value, Mapping):
        return value
    if problems is not None:
        problems.add(f"instance_types: {value!r} is not a mapping of instance type names")
    return INSTANCE_TYPES


@dataclass(frozen=True, kw_only=True, slots=True)
class ReservedCapacitySpec(SelfValidating):
    """One ``reservedCapacity`` entry: an ODCR (by id or resource group) or a Capacity Block.

    Checks itself: the name (a DNS-1123 label of at most 40 characters), the instance type
    (an EC2 type, not the UltraServers'; with ``provisioner`` ``nodegroup`` one of
    ``instance_types``, which gives its EFA layout), the count (1 to 1000), the kind and
    provisioner (members or their values), exactly one target (a reservation id, or a
    resource group ARN for an ODCR of a node group) and the zone's name. ``availability_zone``
    may be ``None`` here (the environment then uses the UltraServers' zone); cdk.json must
    give it (see :func:`read_capacity`)."""

    CONTEXT_KEYS: ClassVar[Mapping[str, str]] = {
        "name": "name",
        "instance_type": "instanceType",
        "instance_count": "instanceCount",
        "kind": "capacityType",
        "capacity_reservation_id": "capacityReservationId",
        "resource_group_arn": "capacityReservationResourceGroupArn",
        "availability_zone": "availabilityZone",
        "provisioner": "provisioner",
        "sharing": "sharing",
    }

    name: str
    instance_type: str
    instance_count: int
    kind: ReservationKind = ReservationKind.ODCR
    capacity_reservation_id: str | None = None
    resource_group_arn: str | None = None
    availability_zone: str | None = None
    provisioner: ReservedProvisioner = ReservedProvisioner.NODEGROUP
    #: GPU sharing on the reservation's nodes (:class:`GpuSharingSpec`, or its cdk.json
    #: object). Default ``None``: whole GPUs.
    sharing: GpuSharingSpec | None = None
    #: The instance-type table this entry is checked against and resolved from:
    #: ``instance_types.INSTANCE_TYPES``, or your ``with_instance_types(...)``.
    instance_types: Mapping[str, GpuInstanceType] = field(
        default_factory=lambda: INSTANCE_TYPES, compare=False, repr=False
    )

    @property
    def target(self) -> str:
        """The reservation id or the resource group ARN."""
        return self.capacity_reservation_id or self.resource_group_arn or ""

    @property
    def gpu_type(self) -> GpuInstanceType | None:
        """The table entry of the instance type (its EFA layout); always there for a node
        group, ``None`` for a Karpenter type the table does not list."""
        return _table(self.instance_types).get(self.instance_type)

    @classmethod
    def _checked(cls, fields: dict[str, Any], name: Naming, problems: Problems) -> dict[str, Any]:
        out = dict(fields)
        if not is_dns1123_label(fields["name"], max_length=40):
            problems.add(
                f"{name('name')}: {fields['name']!r} is not a DNS-1123 label of at most 40 characters "
                "(lowercase letters, digits, '-'); it names the node group and the node label value"
            )
        kind = parse_enum(name("kind"), fields["kind"], ReservationKind, problems)
        provisioner = parse_enum(name("provisioner"), fields["provisioner"], ReservedProvisioner, problems)
        out["kind"], out["provisioner"] = kind or fields["kind"], provisioner or fields["provisioner"]
        table = _table(fields["instance_types"], problems)
        itype = fields["instance_type"]
        if not matches(INSTANCE_TYPE_RE, itype):
            problems.add(f"{name('instance_type')}: {itype!r} is not an EC2 instance type like 'p5.48xlarge'")
        elif itype == ULTRASERVER_INSTANCE_TYPE:
            problems.add(
                f"{name('instance_type')}: {itype!r} runs only inside UltraServers; list its Capacity "
                "Blocks in ultraServers instead"
            )
        elif provisioner is ReservedProvisioner.NODEGROUP:
            gpu_instance_type(itype, name("instance_type"), problems, table)
        count = fields["instance_count"]
        if isinstance(count, str) and count.isdigit():
            out["instance_count"] = count = int(count)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
            problems.add(
                f"{name('instance_count')}: {count!r} is not an integer from 1 to 1000 (the instances reserved)"
            )
        _target_problems(fields, kind, provisioner, name, problems)
        zone = fields["availability_zone"]
        if zone is not None and not matches(AVAILABILITY_ZONE_RE, zone):
            problems.add(
                f"{name('availability_zone')}: {zone!r} is not an Availability Zone name like 'us-east-1a'"
            )
        out["sharing"] = sharing = _sharing(fields["sharing"], name, problems)
        if provisioner is ReservedProvisioner.KARPENTER:
            _karpenter_rename_problem(sharing, name, problems)
        return out


def _karpenter_rename_problem(sharing: GpuSharingSpec | None, name: Naming, problems: Problems) -> None:
    """``renameByDefault`` on a pool Karpenter launches: refused. The nodes then advertise
    only ``nvidia.com/gpu.shared``, which no instance type offers in Karpenter's eyes, so a
    pod asking for it never makes Karpenter launch a node, and one asking for
    ``nvidia.com/gpu`` gets a node that has none."""
    if sharing is not None and sharing.rename_by_default:
        problems.add(
            f"{name('sharing')}.renameByDefault: true is not allowed on a pool Karpenter "
            "launches: its nodes would advertise only nvidia.com/gpu.shared, a resource "
            "Karpenter knows no instance type for, so pods asking for it never bring a node "
            "up (and pods asking for nvidia.com/gpu get nodes without it); leave it false "
            "(pods then ask for nvidia.com/gpu), or use provisioner 'nodegroup'"
        )


def _target_problems(
    fields: Mapping[str, Any],
    kind: ReservationKind | None,
    provisioner: ReservedProvisioner | None,
    name: Naming,
    problems: Problems,
) -> None:
    rid, arn = fields["capacity_reservation_id"], fields["resource_group_arn"]
    rid_key, arn_key = name.key("capacity_reservation_id"), name.key("resource_group_arn")
    entry = name.entry("capacity_reservation_id", "resource_group_arn")
    if rid is None and arn is None:
        problems.add(
            f"{entry}: give {rid_key} ('cr-' and 17 hex digits) or {arn_key} "
            "(arn:aws:resource-groups:<region>:<account>:group/<name>)"
        )
    elif rid is not None and arn is not None:
        problems.add(
            f"{entry}: give {rid_key} or {arn_key}, not both (a launch template targets one of them)"
        )
    if rid is not None and not is_reservation_id(rid):
        problems.add(describe_reservation_id_problem(name("capacity_reservation_id"), rid))
    if arn is not None:
        if not matches(RESOURCE_GROUP_ARN_RE, arn):
            problems.add(
                f"{name('resource_group_arn')}: {arn!r} is not a resource group ARN "
                "like 'arn:aws:resource-groups:us-east-1:123456789012:group/my-odcrs'"
            )
        if kind is ReservationKind.CAPACITY_BLOCK:
            problems.add(
                f"{name('resource_group_arn')}: a Capacity Block is targeted by its reservation "
                f"id; use {rid_key}"
            )
        if provisioner is ReservedProvisioner.KARPENTER:
            problems.add(
                f"{name('resource_group_arn')}: Karpenter selects reservations by id or tags, not "
                f"by resource group; use {rid_key} or {name.key('provisioner')} 'nodegroup'"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class BurstCapacitySpec(SelfValidating):
    """``burstCapacity``: Karpenter's gpu-burst NodePool.

    Checks itself: NVIDIA GPU families (P or G, not the UltraServers'), each once; sizes;
    ``max_gpus`` (and ``max_vcpus`` when a family has no vCPU-per-GPU bound in
    :data:`BURST_FAMILIES`) from 1 to 100000; ``spot`` a boolean; the AMI alias and the
    consolidation delay. Lists become tuples."""

    CONTEXT_KEYS: ClassVar[Mapping[str, str]] = {
        "instance_families": "instanceFamilies",
        "instance_sizes": "instanceSizes",
        "max_gpus": "maxGpus",
        "max_vcpus": "maxVcpus",
        "spot": "spot",
        "ami_alias": "amiAlias",
        "consolidate_after": "consolidateAfter",
        "availability_zone": "availabilityZone",
        "sharing": "sharing",
    }

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
    #: Launch only in this zone (a Local Zone or a regular AZ), from a subnet the
    #: environment adds there. Default ``None``: the discovery-tagged private subnets.
    availability_zone: str | None = None
    #: GPU sharing on the pool's nodes (:class:`GpuSharingSpec`, or its cdk.json object).
    #: Default ``None``: whole GPUs.
    sharing: GpuSharingSpec | None = None
    #: The instance-type table whose EFA types get pools of their own.
    instance_types: Mapping[str, GpuInstanceType] = field(
        default_factory=lambda: INSTANCE_TYPES, compare=False, repr=False
    )

    @classmethod
    def _checked(cls, fields: dict[str, Any], name: Naming, problems: Problems) -> dict[str, Any]:
        out = dict(fields)
        key = name("instance_families")
        families = fields["instance_families"]
        if (
            not isinstance(families, (list, tuple))
            or not families
            or not all(isinstance(f, str) for f in families)
        ):
            problems.add(
                f"{key}: {families!r} is not a non-empty list of instance families"
                + name.example(name.where, EXAMPLE_BURST)
            )
            families = ()
        gpu_families = []
        for f in families:
            if not matches(INSTANCE_FAMILY_RE, f):
                problems.add(f"{key}: {f!r} is not an instance family like 'g6e' or 'p5'")
            elif f == ULTRASERVER_FAMILY:
                problems.add(
                    f"{key}: {f!r} is the UltraServer family; Karpenter never provisions UltraServer "
                    "nodes (no DRA/IMEX setup, and they are sold only as whole UltraServers): remove it"
                )
            elif quota_group_of(f) not in (QuotaGroup.P, QuotaGroup.G_VT):
                problems.add(
                    f"{key}: {f!r} is not an NVIDIA GPU family (P or G); the pool uses the AL2023 "
                    "NVIDIA AMI and the nvidia.com/gpu taint"
                )
            else:
                gpu_families.append(f)
        if len(set(families)) != len(families):
            problems.add(f"{key}: {fields['instance_families']!r} lists a family twice")
        out["instance_families"] = tuple(families)
        sizes = fields["instance_sizes"]
        if not isinstance(sizes, (list, tuple)) or not all(matches(INSTANCE_SIZE_RE, s) for s in sizes):
            problems.add(
                f"{name('instance_sizes')}: {sizes!r} is not a list of sizes like ['12xlarge', "
                "'48xlarge'] (omit it for every size)"
            )
        else:
            out["instance_sizes"] = tuple(sizes)
        out["max_gpus"] = _positive_int(
            fields["max_gpus"],
            name("max_gpus"),
            problems,
            required=True,
            why="the NodePool limit on nvidia.com/gpu, e.g. 64",
        )
        out["max_vcpus"] = max_vcpus = _positive_int(
            fields["max_vcpus"], name("max_vcpus"), problems, required=False, why="the NodePool limit on cpu"
        )
        unknown = [f for f in gpu_families if f not in BURST_FAMILIES]
        if fields["max_vcpus"] is None and max_vcpus is None and unknown:
            problems.add(
                f"{name('max_vcpus')}: missing, and family(ies) {', '.join(unknown)} have no "
                f"vCPU-per-GPU bound in the library's table ({', '.join(BURST_FAMILIES)}); give "
                f"{name.key('max_vcpus')} (the NodePool limit on cpu, which the quota check "
                "compares with the quotas)"
            )
        spot = fields["spot"]
        if spot in ("true", "false"):
            out["spot"] = spot = spot == "true"
        if not isinstance(spot, bool):
            problems.add(
                f"{name('spot')}: {spot!r} is not a boolean (true: Spot first, On-Demand fallback; "
                "false: On-Demand only)"
            )
        alias = fields["ami_alias"]
        if not matches(AL2023_ALIAS_RE, alias):
            problems.add(
                f"{name('ami_alias')}: {alias!r} is not an AL2023 alias; use 'al2023@latest' or a "
                "release such as 'al2023@v20251103'"
            )
        after = fields["consolidate_after"]
        if not matches(DURATION_RE, after):
            problems.add(f"{name('consolidate_after')}: {after!r} is not a duration like '10m' or '1h'")
        zone = fields["availability_zone"]
        if zone is not None and not matches(AVAILABILITY_ZONE_RE, zone):
            problems.add(
                f"{name('availability_zone')}: {zone!r} is not an Availability Zone name like "
                "'us-east-1a' or a Local Zone like 'us-east-1-dfw-2a'"
            )
        out["sharing"] = sharing = _sharing(fields["sharing"], name, problems)
        _karpenter_rename_problem(sharing, name, problems)
        _table(fields["instance_types"], problems)
        return out

    @property
    def capacity_types(self) -> tuple[str, ...]:
        return ("spot", "on-demand") if self.spot else ("on-demand",)

    def efa_instance_types(self) -> tuple[GpuInstanceType, ...]:
        """The instance types of the table (``instance_types``) with an EFA layout that the pool can
        pick (family in ``instance_families``, size in ``instance_sizes`` or any size), by
        name. Each gets a NodePool and EC2NodeClass of its own (its efa-only interfaces fit
        no other type), with the same ``max_gpus`` / ``max_vcpus`` limits: Karpenter's
        limits apply per NodePool."""
        sizes = set(self.instance_sizes)
        return tuple(
            sorted(
                (
                    t
                    for t in self.instance_types.values()
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


def sharing_configs(
    reserved: Sequence[ReservedCapacitySpec] = (), burst: BurstCapacitySpec | None = None
) -> dict[str, dict[str, Any]]:
    """The device plugin configurations the pools that share GPUs need, one per distinct
    setting (:attr:`GpuSharingSpec.config_name` -> :meth:`GpuSharingSpec.device_plugin_config`);
    empty when no pool shares."""
    settings = [r.sharing for r in reserved] + [burst.sharing if burst is not None else None]
    return {s.config_name: s.device_plugin_config() for s in settings if s is not None}


# --------------------------------------------------------------------------------------
# Reading cdk.json context
# --------------------------------------------------------------------------------------

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


def read_capacity(
    get: Callable[[str], Any],
    problems: Problems,
    kubernetes_version: str,
    *,
    instance_types: Mapping[str, GpuInstanceType] = INSTANCE_TYPES,
) -> tuple[Any, Any]:
    """``capacity_reader.read_capacity``: reads ``reservedCapacity`` and ``burstCapacity``."""
    from eks_ultraserver.capacity_reader import read_capacity as read

    return read(get, problems, kubernetes_version, instance_types=instance_types)


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
