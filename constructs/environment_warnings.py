"""The synth warnings of an ``UltraServerEnvironment``: what a user must see before deploying
but that is not an error (an open API endpoint, no admin, extended support, the node group
quota). Each is a CDK annotation with an id the user can acknowledge."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk

from constructs import IConstruct
from eks_ultraserver.config import OPEN_TO_THE_WORLD, EndpointAccess
from eks_ultraserver.model import ControlPlaneTier, control_plane_tier_advice
from eks_ultraserver.quotas import EKS_MANAGED_NODEGROUPS
from eks_ultraserver.versions import extended_support_warning

#: EKS's default quota of managed node groups per cluster (Service Quotas L-6D54EA21).
MANAGED_NODEGROUPS_QUOTA = EKS_MANAGED_NODEGROUPS.default


def environment_warnings(
    scope: IConstruct,
    *,
    kubernetes_version: str,
    endpoint_access: EndpointAccess,
    public_access_cidrs: Sequence[str] | None,
    admin_principal_arn: str | None,
    nodegroups: int,
    control_plane_tier: ControlPlaneTier | None = None,
    fleet_nodes: int = 0,
    fleet_gpus: int = 0,
) -> None:
    """Adds every warning that applies to ``scope``; ``nodegroups``: the managed node groups
    of the cluster (system, UltraServers, reserved capacity); ``fleet_nodes`` /
    ``fleet_gpus``: the most nodes and GPUs the fleet can run, against what is documented
    for ``control_plane_tier`` (``None``: not set, EKS's standard)."""
    access_warnings(
        scope,
        endpoint_access=endpoint_access,
        public_access_cidrs=public_access_cidrs,
        admin_principal_arn=admin_principal_arn,
    )
    extended = extended_support_warning(kubernetes_version)
    if extended:
        cdk.Annotations.of(scope).add_warning_v2("eks-ultraserver:extended-support", extended)
    if nodegroups > MANAGED_NODEGROUPS_QUOTA:
        cdk.Annotations.of(scope).add_warning_v2(
            "eks-ultraserver:nodegroup-quota",
            f"{nodegroups} managed node groups exceed EKS's default quota of "
            f"{MANAGED_NODEGROUPS_QUOTA} per cluster (Service Quotas: Amazon EKS, "
            "'Managed node groups per cluster', L-6D54EA21): request an increase "
            "before deploying.",
        )
    for key, message in control_plane_tier_advice(control_plane_tier, nodes=fleet_nodes, gpus=fleet_gpus):
        cdk.Annotations.of(scope).add_warning_v2(f"eks-ultraserver:{key}", message)


def access_warnings(
    scope: IConstruct,
    *,
    endpoint_access: EndpointAccess,
    public_access_cidrs: Sequence[str] | None,
    admin_principal_arn: str | None,
) -> None:
    """Warnings about who can reach and use the Kubernetes API."""
    if endpoint_access.public and (not public_access_cidrs or OPEN_TO_THE_WORLD in public_access_cidrs):
        cdk.Annotations.of(scope).add_warning_v2(
            "eks-ultraserver:endpoint-open-to-the-world",
            "The cluster's public API endpoint accepts connections from every address "
            "(0.0.0.0/0; IAM authentication still applies). Restrict it to your networks "
            "with publicAccessCidrs (cdk.json context, e.g. -c "
            "publicAccessCidrs='[\"203.0.113.0/24\"]'; construct argument "
            "public_access_cidrs), or use endpointAccess 'private'.",
        )
    if not admin_principal_arn:
        cdk.Annotations.of(scope).add_warning_v2(
            "eks-ultraserver:no-admin-principal",
            "No adminPrincipalArn: only the role CloudFormation deploys with (EKS makes "
            "the cluster creator admin) and CDK's kubectl handler have access entries, so "
            "after `aws eks update-kubeconfig` kubectl is refused for everyone else. Set "
            "adminPrincipalArn to the IAM role or user you run kubectl as (cdk.json "
            "context, e.g. -c adminPrincipalArn=arn:aws:iam::123456789012:role/Admin; "
            "construct argument admin_principal_arn).",
        )
