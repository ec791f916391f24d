"""Checks of the AWS side that CloudFormation cannot make: Capacity Blocks, AMI, EKS versions.

Every function takes ready boto3 clients (so tests pass botocore ``Stubber``-wrapped
clients) and returns :class:`Finding` values; nothing here creates a session, prints or
exits. ``eks-ultraserver preflight`` (``commands/preflight.py``) and the synth-time lookup
(``constructs/lookups.py``) build on it. Only the command-line tool and the lookup import
this module: importing the library does not import botocore.

Facts used here, and where they come from:

- The Capacity Reservation fields and the state enum are those of the EC2 API
  (``DescribeCapacityReservations``; ``CapacityReservationState`` in botocore's
  ``ec2/2016-11-15/service-2.json``). Capacity Block states: EC2 user guide,
  capacity-blocks-view ("payment-pending", "payment-failed" = the block was released,
  "scheduled", "active", "expired").
- ``DescribeCapacityBlocks`` gives a block's ``UltraserverType``; ``DescribeCapacityBlockStatus``
  gives ``InterconnectStatus`` (ok | impaired | insufficient-data) and the unavailable
  capacity. Both are recent: with an older botocore the checks degrade to a note.
- EKS scales a Capacity Block node group down 40 minutes before the block ends and EC2
  starts terminating its instances 30 minutes before the end (EKS user guide,
  capacity-blocks-mng; EC2 user guide, capacity-blocks-monitor).
- The AMI: SSM public parameters ``/aws/service/eks/optimized-ami/<k8s>/amazon-linux-2023/
  arm64/nvidia/recommended/{image_id,release_version}`` (EKS user guide, retrieve-ami-id and
  ml-eks-nvidia-ultraserver), release v20251103 or later.
- Kubernetes versions EKS offers: ``DescribeClusterVersions`` (``versionStatus``
  STANDARD_SUPPORT | EXTENDED_SUPPORT | UNSUPPORTED; ``status`` is deprecated).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore import exceptions as botocore_exceptions

from eks_ultraserver.capacity import (
    INSTANCE_TYPES,
    QUOTAS,
    BurstCapacitySpec,
    QuotaGroup,
    ReservationKind,
    ReservedCapacitySpec,
    quota_group_of,
)
from eks_ultraserver.config import UltraServerSpec
from eks_ultraserver.model import INSTANCE_TYPE, UltraServerType
from eks_ultraserver.versions import MIN_AMI_RELEASE_DATE, SUPPORTED_KUBERNETES_VERSIONS

#: Warn when a Capacity Block ends sooner than this (``preflight --min-hours-left``).
DEFAULT_MIN_TIME_LEFT = timedelta(hours=2)
#: EKS adds a scheduled scale-down of the node group this long before the block ends.
EKS_SCALE_DOWN_BEFORE_END = timedelta(minutes=40)
#: EC2 starts terminating a Capacity Block's instances this long before the end.
EC2_TERMINATION_BEFORE_END = timedelta(minutes=30)

_AMI_PARAMETER = "/aws/service/eks/optimized-ami/{k8s}/amazon-linux-2023/arm64/nvidia/recommended/{leaf}"
_RELEASE_VERSION_RE = re.compile(r"^(\d+\.\d+)\.\d+-(\d{8})$")


def ami_parameter_name(kubernetes_version: str, leaf: str = "image_id") -> str:
    """The SSM public parameter of the AL2023 ARM64 NVIDIA AMI for a Kubernetes version."""
    return _AMI_PARAMETER.format(k8s=kubernetes_version, leaf=leaf)


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


class Severity(enum.StrEnum):
    """How much a finding matters. Ordered: ``OK < NOTE < WARNING < BLOCKING``."""

    #: Checked and fine.
    OK = "ok"
    #: Could not be checked, or worth knowing; never fails the run.
    NOTE = "note"
    #: Deploying works, but something will likely hurt (fails the run with ``--strict``).
    WARNING = "warning"
    #: Deploying now would fail or waste the reservation: exit status 1.
    BLOCKING = "blocking"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


@dataclass(frozen=True, kw_only=True, slots=True)
class Finding:
    """One result of one check. Warnings and blocking findings always say what to do."""

    #: What was checked: ``"us-1 cr-0123456789abcdef0"``, ``"Kubernetes 1.35"``, ``"AMI"``.
    subject: str
    #: The check's short name, e.g. ``"state"``, ``"zone"``, ``"interconnect"``.
    check: str
    severity: Severity
    #: What was found.
    message: str
    #: What to do about it (required for warnings and blocking findings).
    fix: str = ""

    def __post_init__(self) -> None:
        if self.severity in (Severity.WARNING, Severity.BLOCKING) and not self.fix:
            raise ValueError(f"finding {self.subject}/{self.check}: a {self.severity} needs a fix")

    def to_json(self) -> dict[str, str]:
        out = {
            "subject": self.subject,
            "check": self.check,
            "severity": self.severity.value,
            "message": self.message,
        }
        if self.fix:
            out["fix"] = self.fix
        return out


def worst(findings: Iterable[Finding]) -> Severity:
    """The most serious severity among ``findings`` (``OK`` when there are none)."""
    return max((f.severity for f in findings), key=lambda s: s.rank, default=Severity.OK)


class AwsSetupError(Exception):
    """Credentials, Region, profile, network or permissions stop the checks from running.

    The message is one line that says what to set; the CLI prints it and exits with 2.
    """


_SETUP_ERRORS = (
    botocore_exceptions.NoCredentialsError,
    botocore_exceptions.PartialCredentialsError,
    botocore_exceptions.NoRegionError,
    botocore_exceptions.ProfileNotFound,
    botocore_exceptions.CredentialRetrievalError,
    botocore_exceptions.TokenRetrievalError,
    botocore_exceptions.SSOError,
    botocore_exceptions.ConnectionError,
    botocore_exceptions.HTTPClientError,
)
_CREDENTIAL_CODES = frozenset(
    {
        "AuthFailure",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "RequestExpired",
        "InvalidSignatureException",
    }
)
_PERMISSION_CODES = frozenset({"UnauthorizedOperation", "AccessDenied", "AccessDeniedException"})


def setup_error(exc: BaseException, *, action: str = "") -> AwsSetupError | None:
    """Translates a botocore error about credentials, Region, network or permissions into
    one clear :class:`AwsSetupError`; returns ``None`` for anything else.

    :param action: the IAM action that was called (named in permission errors).
    """
    if isinstance(exc, botocore_exceptions.NoRegionError):
        return AwsSetupError("no AWS Region: pass --region, set 'region' in cdk.json context or AWS_REGION")
    if isinstance(exc, (botocore_exceptions.NoCredentialsError, botocore_exceptions.PartialCredentialsError)):
        return AwsSetupError(
            f"no usable AWS credentials ({exc}): pass --profile, set AWS_PROFILE, or run "
            "'aws configure' / 'aws sso login'"
        )
    if isinstance(exc, botocore_exceptions.ProfileNotFound):
        return AwsSetupError(f"{exc}: check --profile / AWS_PROFILE against ~/.aws/config")
    if isinstance(exc, (botocore_exceptions.SSOError, botocore_exceptions.TokenRetrievalError)):
        return AwsSetupError(f"{exc}: run 'aws sso login' for this profile")
    if isinstance(exc, botocore_exceptions.CredentialRetrievalError):
        return AwsSetupError(f"{exc}: check the credential source of this profile")
    if isinstance(exc, (botocore_exceptions.ConnectionError, botocore_exceptions.HTTPClientError)):
        return AwsSetupError(f"cannot reach AWS ({exc}): check the network, proxy and --region")
    if isinstance(exc, botocore_exceptions.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in _CREDENTIAL_CODES:
            return AwsSetupError(
                f"AWS rejected the credentials ({code}): refresh them (e.g. 'aws sso login') "
                "or pass another --profile"
            )
        if code == "OptInRequired":
            return AwsSetupError(
                f"the Region is not enabled for this account ({code}): enable it or pass another --region"
            )
        if code in _PERMISSION_CODES:
            what = f" {action}" if action else ""
            return AwsSetupError(
                f"permission denied ({code}): the credentials need{what or ' read access'}; "
                "use a role that has it (--profile)"
            )
    return None


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore_exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code", "")
    return ""


def _call(action: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """Calls one API, turning setup errors into :class:`AwsSetupError`."""
    try:
        return fn(**kwargs)
    except (botocore_exceptions.ClientError, *_SETUP_ERRORS) as exc:
        err = setup_error(exc, action=action)
        if err is not None:
            raise err from exc
        raise


def has_operation(client: Any, operation: str) -> bool:
    """Whether the installed botocore knows an operation (new EC2 APIs may be missing)."""
    return operation in client.meta.service_model.operation_names


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
        response = _call(
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


def format_duration(delta: timedelta) -> str:
    """``timedelta(days=1, hours=2, minutes=3)`` -> ``"1d 2h 3m"`` (never negative)."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    parts.append(f"{minutes}m")
    return " ".join(parts)


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="minutes") if value else "?"


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
    window = f"{_iso(start)} to {_iso(end)}"
    if end <= now:
        return [
            Finding(
                subject=subject,
                check="time left",
                severity=Severity.BLOCKING,
                message=f"the block ended at {_iso(end)} ({format_duration(now - end)} ago)",
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
                    f"group to 0 at {_iso(scale_down)} and EC2 terminates instances from "
                    f"{_iso(end - EC2_TERMINATION_BEFORE_END)}"
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


# --------------------------------------------------------------------------------------
# Capacity Blocks: UltraServer type and interconnect
# --------------------------------------------------------------------------------------


def check_capacity_block(ec2: Any, spec: UltraServerSpec, facts: ReservationFacts) -> list[Finding]:
    """The UltraServer type (``DescribeCapacityBlocks``) and the interconnect status
    (``DescribeCapacityBlockStatus``) of the block behind a reservation.

    Degrades to a note when the installed botocore lacks these operations, the
    reservation reports no ``CapacityBlockId``, or the credentials may not call them.
    """
    subject = subject_of(spec)

    def note(check: str, message: str) -> Finding:
        return Finding(subject=subject, check=check, severity=Severity.NOTE, message=message)

    if not facts.capacity_block_id:
        return [
            note(
                "ultraserver type",
                "EC2 reports no CapacityBlockId for this reservation: UltraServer type and "
                "interconnect not checked",
            )
        ]
    block_id = facts.capacity_block_id
    out: list[Finding] = []

    if not has_operation(ec2, "DescribeCapacityBlocks"):
        out.append(
            note(
                "ultraserver type",
                "this botocore has no DescribeCapacityBlocks: UltraServer type not checked "
                "(upgrade boto3 to check it)",
            )
        )
    else:
        try:
            response = _call(
                "ec2:DescribeCapacityBlocks", ec2.describe_capacity_blocks, CapacityBlockIds=[block_id]
            )
        except (botocore_exceptions.ClientError, AwsSetupError) as exc:
            if not _optional(exc):
                raise
            out.append(
                note("ultraserver type", f"DescribeCapacityBlocks failed ({_reason(exc)}): not checked")
            )
        else:
            blocks = response.get("CapacityBlocks", [])
            if not blocks:
                out.append(note("ultraserver type", f"DescribeCapacityBlocks does not list {block_id}"))
            else:
                us_type = blocks[0].get("UltraserverType")
                if not us_type:
                    out.append(
                        Finding(
                            subject=subject,
                            check="ultraserver type",
                            severity=Severity.BLOCKING,
                            message=f"{block_id} is an instance Capacity Block, not an UltraServer block",
                            fix="P6e-GB200 instances share NVLink only inside an UltraServer: use an "
                            "UltraServer Capacity Block (u-p6e-gb200x36 or u-p6e-gb200x72)",
                        )
                    )
                elif us_type == spec.type.value:
                    out.append(
                        Finding(
                            subject=subject, check="ultraserver type", severity=Severity.OK, message=us_type
                        )
                    )
                else:
                    out.append(
                        Finding(
                            subject=subject,
                            check="ultraserver type",
                            severity=Severity.BLOCKING,
                            message=f"{block_id} reserves {us_type}, but ultraServers[].type is {spec.type.value}",
                            fix=f"set ultraServers[].type to {us_type!r} for this reservation",
                        )
                    )

    if not has_operation(ec2, "DescribeCapacityBlockStatus"):
        out.append(
            note(
                "interconnect",
                "this botocore has no DescribeCapacityBlockStatus: interconnect not checked "
                "(upgrade boto3 to check it)",
            )
        )
        return out
    try:
        response = _call(
            "ec2:DescribeCapacityBlockStatus",
            ec2.describe_capacity_block_status,
            CapacityBlockIds=[block_id],
        )
    except (botocore_exceptions.ClientError, AwsSetupError) as exc:
        if not _optional(exc):
            raise
        out.append(note("interconnect", f"DescribeCapacityBlockStatus failed ({_reason(exc)}): not checked"))
        return out
    statuses = response.get("CapacityBlockStatuses", [])
    if not statuses:
        out.append(note("interconnect", f"DescribeCapacityBlockStatus does not list {block_id}"))
        return out
    status = statuses[0]
    interconnect = status.get("InterconnectStatus")
    if interconnect == "ok":
        out.append(Finding(subject=subject, check="interconnect", severity=Severity.OK, message="ok"))
    elif interconnect == "impaired":
        out.append(
            Finding(
                subject=subject,
                check="interconnect",
                severity=Severity.BLOCKING,
                message=f"the accelerator interconnect (NVLink) of {block_id} is impaired",
                fix="multi-node NVLink jobs will fail or crawl: contact AWS Support with the "
                "Capacity Block id and rerun preflight before starting jobs",
            )
        )
    elif facts.state == "active":
        out.append(
            Finding(
                subject=subject,
                check="interconnect",
                severity=Severity.WARNING,
                message=f"interconnect status is {interconnect or 'not reported'} for an active block",
                fix="run the validation job (nvbandwidth) after the nodes join, and rerun preflight",
            )
        )
    else:
        out.append(
            note("interconnect", f"{interconnect or 'not reported'} (the block is {facts.state or '?'})")
        )
    unavailable = status.get("TotalUnavailableCapacity") or 0
    if unavailable:
        total = status.get("TotalCapacity")
        out.append(
            Finding(
                subject=subject,
                check="capacity",
                severity=Severity.WARNING,
                message=f"{unavailable} of {total if total is not None else '?'} instances are unavailable",
                fix="the node group will not reach its size: contact AWS Support with the Capacity Block id",
            )
        )
    return out


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, AwsSetupError) and exc.__cause__ else exc
    return error_code(cause) or str(exc)


def _optional(exc: BaseException) -> bool:
    """Whether an error of an optional check only means "not checked": any API error, or a
    permission error; credentials, Region and network errors still stop the run."""
    if isinstance(exc, AwsSetupError):
        return error_code(exc.__cause__) in _PERMISSION_CODES if exc.__cause__ else False
    return isinstance(exc, botocore_exceptions.ClientError)


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


# --------------------------------------------------------------------------------------
# AMI and Kubernetes version
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class AmiFacts:
    image_id: str | None
    release_version: str | None


def describe_ami(ssm: Any, kubernetes_version: str) -> AmiFacts:
    """The recommended AL2023 ARM64 NVIDIA AMI id and release for a Kubernetes version."""
    names = [
        ami_parameter_name(kubernetes_version, "image_id"),
        ami_parameter_name(kubernetes_version, "release_version"),
    ]
    response = _call("ssm:GetParameters", ssm.get_parameters, Names=names)
    values = {p["Name"]: p.get("Value") for p in response.get("Parameters", [])}
    return AmiFacts(image_id=values.get(names[0]), release_version=values.get(names[1]))


def release_date(release_version: str) -> str | None:
    """``"1.35.6-20260728"`` -> ``"20260728"``; ``None`` when it is not a release version."""
    match = _RELEASE_VERSION_RE.match(release_version or "")
    return match.group(2) if match else None


def check_ami(ssm: Any, kubernetes_version: str, *, region: str = "") -> list[Finding]:
    """The AL2023 ARM64 NVIDIA AMI EKS will pick for the node groups resolves, and its
    release is v{MIN_AMI_RELEASE_DATE} or later (NVIDIA driver 580, CDMM)."""
    subject = f"AMI {kubernetes_version}"
    name = ami_parameter_name(kubernetes_version)
    where = f" in {region}" if region else ""
    facts = describe_ami(ssm, kubernetes_version)
    if not facts.image_id:
        return [
            Finding(
                subject=subject,
                check="ami",
                severity=Severity.BLOCKING,
                message=f"SSM parameter {name} does not exist{where}: no AL2023 ARM64 NVIDIA AMI "
                f"for Kubernetes {kubernetes_version}",
                fix="use a kubernetesVersion for which EKS publishes the AMI (aws ssm get-parameter "
                f"--name {name}), or a Region that has it",
            )
        ]
    out = [Finding(subject=subject, check="ami", severity=Severity.OK, message=f"{facts.image_id} ({name})")]
    date = release_date(facts.release_version or "")
    if date is None:
        out.append(
            Finding(
                subject=subject,
                check="ami release",
                severity=Severity.NOTE,
                message=f"release version not readable ({facts.release_version!r}); not checked",
            )
        )
    elif date < MIN_AMI_RELEASE_DATE:
        out.append(
            Finding(
                subject=subject,
                check="ami release",
                severity=Severity.BLOCKING,
                message=f"the recommended release {facts.release_version} is older than "
                f"v{MIN_AMI_RELEASE_DATE} (NVIDIA driver 580 with CDMM)",
                fix="use a newer kubernetesVersion; the P6e-GB200 guide needs AMI release "
                f"v{MIN_AMI_RELEASE_DATE} or later",
            )
        )
    else:
        out.append(
            Finding(
                subject=subject,
                check="ami release",
                severity=Severity.OK,
                message=facts.release_version or "",
            )
        )
    return out


def check_kubernetes_version(eks: Any, kubernetes_version: str) -> list[Finding]:
    """EKS offers the configured Kubernetes version (``DescribeClusterVersions``)."""
    subject = f"Kubernetes {kubernetes_version}"
    out: list[Finding] = []
    if kubernetes_version not in SUPPORTED_KUBERNETES_VERSIONS:
        out.append(
            Finding(
                subject=subject,
                check="library support",
                severity=Severity.BLOCKING,
                message=f"this library supports {', '.join(SUPPORTED_KUBERNETES_VERSIONS)}",
                fix=f"set -c kubernetesVersion= one of {', '.join(SUPPORTED_KUBERNETES_VERSIONS)}",
            )
        )
    if not has_operation(eks, "DescribeClusterVersions"):
        out.append(
            Finding(
                subject=subject,
                check="eks version",
                severity=Severity.NOTE,
                message="this botocore has no DescribeClusterVersions: not checked (upgrade boto3)",
            )
        )
        return out
    try:
        response = _call(
            "eks:DescribeClusterVersions",
            eks.describe_cluster_versions,
            clusterVersions=[kubernetes_version],
            includeAll=True,
        )
    except AwsSetupError as exc:
        if _optional(exc):
            out.append(
                Finding(
                    subject=subject,
                    check="eks version",
                    severity=Severity.NOTE,
                    message="not allowed to call eks:DescribeClusterVersions: not checked",
                )
            )
            return out
        raise
    except botocore_exceptions.ClientError as exc:
        out.append(
            Finding(
                subject=subject,
                check="eks version",
                severity=Severity.NOTE,
                message=f"DescribeClusterVersions failed ({_reason(exc)}): not checked",
            )
        )
        return out
    versions = {v.get("clusterVersion"): v for v in response.get("clusterVersions", [])}
    info = versions.get(kubernetes_version)
    if info is None:
        out.append(
            Finding(
                subject=subject,
                check="eks version",
                severity=Severity.BLOCKING,
                message=f"EKS does not offer Kubernetes {kubernetes_version} in this Region",
                fix="set -c kubernetesVersion= a version listed by 'aws eks describe-cluster-versions'",
            )
        )
        return out
    status = info.get("versionStatus") or str(info.get("status", "")).upper().replace("-", "_")
    end_standard = info.get("endOfStandardSupportDate")
    if status == "STANDARD_SUPPORT":
        until = f" until {end_standard.date().isoformat()}" if isinstance(end_standard, datetime) else ""
        out.append(
            Finding(
                subject=subject, check="eks version", severity=Severity.OK, message=f"standard support{until}"
            )
        )
    elif status == "EXTENDED_SUPPORT":
        out.append(
            Finding(
                subject=subject,
                check="eks version",
                severity=Severity.WARNING,
                message="in extended support (the cluster costs more per hour)",
                fix="upgrade kubernetesVersion to a version in standard support (README, Upgrades)",
            )
        )
    else:
        out.append(
            Finding(
                subject=subject,
                check="eks version",
                severity=Severity.BLOCKING,
                message=f"status {status or 'unknown'}: EKS no longer supports it",
                fix=f"set -c kubernetesVersion= one of {', '.join(SUPPORTED_KUBERNETES_VERSIONS)} that EKS supports",
            )
        )
    return out


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
                f"the reservation ended at {_iso(facts.end_date)}",
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
        itype = INSTANCE_TYPES.get(spec.instance_type)
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


def get_vcpu_quota(service_quotas: Any, code: str) -> float | None:
    """The applied value of an EC2 quota (``GetServiceQuota``), ``None`` if there is none."""
    try:
        response = _call(
            "servicequotas:GetServiceQuota",
            service_quotas.get_service_quota,
            ServiceCode="ec2",
            QuotaCode=code,
        )
    except botocore_exceptions.ClientError as exc:
        if error_code(exc) == "NoSuchResourceException":
            return None
        raise
    value = response.get("Quota", {}).get("Value")
    return float(value) if value is not None else None


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
        try:
            value = get_vcpu_quota(service_quotas, demand.code)
        except (botocore_exceptions.ClientError, AwsSetupError) as exc:
            if not _optional(exc):
                raise
            out.append(
                Finding(
                    subject=subject,
                    check=check,
                    severity=Severity.NOTE,
                    message=f"GetServiceQuota failed ({_reason(exc)}): not checked",
                )
            )
            continue
        needed = f"{demand.vcpus} vCPUs ({'; '.join(demand.parts)})"
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
                    message=f"'{demand.name}' is 0{where} (the default on new accounts): no "
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
                    message=f"'{demand.name}' is {value:g}{where}, below the {needed} the "
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
                    message=f"'{demand.name}' is {value:g}, enough for {needed}",
                )
            )
    return out


