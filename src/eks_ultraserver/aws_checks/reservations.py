"""Capacity Reservations of the UltraServers: state, zone and time left of each Capacity
Block; ``check_reservations`` also runs the UltraServer type and interconnect checks of
``capacity_blocks.py``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore import exceptions as botocore_exceptions

from eks_ultraserver.aws_checks.errors import call, error_code
from eks_ultraserver.aws_checks.findings import Finding, Severity, format_duration, iso_time
from eks_ultraserver.config import UltraServerSpec
from eks_ultraserver.model import INSTANCE_TYPE, UltraServerType

DEFAULT_MIN_TIME_LEFT = timedelta(hours=2)
#: EKS adds a scheduled scale-down of the node group this long before the block ends.
EKS_SCALE_DOWN_BEFORE_END = timedelta(minutes=40)
#: EC2 starts terminating a Capacity Block's instances this long before the end.
EC2_TERMINATION_BEFORE_END = timedelta(minutes=30)


# --------------------------------------------------------------------------------------
# Capacity Reservations
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ReservationFacts:
    """What ``DescribeCapacityReservations`` says about one reservation."""

    reservation_id: str
    availability_zone: str
    availability_zone_id: str | None
    instance_type: str
    reservation_type: str | None
    total_instance_count: int
    state: str
    start_date: datetime | None
    end_date: datetime | None
    capacity_block_id: str | None
    owner_id: str | None

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> ReservationFacts:
        return cls(
            reservation_id=item["CapacityReservationId"],
            availability_zone=item.get("AvailabilityZone", ""),
            availability_zone_id=item.get("AvailabilityZoneId"),
            instance_type=item.get("InstanceType", ""),
            reservation_type=item.get("ReservationType"),
            total_instance_count=int(item.get("TotalInstanceCount", 0)),
            state=item.get("State", ""),
            start_date=item.get("StartDate"),
            end_date=item.get("EndDate"),
            capacity_block_id=item.get("CapacityBlockId"),
            owner_id=item.get("OwnerId"),
        )


def describe_reservation(ec2: Any, reservation_id: str) -> ReservationFacts | None:
    """The reservation, or ``None`` when EC2 does not know the id in this account and Region.

    Raises :class:`AwsSetupError` for credentials, Region, network or permission errors.
    """
    try:
        response = call(
            "ec2:DescribeCapacityReservations",
            ec2.describe_capacity_reservations,
            CapacityReservationIds=[reservation_id],
        )
    except botocore_exceptions.ClientError as exc:
        if error_code(exc).startswith("InvalidCapacityReservationId"):
            return None
        raise
    items = response.get("CapacityReservations", [])
    return ReservationFacts.from_api(items[0]) if items else None


#: What each ``CapacityReservationState`` means for a deployment, with the fix.
#: The enum is botocore's; the Capacity Block meanings are from the EC2 user guide.
RESERVATION_STATES: Mapping[str, tuple[Severity, str, str]] = {
    "active": (Severity.OK, "active: the reserved capacity is available", ""),
    "scheduled": (Severity.OK, "scheduled: paid, the block has not started yet", ""),
    "payment-pending": (
        Severity.WARNING,
        "payment-pending: the upfront payment has not been processed yet",
        "wait until the state is 'scheduled' or 'active' (aws ec2 describe-capacity-reservations "
        "--capacity-reservation-ids <id>); if the payment is not processed within 12 hours the "
        "block is released (payment-failed)",
    ),
    "payment-failed": (
        Severity.BLOCKING,
        "payment-failed: the payment was not processed in 12 hours and the block was released",
        "purchase a new Capacity Block and put its id in ultraServers[].capacityReservationId",
    ),
    "expired": (
        Severity.BLOCKING,
        "expired: the block has ended; its capacity is gone",
        "purchase (or extend into) a new Capacity Block and put its id in "
        "ultraServers[].capacityReservationId",
    ),
    "cancelled": (
        Severity.BLOCKING,
        "cancelled: the reservation was cancelled",
        "use a current Capacity Block id in ultraServers[].capacityReservationId",
    ),
    "failed": (
        Severity.BLOCKING,
        "failed: the reservation request failed",
        "purchase a new Capacity Block and put its id in ultraServers[].capacityReservationId",
    ),
    "unavailable": (
        Severity.BLOCKING,
        "unavailable: EC2 reports the capacity as unavailable",
        "check the block in the EC2 console (Capacity Reservations) and contact AWS Support; "
        "use another Capacity Block meanwhile",
    ),
    "unsupported": (
        Severity.BLOCKING,
        "unsupported: EC2 will not deliver this reservation",
        "use a Capacity Block that EC2 delivers (state scheduled or active)",
    ),
    "cancelling": (
        Severity.BLOCKING,
        "cancelling: the reservation is being cancelled",
        "use a current Capacity Block id in ultraServers[].capacityReservationId",
    ),
    "pending": (
        Severity.WARNING,
        "pending: provisioning of the capacity is still pending",
        "wait until the state is 'scheduled' or 'active', then run preflight again",
    ),
    "assessing": (
        Severity.WARNING,
        "assessing: EC2 is still assessing the request",
        "wait until the state is 'scheduled' or 'active', then run preflight again",
    ),
    "delayed": (
        Severity.WARNING,
        "delayed: EC2 cannot deliver the capacity by its start date",
        "expect nodes late; check the new date in the EC2 console before planning jobs",
    ),
}
_LIVE_STATES = frozenset({"active", "scheduled", "payment-pending", "pending", "assessing", "delayed"})


def subject_of(spec: UltraServerSpec) -> str:
    return f"{spec.name} {spec.capacity_reservation_id}"


def check_reservation(
    spec: UltraServerSpec,
    facts: ReservationFacts | None,
    *,
    availability_zone: str | None,
    now: datetime,
    min_time_left: timedelta = DEFAULT_MIN_TIME_LEFT,
    region: str = "",
) -> list[Finding]:
    """Checks one configured UltraServer against what EC2 says about its reservation.

    :param availability_zone: the configured zone; ``None`` when the zone is looked up
        from the reservation at synth (then only reported).
    :param now: the current time (timezone-aware).
    :param min_time_left: warn when the block ends sooner than this.
    """
    subject = subject_of(spec)
    rid = spec.capacity_reservation_id
    out: list[Finding] = []

    def add(check: str, severity: Severity, message: str, fix: str = "") -> None:
        out.append(Finding(subject=subject, check=check, severity=severity, message=message, fix=fix))

    if facts is None:
        where = f" in {region}" if region else ""
        add(
            "exists",
            Severity.BLOCKING,
            f"EC2 does not know {rid}{where} (InvalidCapacityReservationId.NotFound)",
            "check the id in ultraServers[].capacityReservationId, and that --profile and "
            "--region point at the account and Region that own the Capacity Block",
        )
        return out
    add("exists", Severity.OK, f"found, owner {facts.owner_id or '?'}")

    if facts.reservation_type == "capacity-block":
        add("capacity block", Severity.OK, "ReservationType capacity-block")
    else:
        add(
            "capacity block",
            Severity.BLOCKING,
            f"ReservationType is {facts.reservation_type or 'not reported'!s}, not capacity-block: "
            "this is an On-Demand Capacity Reservation",
            "the node group launches with MarketType capacity-block and CapacityType "
            "CAPACITY_BLOCK, which need a Capacity Block: put a Capacity Block's id in "
            "ultraServers[].capacityReservationId",
        )

    if facts.instance_type == INSTANCE_TYPE:
        add("instance type", Severity.OK, INSTANCE_TYPE)
    else:
        add(
            "instance type",
            Severity.BLOCKING,
            f"the reservation is for {facts.instance_type or '?'}, not {INSTANCE_TYPE}",
            f"use a P6e-GB200 UltraServer Capacity Block (instance type {INSTANCE_TYPE}) in "
            "ultraServers[].capacityReservationId",
        )

    zone = facts.availability_zone
    if availability_zone is None:
        add(
            "zone",
            Severity.NOTE,
            f"reservation zone {zone} (availabilityZone is not set; synth looks it up)",
        )
    elif zone == availability_zone:
        add("zone", Severity.OK, zone)
    else:
        add(
            "zone",
            Severity.BLOCKING,
            f"the reservation is in {zone}, but availabilityZone is {availability_zone}",
            f"set -c availabilityZone={zone} (the subnets must be in the reservation's zone), "
            "or use a reservation in the configured zone",
        )

    expected = spec.type.instance_count
    count = facts.total_instance_count
    if count == expected:
        add("instance count", Severity.OK, f"{count} instances = {spec.type.value}")
    else:
        other = next((t for t in UltraServerType if t.instance_count == count), None)
        if other is not None:
            fix = f"set ultraServers[].type to {other.value!r} for this reservation"
            severity = Severity.BLOCKING
        elif count and count % expected == 0:
            fix = (
                f"the node group uses {expected} of the {count} instances; check that this "
                "reservation holds what you bought"
            )
            severity = Severity.WARNING
        else:
            fix = "check ultraServers[].type and the reservation id"
            severity = Severity.BLOCKING
        add(
            "instance count",
            severity,
            f"TotalInstanceCount is {count}, but {spec.type.value} has {expected} instances",
            fix,
        )

    severity, message, fix = RESERVATION_STATES.get(
        facts.state,
        (
            Severity.WARNING,
            f"{facts.state or 'no state'}: a state this tool does not know",
            "check the reservation in the EC2 console before deploying",
        ),
    )
    add("state", severity, message, fix.replace("<id>", rid))

    if facts.state in _LIVE_STATES:
        out.extend(_time_findings(subject, facts, now=now, min_time_left=min_time_left))
    return out


def _time_findings(
    subject: str, facts: ReservationFacts, *, now: datetime, min_time_left: timedelta
) -> list[Finding]:
    start, end = facts.start_date, facts.end_date
    if end is None:
        return [
            Finding(
                subject=subject,
                check="time left",
                severity=Severity.WARNING,
                message="the reservation has no end date: not a Capacity Block",
                fix="use a Capacity Block id in ultraServers[].capacityReservationId",
            )
        ]
    window = f"{iso_time(start)} to {iso_time(end)}"
    if end <= now:
        return [
            Finding(
                subject=subject,
                check="time left",
                severity=Severity.BLOCKING,
                message=f"the block ended at {iso_time(end)} ({format_duration(now - end)} ago)",
                fix="purchase a new Capacity Block (or extend one before it ends) and put its id "
                "in ultraServers[].capacityReservationId",
            )
        ]
    left = end - now
    if left < min_time_left:
        scale_down = end - EKS_SCALE_DOWN_BEFORE_END
        return [
            Finding(
                subject=subject,
                check="time left",
                severity=Severity.WARNING,
                message=(
                    f"the block ends in {format_duration(left)} ({window}); EKS scales the node "
                    f"group to 0 at {iso_time(scale_down)} and EC2 terminates instances from "
                    f"{iso_time(end - EC2_TERMINATION_BEFORE_END)}"
                ),
                fix="extend the block (aws ec2 describe-capacity-block-extension-offerings, "
                "purchase-capacity-block-extension) or plan work that ends, with checkpoints "
                "saved, before the scale-down",
            )
        ]
    if start is not None and start > now:
        return [
            Finding(
                subject=subject,
                check="time left",
                severity=Severity.OK,
                message=(
                    f"starts in {format_duration(start - now)} ({window}); nodes join when it "
                    "starts (the node group retries until then)"
                ),
            )
        ]
    return [
        Finding(
            subject=subject,
            check="time left",
            severity=Severity.OK,
            message=f"ends in {format_duration(left)} ({window})",
        )
    ]


def check_reservations(
    ec2: Any,
    specs: Sequence[UltraServerSpec],
    *,
    availability_zone: str | None,
    now: datetime,
    min_time_left: timedelta = DEFAULT_MIN_TIME_LEFT,
    region: str = "",
    progress: Callable[[str], None] = lambda _message: None,
) -> list[Finding]:
    """Every Capacity Block check, for every configured UltraServer, plus one zone check
    across them when ``availability_zone`` is not configured."""
    # Imported here: capacity_blocks imports this module (ReservationFacts, subject_of).
    from eks_ultraserver.aws_checks.capacity_blocks import check_capacity_block

    out: list[Finding] = []
    zones: dict[str, list[str]] = {}
    for i, spec in enumerate(specs, start=1):
        progress(f"checking {spec.name} ({spec.capacity_reservation_id}) [{i}/{len(specs)}]")
        facts = describe_reservation(ec2, spec.capacity_reservation_id)
        out.extend(
            check_reservation(
                spec,
                facts,
                availability_zone=availability_zone,
                now=now,
                min_time_left=min_time_left,
                region=region,
            )
        )
        if facts is not None:
            zones.setdefault(facts.availability_zone, []).append(spec.name)
            if facts.instance_type == INSTANCE_TYPE:
                out.extend(check_capacity_block(ec2, spec, facts))
    if availability_zone is None and len(zones) > 1:
        listed = "; ".join(f"{z}: {', '.join(names)}" for z, names in sorted(zones.items()))
        out.append(
            Finding(
                subject="ultraServers",
                check="zone",
                severity=Severity.BLOCKING,
                message=f"the reservations are in {len(zones)} zones ({listed})",
                fix="one environment has its UltraServer subnets in one zone: list only "
                "reservations of one zone in ultraServers",
            )
        )
    return out
