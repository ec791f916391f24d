"""Synth-time lookup of the Capacity Blocks' zone, cached like CDK's own context lookups.

``availabilityZone`` must be the zone of the Capacity Blocks (often a Local Zone such as
``us-east-1-dfw-2a``). When it is not set, :func:`resolve_reservations` asks EC2
(``DescribeCapacityReservations``) once per reservation, checks what it gets back
(instance type ``p6e-gb200.36xlarge``, a Capacity Block, the UltraServer's instance
count, one zone for all) and returns the zone as a context value.

Caching follows CDK's context providers (``Vpc.fromLookup``, ``availability-zones``): each
answer is stored in ``cdk.context.json`` under a key that names the provider and its
inputs, here ``capacity-reservation:account=<account>:region=<region>:reservationId=<id>``;
later synths read the cache and neither call AWS nor change their output. Commit
``cdk.context.json``; ``cdk context --reset <key>`` (or deleting the entry) forces a new
lookup. When ``availabilityZone`` is set, nothing is looked up and AWS is never called.

It is no construct (it imports neither aws_cdk nor cdk8s): ``build_app`` calls it before
any construct is made. It is the one synth-time module that uses boto3, and it imports
boto3 only when a lookup is actually needed.

Use from ``app.py``::

    from eks_ultraserver.config import EnvironmentConfig
    from eks_ultraserver.lookups import resolve_reservations

    app = cdk.App()
    get = app.node.try_get_context
    found = resolve_reservations(
        get,
        account=get("account") or os.environ.get("CDK_DEFAULT_ACCOUNT"),
        region=get("region") or os.environ.get("CDK_DEFAULT_REGION"),
    )
    config = EnvironmentConfig.from_context(lambda key: found.get(key, get(key)))
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from eks_ultraserver.model import (
    INSTANCE_TYPE,
    ConfigurationError,
    Problems,
    UltraServerType,
    enum_member,
    is_reservation_id,
)

#: The file CDK keeps its lookup results in, next to cdk.json.
CONTEXT_FILE = "cdk.context.json"
#: The provider name at the start of every cache key.
PROVIDER = "capacity-reservation"


def context_key(*, account: str, region: str, reservation_id: str) -> str:
    """The cache key of one reservation, with its inputs sorted by name as CDK does."""
    return f"{PROVIDER}:account={account}:region={region}:reservationId={reservation_id}"


@dataclass(frozen=True, kw_only=True, slots=True)
class CachedReservation:
    """What the lookup stores: only facts that do not change during a reservation's life
    (its state and dates do change: ``eks-ultraserver preflight`` checks those)."""

    availability_zone: str
    availability_zone_id: str | None
    instance_type: str
    reservation_type: str | None
    total_instance_count: int

    def to_json(self) -> dict[str, Any]:
        return {
            "availabilityZone": self.availability_zone,
            "availabilityZoneId": self.availability_zone_id,
            "instanceType": self.instance_type,
            "reservationType": self.reservation_type,
            "totalInstanceCount": self.total_instance_count,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> CachedReservation:
        return cls(
            availability_zone=value["availabilityZone"],
            availability_zone_id=value.get("availabilityZoneId"),
            instance_type=value["instanceType"],
            reservation_type=value.get("reservationType"),
            total_instance_count=int(value["totalInstanceCount"]),
        )


def _reservations(raw: Any) -> list[tuple[int, str, UltraServerType | None]]:
    """``(index, reservation id, type)`` of each well-formed ``ultraServers`` entry; the
    configuration reader reports malformed ones."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return []
    if not isinstance(raw, list):
        return []
    out = []
    for i, entry in enumerate(raw):
        if isinstance(entry, dict) and is_reservation_id(entry.get("capacityReservationId")):
            us_type = enum_member(UltraServerType, entry.get("type"))
            out.append((i, entry["capacityReservationId"], us_type))
    return out


def _concrete(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value) and "${Token[" not in value


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as err:
        raise ConfigurationError(
            [f"{path}: not valid JSON ({err.msg}, line {err.lineno}); fix or delete the file"],
            subject="lookup cache",
        ) from None
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, entries: Mapping[str, Any]) -> None:
    """Adds ``entries`` to the cache file, keeping every other key (atomic replace)."""
    data = _read_cache(path)
    data.update(entries)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cdk.context.", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)


def _lookup(ec2: Any, reservation_id: str) -> CachedReservation | None:
    from eks_ultraserver.aws_checks import describe_reservation

    facts = describe_reservation(ec2, reservation_id)
    if facts is None:
        return None
    return CachedReservation(
        availability_zone=facts.availability_zone,
        availability_zone_id=facts.availability_zone_id,
        instance_type=facts.instance_type,
        reservation_type=facts.reservation_type,
        total_instance_count=facts.total_instance_count,
    )


