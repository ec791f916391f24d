"""Checks of the AWS side that CloudFormation cannot make: Capacity Blocks, AMI, EKS versions.

Every function takes ready boto3 clients (so tests pass botocore ``Stubber``-wrapped
clients) and returns :class:`Finding` values; nothing here creates a session, prints or
exits. ``eks-ultraserver preflight`` (``commands/preflight.py``) and the synth-time lookup
(``eks_ultraserver/lookups.py``) build on it. Only the command-line tool and the lookup import
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

The checks live in modules by concern: ``errors`` (botocore errors, one call at a time),
``findings`` (results), ``reservations`` and ``capacity_blocks`` (the UltraServers' Capacity
Blocks: the reservations, then each block's UltraServer type and interconnect), ``platform``
(AMI, Kubernetes version), ``quotas`` (reserved and burst capacity, the EKS node group
quotas), ``offerings`` (their instance types offered in their zones), ``report`` (all of
them); this package re-exports their public names.
"""

from eks_ultraserver.aws_checks.capacity_blocks import check_capacity_block
from eks_ultraserver.aws_checks.errors import (
    AwsSetupError,
    call,
    error_code,
    has_operation,
    setup_error,
)
from eks_ultraserver.aws_checks.findings import (
    Finding,
    Severity,
    format_duration,
    worst,
)
from eks_ultraserver.aws_checks.offerings import check_instance_offerings, offered_instance_types
from eks_ultraserver.aws_checks.platform import (
    AmiFacts,
    ami_parameter_name,
    check_ami,
    check_kubernetes_version,
    describe_ami,
    release_date,
)
from eks_ultraserver.aws_checks.quotas import (
    EksQuotaDemand,
    QuotaDemand,
    check_eks_quotas,
    check_reserved_capacity,
    check_vcpu_quotas,
    eks_quota_demand,
    get_quota,
    get_vcpu_quota,
    vcpu_demand,
)
from eks_ultraserver.aws_checks.report import (
    PreflightReport,
    run_preflight,
)
from eks_ultraserver.aws_checks.reservations import (
    DEFAULT_MIN_TIME_LEFT,
    EC2_TERMINATION_BEFORE_END,
    EKS_SCALE_DOWN_BEFORE_END,
    RESERVATION_STATES,
    ReservationFacts,
    check_reservation,
    check_reservations,
    describe_reservation,
)

__all__ = [
    "DEFAULT_MIN_TIME_LEFT",
    "EC2_TERMINATION_BEFORE_END",
    "EKS_SCALE_DOWN_BEFORE_END",
    "RESERVATION_STATES",
    "AmiFacts",
    "AwsSetupError",
    "EksQuotaDemand",
    "Finding",
    "PreflightReport",
    "QuotaDemand",
    "ReservationFacts",
    "Severity",
    "ami_parameter_name",
    "call",
    "check_ami",
    "check_capacity_block",
    "check_eks_quotas",
    "check_instance_offerings",
    "check_kubernetes_version",
    "check_reservation",
    "check_reservations",
    "check_reserved_capacity",
    "check_vcpu_quotas",
    "describe_ami",
    "describe_reservation",
    "eks_quota_demand",
    "error_code",
    "format_duration",
    "get_quota",
    "get_vcpu_quota",
    "has_operation",
    "offered_instance_types",
    "release_date",
    "run_preflight",
    "setup_error",
    "vcpu_demand",
    "worst",
]
