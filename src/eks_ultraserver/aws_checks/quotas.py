"""Reserved and burst GPU capacity: the reservations of ``reservedCapacity`` and the GPU
vCPU quotas that ``reservedCapacity`` and ``burstCapacity`` need; the EKS quotas of the
environment's node groups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore import exceptions as botocore_exceptions

from eks_ultraserver.aws_checks.errors import (
    AwsSetupError,
    call,
    error_code,
    error_reason,
    is_optional_failure,
)
from eks_ultraserver.aws_checks.findings import Finding, Severity, iso_time
from eks_ultraserver.aws_checks.reservations import describe_reservation
from eks_ultraserver.capacity import (
    QUOTAS,
    BurstCapacitySpec,
    QuotaGroup,
    ReservationKind,
    ReservedCapacitySpec,
    ReservedProvisioner,
    quota_group_of,
)
from eks_ultraserver.quotas import EKS_MANAGED_NODEGROUPS, EKS_NODES_PER_NODEGROUP, EksQuota
from eks_ultraserver.settings import UltraServerSpec

# --------------------------------------------------------------------------------------
# Reserved and burst GPU capacity: reservations and vCPU quotas
# --------------------------------------------------------------------------------------

#: Reservation states in which nodes can launch now or once the reservation starts.
_USABLE_STATES = frozenset({"active", "scheduled"})
_WAIT_STATES = frozenset({"payment-pending", "pending", "assessing", "delayed"})


def check_reserved_capacity(
    ec2: Any,
    specs: Sequence[ReservedCapacitySpec],
    *,
    now: datetime,
    region: str = "",
) -> list[Finding]:
    """Each ``reservedCapacity`` reservation against ``DescribeCapacityReservations``:
    it exists, is an ODCR or a Capacity Block as configured, holds the configured instance
    type in the configured zone, has at least ``instanceCount`` instances, and is usable
    (active or scheduled). Resource groups are reported, not resolved."""
    out: list[Finding] = []
    for spec in specs:
        subject = f"reservedCapacity {spec.name}"

        def add(check: str, severity: Severity, message: str, fix: str = "", subject: str = subject) -> None:
            out.append(Finding(subject=subject, check=check, severity=severity, message=message, fix=fix))

        if not spec.capacity_reservation_id:
            add(
                "exists",
                Severity.NOTE,
                f"targets resource group {spec.resource_group_arn}: its reservations are not "
                "checked one by one (aws resource-groups list-group-resources --group <arn>)",
            )
            continue
        rid = spec.capacity_reservation_id
        facts = describe_reservation(ec2, rid)
        if facts is None:
            where = f" in {region}" if region else ""
            add(
                "exists",
                Severity.BLOCKING,
                f"EC2 does not know {rid}{where} (InvalidCapacityReservationId.NotFound)",
                "check reservedCapacity[].capacityReservationId, and that --profile and --region "
                "point at the account and Region that own the reservation",
            )
            continue
        add("exists", Severity.OK, f"{rid}, owner {facts.owner_id or '?'}")
        is_block = facts.reservation_type == "capacity-block"
        if is_block == (spec.kind is ReservationKind.CAPACITY_BLOCK):
            add("capacity type", Severity.OK, spec.kind.value)
        else:
            actual = "capacity-block" if is_block else "odcr"
            add(
                "capacity type",
                Severity.BLOCKING,
                f"{rid} is {'a Capacity Block' if is_block else 'an On-Demand Capacity Reservation'}, "
                f"but capacityType is {spec.kind.value!r}",
                f"set reservedCapacity[].capacityType to {actual!r} (the node group's capacity type "
                "and market type follow it)",
            )
        if facts.instance_type == spec.instance_type:
            add("instance type", Severity.OK, facts.instance_type)
        else:
            add(
                "instance type",
                Severity.BLOCKING,
                f"the reservation is for {facts.instance_type or '?'}, not {spec.instance_type}",
                f"set reservedCapacity[].instanceType to {facts.instance_type!r}, or use a "
                f"reservation for {spec.instance_type}",
            )
        if spec.availability_zone is None:
            add(
                "zone",
                Severity.NOTE,
                f"reservation zone {facts.availability_zone} (availabilityZone not set)",
            )
        elif facts.availability_zone == spec.availability_zone:
            add("zone", Severity.OK, facts.availability_zone)
        else:
            add(
                "zone",
                Severity.BLOCKING,
                f"the reservation is in {facts.availability_zone}, but availabilityZone is "
                f"{spec.availability_zone}",
                f"set reservedCapacity[].availabilityZone to {facts.availability_zone!r} (the "
                "node group's subnets must be in the reservation's zone)",
            )
        if facts.total_instance_count >= spec.instance_count:
            add(
                "instance count",
                Severity.OK,
                f"{facts.total_instance_count} reserved, {spec.instance_count} configured",
            )
        else:
            add(
                "instance count",
                Severity.BLOCKING,
                f"the reservation holds {facts.total_instance_count} instances, but instanceCount "
                f"is {spec.instance_count}",
                f"set reservedCapacity[].instanceCount to at most {facts.total_instance_count}: "
                "launches beyond the reservation fail, so the node group would never reach its size",
            )
        state = facts.state
        if state in _USABLE_STATES:
            add("state", Severity.OK, state)
        elif state in _WAIT_STATES:
            add(
                "state",
                Severity.WARNING,
                f"{state}: the reservation is not usable yet",
                f"wait until it is 'scheduled' or 'active' (aws ec2 describe-capacity-reservations "
                f"--capacity-reservation-ids {rid}), then run preflight again",
            )
        else:
            add(
                "state",
                Severity.BLOCKING,
                f"{state or 'no state'}: no instance can launch into this reservation",
                "use a current reservation's id in reservedCapacity[].capacityReservationId",
            )
        if facts.end_date is not None and state in _USABLE_STATES and facts.end_date <= now:
            add(
                "time left",
                Severity.BLOCKING,
                f"the reservation ended at {iso_time(facts.end_date)}",
                "use a current reservation's id in reservedCapacity[].capacityReservationId",
            )
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class QuotaDemand:
    """The most vCPUs the configuration can run under one EC2 vCPU quota."""

    group: QuotaGroup
    spot: bool
    vcpus: int
    #: What makes up the demand, for the message ("reservedCapacity eval: 384", ...).
    parts: tuple[str, ...]

    @property
    def code(self) -> str:
        codes = QUOTAS[self.group]
        return codes.spot if self.spot else codes.on_demand

    @property
    def name(self) -> str:
        codes = QUOTAS[self.group]
        return codes.spot_name if self.spot else codes.on_demand_name


def vcpu_demand(
    *, reserved: Sequence[ReservedCapacitySpec] = (), burst: BurstCapacitySpec | None = None
) -> list[QuotaDemand]:
    """vCPUs per quota the configuration needs at most.

    - An ODCR holds On-Demand quota of its family from its creation (CreateCapacityReservation
      fails beyond the On-Demand limit), so its vCPUs count against the On-Demand quota.
    - Capacity Blocks are not counted: they are bought as a block, not launched against a
      running-instances quota.
    - The burst pool may run up to its limits on Spot and, as fallback, on On-Demand: its
      bound (:meth:`BurstCapacitySpec.vcpu_demand`) counts against both quotas of a family's
      group (only On-Demand when Spot is off), on top of the ODCRs.
    """
    totals: dict[tuple[QuotaGroup, bool], tuple[int, list[str]]] = {}

    def add(group: QuotaGroup, spot: bool, vcpus: int, part: str) -> None:
        value, parts = totals.get((group, spot), (0, []))
        totals[(group, spot)] = (value + vcpus, [*parts, part])

    for spec in reserved:
        if spec.kind is not ReservationKind.ODCR:
            continue
        itype = spec.gpu_type
        group = quota_group_of(spec.instance_type.split(".")[0])
        if itype is None or group is None:
            continue
        add(
            group,
            False,
            itype.vcpus * spec.instance_count,
            f"reservedCapacity {spec.name}: {spec.instance_count} x {itype.vcpus}",
        )
    if burst is not None:
        for group, vcpus in burst.vcpu_demand().items():
            add(group, False, vcpus, f"burstCapacity (On-Demand fallback): {vcpus}")
            if burst.spot:
                add(group, True, vcpus, f"burstCapacity (Spot): {vcpus}")
    return [
        QuotaDemand(group=group, spot=spot, vcpus=value, parts=tuple(parts))
        for (group, spot), (value, parts) in sorted(totals.items(), key=lambda kv: (kv[0][0].value, kv[0][1]))
    ]


def get_quota(service_quotas: Any, service_code: str, quota_code: str) -> tuple[float | None, bool]:
    """The value of a quota and whether it is the account's applied value (``True``,
    ``GetServiceQuota``) or AWS's default (``False``, ``GetAWSDefaultServiceQuota``, asked
    when Service Quotas has no applied value for the account: "for some quotas, only the
    default values are available"); ``(None, False)`` when neither knows the quota."""
    for operation, method, applied in (
        ("servicequotas:GetServiceQuota", service_quotas.get_service_quota, True),
        ("servicequotas:GetAWSDefaultServiceQuota", service_quotas.get_aws_default_service_quota, False),
    ):
        try:
            response = call(operation, method, ServiceCode=service_code, QuotaCode=quota_code)
        except botocore_exceptions.ClientError as exc:
            if error_code(exc) == "NoSuchResourceException":
                continue
            raise
        value = response.get("Quota", {}).get("Value")
        if value is not None:
            return float(value), applied
    return None, False


