"""The Karpenter controller's IAM policy documents, and how they become CloudFormation.

:func:`controller_policies` holds the statements of Karpenter's v1.14 getting-started
CloudFormation template (``website/content/en/v1.14/getting-started/
getting-started-with-karpenter/cloudformation.yaml`` in aws/karpenter-provider-aws) as data,
with ``${ClusterName}``, ``${NodeRoleArn}``, ``${QueueArn}`` and CloudFormation pseudo
parameters left for ``Fn::Sub``; :func:`policy_document` substitutes them. The
``Karpenter`` construct (``karpenter.py``) attaches one managed policy per document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk

__all__ = ["controller_policies", "policy_document"]


def _arn(resource: str, *, account: str = "*") -> str:
    return f"arn:${{AWS::Partition}}:ec2:${{AWS::Region}}:{account}:{resource}"


_TAGGED_BY_CLUSTER = {"aws:ResourceTag/kubernetes.io/cluster/${ClusterName}": "owned"}
_LAUNCHED_RESOURCES = [
    _arn("fleet/*"),
    _arn("instance/*"),
    _arn("volume/*"),
    _arn("network-interface/*"),
    _arn("launch-template/*"),
    _arn("spot-instances-request/*"),
]


def controller_policies() -> dict[str, dict[str, Any]]:
    """The controller's policy documents (name -> document), with ``${ClusterName}``,
    ``${NodeRoleArn}``, ``${QueueArn}`` and CloudFormation pseudo parameters left for
    ``Fn::Sub``. Statements as in Karpenter's v1.14 getting-started template."""
    return {
        "NodeLifecycle": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AllowScopedEC2InstanceAccessActions",
                    "Effect": "Allow",
                    "Resource": [
                        "arn:${AWS::Partition}:ec2:${AWS::Region}::image/*",
                        "arn:${AWS::Partition}:ec2:${AWS::Region}::snapshot/*",
                        _arn("security-group/*"),
                        _arn("subnet/*"),
                        _arn("capacity-reservation/*"),
                        _arn("placement-group/*"),
                    ],
                    "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
                },
                {
                    "Sid": "AllowScopedEC2LaunchTemplateAccessActions",
                    "Effect": "Allow",
                    "Resource": _arn("launch-template/*"),
                    "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
                    "Condition": {
                        "StringEquals": dict(_TAGGED_BY_CLUSTER),
                        "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                    },
                },
                {
                    "Sid": "AllowScopedEC2InstanceActionsWithTags",
                    "Effect": "Allow",
                    "Resource": list(_LAUNCHED_RESOURCES),
                    "Action": ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"],
                    "Condition": {
                        "StringEquals": {
                            "aws:RequestTag/kubernetes.io/cluster/${ClusterName}": "owned",
                            "aws:RequestTag/eks:eks-cluster-name": "${ClusterName}",
                        },
                        "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
                    },
                },
                {
                    "Sid": "AllowScopedResourceCreationTagging",
                    "Effect": "Allow",
                    "Resource": list(_LAUNCHED_RESOURCES),
                    "Action": "ec2:CreateTags",
                    "Condition": {
                        "StringEquals": {
                            "aws:RequestTag/kubernetes.io/cluster/${ClusterName}": "owned",
                            "aws:RequestTag/eks:eks-cluster-name": "${ClusterName}",
                            "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"],
                        },
                        "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
                    },
                },
                {
                    "Sid": "AllowScopedResourceTagging",
                    "Effect": "Allow",
                    "Resource": _arn("instance/*"),
                    "Action": "ec2:CreateTags",
                    "Condition": {
                        "StringEquals": dict(_TAGGED_BY_CLUSTER),
                        "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                        "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": "${ClusterName}"},
                        "ForAllValues:StringEquals": {
                            "aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]
                        },
                    },
                },
                {
                    "Sid": "AllowScopedDeletion",
                    "Effect": "Allow",
                    "Resource": [_arn("instance/*"), _arn("launch-template/*")],
                    "Action": ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
                    "Condition": {
                        "StringEquals": dict(_TAGGED_BY_CLUSTER),
                        "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                    },
                },
            ],
        },
        "IAMIntegration": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AllowPassingInstanceRole",
                    "Effect": "Allow",
                    "Resource": "${NodeRoleArn}",
                    "Action": "iam:PassRole",
                    "Condition": {
                        "StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]}
                    },
                },
                {
                    "Sid": "AllowScopedInstanceProfileCreationActions",
                    "Effect": "Allow",
                    "Resource": "arn:${AWS::Partition}:iam::${AWS::AccountId}:instance-profile/*",
                    "Action": ["iam:CreateInstanceProfile"],
                    "Condition": {
                        "StringEquals": {
                            "aws:RequestTag/kubernetes.io/cluster/${ClusterName}": "owned",
                            "aws:RequestTag/eks:eks-cluster-name": "${ClusterName}",
                            "aws:RequestTag/topology.kubernetes.io/region": "${AWS::Region}",
                        },
                        "StringLike": {"aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"},
                    },
                },
                {
                    "Sid": "AllowScopedInstanceProfileTagActions",
                    "Effect": "Allow",
                    "Resource": "arn:${AWS::Partition}:iam::${AWS::AccountId}:instance-profile/*",
                    "Action": ["iam:TagInstanceProfile"],
                    "Condition": {
                        "StringEquals": {
                            "aws:ResourceTag/kubernetes.io/cluster/${ClusterName}": "owned",
                            "aws:ResourceTag/topology.kubernetes.io/region": "${AWS::Region}",
                            "aws:RequestTag/kubernetes.io/cluster/${ClusterName}": "owned",
                            "aws:RequestTag/eks:eks-cluster-name": "${ClusterName}",
                            "aws:RequestTag/topology.kubernetes.io/region": "${AWS::Region}",
                        },
                        "StringLike": {
                            "aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*",
                            "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*",
                        },
                    },
                },
                {
                    "Sid": "AllowScopedInstanceProfileActions",
                    "Effect": "Allow",
                    "Resource": "arn:${AWS::Partition}:iam::${AWS::AccountId}:instance-profile/*",
                    "Action": [
                        "iam:AddRoleToInstanceProfile",
                        "iam:RemoveRoleFromInstanceProfile",
                        "iam:DeleteInstanceProfile",
                    ],
                    "Condition": {
                        "StringEquals": {
                            "aws:ResourceTag/kubernetes.io/cluster/${ClusterName}": "owned",
                            "aws:ResourceTag/topology.kubernetes.io/region": "${AWS::Region}",
                        },
                        "StringLike": {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*"},
                    },
                },
            ],
        },
        "EKSIntegration": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AllowAPIServerEndpointDiscovery",
                    "Effect": "Allow",
                    "Resource": "arn:${AWS::Partition}:eks:${AWS::Region}:${AWS::AccountId}:cluster/${ClusterName}",
                    "Action": "eks:DescribeCluster",
                }
            ],
        },
        "Interruption": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AllowInterruptionQueueActions",
                    "Effect": "Allow",
                    "Resource": "${QueueArn}",
                    "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
                }
            ],
        },
        "ResourceDiscovery": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AllowRegionalReadActions",
                    "Effect": "Allow",
                    "Resource": "*",
                    "Action": [
                        "ec2:DescribeCapacityReservations",
                        "ec2:DescribeImages",
                        "ec2:DescribeInstances",
                        "ec2:DescribeInstanceStatus",
                        "ec2:DescribeInstanceTypeOfferings",
                        "ec2:DescribeInstanceTypes",
                        "ec2:DescribeLaunchTemplates",
                        "ec2:DescribePlacementGroups",
                        "ec2:DescribeSecurityGroups",
                        "ec2:DescribeSpotPriceHistory",
                        "ec2:DescribeSubnets",
                    ],
                    "Condition": {"StringEquals": {"aws:RequestedRegion": "${AWS::Region}"}},
                },
                {
                    "Sid": "AllowSSMReadActions",
                    "Effect": "Allow",
                    "Resource": "arn:${AWS::Partition}:ssm:${AWS::Region}::parameter/aws/service/*",
                    "Action": "ssm:GetParameter",
                },
                {
                    "Sid": "AllowPricingReadActions",
                    "Effect": "Allow",
                    "Resource": "*",
                    "Action": "pricing:GetProducts",
                },
                {
                    "Sid": "AllowUnscopedInstanceProfileListAction",
                    "Effect": "Allow",
                    "Resource": "*",
                    "Action": "iam:ListInstanceProfiles",
                },
                {
                    "Sid": "AllowInstanceProfileReadActions",
                    "Effect": "Allow",
                    "Resource": "arn:${AWS::Partition}:iam::${AWS::AccountId}:instance-profile/*",
                    "Action": "iam:GetInstanceProfile",
                },
            ],
        },
    }


def _has_variable_key(value: Any) -> bool:
    if isinstance(value, dict):
        return any("${" in k or _has_variable_key(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_variable_key(v) for v in value)
    return False


def _sub(text: str, variables: Mapping[str, str]) -> Any:
    used = {k: v for k, v in variables.items() if f"${{{k}}}" in text}
    return cdk.Fn.sub(text, used) if used else cdk.Fn.sub(text)


def policy_document(document: dict[str, Any], variables: Mapping[str, str]) -> Any:
    """A policy document for CloudFormation. Where a condition *key* names the cluster
    (``aws:ResourceTag/kubernetes.io/cluster/${ClusterName}``), the whole document is one
    ``Fn::Sub`` JSON string, as in Karpenter's template (a key cannot be an intrinsic);
    otherwise an object whose strings with ``${...}`` are ``Fn::Sub`` each."""
    if _has_variable_key(document):
        return _sub(json.dumps(document, separators=(",", ":")), variables)

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str) and "${" in value:
            return _sub(value, variables)
        return value

    return walk(document)
