"""Reads an environment's configuration from ``cdk.json`` context.

Every key can be overridden with ``cdk synth -c key=value``; values given with ``-c`` arrive
as strings, so lists, objects, numbers and booleans are also accepted as JSON text
(``context.decode``, the one decoder).

The reader turns raw context into the self-validating value objects of ``settings.py``
(``EnvironmentConfig``, ``UltraServerSpec``, ``AddonsConfig``) and ``capacity.py``
(``ReservedCapacitySpec``, ``BurstCapacitySpec``): it checks the shape of each key (JSON, a
list, an object, known keys) and leaves every rule of a value to the object, whose problems
then name the context keys. It never raises on the first problem: it collects every problem
of every key (the key, the value given, what is allowed, an example ``-c`` flag) and raises
one ``ConfigurationError``. This module imports neither aws_cdk nor cdk8s: the command-line
tool uses it too. Every name the library had here stays importable from here.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from eks_ultraserver.capacity_reader import read_capacity
from eks_ultraserver.context import decoded, example_flag, read_context_files, read_object
from eks_ultraserver.endpoint_access import OPEN_TO_THE_WORLD, EndpointAccess, public_access_cidr_problems
from eks_ultraserver.instance_types import INSTANCE_TYPES, GpuInstanceType
from eks_ultraserver.model import INVALID, ConfigurationError, Problems
from eks_ultraserver.queues import EXAMPLE_QUEUES, QueueSpec
from eks_ultraserver.runai_config import RunAiConfig, read_runai
from eks_ultraserver.settings import (
    ADDON_KEYS,
    EXAMPLE_RESERVATION_ID,
    EXAMPLE_ULTRASERVERS,
    AddonsConfig,
    CapacityBlockEndConfig,
    DraDriverLine,
    EfaMode,
    EnvironmentConfig,
    UltraServerSpec,
    VpcCniConfig,
    refused_ultraserver_key_problems,
    ultraserver_entry_problems,
)
from eks_ultraserver.versions import DEFAULT_KUBERNETES_VERSION

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
    "ultraServerSubnetIds": "with vpcId, its subnets in the reservations' zone",
    "clusterName": "the EKS cluster name",
    "account": "the stack's account",
    "region": "the stack's Region",
    "validationJobs": "deploy the IMEX and nvbandwidth checks",
    "nodeRepair": "EKS node auto repair of the GPU node groups",
    "notificationEmail": "the Capacity Block events subscription",
    "observability": "the CloudWatch Observability add-on, GPU dashboard and alarms",
    "draDriverLine": "the NVIDIA DRA driver chart line",
    "efaMode": "EFA device plugin or DRANET",
    "addonVersions": "GPU platform chart versions",
    "addonValues": "extra Helm values of the GPU platform charts",
    "mpiOperatorManifest": "a local MPI operator release manifest",
    "reservedCapacity": "ODCRs and Capacity Blocks of other GPU types",
    "burstCapacity": "Karpenter's Spot-first GPU pool",
    "capacityBlockEnd": "cordon, mark and optionally drain nodes before their Capacity Block ends",
    "runai": "NVIDIA Run:ai's cluster component, connected to a Run:ai control plane",
    "controlPlaneTier": "the EKS Provisioned Control Plane tier (billed per hour)",
    "vpcCni": "VPC CNI prefix delegation and warm targets",
    "ultraServerSubnetCidr": "the new VPC's UltraServer subnet",
    "kueue": "Kueue with its Topology, GPU flavors and queues",
    "queues": "the teams' Kueue queues: GPU quotas per flavor",
    "ultraServerShards": "nested stacks of the UltraServer node groups (fixed at creation)",
}


def _known_keys_only(get: Callable[[str], Any]) -> Callable[[str], Any]:
    """``get`` that refuses keys missing from :data:`CONTEXT_KEYS` (a programming error:
    add the key to the table first), so the table stays the one list of keys."""

    def known(key: str) -> Any:
        if key not in CONTEXT_KEYS:
            raise KeyError(f"context key {key!r} is read but not listed in config.CONTEXT_KEYS")
        return get(key)

    return known


def read_environment(
    get: Callable[[str], Any],
    *,
    instance_types: Mapping[str, GpuInstanceType] = INSTANCE_TYPES,
) -> EnvironmentConfig:
    """The configuration read with ``get(key)``; raises one ``ConfigurationError`` listing
    every problem of every key. ``EnvironmentConfig.from_context`` calls it."""
    get = _known_keys_only(get)
    problems = Problems()
    values: dict[str, Any] = {}

    k8s = get("kubernetesVersion")
    values["kubernetes_version"] = str(k8s) if k8s is not None else DEFAULT_KUBERNETES_VERSION
    values["availability_zone"] = get("availabilityZone")
    values["ultraservers"] = _read_ultraservers(get, problems)
    for key, attr in (("efaLayout", "efa_layout"), ("endpointAccess", "endpoint_access")):
        if get(key) is not None:
            values[attr] = get(key)

    # publicAccessCidrs: a JSON list, or from -c also one CIDR or a comma-separated string
    cidrs = decoded("publicAccessCidrs", get("publicAccessCidrs"), '["203.0.113.0/24"]', problems)
    if isinstance(cidrs, str):
        cidrs = [c.strip() for c in cidrs.split(",") if c.strip()] if cidrs.strip() else None
    values["public_access_cidrs"] = cidrs
    subnet_ids = decoded(
        "ultraServerSubnetIds", get("ultraServerSubnetIds"), '["subnet-0123456789abcdef0"]', problems
    )
    if isinstance(subnet_ids, str):
        subnet_ids = [s.strip() for s in subnet_ids.split(",") if s.strip()]
    if subnet_ids is not None:
        values["ultraserver_subnet_ids"] = subnet_ids

    for key, attr in (
        ("vpcId", "vpc_id"),
        ("adminPrincipalArn", "admin_principal_arn"),
        ("region", "region"),
        ("account", "account"),
        ("notificationEmail", "notification_email"),
        ("clusterName", "cluster_name"),
    ):
        values[attr] = get(key)
    jobs = decoded("validationJobs", get("validationJobs"), "true", problems)
    if jobs is not None:
        values["validation_jobs"] = jobs
    observability = decoded("observability", get("observability"), "false", problems)
    if observability is not None:
        values["observability"] = observability
    repair = decoded("nodeRepair", get("nodeRepair"), "false", problems)
    if repair is not None:
        values["node_repair"] = repair
    shards = decoded("ultraServerShards", get("ultraServerShards"), "128", problems)
    if shards is not None:
        values["ultraserver_shards"] = shards

    values["addons"] = _read_addons(get, problems)
    values["reserved_capacity"], values["burst_capacity"] = read_capacity(
        get, problems, values["kubernetes_version"], instance_types=instance_types
    )

    values["capacity_block_end"] = _read_capacity_block_end(get, problems)
    values["runai"] = read_runai(get, problems)
    for key, attr in (
        ("controlPlaneTier", "control_plane_tier"),
        ("ultraServerSubnetCidr", "ultraserver_subnet_cidr"),
    ):
        if get(key) is not None:
            values[attr] = get(key)
    values["vpc_cni"] = _read_vpc_cni(get, problems)
    kueue = decoded("kueue", get("kueue"), "false", problems)
    if kueue is not None:
        values["kueue"] = kueue
    values["queues"] = _read_queues(get, problems)

    config, found = EnvironmentConfig.parse("", **values)
    problems.extend(found)
    problems.raise_if_any("configuration (cdk.json context)")
    assert config is not None  # no problem: parse built it
    return config


def _read_ultraservers(get: Callable[[str], Any], problems: Problems) -> Any:
    """``ultraServers``: the shape of the list and of each entry; each entry's rules are
    :class:`UltraServerSpec`'s. INVALID when a problem was recorded and no entry is good."""
    key = "ultraServers"
    raw = get(key)
    servers = decoded(key, raw, EXAMPLE_ULTRASERVERS, problems)
    if raw is None:
        problems.add(
            f"{key}: missing; give one entry per Capacity Block; {example_flag(key, EXAMPLE_ULTRASERVERS)}"
        )
        return INVALID
    if servers is INVALID:
        return INVALID
    if not isinstance(servers, list):
        problems.add(f"{key}: {servers!r} is not a list; {example_flag(key, EXAMPLE_ULTRASERVERS)}")
        return INVALID
    specs: list[UltraServerSpec] = []
    for i, entry in enumerate(servers):
        where = f"{key}[{i}]"
        if not isinstance(entry, dict):
            problems.add(f"{where}: {entry!r} is not an object; {example_flag(key, EXAMPLE_ULTRASERVERS)}")
            continue
        allowed = tuple(UltraServerSpec.CONTEXT_KEYS.values())
        refused = refused_ultraserver_key_problems(where, entry, problems)
        unknown = sorted(set(entry) - set(allowed) - refused)
        if unknown:
            problems.add(
                f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
                + ", ".join(map(repr, allowed))
            )
        spec, found = UltraServerSpec.parse(
            where,
            capacity_reservation_id=entry.get("capacityReservationId"),
            type=entry.get("type"),
            name=entry.get("name", f"us-{i + 1}"),
        )
        problems.extend(found)
        if spec is not None and not unknown and not refused:
            specs.append(spec)
    return tuple(specs) if specs or not servers else INVALID