def resolve_reservations(
    context_get: Callable[[str], Any],
    *,
    account: str | None,
    region: str | None,
    ec2_client: Any = None,
    context_file: str | Path = CONTEXT_FILE,
) -> dict[str, Any]:
    """Context values found by looking up the configured Capacity Blocks.

    :param context_get: reads a context key, e.g. ``app.node.try_get_context``. Cached
        answers are read from it first (the CDK CLI passes ``cdk.context.json`` in), then
        from ``context_file``.
    :param account: the stack's account; needed only when a lookup is needed.
    :param region: the stack's Region; needed only when a lookup is needed.
    :param ec2_client: the EC2 client to ask. Default: ``boto3.client("ec2", region_name=region)``
        with the default credential chain, created only when a lookup is needed.
    :param context_file: where answers are cached. Default: ``cdk.context.json`` in the
        current directory (where ``cdk synth`` runs).
    :returns: ``{"availabilityZone": zone}`` when ``availabilityZone`` is not set and the
        reservations name one zone; ``{}`` when ``availabilityZone`` is set (no lookup) or
        no well-formed reservation id is configured (the configuration reader reports it).
    :raises ConfigurationError: one message listing every problem: no credentials or
        Region for a needed lookup, an unknown reservation, a reservation that is not a
        P6e-GB200 Capacity Block, or reservations in different zones. Each names the
        key to set instead (``availabilityZone``) or to fix.
    """
    configured_zone = context_get("availabilityZone")
    if configured_zone not in (None, ""):
        return {}
    entries = _reservations(context_get("ultraServers"))
    if not entries:
        return {}

    path = Path(context_file)
    problems = Problems()
    hint = "or set -c availabilityZone=<the Capacity Blocks' zone, e.g. us-east-1-dfw-2a> to skip the lookup"
    found: dict[str, CachedReservation] = {}
    missing: list[tuple[int, str, UltraServerType | None]] = []
    cache: dict[str, Any] | None = None
    for i, rid, us_type in entries:
        key = context_key(account=str(account), region=str(region), reservation_id=rid)
        value = context_get(key) if _concrete(account) and _concrete(region) else None
        if value is None and _concrete(account) and _concrete(region):
            cache = _read_cache(path) if cache is None else cache
            value = cache.get(key)
        if isinstance(value, Mapping):
            try:
                found[rid] = CachedReservation.from_json(value)
                continue
            except (KeyError, TypeError, ValueError):
                problems.add(f"{path}: the entry {key!r} is malformed; delete it to look it up again")
                continue
        missing.append((i, rid, us_type))

    new_entries: dict[str, Any] = {}
    if missing:
        if not _concrete(account) or not _concrete(region):
            problems.add(
                "availabilityZone: not set, and looking up the Capacity Blocks' zone needs the "
                f"stack's account and Region (got account={account!r}, region={region!r}): set "
                "account and region in cdk.json context (or CDK_DEFAULT_ACCOUNT/CDK_DEFAULT_REGION), " + hint
            )
        else:
            from eks_ultraserver.aws_checks import AwsSetupError

            try:
                ec2 = ec2_client if ec2_client is not None else _default_client(region)
                for i, rid, _us_type in missing:
                    facts = _lookup(ec2, rid)
                    if facts is None:
                        problems.add(
                            f"ultraServers[{i}].capacityReservationId: {rid} was not found in account "
                            f"{account}, Region {region}; check the id and the credentials' account, {hint}"
                        )
                        continue
                    found[rid] = facts
                    new_entries[context_key(account=account, region=region, reservation_id=rid)] = (
                        facts.to_json()
                    )
            except AwsSetupError as exc:
                problems.add(
                    f"availabilityZone: not set, and looking up the zone of {missing[0][1]} failed: "
                    f"{exc}; {hint}"
                )

    for i, rid, us_type in entries:
        facts = found.get(rid)
        if facts is None:
            continue
        where = f"ultraServers[{i}].capacityReservationId"
        if facts.instance_type != INSTANCE_TYPE:
            problems.add(
                f"{where}: {rid} reserves {facts.instance_type}, not {INSTANCE_TYPE}; use a "
                "P6e-GB200 UltraServer Capacity Block"
            )
        if facts.reservation_type not in (None, "capacity-block"):
            problems.add(
                f"{where}: {rid} is a {facts.reservation_type} Capacity Reservation, not a Capacity "
                "Block; the node group needs a Capacity Block (MarketType capacity-block)"
            )
        if us_type is not None and facts.total_instance_count != us_type.instance_count:
            problems.add(
                f"ultraServers[{i}].type: {us_type.value} has {us_type.instance_count} instances, but "
                f"{rid} holds {facts.total_instance_count}; set the type that matches the reservation"
            )
    zones = sorted({f.availability_zone for f in found.values()})
    if len(zones) > 1:
        problems.add(
            f"ultraServers: the reservations are in {len(zones)} zones ({', '.join(zones)}); list "
            "only Capacity Blocks of one zone in one environment"
        )

    if new_entries:
        # Cache what was learned even when another entry failed: the next synth asks less.
        _write_cache(path, new_entries)
    problems.raise_if_any("Capacity Block lookup")
    return {"availabilityZone": zones[0]} if zones else {}


def _default_client(region: str) -> Any:
    from botocore import exceptions as botocore_exceptions

    from eks_ultraserver.aws_checks import AwsSetupError, setup_error

    try:
        import boto3

        return boto3.client("ec2", region_name=region)
    except botocore_exceptions.BotoCoreError as exc:
        err = setup_error(exc)
        raise (err or AwsSetupError(str(exc))) from exc


__all__ = [
    "CONTEXT_FILE",
    "PROVIDER",
    "CachedReservation",
    "context_key",
    "resolve_reservations",
]