def _read_quota(
    service_quotas: Any, service_code: str, quota_code: str, *, subject: str, check: str, unread: str = ""
) -> tuple[float | None, bool] | Finding:
    """:func:`get_quota`, or, when Service Quotas may not be asked (no permission, no
    endpoint), a note that the quota is not checked (``unread`` appended)."""
    try:
        return get_quota(service_quotas, service_code, quota_code)
    except (botocore_exceptions.ClientError, AwsSetupError) as exc:
        if not is_optional_failure(exc):
            raise
        return Finding(
            subject=subject,
            check=check,
            severity=Severity.NOTE,
            message=f"Service Quotas failed ({error_reason(exc)}): not checked{unread}",
        )


def get_vcpu_quota(service_quotas: Any, code: str) -> float | None:
    """The value of an EC2 quota (:func:`get_quota`), ``None`` if Service Quotas has none."""
    return get_quota(service_quotas, "ec2", code)[0]


def check_vcpu_quotas(
    service_quotas: Any,
    *,
    reserved: Sequence[ReservedCapacitySpec] = (),
    burst: BurstCapacitySpec | None = None,
    region: str = "",
) -> list[Finding]:
    """Each GPU vCPU quota the configuration uses against what it could launch
    (:func:`vcpu_demand`). A quota of 0 blocks (the default on new accounts: nothing of that
    family can launch); a quota below the demand warns (pools stop short of their limits)."""
    out: list[Finding] = []
    where = f" in {region}" if region else ""
    for demand in vcpu_demand(reserved=reserved, burst=burst):
        subject = f"quota {demand.code}"
        check = f"{demand.group.value} {'Spot' if demand.spot else 'On-Demand'} vCPUs"
        read = _read_quota(service_quotas, "ec2", demand.code, subject=subject, check=check)
        if isinstance(read, Finding):
            out.append(read)
            continue
        value, applied = read
        needed = f"{demand.vcpus} vCPUs ({'; '.join(demand.parts)})"
        source = "" if applied else " (AWS default)"
        request = (
            f"aws service-quotas request-service-quota-increase --service-code ec2 --quota-code "
            f"{demand.code} --desired-value {demand.vcpus}"
        )
        if value is None:
            out.append(
                Finding(
                    subject=subject,
                    check=check,
                    severity=Severity.NOTE,
                    message=f"'{demand.name}' not found{where}: not checked",
                )
            )
        elif value <= 0:
            out.append(
                Finding(
                    subject=subject,
                    check=check,
                    severity=Severity.BLOCKING,
                    message=f"'{demand.name}' is 0{source}{where} (the default on new accounts): no "
                    f"{demand.group.value} instance can launch this way; the configuration may use {needed}",
                    fix=f"request an increase: {request}",
                )
            )
        elif value < demand.vcpus:
            out.append(
                Finding(
                    subject=subject,
                    check=check,
                    severity=Severity.WARNING,
                    message=f"'{demand.name}' is {value:g}{source}{where}, below the {needed} the "
                    "configuration may use: pools stop short of their limits",
                    fix=f"request an increase ({request}), or lower burstCapacity.maxGpus / maxVcpus",
                )
            )
        else:
            out.append(
                Finding(
                    subject=subject,
                    check=check,
                    severity=Severity.OK,
                    message=f"'{demand.name}' is {value:g}{source}, enough for {needed}",
                )
            )
    return out