def _read_addons(get: Callable[[str], Any], problems: Problems) -> Any:
    """The add-on keys; their rules are :class:`AddonsConfig`'s."""
    fields: dict[str, Any] = {}
    for attr, key in AddonsConfig.CONTEXT_KEYS.items():
        if attr in ("versions", "values"):
            example = (
                '{"gpuOperator":"v25.3.4"}'
                if attr == "versions"
                else '{"gpuOperator":{"dcgmExporter":{"enabled":false}}}'
            )
            value = decoded(key, get(key), example, problems)
        else:
            value = get(key)
        if value is not None:
            fields[attr] = value
    addons, found = AddonsConfig.parse("", **fields)
    problems.extend(found)
    return addons if addons is not None else INVALID


def _read_capacity_block_end(get: Callable[[str], Any], problems: Problems) -> Any:
    """``capacityBlockEnd``: an object of known keys; its rules are
    :class:`CapacityBlockEndConfig`'s."""
    return read_object(
        "capacityBlockEnd",
        get("capacityBlockEnd"),
        CapacityBlockEndConfig,
        problems,
        example='{"noticeMinutes":90,"evict":true}',
        absent=CapacityBlockEndConfig(),
    )


def _read_vpc_cni(get: Callable[[str], Any], problems: Problems) -> Any:
    """``vpcCni``: an object of known keys; its rules are :class:`VpcCniConfig`'s."""
    return read_object(
        "vpcCni",
        get("vpcCni"),
        VpcCniConfig,
        problems,
        example='{"prefixDelegation":true,"warmPrefixTarget":1}',
    )


