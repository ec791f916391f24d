"""Is each reserved and burst instance type offered in its zone? (``DescribeInstanceTypeOfferings``)

A Local Zone offers few instance types (the AWS Local Zones features page lists them per
zone), and a regular AZ does not offer every GPU type either. CloudFormation finds out only
when a node group or Karpenter fails to launch, after the cluster exists; the EC2 API says it
up front: ``DescribeInstanceTypeOfferings`` with ``LocationType=availability-zone`` and the
filters ``location`` (the zone's name) and ``instance-type`` (wildcards allowed, so
``g6e.*`` asks for a whole family) lists the types offered there (EC2 API reference,
DescribeInstanceTypeOfferings).

What is checked:

- each ``reservedCapacity`` entry: its instance type in its zone (``availabilityZone``; a
  Python spec without one: the UltraServers' zone, when known);
- ``burstCapacity`` with ``availabilityZone``: each family (and size, when sizes are given)
  has at least one instance type offered there. Without a zone the burst pool uses the
  VPC's regular private subnets, whose zones the preflight does not know: not checked.

A type or family not offered blocks (the nodes could never launch there); a permission or
API error makes the check a note.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore import exceptions as botocore_exceptions

from eks_ultraserver.aws_checks.errors import AwsSetupError, call, error_reason, is_optional_failure
from eks_ultraserver.aws_checks.findings import Finding, Severity
from eks_ultraserver.capacity import BurstCapacitySpec, ReservedCapacitySpec

__all__ = ["check_instance_offerings", "offered_instance_types"]

#: ``DescribeInstanceTypeOfferings`` accepts at most this many values per filter.
_MAX_FILTER_VALUES = 200


def offered_instance_types(ec2: Any, zone: str, patterns: Sequence[str]) -> set[str]:
    """The instance types matching ``patterns`` (names or wildcards such as ``g6e.*``) that
    EC2 offers in the zone ``zone`` (every page of the answer)."""
    found: set[str] = set()
    values = sorted(set(patterns))
    for start in range(0, len(values), _MAX_FILTER_VALUES):
        kwargs: dict[str, Any] = {
            "LocationType": "availability-zone",
            "Filters": [
                {"Name": "location", "Values": [zone]},
                {"Name": "instance-type", "Values": values[start : start + _MAX_FILTER_VALUES]},
            ],
        }
        while True:
            response = call(
                "ec2:DescribeInstanceTypeOfferings", ec2.describe_instance_type_offerings, **kwargs
            )
            found.update(o["InstanceType"] for o in response.get("InstanceTypeOfferings", []))
            token = response.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
    return found


def _burst_patterns(burst: BurstCapacitySpec) -> dict[str, str]:
    """What the burst pool needs offered: pattern -> how the finding names it."""
    if burst.instance_sizes:
        return {
            f"{f}.{s}": f"burstCapacity {f}.{s}"
            for f in burst.instance_families
            for s in burst.instance_sizes
        }
    return {f"{f}.*": f"burstCapacity family {f}" for f in burst.instance_families}


def check_instance_offerings(
    ec2: Any,
    *,
    reserved: Sequence[ReservedCapacitySpec] = (),
    burst: BurstCapacitySpec | None = None,
    availability_zone: str | None = None,
    region: str = "",
) -> list[Finding]:
    """One finding per reserved instance type and per burst family (or family and size) in
    a zone: OK when EC2 offers it there, blocking when not.

    :param availability_zone: the UltraServers' zone, for reserved entries without one
        (Python specs). Default: such entries are not checked.
    """
    wanted: dict[str, dict[str, list[str]]] = {}  # zone -> pattern -> subjects
    for r in reserved:
        zone = r.availability_zone or availability_zone
        if zone:
            wanted.setdefault(zone, {}).setdefault(r.instance_type, []).append(f"reservedCapacity {r.name}")
    if burst is not None and burst.availability_zone:
        for pattern, subject in _burst_patterns(burst).items():
            wanted.setdefault(burst.availability_zone, {}).setdefault(pattern, []).append(subject)
    out: list[Finding] = []
    where = f" ({region})" if region else ""
    for zone in sorted(wanted):
        patterns = wanted[zone]
        try:
            offered = offered_instance_types(ec2, zone, list(patterns))
        except (botocore_exceptions.ClientError, AwsSetupError) as exc:
            if not is_optional_failure(exc):
                raise
            out.append(
                Finding(
                    subject=f"zone {zone}",
                    check="instance offerings",
                    severity=Severity.NOTE,
                    message=f"DescribeInstanceTypeOfferings failed ({error_reason(exc)}): not checked",
                )
            )
            continue
        for pattern in sorted(patterns):
            family = pattern[:-2] if pattern.endswith(".*") else None
            hits = sorted(t for t in offered if (t.split(".", 1)[0] == family if family else t == pattern))
            for subject in patterns[pattern]:
                if hits:
                    out.append(
                        Finding(
                            subject=subject,
                            check="offered in zone",
                            severity=Severity.OK,
                            message=f"{', '.join(hits)} offered in {zone}",
                        )
                    )
                else:
                    what = f"no {family} instance type is" if family else f"{pattern} is not"
                    out.append(
                        Finding(
                            subject=subject,
                            check="offered in zone",
                            severity=Severity.BLOCKING,
                            message=f"{what} offered in {zone}{where}: its nodes could never launch there",
                            fix=(
                                "pick a zone that offers it (aws ec2 describe-instance-type-offerings "
                                "--location-type availability-zone --filters "
                                f"Name=instance-type,Values={pattern}) and set that zone in "
                                "availabilityZone, or another instance type"
                            ),
                        )
                    )
    return out
