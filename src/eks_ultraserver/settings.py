"""The typed configuration of an environment: value objects that check their own fields.

``UltraServerSpec``, ``AddonsConfig`` and ``EnvironmentConfig`` validate themselves once
(``model.SelfValidating``): built directly in Python they raise one ``ConfigurationError``
naming the fields; built by the cdk.json reader (``config.py``, through ``parse``) their
problems name the context keys and join every other key's problems in one error. Code that
receives one of these objects can trust it. Part of the shared model: imports neither
aws_cdk nor cdk8s. Import the names from ``eks_ultraserver.config``.
"""

from __future__ import annotations

import enum
import ipaddress
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from eks_ultraserver.capacity import BurstCapacitySpec, ReservedCapacitySpec
from eks_ultraserver.endpoint_access import EndpointAccess, public_access_cidr_problems
from eks_ultraserver.instance_types import INSTANCE_TYPES, GpuInstanceType
from eks_ultraserver.model import (
    INVALID,
    ControlPlaneTier,
    EfaLayout,
    Naming,
    Problems,
    SelfValidating,
    UltraServerType,
    describe_reservation_id_problem,
    parse_enum,
    parse_ultraserver_type,
)
from eks_ultraserver.patterns import (
    ACCOUNT_RE,
    AVAILABILITY_ZONE_RE,
    EKS_CLUSTER_NAME_RE,
    EMAIL_RE,
    IAM_PRINCIPAL_ARN_RE,
    REGION_RE,
    SUBNET_ID_RE,
    VPC_ID_RE,
    is_dns1123_label,
    is_reservation_id,
    matches,
)
from eks_ultraserver.queues import QueueSpec, check_queues, fleet_flavors, queue_problems
from eks_ultraserver.runai_config import RunAiConfig, partition_of_region, secret_arn_partition
from eks_ultraserver.sharding import (
    DEFAULT_ULTRASERVER_SHARDS,
    fleet_problems,
    shard_count_problems,
    validation_jobs_problems,
)
from eks_ultraserver.versions import (
    DEFAULT_KUBERNETES_VERSION,
    DRANET_MIN_KUBERNETES,
    DRANET_MIN_KUBERNETES_VERSION,
    MIN_KUBERNETES,
    SUPPORTED_KUBERNETES_VERSIONS,
    KubernetesVersion,
)

#: The reservation id shipped in cdk.json so that synth works on a fresh machine.
EXAMPLE_RESERVATION_ID = "cr-0123456789abcdef0"
#: ``ultraServers`` as an example ``-c`` value.
EXAMPLE_ULTRASERVERS = json.dumps(
    [{"capacityReservationId": EXAMPLE_RESERVATION_ID, "type": "u-p6e-gb200x72", "name": "us-1"}],
    separators=(",", ":"),
)


class DraDriverLine(enum.StrEnum):
    """The two NVIDIA DRA driver chart lines users meet today."""

    #: ``dra-driver-nvidia-gpu`` 0.4.x from oci://registry.k8s.io/dra-driver-nvidia/charts.
    KUBERNETES_SIGS = "dra-driver-nvidia-gpu"
    #: ``nvidia-dra-driver-gpu`` 25.8.x from the NGC repository (what the EKS guide installs).
    NGC = "nvidia-dra-driver-gpu"


class EfaMode(enum.StrEnum):
    """How EFA devices reach pods."""

    #: The AWS EFA Kubernetes device plugin (``vpc.amazonaws.com/efa`` extended resource).
    DEVICE_PLUGIN = "device-plugin"
    #: The EFA DRA driver (aws-dranet, DeviceClass ``efa.networking.k8s.aws``); 1.34+.
    DRANET = "dranet"


#: Component keys of ``addonVersions`` / ``addonValues``.
ADDON_KEYS = ("gpuOperator", "draDriver", "efaDevicePlugin", "dranet", "mpiOperator")


#: EKS scales a Capacity Block node group down this many minutes before the block ends (EKS
#: user guide, capacity-blocks-mng); ``aws_checks.reservations.EKS_SCALE_DOWN_BEFORE_END``
#: is the same fact for the command-line tool (a test keeps the two equal).
EKS_CAPACITY_BLOCK_SCALE_DOWN_MINUTES = 40
#: How often the Capacity Block end handler runs (its EventBridge schedule), in minutes.
CAPACITY_BLOCK_END_SCHEDULE_MINUTES = 5
#: The longest notice accepted: a week (a Capacity Block lasts from 1 to 182 days).
MAX_CAPACITY_BLOCK_END_NOTICE_MINUTES = 7 * 24 * 60


