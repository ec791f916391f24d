"""The EKS side of an ``UltraServerEnvironment``: the ``aws_eks_v2`` cluster, the system
node group its controllers run on, and the EKS managed add-ons.

Functions, not constructs: each adds its resources to the scope it is given (the
environment), under the construct ids (``SecretsKey``, ``Cluster``, ``KubectlLayer``,
``SystemLaunchTemplate``, ``SystemNodeRole``, ``Addon-<name>``) and so the logical ids
those resources have always had.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_kms as kms

from constructs import Construct, IDependable
from eks_ultraserver.config import EndpointAccess
from eks_ultraserver.constructs.gpu_nodegroup import TaggedLaunchTemplate
from eks_ultraserver.constructs.iam import node_role
from eks_ultraserver.model import SYSTEM_NODE_LABEL, SYSTEM_NODE_LABEL_VALUE, ControlPlaneTier
from eks_ultraserver.settings import VpcCniConfig
from eks_ultraserver.versions import EKS_MANAGED_ADDONS, kubectl_layer_class, kubectl_layer_module

#: The system node group's labels, which the controllers select.
SYSTEM_NODE_SELECTOR = {SYSTEM_NODE_LABEL: SYSTEM_NODE_LABEL_VALUE}

_ENDPOINT_ACCESS = {
    EndpointAccess.PRIVATE: eks.EndpointAccess.PRIVATE,
    EndpointAccess.PUBLIC: eks.EndpointAccess.PUBLIC,
    EndpointAccess.PUBLIC_AND_PRIVATE: eks.EndpointAccess.PUBLIC_AND_PRIVATE,
}

#: Every control-plane log type (EKS user guide, control-plane-logs).
_CLUSTER_LOGGING = [
    eks.ClusterLoggingTypes.API,
    eks.ClusterLoggingTypes.AUDIT,
    eks.ClusterLoggingTypes.AUTHENTICATOR,
    eks.ClusterLoggingTypes.CONTROLLER_MANAGER,
    eks.ClusterLoggingTypes.SCHEDULER,
]


def eks_cluster(
    scope: Construct,
    *,
    kubernetes_version: str,
    vpc: ec2.IVpc,
    cluster_name: str | None,
    endpoint_access: EndpointAccess,
    public_access_cidrs: Sequence[str] | None,
    admin_principal_arn: str | None,
    control_plane_tier: ControlPlaneTier | None = None,
) -> tuple[eks.Cluster, kms.Key]:
    """The cluster (control plane in the VPC's private subnets, every control-plane log,
    CDK's kubectl handler with the layer of ``kubernetes_version``, public access only from
    ``public_access_cidrs`` when given, an admin access entry for ``admin_principal_arn``,
    the Provisioned Control Plane tier ``control_plane_tier`` when given: ``None`` writes no
    ``ControlPlaneScalingConfig`` and EKS runs ``standard``) and the KMS key that encrypts
    its secrets.

    The tier goes through aws_eks_v2's ``control_plane_scaling_tier`` prop, built with
    ``ControlPlaneScalingTier.of`` (aws-cdk-lib 2.275 has no static member for
    ``tier-ultra``); a tier change updates the cluster in place (CloudFormation: "Update
    requires: No interruption"; EKS runs a ``ScalingTierConfigUpdate`` of several minutes)."""
    layer_module = importlib.import_module(kubectl_layer_module(kubernetes_version))
    layer_class = getattr(layer_module, kubectl_layer_class(kubernetes_version))
    key = kms.Key(
        scope,
        "SecretsKey",
        enable_key_rotation=True,
        description="EKS secrets envelope encryption (eks-ultraserver)",
    )
    access = _ENDPOINT_ACCESS[endpoint_access]
    if public_access_cidrs:
        access = access.only_from(*public_access_cidrs)
    cluster = eks.Cluster(
        scope,
        "Cluster",
        version=eks.KubernetesVersion.of(kubernetes_version),
        cluster_name=cluster_name,
        vpc=vpc,
        vpc_subnets=[ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)],
        default_capacity=0,
        default_capacity_type=eks.DefaultCapacityType.NODEGROUP,
        endpoint_access=access,
        cluster_logging=_CLUSTER_LOGGING,
        secrets_encryption_key=key,
        kubectl_provider_options=eks.KubectlProviderOptions(kubectl_layer=layer_class(scope, "KubectlLayer")),
        control_plane_scaling_tier=(
            eks.ControlPlaneScalingTier.of(control_plane_tier.value)
            if control_plane_tier is not None
            else None
        ),
    )
    if admin_principal_arn:
        cluster.grant_access(
            "Admin",
            admin_principal_arn,
            [
                eks.AccessPolicy.from_access_policy_name(
                    "AmazonEKSClusterAdminPolicy", access_scope_type=eks.AccessScopeType.CLUSTER
                )
            ],
        )
    return cluster, key


