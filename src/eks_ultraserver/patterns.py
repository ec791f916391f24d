"""Every text pattern the library checks input against, once.

Part of the shared model: imports neither aws_cdk nor cdk8s. Each pattern is a compiled
regular expression anchored at both ends (use ``.match``); the ``is_*`` helpers also check
the type and the length limits the pattern alone cannot express.

Sources: Kubernetes object names and labels (Kubernetes docs, "Object Names and IDs",
"Labels and Selectors"); EC2 ids, zones and ARNs (EC2 API reference, IAM user guide
"IAM identifiers"); EKS cluster names (EKS API reference, CreateCluster ``name``); EKS AMI
release versions (EKS API reference, Nodegroup ``releaseVersion``, e.g. ``1.35.2-20260101``).
"""

from __future__ import annotations

import re

__all__ = [
    "ACCOUNT_RE",
    "AL2023_ALIAS_RE",
    "AMI_RELEASE_VERSION_RE",
    "AVAILABILITY_ZONE_RE",
    "DNS1123_LABEL_RE",
    "DNS1123_SUBDOMAIN_RE",
    "DURATION_RE",
    "EKS_CLUSTER_NAME_RE",
    "EMAIL_RE",
    "IAM_PRINCIPAL_ARN_RE",
    "INSTANCE_FAMILY_RE",
    "INSTANCE_SIZE_RE",
    "INSTANCE_TYPE_RE",
    "INTEGER_RE",
    "LABEL_NAME_RE",
    "REGION_RE",
    "RESERVATION_ID_RE",
    "RESOURCE_GROUP_ARN_RE",
    "SUBNET_ID_RE",
    "VPC_ID_RE",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_label_key",
    "is_label_value",
    "is_reservation_id",
    "matches",
]

# -- EC2 and IAM ------------------------------------------------------------------------

#: A Capacity Reservation id: ``cr-`` followed by 17 hexadecimal digits.
RESERVATION_ID_RE = re.compile(r"^cr-[0-9a-f]{17}$")
#: An Availability Zone (``us-east-1a``) or Local Zone (``us-east-1-dfw-2a``) name.
AVAILABILITY_ZONE_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]?(-[a-z0-9]+-\d+)?[a-z]$")
#: A Region name, e.g. ``us-east-1``.
REGION_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
#: A 12-digit AWS account id.
ACCOUNT_RE = re.compile(r"^\d{12}$")
#: A VPC id (old 8-digit or current 17-digit form).
VPC_ID_RE = re.compile(r"^vpc-([0-9a-f]{8}|[0-9a-f]{17})$")
#: A subnet id (8 or 17 hexadecimal digits).
SUBNET_ID_RE = re.compile(r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$")
#: An IAM role or user ARN (or an STS assumed-role ARN).
IAM_PRINCIPAL_ARN_RE = re.compile(r"^arn:aws[a-z-]*:(iam|sts)::\d{12}:[A-Za-z0-9+=,.@_/:-]+$")
#: The ARN of a Capacity Reservation resource group.
RESOURCE_GROUP_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:resource-groups:[a-z0-9-]+:\d{12}:group/[A-Za-z0-9_.-]{1,128}$"
)
#: An EC2 instance type, e.g. ``p5.48xlarge``; its family (``p6-b200``) and size (``48xlarge``).
INSTANCE_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
INSTANCE_FAMILY_RE = re.compile(r"^[a-z][a-z0-9-]*$")
INSTANCE_SIZE_RE = re.compile(r"^[a-z0-9]+$")

# -- EKS and Karpenter ------------------------------------------------------------------

#: An EKS cluster name: 1-100 letters, digits, '-', '_', starting with a letter or digit.
EKS_CLUSTER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
#: An EKS AMI release version ``<kubernetes major.minor>.<patch>-<yyyymmdd>``; group 1 is
#: the Kubernetes version, group 2 the release date.
AMI_RELEASE_VERSION_RE = re.compile(r"^(\d+\.\d+)\.\d+-(\d{8})$")
#: A Karpenter duration such as ``10m`` or ``1h30m``.
DURATION_RE = re.compile(r"^([0-9]+(s|m|h))+$")
#: An EC2NodeClass AL2023 AMI alias: ``al2023@latest`` or ``al2023@v20251103``.
AL2023_ALIAS_RE = re.compile(r"^al2023@(latest|v\d{8})$")

# -- Kubernetes names -------------------------------------------------------------------

DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
#: The name part of a label key, and a non-empty label value.
LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")

# -- Other ------------------------------------------------------------------------------

#: Good enough for an SNS e-mail subscription endpoint: something@domain.tld.
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: A decimal integer, as ``-c key=42`` gives it.
INTEGER_RE = re.compile(r"^-?\d+$")


def matches(pattern: re.Pattern[str], value: object) -> bool:
    """``value`` is a string that ``pattern`` matches."""
    return isinstance(value, str) and bool(pattern.match(value))


def is_reservation_id(value: object) -> bool:
    return matches(RESERVATION_ID_RE, value)


def is_dns1123_label(value: object, max_length: int = 63) -> bool:
    return isinstance(value, str) and 0 < len(value) <= max_length and bool(DNS1123_LABEL_RE.match(value))


def is_dns1123_subdomain(value: object, max_length: int = 253) -> bool:
    return isinstance(value, str) and 0 < len(value) <= max_length and bool(DNS1123_SUBDOMAIN_RE.match(value))


def is_label_value(value: object) -> bool:
    return isinstance(value, str) and (value == "" or (len(value) <= 63 and bool(LABEL_NAME_RE.match(value))))


def is_label_key(value: object) -> bool:
    if not isinstance(value, str) or not value:
        return False
    prefix, slash, name = value.rpartition("/")
    if slash and not is_dns1123_subdomain(prefix):
        return False
    return 0 < len(name) <= 63 and bool(LABEL_NAME_RE.match(name))