@dataclass(frozen=True, kw_only=True, slots=True)
class CapacityBlockEndConfig(SelfValidating):
    """``capacityBlockEnd``: what the environment does to the nodes of a Capacity Block
    that ends soon (constructs/capacity_block_end.py, docs/capacity-block-end.md).

    Checks itself: ``notice_minutes`` a whole number above
    :data:`EKS_CAPACITY_BLOCK_SCALE_DOWN_MINUTES` + :data:`CAPACITY_BLOCK_END_SCHEDULE_MINUTES`
    (so a run lands before EKS's scale-down) and at most a week; the grace period a whole
    number of seconds that, when evicting, ends before EKS's scale-down; booleans for the
    two switches."""

    CONTEXT_KEYS: ClassVar[Mapping[str, str]] = {
        "enabled": "enabled",
        "notice_minutes": "noticeMinutes",
        "evict": "evict",
        "eviction_grace_period_seconds": "evictionGracePeriodSeconds",
    }

    #: Deploy the handler. Default ``True``.
    enabled: bool = True
    #: Act this many minutes before the block's end (EC2's ``EndDate``). Default 90.
    notice_minutes: int = 90
    #: Evict the pods of the nodes (not DaemonSet or mirror pods). Default ``False``.
    evict: bool = False
    #: ``deleteOptions.gracePeriodSeconds`` of each eviction. Default 600.
    eviction_grace_period_seconds: int = 600

    @classmethod
    def _checked(cls, fields: dict[str, Any], name: Naming, problems: Problems) -> dict[str, Any]:
        for attr in ("enabled", "evict"):
            value = fields[attr]
            if value is not INVALID and not isinstance(value, bool):
                problems.add(f"{name(attr)}: {value!r} is not a boolean (true or false)")
        minimum = EKS_CAPACITY_BLOCK_SCALE_DOWN_MINUTES + CAPACITY_BLOCK_END_SCHEDULE_MINUTES + 1
        notice = fields["notice_minutes"]
        notice_ok = _is_int(notice) and minimum <= notice <= MAX_CAPACITY_BLOCK_END_NOTICE_MINUTES
        if notice is not INVALID and not notice_ok:
            problems.add(
                f"{name('notice_minutes')}: {notice!r} is not allowed; give whole minutes from "
                f"{minimum} to {MAX_CAPACITY_BLOCK_END_NOTICE_MINUTES}: more than EKS's scale-down "
                f"of the node group ({EKS_CAPACITY_BLOCK_SCALE_DOWN_MINUTES} minutes before the "
                f"end) plus the handler's schedule ({CAPACITY_BLOCK_END_SCHEDULE_MINUTES} minutes), "
                "so the nodes are cordoned before EKS removes them"
                + name.example("capacityBlockEnd", '{"noticeMinutes":90}')
            )
        grace = fields["eviction_grace_period_seconds"]
        if grace is not INVALID:
            if not _is_int(grace) or grace < 0:
                problems.add(
                    f"{name('eviction_grace_period_seconds')}: {grace!r} is not a whole number of "
                    "seconds (0 or more)"
                )
            elif notice_ok and fields["evict"] is True:
                # the last run before the scale-down may come a schedule period after the notice
                room = (
                    notice - EKS_CAPACITY_BLOCK_SCALE_DOWN_MINUTES - CAPACITY_BLOCK_END_SCHEDULE_MINUTES
                ) * 60
                if grace > room:
                    problems.add(
                        f"{name('eviction_grace_period_seconds')}: {grace} seconds do not fit between "
                        f"the notice ({notice} minutes) and EKS's scale-down "
                        f"({EKS_CAPACITY_BLOCK_SCALE_DOWN_MINUTES} minutes before the end) less one "
                        f"schedule period: at most {room}; lower it or raise {name('notice_minutes')}"
                    )
        return fields


def is_ipv4_cidr(value: object) -> bool:
    """``value`` is an IPv4 CIDR block written as network/prefix (host bits zero)."""
    if not isinstance(value, str) or "/" not in value:
        return False
    try:
        ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        return False
    return True


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ultraserver_problems(
    naming: Naming, reservation_id: object, us_type: object, name: object, problems: Problems
) -> UltraServerType | None:
    """The rules of one UltraServer entry; returns the parsed type."""
    if not is_reservation_id(reservation_id):
        problems.add(describe_reservation_id_problem(naming("capacity_reservation_id"), reservation_id))
    found = parse_ultraserver_type(naming("type"), us_type, problems)
    if not is_dns1123_label(name, max_length=40):
        problems.add(
            f"{naming('name')}: {name!r} is not a DNS-1123 label of at most 40 characters "
            "(lowercase letters, digits, '-')"
        )
    return found


@dataclass(frozen=True, kw_only=True, slots=True)
class UltraServerSpec(SelfValidating):
    """One Capacity Block: ``{"capacityReservationId": ..., "type": ..., "name": ...}``.

    Checks itself: the reservation id (``cr-`` and 17 hex digits), the type (an
    ``UltraServerType`` or its value, stored as the member) and the name (a DNS-1123 label
    of at most 40 characters)."""

    CONTEXT_KEYS: ClassVar[Mapping[str, str]] = {
        "capacity_reservation_id": "capacityReservationId",
        "type": "type",
        "name": "name",
    }

    capacity_reservation_id: str
    type: UltraServerType
    name: str

    @property
    def instance_count(self) -> int:
        return self.type.instance_count

    @classmethod
    def _checked(cls, fields: dict[str, Any], name: Naming, problems: Problems) -> dict[str, Any]:
        found = _ultraserver_problems(
            name, fields["capacity_reservation_id"], fields["type"], fields["name"], problems
        )
        return {**fields, "type": found if found is not None else fields["type"]}


