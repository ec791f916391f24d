"""IAM roles shared by the node groups of an environment."""

from __future__ import annotations

from aws_cdk import aws_iam as iam

from constructs import Construct

#: AWS managed policies a node of an EKS managed node group needs
#: (EKS user guide, create-node-role). The VPC CNI policy stays on the node role because
#: the VPC CNI add-on runs with the node's credentials unless given a Pod Identity.
NODE_MANAGED_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonEKS_CNI_Policy",
)


def node_role(scope: Construct, id: str, *, ssm: bool = True) -> iam.Role:
    """An EC2 role for EKS nodes with the managed policies EKS documents.

    ``ssm`` adds AmazonSSMManagedInstanceCore, so operators can open a shell on a node
    with Session Manager instead of SSH (no key pair, no open port).
    """
    names = list(NODE_MANAGED_POLICIES) + (["AmazonSSMManagedInstanceCore"] if ssm else [])
    return iam.Role(
        scope,
        id,
        assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
        description="EKS worker nodes (eks-ultraserver)",
        managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(n) for n in names],
    )
