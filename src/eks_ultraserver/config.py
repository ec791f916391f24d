"""The typed configuration of an environment, read from ``cdk.json`` context.

Every key can be overridden with ``cdk synth -c key=value``; values given with ``-c`` arrive
as strings, so lists, objects, numbers and booleans are also accepted as JSON text.

Reading never raises on the first problem: it collects every problem (bad key, the value
given, what is allowed, an example ``-c`` flag) and raises one ``ConfigurationError``.
This module imports neither aws_cdk nor cdk8s: the command-line tool uses it too.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eks_ultraserver.capacity import BurstCapacitySpec, ReservedCapacitySpec, read_capacity
from eks_ultraserver.model import (
    ConfigurationError,
    EfaLayout,
    Problems,
    UltraServerType,
    describe_reservation_id_problem,
    is_dns1123_label,
    is_reservation_id,
    parse_enum,
    parse_ultraserver_type,
)
from eks_ultraserver.versions import (
    DEFAULT_KUBERNETES_VERSION,
    DRANET_MIN_KUBERNETES_VERSION,
    SUPPORTED_KUBERNETES_VERSIONS,
    parse_kubernetes_version,
)

#: The reservation id shipped in cdk.json so that synth works on a fresh machine.
EXAMPLE_RESERVATION_ID = "cr-0123456789abcdef0"

_AZ_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]?(-[a-z0-9]+-\d+)?[a-z]$")
_VPC_ID_RE = re.compile(r"^vpc-([0-9a-f]{8}|[0-9a-f]{17})$")
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_REGION_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_ARN_RE = re.compile(r"^arn:aws[a-z-]*:(iam|sts)::\d{12}:[A-Za-z0-9+=,.@_/:-]+$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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


class EndpointAccess(enum.StrEnum):
    PRIVATE = "private"
    PUBLIC = "public"
    PUBLIC_AND_PRIVATE = "public-and-private"


@dataclass(frozen=True, kw_only=True, slots=True)
class UltraServerSpec:
    """One Capacity Block: ``{"capacityReservationId": ..., "type": ..., "name": ...}``."""

    capacity_reservation_id: str
    type: UltraServerType
    name: str

    @property
    def instance_count(self) -> int:
        return self.type.instance_count


@dataclass(frozen=True, kw_only=True, slots=True)
class AddonsConfig:
    """GPU platform add-ons (GPU Operator, DRA driver, EFA, MPI operator)."""

    dra_driver_line: DraDriverLine = DraDriverLine.KUBERNETES_SIGS
    efa_mode: EfaMode = EfaMode.DEVICE_PLUGIN
    #: component key -> chart version override, e.g. {"gpuOperator": "v25.3.4"}
    versions: Mapping[str, str] = field(default_factory=dict)
    #: component key -> extra Helm values, deep-merged over the library's
    values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: a local copy of the MPI operator release manifest (instead of downloading it)
    mpi_operator_manifest: str | None = None


#: Component keys of ``addonVersions`` / ``addonValues``.
ADDON_KEYS = ("gpuOperator", "draDriver", "efaDevicePlugin", "dranet", "mpiOperator")


@dataclass(frozen=True, kw_only=True, slots=True)
class EnvironmentConfig:
    """Everything ``app.py`` reads from context. Build with :meth:`from_context`."""

    ultraservers: tuple[UltraServerSpec, ...]
    availability_zone: str
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    efa_layout: EfaLayout = EfaLayout.PER_GPU
    vpc_id: str | None = None
    admin_principal_arn: str | None = None
    endpoint_access: EndpointAccess = EndpointAccess.PUBLIC_AND_PRIVATE
    region: str | None = None
    account: str | None = None
    cluster_name: str | None = None
    addons: AddonsConfig = field(default_factory=AddonsConfig)
    validation_jobs: bool = False
    notification_email: str | None = None
    #: ``reservedCapacity``: ODCRs and Capacity Blocks of other GPU types (capacity.py).
    reserved_capacity: tuple[ReservedCapacitySpec, ...] = ()
    #: ``burstCapacity``: Karpenter's Spot-first GPU pool; ``None`` when not configured.
    burst_capacity: BurstCapacitySpec | None = None

    @property
    def uses_example_reservation(self) -> bool:
        return any(u.capacity_reservation_id == EXAMPLE_RESERVATION_ID for u in self.ultraservers)

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> EnvironmentConfig:
        """Reads the configuration with ``get(key)`` (e.g. ``app.node.try_get_context``)."""
        return _read(get)

    @classmethod
    def from_mapping(cls, context: Mapping[str, Any]) -> EnvironmentConfig:
        return _read(context.get)


# --------------------------------------------------------------------------------------


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

    Shared by the cdk.json reader (camelCase keys) and ``UltraServerEnvironment``
    (argument names)."""
    rid_key, type_key, name_key = keys
    if not is_reservation_id(reservation_id):
        problems.add(describe_reservation_id_problem(f"{where}.{rid_key}", reservation_id))
    us_type = parse_ultraserver_type(f"{where}.{type_key}", type, problems)
    if not is_dns1123_label(name, max_length=40):
        problems.add(
            f"{where}.{name_key}: {name!r} is not a DNS-1123 label of at most 40 characters "
            "(lowercase letters, digits, '-')"
        )
    return us_type