# --------------------------------------------------------------------------------------
# Everything
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class PreflightReport:
    region: str
    availability_zone: str | None
    kubernetes_version: str
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def worst(self) -> Severity:
        return worst(self.findings)

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.worst not in (Severity.BLOCKING,),
            "region": self.region,
            "availabilityZone": self.availability_zone,
            "kubernetesVersion": self.kubernetes_version,
            "summary": {s.value: self.count(s) for s in Severity},
            "findings": [f.to_json() for f in self.findings],
        }


def run_preflight(
    *,
    ec2: Any,
    ssm: Any,
    eks: Any,
    ultraservers: Sequence[UltraServerSpec],
    availability_zone: str | None,
    kubernetes_version: str,
    region: str,
    now: datetime,
    min_time_left: timedelta = DEFAULT_MIN_TIME_LEFT,
    uses_example_reservation: bool = False,
    progress: Callable[[str], None] = lambda _message: None,
    service_quotas: Any = None,
    reserved: Sequence[ReservedCapacitySpec] = (),
    burst: BurstCapacitySpec | None = None,
) -> PreflightReport:
    """Runs every check. Raises :class:`AwsSetupError` when AWS cannot be asked at all.

    With ``reserved`` / ``burst`` (``reservedCapacity`` / ``burstCapacity``), also checks the
    reservations (:func:`check_reserved_capacity`) and, given a ``service_quotas`` client,
    the GPU vCPU quotas (:func:`check_vcpu_quotas`)."""
    findings: list[Finding] = []
    if uses_example_reservation:
        findings.append(
            Finding(
                subject="ultraServers",
                check="example id",
                severity=Severity.BLOCKING,
                message="cdk.json still lists the example reservation cr-0123456789abcdef0",
                fix="put your Capacity Block's id in ultraServers[].capacityReservationId "
                "(aws ec2 describe-capacity-reservations --filters Name=instance-type,"
                f"Values={INSTANCE_TYPE})",
            )
        )
    findings.extend(
        check_reservations(
            ec2,
            ultraservers,
            availability_zone=availability_zone,
            now=now,
            min_time_left=min_time_left,
            region=region,
            progress=progress,
        )
    )
    progress(f"checking the AL2023 ARM64 NVIDIA AMI for Kubernetes {kubernetes_version}")
    findings.extend(check_ami(ssm, kubernetes_version, region=region))
    progress(f"checking that EKS offers Kubernetes {kubernetes_version}")
    findings.extend(check_kubernetes_version(eks, kubernetes_version))
    if reserved:
        progress(f"checking {len(reserved)} reservation(s) of reservedCapacity")
        findings.extend(check_reserved_capacity(ec2, reserved, now=now, region=region))
    if (reserved or burst) and service_quotas is not None:
        progress("checking the GPU vCPU quotas (Service Quotas)")
        findings.extend(check_vcpu_quotas(service_quotas, reserved=reserved, burst=burst, region=region))
    return PreflightReport(
        region=region,
        availability_zone=availability_zone,
        kubernetes_version=kubernetes_version,
        findings=tuple(findings),
    )


__all__ = [
    "DEFAULT_MIN_TIME_LEFT",
    "RESERVATION_STATES",
    "AmiFacts",
    "AwsSetupError",
    "Finding",
    "PreflightReport",
    "QuotaDemand",
    "ReservationFacts",
    "Severity",
    "ami_parameter_name",
    "check_ami",
    "check_capacity_block",
    "check_kubernetes_version",
    "check_reservation",
    "check_reservations",
    "check_reserved_capacity",
    "check_vcpu_quotas",
    "describe_ami",
    "describe_reservation",
    "format_duration",
    "get_vcpu_quota",
    "release_date",
    "run_preflight",
    "setup_error",
    "vcpu_demand",
    "worst",
]
