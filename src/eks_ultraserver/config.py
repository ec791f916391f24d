"""The typed configuration of an environment, read from ``cdk.json`` context.

Every key can be overridden with ``cdk synth -c key=value``; values given with ``-c`` arrive
as strings, so lists, objects, numbers and booleans are also accepted as JSON text.

Reading never raises on the first problem: it collects every problem (bad key, the value
given, what is allowed, an example ``-c`` flag) and raises one ``ConfigurationError``.
This module imports neither aws_cdk nor cdk8s: the command-line tool uses it too.
"""

from __future__ import annotations

import difflib
import enum
import ipaddress
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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

    @property
    def public(self) -> bool:
        return self is not EndpointAccess.PRIVATE


#: Every top-level ``cdk.json`` context key the library reads, with what it sets: the one
#: list of them. The reader refuses to read a key that is not here, README's configuration
#: table documents these, and synth warns about an unknown key close to one of them.
CONTEXT_KEYS: Mapping[str, str] = {
    "ultraServers": "one entry per UltraServer Capacity Block",
    "availabilityZone": "the reservations' zone (looked up when not set)",
    "kubernetesVersion": "the EKS Kubernetes version",
    "efaLayout": "EFA interfaces of the UltraServer nodes",
    "vpcId": "an existing VPC",
    "adminPrincipalArn": "the IAM role or user given cluster admin",
    "endpointAccess": "the cluster endpoint: private, public or both",
    "publicAccessCidrs": "the IPv4 CIDRs allowed to the public endpoint",
    "clusterName": "the EKS cluster name",
    "account": "the stack's account",
    "region": "the stack's Region",
    "validationJobs": "deploy the IMEX and nvbandwidth checks",
    "notificationEmail": "the Capacity Block events subscription",
    "draDriverLine": "the NVIDIA DRA driver chart line",
    "efaMode": "EFA device plugin or DRANET",
    "addonVersions": "GPU platform chart versions",
    "addonValues": "extra Helm values of the GPU platform charts",
    "mpiOperatorManifest": "a local MPI operator release manifest",
    "reservedCapacity": "ODCRs and Capacity Blocks of other GPU types",
    "burstCapacity": "Karpenter's Spot-first GPU pool",
}


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
    #: ``publicAccessCidrs``: IPv4 CIDRs allowed to the public endpoint; ``None``: EKS's
    #: default, every address (0.0.0.0/0; synth warns).
    public_access_cidrs: tuple[str, ...] | None = None
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


#: Ranges whose addresses never reach a public endpoint (RFC 6890 special-purpose IPv4
#: ranges): the EKS user guide (cluster-endpoint, config-cluster-endpoint) says a public
#: access CIDR block cannot include reserved addresses; the VPC reaches the private endpoint.
_NOT_PUBLIC_RANGES = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
#: What an endpoint open to the world looks like in ``publicAccessCidrs``.
OPEN_TO_THE_WORLD = "0.0.0.0/0"


