"""``UltraServerEnvironment``: VPC, EKS cluster, system nodes, add-ons and UltraServers.

The equivalent of the EKS guide's eksctl ``cluster-config.yaml`` for P6e-GB200 plus what the
guide then does by hand, as one construct that any CDK app can place in its own stack.

- Networking: a new VPC (two regular AZs: public subnets with NAT, private subnets for the
  control plane and system nodes) or an existing one; a private subnet in the
  reservations' zone for the UltraServers. That zone may be a Local Zone (the AWS blog uses
  ``us-east-1-dfw-2a``), which ``ec2.Vpc`` never places subnets in by itself, so the
  construct adds the subnet explicitly, routed through the VPC's NAT gateway (NAT gateways
  and interface endpoints cannot live in a Local Zone; their traffic crosses to the parent
  Region). VPC endpoints for S3 (gateway), ECR and STS keep image pulls off NAT.
- Cluster: ``aws_eks_v2``, Kubernetes 1.33+, access entries, control-plane logging,
  KMS-encrypted secrets, configurable endpoint access (public access restricted to given
  CIDRs). No Auto Mode and no Karpenter for the GPU nodes: DRA supports neither.
- A small on-demand Graviton system node group for controllers.
- EKS managed add-ons: VPC CNI, CoreDNS, kube-proxy, EKS Pod Identity Agent.
- One ``UltraServerNodeGroup`` per Capacity Block, sharing one EFA security group (EFA
  traffic between UltraServers) and one node role.
- Every Helm release and Kubernetes manifest depends on the managed add-ons and the system
  node group, so that stack deletion removes the releases (``helm uninstall`` and its hooks
  need nodes, CoreDNS and pod networking) before them.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs

from constructs import Construct, DependencyGroup
from eks_ultraserver.capacity import (
    BurstCapacitySpec,
    ReservationKind,
    ReservedCapacitySpec,
    ReservedProvisioner,
)
from eks_ultraserver.config import (
    OPEN_TO_THE_WORLD,
    AddonsConfig,
    EndpointAccess,
    EnvironmentConfig,
    UltraServerSpec,
    public_access_cidr_problems,
    ultraserver_entry_problems,
)
from eks_ultraserver.constructs.addons import GpuPlatformAddons
from eks_ultraserver.constructs.efa import EfaSecurityGroup
from eks_ultraserver.constructs.iam import node_role
from eks_ultraserver.constructs.nag import suppress_cluster_findings, suppress_node_role
from eks_ultraserver.constructs.nodegroup import UltraServerNodeGroup
from eks_ultraserver.constructs.notifications import CapacityBlockNotifications
from eks_ultraserver.model import (
    SYSTEM_NODE_LABEL,
    SYSTEM_NODE_LABEL_VALUE,
    ConfigurationError,
    EfaLayout,
    Problems,
)
from eks_ultraserver.versions import (
    DEFAULT_KUBERNETES_VERSION,
    EKS_MANAGED_ADDONS,
    SUPPORTED_KUBERNETES_VERSIONS,
    extended_support_warning,
    kubectl_layer_class,
    kubectl_layer_module,
)

if TYPE_CHECKING:  # imported where used: most environments have neither (faster synth)
    from eks_ultraserver.constructs.karpenter import Karpenter
    from eks_ultraserver.constructs.reserved import ReservedGpuNodeGroup

#: EKS's default quota of managed node groups per cluster (Service Quotas L-6D54EA21).
MANAGED_NODEGROUPS_QUOTA = 30

#: UltraServer node groups live in nested stacks, at most this many. Each UltraServer's
#: shard is a hash of its name, so adding or removing one never moves another (its logical
#: id and its nested stack stay put), and the parent stack stays far from CloudFormation's
#: 500-resource and 1 MB limits however many UltraServers there are.
ULTRASERVER_SHARDS = 16
#: UltraServers one shard may hold: 2 resources and about 5 KB of template each keeps a
#: nested stack well under 500 resources and 1 MB.
MAX_ULTRASERVERS_PER_SHARD = 150
#: Above this many UltraServers, no per-UltraServer stack output (CloudFormation allows
#: 200 outputs per stack); ``aws eks list-nodegroups`` lists them instead.
MAX_NODEGROUP_OUTPUTS = 100


def _reserved_subnet_slot(zone: str) -> str:
    """Slot 0-7 of a reserved-capacity subnet in 10.0.128.0/18 (/21 each), from the zone's
    last letter: stable whatever other zones are configured."""
    return str((ord(zone[-1]) - ord("a")) % 8)


def ultraserver_shard(name: str) -> int:
    """The nested stack (0..ULTRASERVER_SHARDS-1) that holds an UltraServer's node group."""
    return zlib.crc32(name.encode()) % ULTRASERVER_SHARDS


