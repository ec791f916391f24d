"""cdk-nag (AwsSolutions) suppressions for findings that are right to keep, each with its
reason, on the one resource it concerns and for the exact finding (``applies_to``).

Written as CloudFormation metadata in cdk-nag's format, so the library does not depend
on cdk-nag: users who run ``AwsSolutionsChecks`` over their app see these reasons, and a
test runs the pack over the default and the largest configuration. Findings that were
wrong for our own resources were fixed in the constructs instead (IMDSv2 required,
encrypted volumes, topics and queues, least-privilege node roles, no open ingress).
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import CfnResource

from constructs import IConstruct

_MANAGED = "Policy::arn:<AWS::Partition>:iam::aws:policy/"

EKS_NODE_POLICIES = [
    f"{_MANAGED}{name}"
    for name in (
        "AmazonEKSWorkerNodePolicy",
        "AmazonEC2ContainerRegistryPullOnly",
        "AmazonEKS_CNI_Policy",
        "AmazonSSMManagedInstanceCore",
    )
]
_NODE_REASON = (
    "EKS worker nodes need these AWS managed policies (EKS user guide, create-node-role); "
    "ECR access is the pull-only policy, and SSM replaces SSH access to nodes."
)
_CDK_PROVIDER_REASON = (
    "Role, policy or function of aws-cdk-lib's EKS kubectl provider (aws_eks_v2), which "
    "installs Helm charts and manifests; its permissions and runtime are set by aws-cdk-lib."
)


def suppress(resource: IConstruct | None, rule: str, reason: str, applies_to: Iterable[object] = ()) -> None:
    """Adds one cdk-nag suppression to a resource's ``cdk_nag`` metadata."""
    if resource is None:
        return
    cfn = resource if isinstance(resource, CfnResource) else resource.node.default_child
    if not isinstance(cfn, CfnResource):
        return
    entry: dict = {"id": rule, "reason": reason}
    applies = list(applies_to)
    if applies:
        entry["applies_to"] = applies
    current = cfn.get_metadata("cdk_nag") or {}
    rules = [*list(current.get("rules_to_suppress", [])), entry]
    cfn.add_metadata("cdk_nag", {**current, "rules_to_suppress": rules})


def _child(scope: IConstruct | None, *path: str) -> IConstruct | None:
    for name in path:
        if scope is None:
            return None
        scope = scope.node.try_find_child(name)
    return scope


def suppress_node_role(role: IConstruct) -> None:
    suppress(role, "AwsSolutions-IAM4", _NODE_REASON, EKS_NODE_POLICIES)


def suppress_cluster_findings(cluster: IConstruct) -> None:
    """The cluster role and aws-cdk-lib's kubectl provider."""
    suppress(
        _child(cluster, "Role"),
        "AwsSolutions-IAM4",
        "The EKS cluster role needs AmazonEKSClusterPolicy (EKS user guide, cluster-iam-role).",
        [f"{_MANAGED}AmazonEKSClusterPolicy"],
    )
    provider = _child(cluster, "KubectlProvider")
    for path in (("Handler", "ServiceRole"), ("Provider", "framework-onEvent", "ServiceRole")):
        role = _child(provider, *path)
        suppress(
            role,
            "AwsSolutions-IAM4",
            _CDK_PROVIDER_REASON,
            [
                f"{_MANAGED}service-role/AWSLambdaBasicExecutionRole",
                f"{_MANAGED}service-role/AWSLambdaVPCAccessExecutionRole",
                f"{_MANAGED}AmazonEC2ContainerRegistryReadOnly",
                {"regex": "/AmazonElasticContainerRegistryPublicReadOnly/"},
            ],
        )
        suppress(
            _child(role, "DefaultPolicy"),
            "AwsSolutions-IAM5",
            _CDK_PROVIDER_REASON,
            [
                "Action::s3:GetBucket*",
                "Action::s3:GetObject*",
                "Action::s3:List*",
                {
                    "regex": "/^Resource::arn:(<AWS::Partition>|aws[a-z-]*):s3:::cdk-[a-z0-9]+-assets-(<AWS::AccountId>|[0-9]{12})-(<AWS::Region>|[a-z0-9-]+)\\/\\*$/"
                },
                {"regex": "/^Resource::<.*KubectlProviderHandler.*\\.Arn>:\\*$/"},
            ],
        )
    suppress(_child(provider, "Handler"), "AwsSolutions-L1", _CDK_PROVIDER_REASON)