def public_access_cidr_problems(
    cidrs: object,
    *,
    endpoint_access: EndpointAccess | None,
    keys: tuple[str, str],
    problems: Problems,
) -> None:
    """Checks the CIDRs allowed to the public endpoint, adding each problem under the given
    key names (``(cidrs_key, endpoint_access_key)``). ``cidrs`` is ``None`` when not set.

    Shared by the cdk.json reader (camelCase keys) and ``UltraServerEnvironment``
    (argument names). Rules: IPv4 CIDR blocks written as network/prefix, none inside a
    private or reserved range, at least one when given, and only with private access on
    as well: aws_eks_v2 restricts the public endpoint only for ``public-and-private``
    (``EndpointAccess.only_from``), because its kubectl handler then runs in the VPC and
    reaches the private endpoint."""
    key, access_key = keys
    if cidrs is None:
        return
    example = '["203.0.113.0/24"]'
    if isinstance(cidrs, str) or not isinstance(cidrs, (list, tuple)):
        problems.add(f"{key}: {cidrs!r} is not a list of IPv4 CIDR blocks, e.g. {example}")
        return
    if endpoint_access is EndpointAccess.PRIVATE:
        problems.add(
            f"{key}: given, but {access_key} is 'private' (there is no public endpoint); "
            f"remove {key} or use {access_key} 'public-and-private'"
        )
    elif endpoint_access is EndpointAccess.PUBLIC:
        problems.add(
            f"{key}: restricting the public endpoint needs private access too (CDK's kubectl "
            f"handler then reaches the cluster from the VPC); use {access_key} "
            "'public-and-private'"
        )
    if not cidrs and endpoint_access is not EndpointAccess.PRIVATE:
        problems.add(
            f"{key}: the list is empty, so nobody could reach the public endpoint; give at "
            f"least one IPv4 CIDR block, e.g. {example}, or use {access_key} 'private'"
        )
    for i, cidr in enumerate(cidrs):
        where = f"{key}[{i}]"
        if not isinstance(cidr, str) or "/" not in cidr:
            problems.add(
                f"{where}: {cidr!r} is not an IPv4 CIDR block (address/prefix, e.g. "
                "'203.0.113.0/24' or '203.0.113.5/32')"
            )
            continue
        try:
            network = ipaddress.IPv4Network(cidr)
        except ipaddress.AddressValueError:
            problems.add(f"{where}: {cidr!r} is not an IPv4 CIDR block (IPv4 clusters accept only IPv4)")
            continue
        except ValueError:
            try:
                fixed = ipaddress.IPv4Network(cidr, strict=False)
            except ValueError:
                problems.add(f"{where}: {cidr!r} is not an IPv4 CIDR block, e.g. '203.0.113.0/24'")
            else:
                problems.add(f"{where}: {cidr!r} has host bits set; write the network, {str(fixed)!r}")
            continue
        reserved = next((r for r in _NOT_PUBLIC_RANGES if network.subnet_of(r)), None)
        if reserved is not None:
            problems.add(
                f"{where}: {cidr!r} lies in the private or reserved range {reserved}, which never "
                "reaches the public endpoint (EKS refuses reserved addresses); clients in the "
                "VPC use the private endpoint"
            )


def _example(key: str, value: str) -> str:
    return f"e.g. -c {key}='{value}'"