#: Why an ``ultraServers`` entry takes no ``sharing`` (GPU sharing is for the reserved and
#: burst pools only, docs/sharing-gpus.md).
ULTRASERVER_SHARING_REFUSAL = (
    "UltraServer nodes never share GPUs: driver 580 on the P6e-GB200 AMI runs with CDMM, "
    "under which MIG is not supported (EKS user guide, ml-eks-nvidia-ultraserver), and "
    "ComputeDomain (IMEX) jobs need whole GPUs on every node of the NVLink domain; share "
    "the GPUs of a reservedCapacity entry or of burstCapacity instead (their 'sharing' key)"
)


def refused_ultraserver_key_problems(where: str, entry: Mapping[str, Any], problems: Problems) -> set[str]:
    """The keys of an ``ultraServers`` entry that are refused with a reason rather than as
    unknown (``sharing``: :data:`ULTRASERVER_SHARING_REFUSAL`); adds a problem for each and
    returns them."""
    refused = {"sharing": ULTRASERVER_SHARING_REFUSAL}
    found = set(entry) & set(refused)
    for key in sorted(found):
        problems.add(f"{where}.{key}: {entry[key]!r} is not allowed; {refused[key]}")
    return found


def ultraserver_entry_problems(
    where: str,
    *,
    reservation_id: object,
    type: object,
    name: object,
    keys: tuple[str, str, str],
    problems: Problems,
) -> UltraServerType | None:
    """Checks one UltraServer entry (reservation id, type, name of at most 40 characters),
    adding each problem under ``where`` and the given key names; returns the parsed type.
    The rules of :class:`UltraServerSpec`, for callers that hold the three values apart."""
    naming = Naming(where, dict(zip(("capacity_reservation_id", "type", "name"), keys, strict=True)))
    return _ultraserver_problems(naming, reservation_id, type, name, problems)


@dataclass(frozen=True, kw_only=True, slots=True)
class AddonsConfig(SelfValidating):
    """GPU platform add-ons (GPU Operator, DRA driver, EFA, MPI operator).

    Checks itself: the DRA driver line and EFA mode (members or their values), the component
    keys of ``versions`` / ``values`` (:data:`ADDON_KEYS`), versions as strings and values
    as objects, no settings for the EFA component the mode leaves out (the EFA device plugin
    and DRANET never run together), and the manifest path. Its problems name the cdk.json
    keys (``addonVersions``, ``efaMode``, ...) in Python use too, as the chart builders' do.
    """

    CONTEXT_KEYS: ClassVar[Mapping[str, str]] = {
        "dra_driver_line": "draDriverLine",
        "efa_mode": "efaMode",
        "versions": "addonVersions",
        "values": "addonValues",
        "mpi_operator_manifest": "mpiOperatorManifest",
    }

    dra_driver_line: DraDriverLine = DraDriverLine.KUBERNETES_SIGS
    efa_mode: EfaMode = EfaMode.DEVICE_PLUGIN
    #: component key -> chart version override, e.g. {"gpuOperator": "v25.3.4"}
    versions: Mapping[str, str] = field(default_factory=dict)
    #: component key -> extra Helm values, deep-merged over the library's
    values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: a local copy of the MPI operator release manifest (instead of downloading it)
    mpi_operator_manifest: str | None = None

    @classmethod
    def _python_naming(cls) -> Naming:
        return Naming(keys=cls.CONTEXT_KEYS)

    @classmethod
    def _checked(cls, fields: dict[str, Any], name: Naming, problems: Problems) -> dict[str, Any]:
        out = dict(fields)
        line = parse_enum(name("dra_driver_line"), fields["dra_driver_line"], DraDriverLine, problems)
        mode = parse_enum(name("efa_mode"), fields["efa_mode"], EfaMode, problems)
        out["dra_driver_line"] = line or fields["dra_driver_line"]
        out["efa_mode"] = mode or fields["efa_mode"]
        for attr, kind in (("versions", str), ("values", dict)):
            key = name("versions" if kind is str else "values")
            example = (
                '{"gpuOperator":"v25.3.4"}'
                if kind is str
                else '{"gpuOperator":{"dcgmExporter":{"enabled":false}}}'
            )
            given = fields[attr]
            if given is INVALID:
                continue
            if not isinstance(given, Mapping):
                problems.add(f"{key}: {given!r} is not an object" + (name.example(key, example) or ""))
                continue
            for component, v in given.items():
                if component not in ADDON_KEYS:
                    problems.add(
                        f"{key}: unknown component {component!r}; use one of {', '.join(ADDON_KEYS)}"
                    )
                elif not isinstance(v, kind):
                    problems.add(
                        f"{key}.{component}: {v!r} is not a {'string' if kind is str else 'object'}"
                        + name.example(key, example)
                    )
            if mode is not None:
                # One of the two, cluster-wide: they cannot share a node (EKS user guide,
                # device-management-efa). Settings for the other one mean a mix-up: refuse.
                active, other = (
                    ("efaDevicePlugin", "dranet")
                    if mode is EfaMode.DEVICE_PLUGIN
                    else ("dranet", "efaDevicePlugin")
                )
                if other in given:
                    problems.add(
                        f"{key}.{other}: given, but efaMode is {mode.value!r}, which installs "
                        f"{active} only; the EFA device plugin and DRANET never run together "
                        f"(they would hand the same EFA devices to two pods). Remove {key}.{other} "
                        f"or switch with -c efaMode={'dranet' if other == 'dranet' else 'device-plugin'}"
                    )
        manifest = fields["mpi_operator_manifest"]
        if manifest is not None and (not isinstance(manifest, str) or not manifest):
            problems.add(f"{name('mpi_operator_manifest')}: {manifest!r} is not a file path")
        return out