def _example(key: str, value: str) -> str:
    return f"e.g. -c {key}='{value}'"


def _json_or_value(raw: Any) -> Any:
    """Values from ``-c`` arrive as strings: decode JSON text, keep anything else."""
    if isinstance(raw, str):
        text = raw.strip()
        if text[:1] in "[{" or text in ("true", "false") or re.fullmatch(r"-?\d+", text or "x"):
            return json.loads(text)
    return raw


def _read(get: Callable[[str], Any]) -> EnvironmentConfig:
    problems = Problems()
    values: dict[str, Any] = {}

    def decoded(key: str, example: str) -> Any:
        raw = get(key)
        try:
            return _json_or_value(raw)
        except json.JSONDecodeError as err:
            problems.add(
                f"{key}: {raw!r} is not valid JSON ({err.msg} at character {err.pos}); {_example(key, example)}"
            )
            return None

    # kubernetesVersion
    k8s = get("kubernetesVersion")
    if k8s is not None:
        k8s = str(k8s)
        if k8s not in SUPPORTED_KUBERNETES_VERSIONS:
            why = ""
            try:
                if parse_kubernetes_version(k8s) < parse_kubernetes_version(SUPPORTED_KUBERNETES_VERSIONS[0]):
                    why = f" (DRA needs {SUPPORTED_KUBERNETES_VERSIONS[0]} or later)"
                else:
                    why = " (newer than this release of the library knows)"
            except ValueError:
                pass
            problems.add(
                f"kubernetesVersion: {k8s!r} is not supported{why}; use one of "
                f"{', '.join(SUPPORTED_KUBERNETES_VERSIONS)}; {_example('kubernetesVersion', DEFAULT_KUBERNETES_VERSION)}"
            )
        else:
            values["kubernetes_version"] = k8s
    kubernetes_version = values.get("kubernetes_version", DEFAULT_KUBERNETES_VERSION)

    # availabilityZone
    az = get("availabilityZone")
    if az is None or az == "":
        problems.add(
            "availabilityZone: missing; give the zone of the Capacity Blocks (a Local Zone "
            f"such as us-east-1-dfw-2a is allowed); {_example('availabilityZone', 'us-east-1-dfw-2a')}"
        )
    elif not isinstance(az, str) or not _AZ_RE.match(az):
        problems.add(
            f"availabilityZone: {az!r} is not an Availability Zone or Local Zone name; "
            f"{_example('availabilityZone', 'us-east-1-dfw-2a')}"
        )
    else:
        values["availability_zone"] = az

    # ultraServers
    example_us = json.dumps(
        [{"capacityReservationId": EXAMPLE_RESERVATION_ID, "type": "u-p6e-gb200x72", "name": "us-1"}],
        separators=(",", ":"),
    )
    servers = decoded("ultraServers", example_us)
    specs: list[UltraServerSpec] = []
    if servers is None and get("ultraServers") is None:
        problems.add(
            f"ultraServers: missing; give one entry per Capacity Block; {_example('ultraServers', example_us)}"
        )
    elif servers is not None and not isinstance(servers, list):
        problems.add(f"ultraServers: {servers!r} is not a list; {_example('ultraServers', example_us)}")
    elif isinstance(servers, list):
        if not servers:
            problems.add(
                f"ultraServers: the list is empty; give at least one Capacity Block; {_example('ultraServers', example_us)}"
            )
        for i, entry in enumerate(servers):
            where = f"ultraServers[{i}]"
            if not isinstance(entry, dict):
                problems.add(f"{where}: {entry!r} is not an object; {_example('ultraServers', example_us)}")
                continue
            unknown = sorted(set(entry) - {"capacityReservationId", "type", "name"})
            if unknown:
                problems.add(
                    f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: 'capacityReservationId', 'type', 'name'"
                )
            rid = entry.get("capacityReservationId")
            name = entry.get("name", f"us-{i + 1}")
            found = len(problems)
            us_type = ultraserver_entry_problems(
                where,
                reservation_id=rid,
                type=entry.get("type"),
                name=name,
                keys=("capacityReservationId", "type", "name"),
                problems=problems,
            )
            if len(problems) == found and us_type is not None:
                specs.append(UltraServerSpec(capacity_reservation_id=rid, type=us_type, name=name))
        for label, attr in (("capacityReservationId", "capacity_reservation_id"), ("name", "name")):
            seen: dict[str, int] = {}
            for i, spec in enumerate(specs):
                v = getattr(spec, attr)
                if v in seen:
                    problems.add(
                        f"ultraServers: {label} {v!r} appears more than once (entries {seen[v]} and {i}); each Capacity Block is listed once, with a unique name"
                    )
                seen.setdefault(v, i)
    values["ultraservers"] = tuple(specs)

    # efaLayout
    if get("efaLayout") is not None:
        layout = parse_enum("efaLayout", get("efaLayout"), EfaLayout, problems)
        if layout:
            values["efa_layout"] = layout

    # endpointAccess
    if get("endpointAccess") is not None:
        access = parse_enum("endpointAccess", get("endpointAccess"), EndpointAccess, problems)
        if access:
            values["endpoint_access"] = access

    # simple strings
    for key, attr, regex, example in (
        ("vpcId", "vpc_id", _VPC_ID_RE, "vpc-0123456789abcdef0"),
        ("adminPrincipalArn", "admin_principal_arn", _ARN_RE, "arn:aws:iam::123456789012:role/Admin"),
        ("region", "region", _REGION_RE, "us-east-1"),
        ("account", "account", _ACCOUNT_RE, "123456789012"),
        ("notificationEmail", "notification_email", _EMAIL_RE, "ops@example.com"),
    ):
        raw = get(key)
        if raw is None or raw == "":
            continue
        if not isinstance(raw, str) or not regex.match(raw):
            problems.add(f"{key}: {raw!r} is not valid; {_example(key, example)}")
        else:
            values[attr] = raw

    cluster_name = get("clusterName")
    if cluster_name is not None:
        if not isinstance(cluster_name, str) or not re.fullmatch(
            r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}", cluster_name
        ):
            problems.add(
                f"clusterName: {cluster_name!r} is not a valid EKS cluster name (1-100 letters, digits, '-', '_', starting with a letter or digit)"
            )
        else:
            values["cluster_name"] = cluster_name

    # validationJobs
    vj = decoded("validationJobs", "true")
    if vj is not None:
        if not isinstance(vj, bool):
            problems.add(
                f"validationJobs: {get('validationJobs')!r} is not a boolean; {_example('validationJobs', 'true')}"
            )
        else:
            values["validation_jobs"] = vj

    values["addons"] = _read_addons(get, decoded, problems, kubernetes_version)
    values["reserved_capacity"], values["burst_capacity"] = read_capacity(get, problems, kubernetes_version)

    problems.raise_if_any("configuration (cdk.json context)")
    return EnvironmentConfig(**values)


