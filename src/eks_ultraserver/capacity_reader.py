"""Reads ``reservedCapacity`` and ``burstCapacity`` from cdk.json context.

The shape of each key (JSON, a list, an object, known keys) and the zone every cdk.json
reservation must state are checked here; every rule of a value is the spec's own
(``capacity.ReservedCapacitySpec``, ``capacity.BurstCapacitySpec``). Part of the shared
model: imports neither aws_cdk nor cdk8s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from eks_ultraserver.capacity import (
    EXAMPLE_BURST,
    EXAMPLE_RESERVED,
    BurstCapacitySpec,
    ReservationKind,
    ReservedCapacitySpec,
    ReservedProvisioner,
)
from eks_ultraserver.context import decoded, example_flag
from eks_ultraserver.instance_types import INSTANCE_TYPES, GpuInstanceType
from eks_ultraserver.model import INVALID, Problems

__all__ = ["read_capacity"]


def read_capacity(
    get: Callable[[str], Any],
    problems: Problems,
    kubernetes_version: str,
    *,
    instance_types: Mapping[str, GpuInstanceType] = INSTANCE_TYPES,
) -> tuple[Any, Any]:
    """Reads ``reservedCapacity`` and ``burstCapacity`` with ``get(key)``, adding every
    problem to ``problems`` (each naming the key, the value, what is allowed and an example
    ``-c`` flag). Returns the reserved specs (a tuple: those that are good) and the burst
    spec (or ``None``); ``model.INVALID`` for a key whose problems are recorded.
    ``kubernetes_version`` is accepted for rules that depend on it; ``instance_types`` is
    the table reserved entries are checked against."""
    del kubernetes_version  # no version-dependent rule yet; the signature is the contract
    return _read_reserved(get, problems, instance_types), _read_burst(get, problems, instance_types)


def _unknown_keys(where: str, entry: Mapping[str, Any], allowed: tuple[str, ...], problems: Problems) -> bool:
    unknown = sorted(set(entry) - set(allowed))
    if unknown:
        problems.add(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
            + ", ".join(map(repr, allowed))
        )
    return bool(unknown)


def _read_reserved(
    get: Callable[[str], Any], problems: Problems, instance_types: Mapping[str, GpuInstanceType]
) -> Any:
    key = "reservedCapacity"
    raw = get(key)
    if raw is None or raw == "":
        return ()
    value = decoded(key, raw, EXAMPLE_RESERVED, problems)
    if value is INVALID:
        return INVALID
    if not isinstance(value, list):
        problems.add(f"{key}: {value!r} is not a list of reservations; {example_flag(key, EXAMPLE_RESERVED)}")
        return INVALID
    keys = ReservedCapacitySpec.CONTEXT_KEYS
    out: list[ReservedCapacitySpec] = []
    for i, entry in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(entry, dict):
            problems.add(f"{where}: {entry!r} is not an object; {example_flag(key, EXAMPLE_RESERVED)}")
            continue
        unknown = _unknown_keys(where, entry, tuple(keys.values()), problems)
        fields = {attr: entry[k] for attr, k in keys.items() if k in entry}
        fields.setdefault("kind", ReservationKind.ODCR)
        fields.setdefault("provisioner", ReservedProvisioner.NODEGROUP)
        spec, found = ReservedCapacitySpec.parse(where, instance_types=instance_types, **fields)
        problems.extend(found)
        missing_zone = _missing_zone(where, entry, problems)
        if spec is not None and not unknown and not missing_zone:
            out.append(spec)
    return tuple(out)


def _missing_zone(where: str, entry: Mapping[str, Any], problems: Problems) -> bool:
    """cdk.json states each reservation's zone (a Python spec may leave it to the
    environment): not guessed (the UltraServers' zone) nor looked up, because the zone is a
    fact of the reservation, and a wrong one leaves the nodes without a subnet."""
    if entry.get("availabilityZone") is not None:
        return False
    provisioner = entry.get("provisioner", "nodegroup")
    if provisioner == ReservedProvisioner.NODEGROUP:
        problems.add(
            f"{where}.availabilityZone: missing; a node group of a reservation needs subnets in "
            'the reservation\'s zone, e.g. "availabilityZone": "us-east-1a"'
        )
    elif provisioner == ReservedProvisioner.KARPENTER:
        problems.add(
            f"{where}.availabilityZone: missing; Karpenter launches into a reservation only "
            "from a subnet in the reservation's zone, and the environment places that subnet "
            'from this key: give the reservation\'s zone, e.g. "availabilityZone": "us-east-1a"'
        )
    return True


def _read_burst(
    get: Callable[[str], Any], problems: Problems, instance_types: Mapping[str, GpuInstanceType]
) -> Any:
    key = "burstCapacity"
    raw = get(key)
    if raw is None or raw == "" or raw is False or raw == "false":
        return None
    value = decoded(key, raw, EXAMPLE_BURST, problems)
    if value is INVALID:
        return INVALID
    if not isinstance(value, dict):
        problems.add(f"{key}: {value!r} is not an object; {example_flag(key, EXAMPLE_BURST)}")
        return INVALID
    keys = BurstCapacitySpec.CONTEXT_KEYS
    unknown = _unknown_keys(key, value, tuple(keys.values()), problems)
    fields = {attr: value[k] for attr, k in keys.items() if k in value}
    spec, found = BurstCapacitySpec.parse(key, instance_types=instance_types, **fields)
    problems.extend(found)
    return spec if spec is not None and not unknown else INVALID