def _read_queues(get: Callable[[str], Any], problems: Problems) -> Any:
    """``queues``: a list of objects of known keys; each entry's rules are
    :class:`QueueSpec`'s, the fleet's (flavors, GPUs) ``EnvironmentConfig``'s."""
    key = "queues"
    raw = decoded(key, get(key), EXAMPLE_QUEUES, problems)
    if raw is None:
        return ()
    if raw is INVALID:
        return INVALID
    if not isinstance(raw, list):
        problems.add(f"{key}: {raw!r} is not a list of queues; {example_flag(key, EXAMPLE_QUEUES)}")
        return INVALID
    known = {v: k for k, v in QueueSpec.CONTEXT_KEYS.items()}
    specs: list[QueueSpec] = []
    bad = False
    for i, entry in enumerate(raw):
        where = f"{key}[{i}]"
        if not isinstance(entry, dict):
            problems.add(f"{where}: {entry!r} is not an object; {example_flag(key, EXAMPLE_QUEUES)}")
            bad = True
            continue
        unknown = sorted(set(entry) - set(known))
        if unknown:
            problems.add(
                f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
                + ", ".join(map(repr, known))
            )
        spec, found = QueueSpec.parse(where, **{known[k]: v for k, v in entry.items() if k in known})
        problems.extend(found)
        if spec is None or unknown:
            bad = True
        else:
            specs.append(spec)
    # good entries go on to the fleet's checks (the configuration is refused anyway)
    return tuple(specs) if specs or not bad else INVALID


# --------------------------------------------------------------------------------------


#: Context keys that belong to the CDK itself, not to this library: feature flags
#: (``@aws-cdk/...``), the toolkit's settings (``aws:cdk:...``, ``cdk-...``,
#: ``acknowledged-issue-numbers``) and every context-provider cache entry of
#: cdk.context.json (``availability-zones:account=...:region=...``), which contain ``:``;
#: so do the library's own reservation lookups (``capacity-reservation:account=...``,
#: eks_ultraserver/lookups.py ``context_key``).
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
    "CapacityBlockEndConfig",
    "ConfigurationError",
    "DraDriverLine",
    "EfaMode",
    "EndpointAccess",
    "EnvironmentConfig",
    "QueueSpec",
    "RunAiConfig",
    "UltraServerSpec",
    "VpcCniConfig",
    "misspelling_message",
    "misspelt_context_keys",
    "public_access_cidr_problems",
    "read_context_files",
    "read_environment",
    "ultraserver_entry_problems",
]