# --------------------------------------------------------------------------------------
# EKS quotas: managed node groups per cluster, nodes per node group
# --------------------------------------------------------------------------------------

#: The system node group at its maximum (twice the default size of 2; the command-line
#: tool does not know a ``system_nodes`` given in Python).
SYSTEM_NODEGROUP_MAX = 4


@dataclass(frozen=True, kw_only=True, slots=True)
class EksQuotaDemand:
    """What the configuration needs of one EKS quota."""

    quota: EksQuota
    needed: int
    #: What makes up the demand, for the message.
    parts: tuple[str, ...]


def eks_quota_demand(
    ultraservers: Sequence[UltraServerSpec], reserved: Sequence[ReservedCapacitySpec] = ()
) -> list[EksQuotaDemand]:
    """The managed node groups of the environment (the system node group, one per
    UltraServer, one per ``reservedCapacity`` entry run by a node group; Karpenter's
    capacity is no node group) and the nodes of its largest node group."""
    groups = [spec for spec in reserved if spec.provisioner is ReservedProvisioner.NODEGROUP]
    parts = ["system: 1", f"ultraServers: {len(ultraservers)}"]
    if groups:
        parts.append(f"reservedCapacity node groups: {len(groups)}")
    sizes = [("system node group (at most)", SYSTEM_NODEGROUP_MAX)]
    sizes += [(f"UltraServer {u.name} ({u.type.value})", u.instance_count) for u in ultraservers]
    sizes += [(f"reservedCapacity {spec.name}", spec.instance_count) for spec in groups]
    largest_name, largest = max(sizes, key=lambda item: item[1])
    return [
        EksQuotaDemand(
            quota=EKS_MANAGED_NODEGROUPS, needed=1 + len(ultraservers) + len(groups), parts=tuple(parts)
        ),
        EksQuotaDemand(quota=EKS_NODES_PER_NODEGROUP, needed=largest, parts=(f"{largest_name}: {largest}",)),
    ]