def read_context_files(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The context the stack reads: ``path`` (cdk.json; a JSON file without ``app``/``context``
    keys is read as the context itself), then ``cdk.context.json`` beside a cdk.json, then the
    ``KEY=VALUE`` overrides (``-c``), as the CDK CLI hands them to the app. Used by
    ``python app.py`` without the CLI and by the ``eks-ultraserver`` subcommands, so all of
    them read the same configuration. Raises :class:`ConfigurationError` naming the file.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if overrides:  # the whole context may come from -c
            data = {}
        else:
            raise _context_error(
                f"{path}: not found (no such file); run in the CDK app's directory, pass "
                "--context-file PATH, or give the context with -c KEY=VALUE"
            ) from None
    except json.JSONDecodeError as err:
        raise _context_error(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(data, dict):
        raise _context_error(f"{path}: expected a JSON object")
    if "context" in data or "app" in data:
        context = data.get("context") or {}
        if not isinstance(context, dict):
            raise _context_error(f"{path}: 'context' is not an object")
    else:
        context = data
    context = dict(context)
    cached = path.parent / "cdk.context.json"
    if ("context" in data or "app" in data) and cached.is_file():
        # what the CDK CLI hands the app too: context-provider results and lookups
        try:
            extra = json.loads(cached.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise _context_error(f"{cached}: not valid JSON ({err.msg}, line {err.lineno})") from None
        if isinstance(extra, dict):
            context.update(extra)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _context_error(
                f"-c {item!r}: expected KEY=VALUE, e.g. -c availabilityZone=us-east-1-dfw-2a"
            )
        context[key.strip()] = value
    return context


def _context_error(message: str) -> ConfigurationError:
    return ConfigurationError([message], subject="context")


def _json_or_value(raw: Any) -> Any:
    """Values from ``-c`` arrive as strings: decode JSON text, keep anything else."""
    if isinstance(raw, str):
        text = raw.strip()
        if text[:1] in "[{" or text in ("true", "false") or re.fullmatch(r"-?\d+", text or "x"):
            return json.loads(text)
    return raw


def _known_keys_only(get: Callable[[str], Any]) -> Callable[[str], Any]:
    """``get`` that refuses keys missing from :data:`CONTEXT_KEYS` (a programming error:
    add the key to the table first), so the table stays the one list of keys."""

    def known(key: str) -> Any:
        if key not in CONTEXT_KEYS:
            raise KeyError(f"context key {key!r} is read but not listed in config.CONTEXT_KEYS")
        return get(key)

    return known


def _read(get: Callable[[str], Any]) -> EnvironmentConfig:
    get = _known_keys_only(get)
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

    # publicAccessCidrs: a JSON list, or from -c also one CIDR or a comma-separated string
    cidrs = decoded("publicAccessCidrs", '["203.0.113.0/24"]')
    if isinstance(cidrs, str):
        cidrs = [c.strip() for c in cidrs.split(",") if c.strip()] if cidrs.strip() else None
    if cidrs is not None:
        found = len(problems)
        access_ok = get("endpointAccess") is None or "endpoint_access" in values
        public_access_cidr_problems(
            cidrs,
            endpoint_access=values.get("endpoint_access", EndpointAccess.PUBLIC_AND_PRIVATE)
            if access_ok
            else None,
            keys=("publicAccessCidrs", "endpointAccess"),
            problems=problems,
        )
        if len(problems) == found:
            values["public_access_cidrs"] = tuple(cidrs)

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


# --------------------------------------------------------------------------------------


#: Context keys that belong to the CDK itself, not to this library: feature flags
#: (``@aws-cdk/...``), the toolkit's settings (``aws:cdk:...``, ``cdk-...``,
#: ``acknowledged-issue-numbers``) and every context-provider cache entry of
#: cdk.context.json (``availability-zones:account=...:region=...``), which contain ``:``;
#: so do the library's own reservation lookups (``capacity-reservation:account=...``,
#: constructs/lookups.py ``context_key``).
_CDK_KEY_PREFIXES = ("@", "aws:", "aws-cdk:", "cdk-")
_CDK_KEYS = frozenset({"acknowledged-issue-numbers"})
#: How close (difflib ratio, case-insensitive) an unknown key must be to a known one to be
#: reported as its misspelling: catches 'kubernetesVerison', 'ultraServer', 'vpc' for
#: 'vpcId'; leaves other libraries' and the app's own keys ('costCenter', 'stage') alone.
_MISSPELLING_CUTOFF = 0.75


def misspelt_context_keys(keys: Iterable[str]) -> dict[str, str]:
    """Unknown top-level context keys that look like a misspelt :data:`CONTEXT_KEYS` key,
    mapped to the key they probably mean. CDK's own keys and cache entries are skipped;
    an unknown key far from every known one is not reported (the context is shared with
    the CDK, other libraries and the app's own code)."""
    known = {k.lower(): k for k in CONTEXT_KEYS}
    found: dict[str, str] = {}
    for key in keys:
        if (
            not isinstance(key, str)
            or key in CONTEXT_KEYS
            or key in _CDK_KEYS
            or key.startswith(_CDK_KEY_PREFIXES)
            or ":" in key
        ):
            continue
        close = difflib.get_close_matches(key.lower(), list(known), n=1, cutoff=_MISSPELLING_CUTOFF)
        if close:
            found[key] = known[close[0]]
    return found


def misspelling_message(key: str, meant: str) -> str:
    """The synth warning for one :func:`misspelt_context_keys` entry."""
    return (
        f"context key {key!r} is ignored (eks-ultraserver reads no such key); did you mean "
        f"{meant!r}? Until it is renamed, {meant!r} keeps its own value or its default."
    )


__all__ = [
    "ADDON_KEYS",
    "CONTEXT_KEYS",
    "EXAMPLE_RESERVATION_ID",
    "OPEN_TO_THE_WORLD",
    "AddonsConfig",
    "ConfigurationError",
    "DraDriverLine",
    "EfaMode",
    "EndpointAccess",
    "EnvironmentConfig",
    "UltraServerSpec",
    "misspelling_message",
    "misspelt_context_keys",
    "public_access_cidr_problems",
]
