"""Preflight: reserved and burst instance types offered in their zones
(``DescribeInstanceTypeOfferings``, botocore Stubber: each stubbed response is validated
against the installed EC2 service model)."""

from __future__ import annotations

import pytest

from eks_ultraserver.aws_checks import (
    AwsSetupError,
    Severity,
    check_instance_offerings,
    offered_instance_types,
)
from eks_ultraserver.capacity import BurstCapacitySpec, ReservedCapacitySpec, ReservedProvisioner

import aws_stubs as s

LOCAL_ZONE = "us-east-1-dfw-2a"
ODCR = ReservedCapacitySpec(
    name="eval",
    instance_type="p5.48xlarge",
    instance_count=2,
    capacity_reservation_id="cr-0aaaaaaaaaaaaaaa1",
    availability_zone="us-east-1a",
)
BURST = BurstCapacitySpec(instance_families=("g6e", "p5"), max_gpus=16, availability_zone=LOCAL_ZONE)


def _offerings(zone: str, *types: str, token: str | None = None) -> dict:
    out: dict = {
        "InstanceTypeOfferings": [
            {"InstanceType": t, "LocationType": "availability-zone", "Location": zone} for t in types
        ]
    }
    if token:
        out["NextToken"] = token
    return out


def _params(zone: str, *patterns: str, token: str | None = None) -> dict:
    out: dict = {
        "LocationType": "availability-zone",
        "Filters": [
            {"Name": "location", "Values": [zone]},
            {"Name": "instance-type", "Values": sorted(patterns)},
        ],
    }
    if token:
        out["NextToken"] = token
    return out


def test_types_offered_in_their_zones_are_ok_and_one_family_missing_blocks():
    """GIVEN an ODCR of p5.48xlarge in us-east-1a and a burst pool of g6e and p5 in a Local
    Zone that offers only g6e types WHEN checked THEN one call per zone (the burst families
    as wildcards), the ODCR and g6e OK, p5 blocking with the command to find a zone."""
    ec2, stub = s.stubbed("ec2")
    stub.add_response(
        "describe_instance_type_offerings",
        _offerings(LOCAL_ZONE, "g6e.xlarge", "g6e.12xlarge"),
        expected_params=_params(LOCAL_ZONE, "g6e.*", "p5.*"),
    )
    stub.add_response(
        "describe_instance_type_offerings",
        _offerings("us-east-1a", "p5.48xlarge"),
        expected_params=_params("us-east-1a", "p5.48xlarge"),
    )
    with stub:
        findings = check_instance_offerings(ec2, reserved=[ODCR], burst=BURST, region="us-east-1")
        stub.assert_no_pending_responses()
    by_subject = {f.subject: f for f in findings}
    assert by_subject["reservedCapacity eval"].severity is Severity.OK
    assert by_subject["burstCapacity family g6e"].severity is Severity.OK
    assert (
        "g6e.12xlarge, g6e.xlarge offered in us-east-1-dfw-2a"
        in by_subject["burstCapacity family g6e"].message
    )
    p5 = by_subject["burstCapacity family p5"]
    assert p5.severity is Severity.BLOCKING
    assert p5.message.startswith("no p5 instance type is offered in us-east-1-dfw-2a (us-east-1)")
    assert "describe-instance-type-offerings" in p5.fix and "Values=p5.*" in p5.fix


def test_sizes_are_checked_one_by_one_and_pages_are_followed():
    """GIVEN a zoned burst pool with sizes and a reservation without a zone (Python spec)
    WHEN EC2 answers in two pages THEN both pages count, the reservation is checked in the
    UltraServers' zone, and a size not offered blocks."""
    burst = BurstCapacitySpec(
        instance_families=("g6e",),
        instance_sizes=("12xlarge", "48xlarge"),
        max_gpus=8,
        availability_zone=LOCAL_ZONE,
    )
    no_zone = ReservedCapacitySpec(
        name="kp",
        instance_type="g6e.12xlarge",
        instance_count=1,
        capacity_reservation_id="cr-0aaaaaaaaaaaaaaa2",
        provisioner=ReservedProvisioner.KARPENTER,
    )
    ec2, stub = s.stubbed("ec2")
    patterns = ("g6e.12xlarge", "g6e.48xlarge")
    stub.add_response(
        "describe_instance_type_offerings",
        _offerings(LOCAL_ZONE, token="page2"),
        expected_params=_params(LOCAL_ZONE, *patterns),
    )
    stub.add_response(
        "describe_instance_type_offerings",
        _offerings(LOCAL_ZONE, "g6e.12xlarge"),
        expected_params=_params(LOCAL_ZONE, *patterns, token="page2"),
    )
    with stub:
        findings = check_instance_offerings(
            ec2, reserved=[no_zone], burst=burst, availability_zone=LOCAL_ZONE
        )
        stub.assert_no_pending_responses()
    severities = {f.subject: f.severity for f in findings}
    assert severities == {
        "burstCapacity g6e.12xlarge": Severity.OK,
        "burstCapacity g6e.48xlarge": Severity.BLOCKING,
        "reservedCapacity kp": Severity.OK,
    }


def test_nothing_is_asked_without_a_zone():
    """GIVEN a burst pool without a zone and no reservation THEN no call, no finding."""
    ec2, stub = s.stubbed("ec2")
    with stub:
        assert (
            check_instance_offerings(ec2, burst=BurstCapacitySpec(instance_families=("g6e",), max_gpus=8))
            == []
        )


def test_permission_denied_is_a_note_and_credentials_errors_stop_the_run():
    ec2, stub = s.stubbed("ec2")
    stub.add_client_error("describe_instance_type_offerings", "UnauthorizedOperation")
    with stub:
        (finding,) = check_instance_offerings(ec2, reserved=[ODCR])
    assert finding.severity is Severity.NOTE
    assert finding.message == "DescribeInstanceTypeOfferings failed (UnauthorizedOperation): not checked"
    ec2, stub = s.stubbed("ec2")
    stub.add_client_error("describe_instance_type_offerings", "AuthFailure")
    with stub, pytest.raises(AwsSetupError, match="AWS rejected the credentials"):
        offered_instance_types(ec2, "us-east-1a", ["p5.48xlarge"])