def system_nodegroup(
    scope: Construct, cluster: eks.Cluster, *, instance_type: str, size: int
) -> eks.Nodegroup:
    """The on-demand Graviton node group for controllers, labelled
    ``SYSTEM_NODE_SELECTOR``: ``size`` nodes (at most twice that), IMDSv2 only, an encrypted
    50 GiB gp3 root volume, in the VPC's private subnets."""
    # A TaggedLaunchTemplate, so Tags.of(app) reaches the template and the system instances
    # and volumes it launches (EKS copies no node group tag to them).
    template = TaggedLaunchTemplate(
        scope,
        "SystemLaunchTemplate",
        launch_template_data={
            "MetadataOptions": {
                "HttpEndpoint": "enabled",
                "HttpTokens": "required",
                "HttpPutResponseHopLimit": 1,
            },
            "BlockDeviceMappings": [
                {
                    "DeviceName": "/dev/xvda",
                    "Ebs": {
                        "VolumeSize": 50,
                        "VolumeType": "gp3",
                        "Encrypted": True,
                        "DeleteOnTermination": True,
                    },
                }
            ],
        },
        tags={"eks-ultraserver:node-group": "system"},
    )
    return cluster.add_nodegroup_capacity(
        "SystemNodes",
        instance_types=[ec2.InstanceType(instance_type)],
        ami_type=eks.NodegroupAmiType.AL2023_ARM_64_STANDARD,
        capacity_type=eks.CapacityType.ON_DEMAND,
        min_size=size,
        desired_size=size,
        max_size=size * 2,
        labels=dict(SYSTEM_NODE_SELECTOR),
        subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        node_role=node_role(scope, "SystemNodeRole"),
        launch_template_spec=eks.LaunchTemplateSpec(
            id=template.ref, version=template.attr_latest_version_number
        ),
    )


#: Configuration values of EKS managed add-ons, by name (the add-on's configuration schema:
#: ``aws eks describe-addon-configuration``). The node monitoring agent's own DaemonSet
#: tolerates every taint (``nodeAgent.tolerations: [{operator: Exists}]`` in its chart's
#: values.yaml, aws/eks-node-monitoring-agent), so it runs on the tainted GPU nodes as is;
#: its DCGM host engine DaemonSet (``dcgmAgent``, which its node affinity keeps to amd64
#: NVIDIA instance types such as p5, not the arm64 P6e-GB200) tolerates none, and would
#: stay off GPU nodes with the ``nvidia.com/gpu`` taint: it gets the agent's toleration.
ADDON_CONFIGURATION: dict[str, dict] = {
    "eks-node-monitoring-agent": {"dcgmAgent": {"tolerations": [{"operator": "Exists"}]}},
}


def addon_configuration(vpc_cni: VpcCniConfig | None = None) -> dict[str, dict]:
    """The configuration values of each managed add-on: :data:`ADDON_CONFIGURATION`, and
    the ``vpc-cni`` add-on's ``env`` from ``vpc_cni`` (its configuration schema:
    ``aws eks describe-addon-configuration --addon-name vpc-cni``; the values are strings).
    No ``vpc_cni``, or one with nothing set: no configuration values for vpc-cni, as before.
    A change of them rolls the ``aws-node`` DaemonSet (each node's CNI restarts; running
    pods keep their addresses)."""
    out = dict(ADDON_CONFIGURATION)
    env = vpc_cni.env if vpc_cni is not None else {}
    if env:
        out["vpc-cni"] = {"env": env}
    return out


def managed_addons(
    scope: Construct,
    cluster: eks.Cluster,
    *,
    after: IDependable,
    vpc_cni: VpcCniConfig | None = None,
) -> dict[str, eks.CfnAddon]:
    """The EKS managed add-ons of ``versions.EKS_MANAGED_ADDONS`` (VPC CNI, CoreDNS,
    kube-proxy, EKS Pod Identity Agent, EKS node monitoring agent), by name, each created
    after ``after`` (the system node group: CoreDNS needs nodes to run on before it reports
    ACTIVE), with its configuration values (:func:`addon_configuration`)."""
    addons: dict[str, eks.CfnAddon] = {}
    configurations = addon_configuration(vpc_cni)
    for name, version in EKS_MANAGED_ADDONS.items():
        configuration = configurations.get(name)
        addon = eks.CfnAddon(
            scope,
            f"Addon-{name}",
            cluster_name=cluster.cluster_name,
            addon_name=name,
            addon_version=version,
            configuration_values=json.dumps(configuration, sort_keys=True) if configuration else None,
            # The cluster bootstraps vpc-cni, kube-proxy and CoreDNS as self-managed
            # add-ons; OVERWRITE adopts them as managed add-ons.
            resolve_conflicts="OVERWRITE",
        )
        addon.node.add_dependency(after)
        addons[name] = addon
    return addons