def _read_addons(get, decoded, problems: Problems, kubernetes_version: str) -> AddonsConfig:
    out: dict[str, Any] = {}
    if get("draDriverLine") is not None:
        line = parse_enum("draDriverLine", get("draDriverLine"), DraDriverLine, problems)
        if line:
            out["dra_driver_line"] = line
    if get("efaMode") is not None:
        mode = parse_enum("efaMode", get("efaMode"), EfaMode, problems)
        if mode:
            out["efa_mode"] = mode
            if mode is EfaMode.DRANET and parse_kubernetes_version(
                kubernetes_version
            ) < parse_kubernetes_version(DRANET_MIN_KUBERNETES_VERSION):
                problems.add(
                    f"efaMode: 'dranet' needs Kubernetes {DRANET_MIN_KUBERNETES_VERSION} or later, but "
                    f"kubernetesVersion is {kubernetes_version!r}; use efaMode 'device-plugin' or "
                    f"-c kubernetesVersion={DRANET_MIN_KUBERNETES_VERSION}"
                )
    for key, attr, kind in (("addonVersions", "versions", str), ("addonValues", "values", dict)):
        example = (
            '{"gpuOperator":"v25.3.4"}'
            if kind is str
            else '{"gpuOperator":{"dcgmExporter":{"enabled":false}}}'
        )
        raw = decoded(key, example)
        if raw is None:
            continue
        if not isinstance(raw, dict):
            problems.add(f"{key}: {raw!r} is not an object; {_example(key, example)}")
            continue
        good = {}
        for comp, v in raw.items():
            if comp not in ADDON_KEYS:
                problems.add(f"{key}: unknown component {comp!r}; use one of {', '.join(ADDON_KEYS)}")
            elif not isinstance(v, kind):
                problems.add(
                    f"{key}.{comp}: {v!r} is not a {'string' if kind is str else 'object'}; {_example(key, example)}"
                )
            else:
                good[comp] = v
        out[attr] = good
    manifest = get("mpiOperatorManifest")
    if manifest is not None:
        if not isinstance(manifest, str) or not manifest:
            problems.add(f"mpiOperatorManifest: {manifest!r} is not a file path")
        else:
            out["mpi_operator_manifest"] = manifest
    return AddonsConfig(**out)


__all__ = [
    "ADDON_KEYS",
    "EXAMPLE_RESERVATION_ID",
    "AddonsConfig",
    "ConfigurationError",
    "DraDriverLine",
    "EfaMode",
    "EndpointAccess",
    "EnvironmentConfig",
    "UltraServerSpec",
]
