"""The AL2023 ARM64 NVIDIA AMI and the Kubernetes versions EKS offers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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
from eks_ultraserver.patterns import AMI_RELEASE_VERSION_RE
from eks_ultraserver.versions import MIN_AMI_RELEASE_DATE, SUPPORTED_KUBERNETES_VERSIONS

_AMI_PARAMETER = "/aws/service/eks/optimized-ami/{k8s}/amazon-linux-2023/arm64/nvidia/recommended/{leaf}"


def ami_parameter_name(kubernetes_version: str, leaf: str = "image_id") -> str:
    """The SSM public parameter of the AL2023 ARM64 NVIDIA AMI for a Kubernetes version."""
    return _AMI_PARAMETER.format(k8s=kubernetes_version, leaf=leaf)


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
    response = call("ssm:GetParameters", ssm.get_parameters, Names=names)
    values = {p["Name"]: p.get("Value") for p in response.get("Parameters", [])}
    return AmiFacts(image_id=values.get(names[0]), release_version=values.get(names[1]))


def release_date(release_version: str) -> str | None:
    """``"1.35.6-20260728"`` -> ``"20260728"``; ``None`` when it is not a release version."""
    match = AMI_RELEASE_VERSION_RE.match(release_version or "")
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
        response = call(
            "eks:DescribeClusterVersions",
            eks.describe_cluster_versions,
            clusterVersions=[kubernetes_version],
            includeAll=True,
        )
    except AwsSetupError as exc:
        if is_optional_failure(exc):
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
                message=f"DescribeClusterVersions failed ({error_reason(exc)}): not checked",
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
                fix="upgrade kubernetesVersion to a version in standard support (docs/operations.md, Upgrading)",
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