def check_eks_quotas(
    service_quotas: Any,
    *,
    ultraservers: Sequence[UltraServerSpec],
    reserved: Sequence[ReservedCapacitySpec] = (),
    region: str = "",
) -> list[Finding]:
    """Each EKS quota the environment counts against (:func:`eks_quota_demand`) against its
    value in the account: below the need blocks (CloudFormation cannot create the node
    groups past the first quota, and a node group cannot reach its size past the second),
    with the increase to request."""
    out: list[Finding] = []
    where = f" in {region}" if region else ""
    for demand in eks_quota_demand(ultraservers, reserved):
        quota = demand.quota
        subject = f"quota {quota.code}"
        check = f"EKS {quota.name.lower()}"
        read = _read_quota(
            service_quotas,
            "eks",
            quota.code,
            subject=subject,
            check=check,
            unread=f"; EKS's default is {quota.default}, the configuration needs {demand.needed}",
        )
        if isinstance(read, Finding):
            out.append(read)
            continue
        value, applied = read
        needed = f"{demand.needed} ({'; '.join(demand.parts)})"
        if value is None:
            out.append(
                Finding(
                    subject=subject,
                    check=check,
                    severity=Severity.NOTE,
                    message=f"'{quota.name}' not found{where}: not checked; the configuration needs {needed}",
                )
            )
            continue
        source = "" if applied else " (AWS default)"
        if value < demand.needed:
            out.append(
                Finding(
                    subject=subject,
                    check=check,
                    severity=Severity.BLOCKING,
                    message=f"'{quota.name}' is {value:g}{source}{where}, below the {needed} the "
                    "configuration needs: CloudFormation would fail on the node groups past it",
                    fix="request an increase: aws service-quotas request-service-quota-increase "
                    f"--service-code eks --quota-code {quota.code} --desired-value {demand.needed}",
                )
            )
        else:
            out.append(
                Finding(
                    subject=subject,
                    check=check,
                    severity=Severity.OK,
                    message=f"'{quota.name}' is {value:g}{source}, enough for {needed}",
                )
            )
    return out
