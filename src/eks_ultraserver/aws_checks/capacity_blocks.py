"""Capacity Blocks of the UltraServers: the UltraServer type (``DescribeCapacityBlocks``)
and the interconnect status (``DescribeCapacityBlockStatus``) of the block behind each
reservation. The reservation itself (state, zone, time left) is checked in
``reservations.py``, whose ``check_reservations`` runs both."""

from __future__ import annotations

from typing import Any

from botocore import exceptions as botocore_exceptions

from eks_ultraserver.aws_checks.errors import (
    AwsSetupError,
    call,
    error_reason,
    has_operation,
    is_optional_failure,
)
from eks_ultraserver.aws_checks.findings import Finding, Severity
from eks_ultraserver.aws_checks.reservations import ReservationFacts, subject_of
from eks_ultraserver.config import UltraServerSpec

__all__ = ["check_capacity_block"]


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
            response = call(
                "ec2:DescribeCapacityBlocks", ec2.describe_capacity_blocks, CapacityBlockIds=[block_id]
            )
        except (botocore_exceptions.ClientError, AwsSetupError) as exc:
            if not is_optional_failure(exc):
                raise
            out.append(
                note("ultraserver type", f"DescribeCapacityBlocks failed ({error_reason(exc)}): not checked")
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
        response = call(
            "ec2:DescribeCapacityBlockStatus",
            ec2.describe_capacity_block_status,
            CapacityBlockIds=[block_id],
        )
    except (botocore_exceptions.ClientError, AwsSetupError) as exc:
        if not is_optional_failure(exc):
            raise
        out.append(
            note("interconnect", f"DescribeCapacityBlockStatus failed ({error_reason(exc)}): not checked")
        )
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