_ENDPOINT_ACCESS = {
    EndpointAccess.PRIVATE: eks.EndpointAccess.PRIVATE,
    EndpointAccess.PUBLIC: eks.EndpointAccess.PUBLIC,
    EndpointAccess.PUBLIC_AND_PRIVATE: eks.EndpointAccess.PUBLIC_AND_PRIVATE,
}


def _is_local_zone(zone: str) -> bool:
    """``us-east-1-dfw-2a`` is a Local Zone; ``us-east-1a`` is a regular AZ."""
    return zone.count("-") > 2


class UltraServerEnvironment(Construct):
    """A complete EKS environment for P6e-GB200 UltraServers.

    All arguments after ``id`` are keyword-only.

    :param ultraservers: one ``UltraServerSpec`` per Capacity Block (reservation id, type,
        name). Many UltraServers in one cluster is a first-class case.
    :param availability_zone: the zone of the reservations (all in one zone), e.g. a Local
        Zone such as ``us-east-1-dfw-2a``.
    :param kubernetes_version: one of ``versions.SUPPORTED_KUBERNETES_VERSIONS`` (1.33 to
        1.36: the EKS versions with DRA). Default: 1.36, the newest. Synth warns when the
        version is past EKS standard support (extended support is billed higher).
    :param efa_layout: EFA layout of every UltraServer node group. Default: ``per-gpu``.
    :param vpc: an existing VPC. Default: a new VPC (10.0.0.0/16, two regular AZs, one NAT
        gateway, endpoints for S3, ECR and STS).
    :param ultraserver_subnets: existing subnets in ``availability_zone`` for the
        UltraServers; required with ``vpc``. Default (new VPC): a new private subnet
        ``ultraserver_subnet_cidr`` in that zone.
    :param ultraserver_subnet_cidr: CIDR of the new UltraServer subnet. Default 10.0.192.0/18.
    :param admin_principal_arn: an IAM role or user granted cluster admin through an access
        entry. Default: none; only the role CloudFormation deploys with (EKS makes the
        cluster creator admin) and CDK's kubectl handler can use the Kubernetes API, so
        synth warns.
    :param endpoint_access: ``public-and-private`` (default), ``private`` or ``public``.
    :param public_access_cidrs: the IPv4 CIDR blocks allowed to the public endpoint (at
        least one; with ``public-and-private`` only, as aws_eks_v2's
        ``EndpointAccess.only_from`` requires). Default: every address (0.0.0.0/0), and
        synth warns while a public endpoint is open to the world.
    :param cluster_name: the EKS cluster's name. Default: generated by CloudFormation.
    :param system_instance_type: Graviton instance type of the system nodes. Default m7g.xlarge.
    :param system_nodes: size of the system node group. Default 2 (max is twice that).
    :param nat_gateways: NAT gateways of a new VPC. Default 1 (2 for AZ-level resilience).
    :param vpc_endpoints: add the S3/ECR/STS endpoints to a new VPC. Default ``True``.
    :param addons: GPU platform add-ons (GPU Operator, DRA driver line, EFA device plugin or
        DRANET, MPI operator; versions and extra values). Default: ``AddonsConfig()``.
    :param validation_jobs: deploy the IMEX channel check (a Job) and the nvbandwidth MPIJob
        of each UltraServer after its node group (they hold GPUs until they finish and
        delete themselves a day later). Default ``False``.
    :param notification_email: subscribe this address to the Capacity Block events topic.
        Default: the topic has no subscription.
    :param notifications: create the Capacity Block events topic. Default ``True``.
    :param reserved_capacity: ODCRs and Capacity Blocks of other GPU instance types (p5,
        p5en, p6-b200, ...), each run by a managed node group or by Karpenter's
        ``gpu-reserved`` NodePool. A reservation outside the UltraServers' zone gets a
        private subnet of its own in a new VPC (10.0.128.0/21 + the zone letter's slot).
        Default: none.
    :param burst_capacity: Karpenter with a Spot-first ``gpu-burst`` NodePool (never
        UltraServer instance types). Default: no Karpenter.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        ultraservers: Sequence[UltraServerSpec],
        availability_zone: str,
        kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
        efa_layout: EfaLayout | str = EfaLayout.PER_GPU,
        vpc: ec2.IVpc | None = None,
        ultraserver_subnets: Sequence[ec2.ISubnet] | None = None,
        ultraserver_subnet_cidr: str = "10.0.192.0/18",
        admin_principal_arn: str | None = None,
        endpoint_access: EndpointAccess | str = EndpointAccess.PUBLIC_AND_PRIVATE,
        public_access_cidrs: Sequence[str] | None = None,
        cluster_name: str | None = None,
        system_instance_type: str = "m7g.xlarge",
        system_nodes: int = 2,
        nat_gateways: int = 1,
        vpc_endpoints: bool = True,
        addons: AddonsConfig | None = None,
        validation_jobs: bool = False,
        notification_email: str | None = None,
        notifications: bool = True,
        reserved_capacity: Sequence[ReservedCapacitySpec] = (),
        burst_capacity: BurstCapacitySpec | None = None,
    ) -> None:
        problems = Problems()
        if kubernetes_version not in SUPPORTED_KUBERNETES_VERSIONS:
            problems.add(
                f"kubernetes_version: {kubernetes_version!r} is not supported; use one of "
                + ", ".join(SUPPORTED_KUBERNETES_VERSIONS)
            )
        if not ultraservers:
            problems.add("ultraservers: empty; give at least one Capacity Block")
        for i, u in enumerate(ultraservers):
            # checked here as well as in each node group, so a bad entry stops everything
            ultraserver_entry_problems(
                f"ultraservers[{i}]",
                reservation_id=u.capacity_reservation_id,
                type=u.type,
                name=u.name,
                keys=("capacity_reservation_id", "type", "name"),
                problems=problems,
            )
        for attr in ("capacity_reservation_id", "name"):
            values = [getattr(u, attr) for u in ultraservers]
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                problems.add(f"ultraservers: duplicate {attr} {', '.join(map(repr, dupes))}")
        if vpc is not None and not ultraserver_subnets:
            problems.add(
                "ultraserver_subnets: required with an existing vpc; give subnets in "
                f"{availability_zone!r} routed to a NAT gateway"
            )
        if not (1 <= system_nodes <= 50):
            problems.add(f"system_nodes: {system_nodes!r} is out of range; use 1 to 50")
        if not (1 <= nat_gateways <= 2):
            problems.add(f"nat_gateways: {nat_gateways!r} is out of range; use 1 or 2")
        access: EndpointAccess | None = None
        try:
            access = endpoint_access = EndpointAccess(endpoint_access)
        except ValueError:
            problems.add(
                f"endpoint_access: {endpoint_access!r} is not allowed; use one of "
                + ", ".join(repr(e.value) for e in EndpointAccess)
            )
        public_access_cidr_problems(
            list(public_access_cidrs)
            if public_access_cidrs is not None and not isinstance(public_access_cidrs, str)
            else public_access_cidrs,
            endpoint_access=access,
            keys=("public_access_cidrs", "endpoint_access"),
            problems=problems,
        )
        try:
            efa_layout = EfaLayout(efa_layout)
        except ValueError:
            problems.add(
                f"efa_layout: {efa_layout!r} is not allowed; use one of "
                + ", ".join(repr(e.value) for e in EfaLayout)
            )
        shard_sizes: dict[int, int] = {}
        for u in ultraservers:
            shard_sizes[ultraserver_shard(u.name)] = shard_sizes.get(ultraserver_shard(u.name), 0) + 1
        for shard, count in sorted(shard_sizes.items()):
            if count > MAX_ULTRASERVERS_PER_SHARD:
                problems.add(
                    f"ultraservers: {count} UltraServers hash to nested stack "
                    f"UltraServers{shard:02d}, more than {MAX_ULTRASERVERS_PER_SHARD}; split "
                    "the fleet over two environments (clusters)"
                )
        reserved_zones: dict[str, str] = {}
        for i, spec in enumerate(reserved_capacity):
            zone = spec.availability_zone or availability_zone
            if zone == availability_zone:
                continue
            if vpc is not None:
                problems.add(
                    f"reservedCapacity[{i}].availabilityZone: {zone!r} differs from the "
                    f"UltraServers' zone {availability_zone!r}; with an existing VPC, reserved "
                    "capacity must share the UltraServers' subnets (or use your own "
                    "ReservedGpuNodeGroup with your subnets)"
                )
                continue
            slot = _reserved_subnet_slot(zone)
            other = reserved_zones.get(slot)
            if other is not None and other != zone:
                problems.add(
                    f"reservedCapacity[{i}].availabilityZone: {zone!r} and {other!r} end in the "
                    "same letter and would share a subnet range; put these reservations in "
                    "one zone or use your own ReservedGpuNodeGroup with your subnets"
                )
            reserved_zones[slot] = zone

        # The add-ons' own validation (values, versions, the MPI operator manifest) runs
        # here too, so that bad input leaves nothing half-built.
        system_selector = {SYSTEM_NODE_LABEL: SYSTEM_NODE_LABEL_VALUE}
        addons_plan = None
        try:
            addons_plan = GpuPlatformAddons.plan(
                addons=addons or AddonsConfig(),
                kubernetes_version=kubernetes_version,
                system_node_selector=system_selector,
                id="GpuPlatform",
            )
        except ConfigurationError as err:
            problems.extend(err.problems)
        problems.raise_if_any(f"UltraServerEnvironment {id!r}")

        super().__init__(scope, id)
        stack = cdk.Stack.of(self)
        self.availability_zone = availability_zone
        self.kubernetes_version = kubernetes_version

        # ------------------------------------------------------------------ networking
        if vpc is None:
            vpc = self._new_vpc(nat_gateways=nat_gateways, vpc_endpoints=vpc_endpoints)
            self.ultraserver_subnets: list[ec2.ISubnet] = [
                self._zone_subnet(vpc, "UltraServerSubnet", availability_zone, ultraserver_subnet_cidr)
            ]
        else:
            self.ultraserver_subnets = list(ultraserver_subnets or [])
        self.vpc = vpc

        # ------------------------------------------------------------------ cluster
        layer_module = importlib.import_module(kubectl_layer_module(kubernetes_version))
        layer_class = getattr(layer_module, kubectl_layer_class(kubernetes_version))
        self.secrets_key = kms.Key(
            self,
            "SecretsKey",
            enable_key_rotation=True,
            description="EKS secrets envelope encryption (eks-ultraserver)",
        )
        endpoint_access = EndpointAccess(endpoint_access)
        cluster_access = _ENDPOINT_ACCESS[endpoint_access]
        if public_access_cidrs:
            cluster_access = cluster_access.only_from(*public_access_cidrs)
        self.cluster = eks.Cluster(
            self,
            "Cluster",
            version=eks.KubernetesVersion.of(kubernetes_version),
            cluster_name=cluster_name,
            vpc=vpc,
            vpc_subnets=[ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)],
            default_capacity=0,
            default_capacity_type=eks.DefaultCapacityType.NODEGROUP,
            endpoint_access=cluster_access,
            cluster_logging=[
                eks.ClusterLoggingTypes.API,
                eks.ClusterLoggingTypes.AUDIT,
                eks.ClusterLoggingTypes.AUTHENTICATOR,
                eks.ClusterLoggingTypes.CONTROLLER_MANAGER,
                eks.ClusterLoggingTypes.SCHEDULER,
            ],
            secrets_encryption_key=self.secrets_key,
            kubectl_provider_options=eks.KubectlProviderOptions(
                kubectl_layer=layer_class(self, "KubectlLayer"),
            ),
        )
        if admin_principal_arn:
            self.cluster.grant_access(
                "Admin",
                admin_principal_arn,
                [
                    eks.AccessPolicy.from_access_policy_name(
                        "AmazonEKSClusterAdminPolicy",
                        access_scope_type=eks.AccessScopeType.CLUSTER,
                    )
                ],
            )

        # ------------------------------------------------------------------ system nodes
        self.system_nodegroup = self._system_nodes(system_instance_type, system_nodes)

        # ------------------------------------------------------------------ EKS add-ons
        self.eks_addons: dict[str, eks.CfnAddon] = {}
        for name, version in EKS_MANAGED_ADDONS.items():
            addon = eks.CfnAddon(
                self,
                f"Addon-{name}",
                cluster_name=self.cluster.cluster_name,
                addon_name=name,
                addon_version=version,
                # The cluster bootstraps vpc-cni, kube-proxy and CoreDNS as self-managed
                # add-ons; OVERWRITE adopts them as managed add-ons.
                resolve_conflicts="OVERWRITE",
            )
            # CoreDNS needs nodes to run on before it reports ACTIVE.
            addon.node.add_dependency(self.system_nodegroup)
            self.eks_addons[name] = addon

        # ------------------------------------------------------------------ GPU platform
        # Controllers run on the system nodes; node agents tolerate the GPU taint.
        self.addons = GpuPlatformAddons(
            self,
            "GpuPlatform",
            cluster=self.cluster,
            addons=addons or AddonsConfig(),
            kubernetes_version=kubernetes_version,
            system_node_selector=system_selector,
            plan=addons_plan,
        )
        self.addons.node.add_dependency(self.system_nodegroup)

        # ------------------------------------------------------------------ UltraServers
        self.node_role = node_role(self, "GpuNodeRole")
        self.efa_security_group = (
            EfaSecurityGroup(self, "EfaSecurityGroup", vpc=vpc).security_group
            if efa_layout is not EfaLayout.NONE
            else None
        )
        self.ultraserver_nodegroups: dict[str, UltraServerNodeGroup] = {}
        self.ultraserver_stacks: dict[int, cdk.NestedStack] = {}
        self._nodegroup_outputs = len(ultraservers) <= MAX_NODEGROUP_OUTPUTS
        for spec in ultraservers:
            self.add_ultraserver(spec, efa_layout=efa_layout)

        # ------------------------------------------------------------------ reserved & burst
        self.reserved_subnets: dict[str, ec2.ISubnet] = {}
        self.reserved_nodegroups: dict[str, ReservedGpuNodeGroup] = {}
        for spec in reserved_capacity:
            if spec.provisioner is not ReservedProvisioner.NODEGROUP:
                continue
            from eks_ultraserver.constructs.reserved import ReservedGpuNodeGroup

            group = ReservedGpuNodeGroup.from_spec(
                self,
                f"Reserved-{spec.name}",
                cluster=self.cluster,
                spec=spec,
                subnets=self._reserved_subnets(spec.availability_zone or availability_zone),
                node_role=self.node_role,
                efa_security_group=self.efa_security_group,
            )
            for addon in self.eks_addons.values():
                group.node.add_dependency(addon)
            self.reserved_nodegroups[spec.name] = group
        self.karpenter: Karpenter | None = None
        if burst_capacity is not None or any(
            s.provisioner is ReservedProvisioner.KARPENTER for s in reserved_capacity
        ):
            from eks_ultraserver.constructs.karpenter import Karpenter

            self.karpenter = Karpenter(
                self,
                "Karpenter",
                cluster=self.cluster,
                subnets=vpc.private_subnets,
                discovery=cluster_name,
            )
            self.karpenter.node.add_dependency(
                self.eks_addons["eks-pod-identity-agent"], self.system_nodegroup
            )
            # Karpenter's reservations, in their zone (none given: the UltraServers', as for
            # node groups); their classes select the subnets of those zones by id.
            from dataclasses import replace

            karpenter_reserved = [
                replace(s, availability_zone=s.availability_zone or availability_zone)
                for s in reserved_capacity
                if s.provisioner is ReservedProvisioner.KARPENTER
            ]
            self.karpenter.add_gpu_capacity(
                burst=burst_capacity,
                reserved=karpenter_reserved,
                reserved_subnets=[
                    subnet
                    for zone in sorted({s.availability_zone or "" for s in karpenter_reserved})
                    for subnet in self._reserved_subnets(zone)
                ],
            )

        self._access_warnings(
            endpoint_access=endpoint_access,
            public_access_cidrs=public_access_cidrs,
            admin_principal_arn=admin_principal_arn,
        )
        extended = extended_support_warning(kubernetes_version)
        if extended:
            cdk.Annotations.of(self).add_warning_v2("eks-ultraserver:extended-support", extended)

        nodegroups = len(ultraservers) + len(self.reserved_nodegroups) + 1
        if nodegroups > MANAGED_NODEGROUPS_QUOTA:
            cdk.Annotations.of(self).add_warning_v2(
                "eks-ultraserver:nodegroup-quota",
                f"{nodegroups} managed node groups exceed EKS's default quota of "
                f"{MANAGED_NODEGROUPS_QUOTA} per cluster (Service Quotas: Amazon EKS, "
                "'Managed node groups per cluster', L-6D54EA21): request an increase "
                "before deploying.",
            )

        # ------------------------------------------------------------------ validation jobs
        self.validation_manifests: list[eks.KubernetesManifest] = []
        if validation_jobs:
            self._validation_jobs(
                EnvironmentConfig(
                    ultraservers=tuple(ultraservers),
                    availability_zone=availability_zone,
                    kubernetes_version=kubernetes_version,
                    efa_layout=efa_layout,
                    addons=addons or AddonsConfig(),
                    validation_jobs=True,
                )
            )

        # ------------------------------------------------------------------ notifications
        # Every Capacity Block of the configuration: the UltraServers' and those listed in
        # reserved_capacity (node group or Karpenter alike); ODCRs send no such events.
        capacity_blocks = [u.capacity_reservation_id for u in ultraservers] + [
            spec.capacity_reservation_id
            for spec in reserved_capacity
            if spec.kind is ReservationKind.CAPACITY_BLOCK and spec.capacity_reservation_id
        ]
        self.notifications = (
            CapacityBlockNotifications(
                self,
                "CapacityBlockEvents",
                reservation_ids=list(dict.fromkeys(capacity_blocks)),
                email=notification_email,
            )
            if notifications
            else None
        )

        # ------------------------------------------------------------------ deletion order
        self.kubernetes_base = self._kubernetes_objects_after_base()

        # ------------------------------------------------------------------ cdk-nag
        suppress_cluster_findings(self.cluster)
        suppress_node_role(self.node_role)
        suppress_node_role(self.system_nodegroup.role)

        # ------------------------------------------------------------------ outputs
        cdk.CfnOutput(self, "ClusterName", value=self.cluster.cluster_name)
        cdk.CfnOutput(
            self,
            "UpdateKubeconfigCommand",
            value=cdk.Fn.join(
                "",
                [
                    "aws eks update-kubeconfig --name ",
                    self.cluster.cluster_name,
                    " --region ",
                    stack.region,
                ],
            ),
        )

    # ---------------------------------------------------------------------- public

    def add_ultraserver(
        self, spec: UltraServerSpec, *, efa_layout: EfaLayout = EfaLayout.PER_GPU
    ) -> UltraServerNodeGroup:
        """Adds the node group of one Capacity Block (its construct id is its name), in
        the nested stack its name hashes to."""
        group = UltraServerNodeGroup(
            self._shard(ultraserver_shard(spec.name)),
            f"UltraServer-{spec.name}",
            cluster=self.cluster,
            capacity_reservation_id=spec.capacity_reservation_id,
            ultraserver_type=spec.type,
            name=spec.name,
            subnets=self.ultraserver_subnets,
            availability_zone=self.availability_zone,
            efa_layout=efa_layout,
            node_role=self.node_role,
            efa_security_group=self.efa_security_group,
        )
        if self._nodegroup_outputs:
            cdk.CfnOutput(self, f"Nodegroup-{spec.name}", value=group.nodegroup_name)
        self.ultraserver_nodegroups[spec.name] = group
        return group

    def _validation_jobs(self, config: EnvironmentConfig) -> None:
        """The IMEX channel check and nvbandwidth job of each UltraServer: the same charts
        ``python -m eks_ultraserver manifests`` writes (charts/manifests.py), one
        Kubernetes manifest per chart.

        Why they cannot block a stack update or delete:

        - each manifest waits for the add-ons (the CRDs) and for the node group of the
          UltraServer it checks (in its nested stack), so it is never applied to a cluster
          that has no such nodes yet;
        - the checks are a Job and an MPIJob that delete themselves a day after they
          finish (``ttlSecondsAfterFinished``), never bare pods;
        - every object name, and the manifest's construct id, ends in a digest of the
          chart's content: a changed check is a new manifest resource with new objects
          (CloudFormation creates it, then deletes the old one, whose ``kubectl delete``
          ignores objects already gone), never an in-place update of an immutable
          ComputeDomain or Job spec;
        - ``overwrite``: creating applies, so objects already applied from the exported
          ``validation/`` directory (same names) are adopted rather than failing the create.
        """
        from typing import cast

        import cdk8s

        from eks_ultraserver.charts.manifests import validation_charts

        # (cast: the jsii stubs do not see that Cluster implements ICluster)
        cluster = cast(eks.ICluster, self.cluster)
        for chart in validation_charts(cdk8s.App(), config):
            manifest = eks.KubernetesManifest(
                self.cluster,
                chart.node.id,
                cluster=cluster,
                manifest=chart.to_json(),
                overwrite=True,
            )
            # The ComputeDomain and MPIJob CRDs come with the DRA driver and MPI operator.
            manifest.node.add_dependency(self.addons.ready)
            for target in getattr(chart, "ultraservers", ()):
                manifest.node.add_dependency(self.ultraserver_nodegroups[target.name])
            self.validation_manifests.append(manifest)

    def _shard(self, index: int) -> cdk.NestedStack:
        shard = self.ultraserver_stacks.get(index)
        if shard is None:
            shard = cdk.NestedStack(
                self,
                f"UltraServers{index:02d}",
                description=f"UltraServer node groups, shard {index:02d} (eks-ultraserver)",
            )
            # Start the GPU nodes once the add-ons they need (VPC CNI) are managed.
            for addon in self.eks_addons.values():
                shard.node.add_dependency(addon)
            self.ultraserver_stacks[index] = shard
        return shard

    @classmethod
    def from_config(cls, scope: Construct, id: str, config: EnvironmentConfig, **kwargs):
        """Builds the environment from an ``EnvironmentConfig`` (cdk.json context)."""
        vpc = None
        if config.vpc_id:
            vpc = ec2.Vpc.from_lookup(scope, f"{id}Vpc", vpc_id=config.vpc_id)
        return cls(
            scope,
            id,
            ultraservers=config.ultraservers,
            availability_zone=config.availability_zone,
            kubernetes_version=config.kubernetes_version,
            efa_layout=config.efa_layout,
            vpc=vpc,
            admin_principal_arn=config.admin_principal_arn,
            endpoint_access=config.endpoint_access,
            public_access_cidrs=config.public_access_cidrs,
            cluster_name=config.cluster_name,
            addons=config.addons,
            validation_jobs=config.validation_jobs,
            notification_email=config.notification_email,
            reserved_capacity=config.reserved_capacity,
            burst_capacity=config.burst_capacity,
            **kwargs,
        )

    # ---------------------------------------------------------------------- private

    def _kubernetes_objects_after_base(self) -> DependencyGroup:
        """Makes every Helm release and Kubernetes manifest of the environment (the GPU
        platform charts, Karpenter's chart and NodePools, the validation jobs) depend on
        the EKS managed add-ons and the system node group; returns that group.

        CloudFormation deletes a resource only after everything that depends on it. Without
        this, a stack deletion could remove vpc-cni, CoreDNS, kube-proxy or the system nodes
        while ``helm uninstall`` still runs a chart's pre-delete hooks (Jobs that need
        nodes, pod networking and DNS), and the release ends DELETE_FAILED. Helm releases
        or manifests added later should depend on ``kubernetes_base`` the same way."""
        base = DependencyGroup(*self.eks_addons.values(), self.system_nodegroup)
        for construct in self.node.find_all():
            if isinstance(construct, (eks.HelmChart, eks.KubernetesManifest)):
                construct.node.add_dependency(base)
        return base

    def _access_warnings(
        self,
        *,
        endpoint_access: EndpointAccess,
        public_access_cidrs: Sequence[str] | None,
        admin_principal_arn: str | None,
    ) -> None:
        """Synth warnings about who can reach and use the Kubernetes API."""
        if endpoint_access.public and (not public_access_cidrs or OPEN_TO_THE_WORLD in public_access_cidrs):
            cdk.Annotations.of(self).add_warning_v2(
                "eks-ultraserver:endpoint-open-to-the-world",
                "The cluster's public API endpoint accepts connections from every address "
                "(0.0.0.0/0; IAM authentication still applies). Restrict it to your networks "
                "with publicAccessCidrs (cdk.json context, e.g. -c "
                "publicAccessCidrs='[\"203.0.113.0/24\"]'; construct argument "
                "public_access_cidrs), or use endpointAccess 'private'.",
            )
        if not admin_principal_arn:
            cdk.Annotations.of(self).add_warning_v2(
                "eks-ultraserver:no-admin-principal",
                "No adminPrincipalArn: only the role CloudFormation deploys with (EKS makes "
                "the cluster creator admin) and CDK's kubectl handler have access entries, so "
                "after `aws eks update-kubeconfig` kubectl is refused for everyone else. Set "
                "adminPrincipalArn to the IAM role or user you run kubectl as (cdk.json "
                "context, e.g. -c adminPrincipalArn=arn:aws:iam::123456789012:role/Admin; "
                "construct argument admin_principal_arn).",
            )

    def _new_vpc(self, *, nat_gateways: int, vpc_endpoints: bool) -> ec2.Vpc:
        vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.0.0.0/16"),
            max_azs=2,
            nat_gateways=nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="Private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20
                ),
            ],
            flow_logs={
                "FlowLog": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                        logs.LogGroup(self, "FlowLogGroup", retention=logs.RetentionDays.ONE_MONTH)
                    ),
                    traffic_type=ec2.FlowLogTrafficType.REJECT,
                )
            },
        )
        if vpc_endpoints:
            vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
            for name, service in (
                ("EcrApi", ec2.InterfaceVpcEndpointAwsService.ECR),
                ("EcrDocker", ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER),
                ("Sts", ec2.InterfaceVpcEndpointAwsService.STS),
            ):
                vpc.add_interface_endpoint(
                    name,
                    service=service,
                    subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
                    private_dns_enabled=True,
                )
        return vpc

    def _reserved_subnets(self, zone: str) -> list[ec2.ISubnet]:
        """Subnets for reserved capacity in ``zone``: the UltraServers' own when it is their
        zone, else one new private subnet per zone (validated in the constructor)."""
        if zone == self.availability_zone:
            return self.ultraserver_subnets
        subnet = self.reserved_subnets.get(zone)
        if subnet is None:
            slot = _reserved_subnet_slot(zone)
            subnet = self._zone_subnet(
                self.vpc, f"ReservedSubnet-{zone}", zone, f"10.0.{128 + 8 * int(slot)}.0/21"
            )
            self.reserved_subnets[zone] = subnet
        return [subnet]

    def _zone_subnet(self, vpc: ec2.Vpc, id: str, zone: str, cidr: str) -> ec2.ISubnet:
        """A private subnet in the reservations' zone (Local Zone or regular AZ), with a
        default route through the VPC's first NAT gateway and the S3 gateway endpoint."""
        subnet = ec2.PrivateSubnet(
            self,
            id,
            availability_zone=zone,
            cidr_block=cidr,
            vpc_id=vpc.vpc_id,
            map_public_ip_on_launch=False,
        )
        nat = next(
            (c for c in vpc.public_subnets[0].node.children if isinstance(c, ec2.CfnNatGateway)),
            None,
        )
        if nat is not None:
            subnet.add_route(
                "DefaultRoute",
                router_id=nat.ref,
                router_type=ec2.RouterType.NAT_GATEWAY,
                enables_internet_connectivity=True,
            )
        # cfn-lint W3010 (hard-coded zone) is right in general and wrong here: a Capacity
        # Block or ODCR lives in one named zone, so its subnet must name it.
        cfn_subnet = subnet.node.default_child
        if isinstance(cfn_subnet, cdk.CfnResource):
            cfn_subnet.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3010"]}})
        cdk.Tags.of(subnet).add(
            "eks-ultraserver:subnet", "ultraservers" if id == "UltraServerSubnet" else "reserved"
        )
        if _is_local_zone(zone):
            cdk.Tags.of(subnet).add("eks-ultraserver:local-zone", zone)
        # Route S3 through the gateway endpoint from this subnet too (and the ones before).
        self._zone_route_tables = [
            *getattr(self, "_zone_route_tables", []),
            subnet.route_table.route_table_id,
        ]
        for child in vpc.node.children:
            if isinstance(child, ec2.GatewayVpcEndpoint):
                cfn = child.node.default_child
                if isinstance(cfn, ec2.CfnVPCEndpoint):
                    cfn.add_property_override(
                        "RouteTableIds",
                        [s.route_table.route_table_id for s in vpc.private_subnets] + self._zone_route_tables,
                    )
        return subnet

    def _system_nodes(self, instance_type: str, size: int) -> eks.Nodegroup:
        template = ec2.CfnLaunchTemplate(
            self,
            "SystemLaunchTemplate",
            launch_template_data=ec2.CfnLaunchTemplate.LaunchTemplateDataProperty(
                metadata_options=ec2.CfnLaunchTemplate.MetadataOptionsProperty(
                    http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1
                ),
                block_device_mappings=[
                    ec2.CfnLaunchTemplate.BlockDeviceMappingProperty(
                        device_name="/dev/xvda",
                        ebs=ec2.CfnLaunchTemplate.EbsProperty(
                            volume_size=50, volume_type="gp3", encrypted=True, delete_on_termination=True
                        ),
                    )
                ],
            ),
        )
        return self.cluster.add_nodegroup_capacity(
            "SystemNodes",
            instance_types=[ec2.InstanceType(instance_type)],
            ami_type=eks.NodegroupAmiType.AL2023_ARM_64_STANDARD,
            capacity_type=eks.CapacityType.ON_DEMAND,
            min_size=size,
            desired_size=size,
            max_size=size * 2,
            labels={SYSTEM_NODE_LABEL: SYSTEM_NODE_LABEL_VALUE},
            subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            node_role=node_role(self, "SystemNodeRole"),
            launch_template_spec=eks.LaunchTemplateSpec(
                id=template.ref, version=template.attr_latest_version_number
            ),
        )
