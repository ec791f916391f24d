"""Every check in one run: what ``eks-ultraserver preflight`` prints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from eks_ultraserver.aws_checks.findings import Finding, Severity, worst
from eks_ultraserver.aws_checks.offerings import check_instance_offerings
from eks_ultraserver.aws_checks.platform import check_ami, check_kubernetes_version
from eks_ultraserver.aws_checks.quotas import check_eks_quotas, check_reserved_capacity, check_vcpu_quotas
from eks_ultraserver.aws_checks.reservations import DEFAULT_MIN_TIME_LEFT, check_reservations
from eks_ultraserver.capacity import (
    BurstCapacitySpec,
    ReservedCapacitySpec,
)
from eks_ultraserver.config import UltraServerSpec
from eks_ultraserver.model import INSTANCE_TYPE

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
    reservations (:func:`check_reserved_capacity`), that their instance types (and a zoned
    burst pool's) are offered in their zones (:func:`check_instance_offerings`) and, given a
    ``service_quotas`` client, the GPU vCPU quotas (:func:`check_vcpu_quotas`). Given a
    ``service_quotas`` client, always the EKS quotas of the node groups
    (:func:`check_eks_quotas`)."""
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
    if reserved or (burst is not None and burst.availability_zone):
        progress("checking that the reserved and burst instance types are offered in their zones")
        findings.extend(
            check_instance_offerings(
                ec2, reserved=reserved, burst=burst, availability_zone=availability_zone, region=region
            )
        )
    if (reserved or burst) and service_quotas is not None:
        progress("checking the GPU vCPU quotas (Service Quotas)")
        findings.extend(check_vcpu_quotas(service_quotas, reserved=reserved, burst=burst, region=region))
    if service_quotas is not None:
        progress("checking the EKS node group quotas (Service Quotas)")
        findings.extend(
            check_eks_quotas(service_quotas, ultraservers=ultraservers, reserved=reserved, region=region)
        )
    return PreflightReport(
        region=region,
        availability_zone=availability_zone,
        kubernetes_version=kubernetes_version,
        findings=tuple(findings),
    )