#: IPv4 addresses of one network interface of the large Nitro instance types (EC2
#: ``NetworkInfo.Ipv4AddressesPerInterface``: 50 for m7g.xlarge and up to the 48xlarge
#: GPU types; check yours with ``aws ec2 describe-instance-types``): the unit in which the
#: VPC CNI takes addresses without prefix delegation, keeping one interface's worth free
#: (``WARM_ENI_TARGET`` 1, its default).
ENI_IPV4_ADDRESSES = 50
#: Addresses of one delegated prefix (/28; EC2 user guide, ec2-prefix-eni).
PREFIX_ADDRESSES = 16
#: Pods of a GPU node that take a VPC address (not host network), as planned here: the GPU
#: platform's DaemonSets (feature discovery, DCGM exporter, DRA kubelet plugin, CloudWatch
#: agent, ...) and the workload pods (one per GPU or fewer), with room to spare. An
#: estimate: ``VpcCniConfig.addresses_per_node`` takes another count.
GPU_NODE_PODS = 16


@dataclass(frozen=True, kw_only=True, slots=True)
class VpcCniConfig(SelfValidating):
    """``vpcCni``: settings of the Amazon VPC CNI (the ``vpc-cni`` EKS add-on's ``env``
    configuration values: ``ENABLE_PREFIX_DELEGATION``, ``WARM_PREFIX_TARGET``,
    ``WARM_IP_TARGET``, ``MINIMUM_IP_TARGET``; the aws/amazon-vpc-cni-k8s README and its
    "prefix-and-ip-target" page). Only the settings given are written; the others keep the
    add-on's defaults (no prefix delegation, ``WARM_ENI_TARGET`` 1).

    Checks itself: a boolean and whole numbers of 0 or more; ``warmPrefixTarget`` only with
    prefix delegation; not together with ``warmIpTarget`` / ``minimumIpTarget`` (they
    override it, so it would be ignored); with prefix delegation, neither
    ``warmPrefixTarget`` 0 nor both IP targets 0 (not supported by the CNI: no warm pool)."""

    CONTEXT_KEYS: ClassVar[Mapping[str, str]] = {
        "prefix_delegation": "prefixDelegation",
        "warm_prefix_target": "warmPrefixTarget",
        "warm_ip_target": "warmIpTarget",
        "minimum_ip_target": "minimumIpTarget",
    }
    #: The add-on's env variable of each field.
    ENV: ClassVar[Mapping[str, str]] = {
        "prefix_delegation": "ENABLE_PREFIX_DELEGATION",
        "warm_prefix_target": "WARM_PREFIX_TARGET",
        "warm_ip_target": "WARM_IP_TARGET",
        "minimum_ip_target": "MINIMUM_IP_TARGET",
    }

    #: Assign /28 prefixes instead of single addresses to the node's interfaces. ``None``:
    #: not set (the CNI's default, off).
    prefix_delegation: bool | None = None
    #: Free prefixes kept per node (prefix delegation only; the CNI's default is 1).
    warm_prefix_target: int | None = None
    #: Free addresses kept per node.
    warm_ip_target: int | None = None
    #: Addresses a node holds at least.
    minimum_ip_target: int | None = None

    @property
    def env(self) -> dict[str, str]:
        """The add-on's ``env`` configuration values (strings, as its schema wants)."""
        out: dict[str, str] = {}
        for attr, var in self.ENV.items():
            value = getattr(self, attr)
            if value is not None:
                out[var] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return out

    def to_context(self) -> dict[str, bool | int]:
        """The ``vpcCni`` cdk.json value of these settings (the fields given)."""
        return {
            key: getattr(self, attr)
            for attr, key in self.CONTEXT_KEYS.items()
            if getattr(self, attr) is not None
        }

    def addresses_per_node(self, pods: int = GPU_NODE_PODS) -> int:
        """The subnet addresses a node with ``pods`` pod addresses holds under these
        settings (the node's own address included; efa-only interfaces take none):

        - prefix delegation: /28 prefixes for the pods plus ``warmPrefixTarget`` (1) free, or,
          with IP targets, enough prefixes for max(pods + warmIpTarget, minimumIpTarget);
        - otherwise, with IP targets: max(pods + warmIpTarget, minimumIpTarget) addresses
          and the primary address of each interface they take;
        - otherwise (the CNI's default): whole interfaces of :data:`ENI_IPV4_ADDRESSES`,
          one more than the pods fill (``WARM_ENI_TARGET`` 1)."""
        targets = self.warm_ip_target is not None or self.minimum_ip_target is not None
        wanted = max(pods + (self.warm_ip_target or 0), self.minimum_ip_target or 0)
        if self.prefix_delegation:
            if targets:
                prefixes = -(-wanted // PREFIX_ADDRESSES)
            else:
                warm = 1 if self.warm_prefix_target is None else self.warm_prefix_target
                prefixes = -(-pods // PREFIX_ADDRESSES) + warm
            return 1 + PREFIX_ADDRESSES * max(prefixes, 1)
        if targets:
            return wanted + max(1, -(-wanted // (ENI_IPV4_ADDRESSES - 1)))
        return ENI_IPV4_ADDRESSES * (-(-pods // (ENI_IPV4_ADDRESSES - 1)) + 1)

    @classmethod
    def _checked(cls, fields: dict[str, Any], name: Naming, problems: Problems) -> dict[str, Any]:
        example = '{"prefixDelegation":true,"warmPrefixTarget":1}'
        delegation = fields["prefix_delegation"]
        if delegation is not None and delegation is not INVALID and not isinstance(delegation, bool):
            problems.add(
                f"{name('prefix_delegation')}: {delegation!r} is not a boolean (true or false)"
                + name.example("vpcCni", example)
            )
        good: dict[str, int] = {}
        for attr in ("warm_prefix_target", "warm_ip_target", "minimum_ip_target"):
            value = fields[attr]
            if value is None or value is INVALID:
                continue
            if not _is_int(value) or value < 0:
                problems.add(f"{name(attr)}: {value!r} is not a whole number of 0 or more")
            else:
                good[attr] = value
        prefix = fields["warm_prefix_target"]
        if prefix is not None and delegation is not True:
            problems.add(
                f"{name('warm_prefix_target')}: {prefix!r} applies only with "
                f"{name('prefix_delegation')} true (it counts free /28 prefixes); remove it or "
                "turn prefix delegation on" + name.example("vpcCni", example)
            )
        ips = [a for a in ("warm_ip_target", "minimum_ip_target") if fields[a] is not None]
        if prefix is not None and ips:
            problems.add(
                f"{name('warm_prefix_target')}: given with {' and '.join(name(a) for a in ips)}, "
                "which override it (the CNI then ignores it); give the prefix target or the IP "
                "targets, not both"
            )
        if delegation is True:
            if good.get("warm_prefix_target") == 0:
                problems.add(
                    f"{name('warm_prefix_target')}: 0 is not supported with prefix delegation (no "
                    "warm prefix: every new pod waits for EC2); use 1 or more"
                )
            if ips and all(good.get(a) == 0 for a in ("warm_ip_target", "minimum_ip_target")):
                problems.add(
                    f"{name.entry('warm_ip_target', 'minimum_ip_target')}: warmIpTarget and "
                    "minimumIpTarget both 0 are not supported with prefix delegation (no warm "
                    "pool); give 1 or more to either"
                )
        return fields


@dataclass(frozen=True, kw_only=True, slots=True)
class EnvironmentConfig(SelfValidating):
    """Everything ``app.py`` reads from context. Build with :meth:`from_context`, or
    directly in Python (it then checks its fields and raises one ``ConfigurationError``)."""

    CONTEXT_KEYS: ClassVar[Mapping[str, str]] = {
        "ultraservers": "ultraServers",
        "availability_zone": "availabilityZone",
        "kubernetes_version": "kubernetesVersion",
        "efa_layout": "efaLayout",
        "vpc_id": "vpcId",
        "ultraserver_subnet_ids": "ultraServerSubnetIds",
        "admin_principal_arn": "adminPrincipalArn",
        "endpoint_access": "endpointAccess",
        "public_access_cidrs": "publicAccessCidrs",
        "region": "region",
        "account": "account",
        "cluster_name": "clusterName",
        "validation_jobs": "validationJobs",
        "node_repair": "nodeRepair",
        "notification_email": "notificationEmail",
        "observability": "observability",
        "reserved_capacity": "reservedCapacity",
        "burst_capacity": "burstCapacity",
        "capacity_block_end": "capacityBlockEnd",
        "runai": "runai",
        "control_plane_tier": "controlPlaneTier",
        "vpc_cni": "vpcCni",
        "ultraserver_subnet_cidr": "ultraServerSubnetCidr",
        "kueue": "kueue",
        "queues": "queues",
        "ultraserver_shards": "ultraServerShards",
    }

    ultraservers: tuple[UltraServerSpec, ...]
    availability_zone: str
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    efa_layout: EfaLayout = EfaLayout.PER_GPU
    vpc_id: str | None = None
    #: ``ultraServerSubnetIds``: with ``vpc_id``, the subnets of that VPC in
    #: ``availability_zone`` that the UltraServer node groups use (required then; a new VPC
    #: gets a subnet of its own, so they are refused without ``vpc_id``).
    ultraserver_subnet_ids: tuple[str, ...] = ()
    admin_principal_arn: str | None = None
    endpoint_access: EndpointAccess = EndpointAccess.PUBLIC_AND_PRIVATE
    #: ``publicAccessCidrs``: IPv4 CIDRs allowed to the public endpoint; ``None``: EKS's
    #: default, every address (0.0.0.0/0; synth warns).
    public_access_cidrs: tuple[str, ...] | None = None
    region: str | None = None
    account: str | None = None
    cluster_name: str | None = None
    addons: AddonsConfig = field(default_factory=AddonsConfig)
    validation_jobs: bool = False
    #: ``nodeRepair``: EKS node auto repair on every GPU node group (constructs/
    #: gpu_nodegroup.py ``node_repair``, docs/node-health.md). Default ``True``.
    node_repair: bool = True
    notification_email: str | None = None
    #: ``observability``: the CloudWatch Observability add-on, GPU dashboard and alarms.
    observability: bool = True
    #: ``reservedCapacity``: ODCRs and Capacity Blocks of other GPU types (capacity.py).
    reserved_capacity: tuple[ReservedCapacitySpec, ...] = ()
    #: ``burstCapacity``: Karpenter's Spot-first GPU pool; ``None`` when not configured.
    burst_capacity: BurstCapacitySpec | None = None
    #: ``capacityBlockEnd``: cordon, mark and optionally drain the nodes of ending blocks.
    capacity_block_end: CapacityBlockEndConfig = field(default_factory=CapacityBlockEndConfig)
    #: ``runai``: NVIDIA Run:ai's cluster component (runai_config.py); ``None``: no Run:ai.
    runai: RunAiConfig | None = None
    #: ``controlPlaneTier``: the EKS Provisioned Control Plane tier; ``None``: not set (the
    #: template names none and EKS runs ``standard``).
    control_plane_tier: ControlPlaneTier | None = None
    #: ``vpcCni``: VPC CNI settings (prefix delegation, warm targets); ``None``: the
    #: add-on's defaults.
    vpc_cni: VpcCniConfig | None = None
    #: ``ultraServerSubnetCidr``: CIDR of the new VPC's UltraServer subnet; ``None``:
    #: 10.0.192.0/18 (network.py ``ULTRASERVER_SUBNET_CIDR``).
    ultraserver_subnet_cidr: str | None = None
    #: ``kueue``: install Kueue, its Topology, the GPU flavors and the queues
    #: (docs/queues.md). Default ``True``.
    kueue: bool = True
    #: ``queues``: the teams' queues (``queues.QueueSpec``); none: one ``default`` queue
    #: with every GPU.
    queues: tuple[QueueSpec, ...] = ()
    #: ``ultraServerShards``: nested stacks the UltraServer node groups spread over, one of
    #: ``sharding.ULTRASERVER_SHARD_COUNTS``; fixed at creation (docs/sharding.md).
    ultraserver_shards: int = DEFAULT_ULTRASERVER_SHARDS

    @property
    def uses_example_reservation(self) -> bool:
        return any(u.capacity_reservation_id == EXAMPLE_RESERVATION_ID for u in self.ultraservers)

    @classmethod
    def from_context(
        cls,
        get: Callable[[str], Any],
        *,
        instance_types: Mapping[str, GpuInstanceType] = INSTANCE_TYPES,
    ) -> EnvironmentConfig:
        """Reads the configuration with ``get(key)`` (e.g. ``app.node.try_get_context``).
        ``instance_types``: the table ``reservedCapacity`` entries are checked against and
        resolved from (``instance_types.with_instance_types(...)`` for your own types)."""
        from eks_ultraserver.config import read_environment

        return read_environment(get, instance_types=instance_types)

    @classmethod
    def from_mapping(
        cls,
        context: Mapping[str, Any],
        *,
        instance_types: Mapping[str, GpuInstanceType] = INSTANCE_TYPES,
    ) -> EnvironmentConfig:
        return cls.from_context(context.get, instance_types=instance_types)

    @classmethod
    def _checked(cls, fields: dict[str, Any], name: Naming, problems: Problems) -> dict[str, Any]:
        out = dict(fields)
        for attr in ("vpc_id", "admin_principal_arn", "region", "account", "notification_email"):
            if out[attr] == "":
                out[attr] = None
        for attr in ("ultraservers", "reserved_capacity", "public_access_cidrs", "ultraserver_subnet_ids"):
            if isinstance(out[attr], list):
                out[attr] = tuple(out[attr])
        if isinstance(out["kubernetes_version"], KubernetesVersion):
            out["kubernetes_version"] = str(out["kubernetes_version"])
        version = _check_kubernetes_version(out["kubernetes_version"], name, problems)
        _check_zone(out["availability_zone"], name, problems)
        _check_list(out["ultraservers"], UltraServerSpec, name("ultraservers"), problems, required=True)
        if out["ultraservers"] is not INVALID and isinstance(out["ultraservers"], tuple):
            if not out["ultraservers"]:
                problems.add(
                    f"{name('ultraservers')}: the list is empty; give at least one Capacity Block"
                    + name.example(name("ultraservers"), EXAMPLE_ULTRASERVERS)
                )
            inner = UltraServerSpec.CONTEXT_KEYS if name.context else {}
            _check_unique(
                [u for u in out["ultraservers"] if isinstance(u, UltraServerSpec)],
                name("ultraservers"),
                {inner.get(a, a): a for a in ("capacity_reservation_id", "name")},
                "each Capacity Block is listed once, with a unique name",
                problems,
            )
        for attr, enum_type in (("efa_layout", EfaLayout), ("endpoint_access", EndpointAccess)):
            found = parse_enum(name(attr), out[attr], enum_type, problems)
            out[attr] = found or out[attr]
        access = out["endpoint_access"] if isinstance(out["endpoint_access"], EndpointAccess) else None
        if out["public_access_cidrs"] is not INVALID:
            public_access_cidr_problems(
                out["public_access_cidrs"],
                endpoint_access=access,
                keys=(name("public_access_cidrs"), name.key("endpoint_access")),
                problems=problems,
            )
        for attr, pattern, example in (
            ("vpc_id", VPC_ID_RE, "vpc-0123456789abcdef0"),
            ("admin_principal_arn", IAM_PRINCIPAL_ARN_RE, "arn:aws:iam::123456789012:role/Admin"),
            ("region", REGION_RE, "us-east-1"),
            ("account", ACCOUNT_RE, "123456789012"),
            ("notification_email", EMAIL_RE, "ops@example.com"),
        ):
            value = out[attr]
            if value is not None and not matches(pattern, value):
                problems.add(f"{name(attr)}: {value!r} is not valid" + name.example(name(attr), example))
        subnets = out["ultraserver_subnet_ids"]
        if subnets is not INVALID:
            if not isinstance(subnets, tuple) or not all(matches(SUBNET_ID_RE, s) for s in subnets):
                problems.add(
                    f"{name('ultraserver_subnet_ids')}: {subnets!r} is not a list of subnet ids"
                    + name.example(name("ultraserver_subnet_ids"), '["subnet-0123456789abcdef0"]')
                )
            elif out["vpc_id"] and not subnets:
                problems.add(
                    f"{name('ultraserver_subnet_ids')}: required with {name.key('vpc_id')}: give the "
                    "subnets of that VPC in the reservations' zone for the UltraServer node groups"
                    + name.example(name("ultraserver_subnet_ids"), '["subnet-0123456789abcdef0"]')
                )
            elif subnets and not out["vpc_id"]:
                problems.add(
                    f"{name('ultraserver_subnet_ids')}: {list(subnets)!r} given without "
                    f"{name.key('vpc_id')}: a new VPC gets its own UltraServer subnet; set both or neither"
                )
        cluster_name = out["cluster_name"]
        if cluster_name is not None and not matches(EKS_CLUSTER_NAME_RE, cluster_name):
            problems.add(
                f"{name('cluster_name')}: {cluster_name!r} is not a valid EKS cluster name (1-100 "
                "letters, digits, '-', '_', starting with a letter or digit)"
            )
        if out["validation_jobs"] is not INVALID and not isinstance(out["validation_jobs"], bool):
            problems.add(
                f"{name('validation_jobs')}: {out['validation_jobs']!r} is not a boolean"
                + name.example(name("validation_jobs"), "true")
            )
        if out["validation_jobs"] is True and isinstance(out["ultraservers"], tuple):
            validation_jobs_problems(len(out["ultraservers"]), name("validation_jobs"), problems)
        if out["observability"] is not INVALID and not isinstance(out["observability"], bool):
            problems.add(
                f"{name('observability')}: {out['observability']!r} is not a boolean"
                + name.example(name("observability"), "false")
            )
        if out["node_repair"] is not INVALID and not isinstance(out["node_repair"], bool):
            problems.add(
                f"{name('node_repair')}: {out['node_repair']!r} is not a boolean"
                + name.example(name("node_repair"), "false")
            )
        addons = out["addons"]
        if addons is not INVALID and not isinstance(addons, AddonsConfig):
            problems.add(f"{name('addons')}: {addons!r} is not an AddonsConfig")
        elif (
            isinstance(addons, AddonsConfig)
            and addons.efa_mode is EfaMode.DRANET
            and version is not None
            and version < DRANET_MIN_KUBERNETES
        ):
            if name.context:
                fix = f"use efaMode 'device-plugin' or -c kubernetesVersion={DRANET_MIN_KUBERNETES_VERSION}"
            else:
                fix = f"use efa_mode 'device-plugin' or kubernetes_version {DRANET_MIN_KUBERNETES_VERSION!r}"
            problems.add(
                f"{'efaMode' if name.context else 'addons.efa_mode'}: 'dranet' needs Kubernetes "
                f"{DRANET_MIN_KUBERNETES_VERSION} or later, but {name.key('kubernetes_version')} is "
                f"{out['kubernetes_version']!r}; {fix}"
            )
        _check_list(out["reserved_capacity"], ReservedCapacitySpec, name("reserved_capacity"), problems)
        if isinstance(out["reserved_capacity"], tuple):
            _check_unique(
                [r for r in out["reserved_capacity"] if isinstance(r, ReservedCapacitySpec)],
                name("reserved_capacity"),
                {"name": "name", "reservation": "target"},
                "list each reservation once, with a unique name",
                problems,
            )
        burst = out["burst_capacity"]
        if burst is not None and burst is not INVALID and not isinstance(burst, BurstCapacitySpec):
            problems.add(f"{name('burst_capacity')}: {burst!r} is not a BurstCapacitySpec")
        shards = out["ultraserver_shards"]
        key = name("ultraserver_shards")
        if (
            shards is not INVALID
            and shard_count_problems(shards, key, problems, example=name.example(key, "128"))
            and isinstance(out["ultraservers"], tuple)
        ):
            fleet_problems(
                [u.name for u in out["ultraservers"] if isinstance(u, UltraServerSpec)],
                shards,
                key,
                problems,
                example=lambda fits: name.example(key, str(fits)),
            )
        ending = out["capacity_block_end"]
        if ending is not INVALID and not isinstance(ending, CapacityBlockEndConfig):
            problems.add(f"{name('capacity_block_end')}: {ending!r} is not a CapacityBlockEndConfig")
        runai = out["runai"]
        if runai is not INVALID and runai is not None and not isinstance(runai, RunAiConfig):
            problems.add(f"{name('runai')}: {runai!r} is not a runai_config.RunAiConfig")
        elif (
            isinstance(runai, RunAiConfig)
            and isinstance(out["region"], str)
            and matches(REGION_RE, out["region"])
        ):
            secret_partition = secret_arn_partition(runai.client_secret_arn)
            stack_partition = partition_of_region(out["region"])
            if secret_partition is not None and secret_partition != stack_partition:
                problems.add(
                    f"{name('runai')}.clientSecretArn: {runai.client_secret_arn!r} is in partition "
                    f"{secret_partition!r}, but {name('region')} {out['region']!r} is in {stack_partition!r}; "
                    "CloudFormation resolves the secret in the stack's partition: give a secret there"
                )
        if out["control_plane_tier"] is not None:
            tier = parse_enum(
                name("control_plane_tier"), out["control_plane_tier"], ControlPlaneTier, problems
            )
            out["control_plane_tier"] = tier or out["control_plane_tier"]
        cni = out["vpc_cni"]
        if cni is not None and cni is not INVALID and not isinstance(cni, VpcCniConfig):
            problems.add(f"{name('vpc_cni')}: {cni!r} is not a VpcCniConfig")
        cidr = out["ultraserver_subnet_cidr"]
        if cidr is not None and cidr is not INVALID:
            if not is_ipv4_cidr(cidr):
                problems.add(
                    f"{name('ultraserver_subnet_cidr')}: {cidr!r} is not an IPv4 CIDR block"
                    + name.example(name("ultraserver_subnet_cidr"), "10.1.0.0/16")
                )
            elif out["vpc_id"]:
                problems.add(
                    f"{name('ultraserver_subnet_cidr')}: {cidr!r} given with {name.key('vpc_id')}: an "
                    f"existing VPC gets no new subnet; size your {name.key('ultraserver_subnet_ids')} "
                    "subnets instead"
                )
        _check_queues(out, name, problems)
        return out


def _check_queues(out: dict[str, Any], name: Naming, problems: Problems) -> None:
    """``kueue`` and ``queues``, then, when the fleet is known, the flavors and GPUs the
    queues name (``queues.queue_problems``)."""
    out["queues"] = check_queues(out["kueue"], out["queues"], name, problems)
    queues, ultraservers, reserved = out["queues"], out["ultraservers"], out["reserved_capacity"]
    burst = out["burst_capacity"]
    if not (
        isinstance(queues, tuple)
        and queues
        and all(isinstance(q, QueueSpec) for q in queues)
        and isinstance(ultraservers, tuple)
        and all(isinstance(u, UltraServerSpec) for u in ultraservers)
        and isinstance(reserved, tuple)
        and all(isinstance(r, ReservedCapacitySpec) for r in reserved)
        and (burst is None or isinstance(burst, BurstCapacitySpec))
    ):
        return
    flavors = fleet_flavors(
        ultraserver_gpus=sum(u.type.gpu_count for u in ultraservers),
        reserved_capacity=reserved,
        burst_capacity=burst,
    )
    problems.extend(queue_problems(queues, flavors, key=name("queues")))


def _check_kubernetes_version(value: object, name: Naming, problems: Problems) -> KubernetesVersion | None:
    """The version when supported; else a problem saying why (too old, or too new)."""
    if value in SUPPORTED_KUBERNETES_VERSIONS:
        return KubernetesVersion.parse(value)
    version = KubernetesVersion.of(value)
    why = ""
    if version is not None:
        why = (
            f" (DRA needs {MIN_KUBERNETES} or later)"
            if version < MIN_KUBERNETES
            else (" (newer than this release of the library knows)")
        )
    problems.add(
        f"{name('kubernetes_version')}: {value!r} is not supported{why}; use one of "
        f"{', '.join(SUPPORTED_KUBERNETES_VERSIONS)}"
        + name.example(name("kubernetes_version"), DEFAULT_KUBERNETES_VERSION)
    )
    return None


def _check_zone(zone: object, name: Naming, problems: Problems) -> None:
    key = name("availability_zone")
    if zone is None or zone == "":
        problems.add(
            f"{key}: missing; give the zone of the Capacity Blocks (a Local Zone such as "
            "us-east-1-dfw-2a is allowed)" + name.example(key, "us-east-1-dfw-2a")
        )
    elif zone is not INVALID and not matches(AVAILABILITY_ZONE_RE, zone):
        problems.add(
            f"{key}: {zone!r} is not an Availability Zone or Local Zone name"
            + name.example(key, "us-east-1-dfw-2a")
        )


def _check_list(value: object, kind: type, key: str, problems: Problems, *, required: bool = False) -> None:
    """A tuple of ``kind`` objects (the reader passes INVALID for a list it reported)."""
    if value is INVALID or (value is None and not required):
        return
    if not isinstance(value, tuple):
        problems.add(f"{key}: {value!r} is not a list of {kind.__name__}")
        return
    for i, item in enumerate(value):
        if not isinstance(item, kind):
            problems.add(f"{key}[{i}]: {item!r} is not a {kind.__name__}")


def _check_unique(
    items: list[Any], key: str, attrs: Mapping[str, str], hint: str, problems: Problems
) -> None:
    """Each of ``attrs`` (shown name -> attribute) has a different value in every item."""
    for label, attr in attrs.items():
        seen: dict[object, int] = {}
        for i, item in enumerate(items):
            v = getattr(item, attr)
            if v in seen:
                problems.add(
                    f"{key}: {label} {v!r} appears more than once (entries {seen[v]} and {i}); {hint}"
                )
            seen.setdefault(v, i)
