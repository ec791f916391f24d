"""``UltraServerEnvironment``: VPC, EKS cluster, system nodes, add-ons and UltraServers.

The equivalent of the EKS guide's eksctl ``cluster-config.yaml`` for P6e-GB200 plus what the
guide then does by hand, as one construct that any CDK app can place in its own stack. Each
concern is a private method of the constructor; the larger ones live in modules of their own:

- network.py: a new VPC (or an existing one) and a private subnet in the reservations'
  zone, which may be a Local Zone, routed through NAT and the S3 gateway endpoint;
- cluster.py: the ``aws_eks_v2`` cluster (Kubernetes 1.33+, access entries, control-plane
  logs, KMS-encrypted secrets, endpoint access), the Graviton system node group and the
  EKS managed add-ons. No Auto Mode and no Karpenter for the GPU nodes: DRA supports neither;
- shards.py: the nested stacks that hold one ``UltraServerNodeGroup`` per Capacity Block
  (sharing one EFA security group and one node role);
- kueue.py: Kueue, its Topology, the GPU flavors and the teams' queues (``kueue``,
  ``queues``), after the MPI operator;
- validation_jobs.py, environment_warnings.py, environment_checks.py: the validation
  manifests, the synth warnings and the checks of the arguments.

Every Helm release and Kubernetes manifest depends on the managed add-ons and the system
node group, so that stack deletion removes the releases (``helm uninstall`` and its hooks
need nodes, CoreDNS and pod networking) before them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks

from constructs import Construct, DependencyGroup
from eks_ultraserver.capacity import (
    BurstCapacitySpec,
    ReservationKind,
    ReservedCapacitySpec,
    ReservedProvisioner,
    sharing_configs,
)
from eks_ultraserver.config import (
    AddonsConfig,
    CapacityBlockEndConfig,
    EndpointAccess,
    EnvironmentConfig,
    UltraServerSpec,
)
from eks_ultraserver.constructs.addons import AddonsPlan, GpuPlatformAddons
from eks_ultraserver.constructs.cluster import (
    SYSTEM_NODE_SELECTOR,
    eks_cluster,
    managed_addons,
    system_nodegroup,
)
from eks_ultraserver.constructs.efa import EfaSecurityGroup
from eks_ultraserver.constructs.environment_checks import Fleet, check_environment
from eks_ultraserver.constructs.environment_warnings import MANAGED_NODEGROUPS_QUOTA, environment_warnings
from eks_ultraserver.constructs.iam import node_role
from eks_ultraserver.constructs.nag import suppress_cluster_findings, suppress_node_role
from eks_ultraserver.constructs.network import ULTRASERVER_SUBNET_CIDR, UltraServerNetwork
from eks_ultraserver.constructs.nodegroup import UltraServerNodeGroup
from eks_ultraserver.constructs.notifications import CapacityBlockNotifications
from eks_ultraserver.constructs.observability import GpuObservability, UltraServerTarget
from eks_ultraserver.constructs.shards import (
    DEFAULT_ULTRASERVER_SHARDS,
    MAX_ULTRASERVERS_PER_SHARD,
    SHARDS_OUTPUT,
    ULTRASERVER_SHARDS,
    fleet_problems,
    shard_stack,
    ultraserver_shard,
)
from eks_ultraserver.constructs.validation_jobs import ValidationTargets, validation_manifests
from eks_ultraserver.model import ControlPlaneTier, EfaLayout, Naming, Problems
from eks_ultraserver.queues import (
    MAX_FLAVORS_PER_QUEUE,
    Flavor,
    QueueSpec,
    check_queues,
    default_queue,
    fleet_flavors,
    queue_problems,
)
from eks_ultraserver.runai_config import RunAiConfig
from eks_ultraserver.settings import EfaMode, VpcCniConfig
from eks_ultraserver.versions import DEFAULT_KUBERNETES_VERSION

if TYPE_CHECKING:  # imported where used: most environments have neither (faster synth)
    from eks_ultraserver.constructs.karpenter import Karpenter
    from eks_ultraserver.constructs.kueue import KueueQueues
    from eks_ultraserver.constructs.reserved import ReservedGpuNodeGroup
    from eks_ultraserver.constructs.runai import RunAi

__all__ = [
    "DEFAULT_ULTRASERVER_SHARDS",
    "MANAGED_NODEGROUPS_QUOTA",
    "MAX_NODEGROUP_OUTPUTS",
    "MAX_ULTRASERVERS_PER_SHARD",
    "ULTRASERVER_SHARDS",
    "UltraServerEnvironment",
    "ValidationTargets",
    "ultraserver_shard",
]

#: Above this many UltraServers, no per-UltraServer stack output (CloudFormation allows
#: 200 outputs per stack); ``aws eks list-nodegroups`` lists them instead.
MAX_NODEGROUP_OUTPUTS = 100


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
    :param ultraserver_subnet_cidr: CIDR of the new UltraServer subnet: inside 10.0.0.0/16
        clear of the other subnets (10.0.64.0/18 or 10.0.192.0/18, or part of one), or a
        block in 10.0.0.0/8 or 100.64.0.0/10 outside it, which is added to the VPC as a
        secondary CIDR block. Synth refuses a fleet whose nodes cannot all get their
        addresses there under ``vpc_cni`` (network.py ``subnet_size_problems``; an
        existing VPC's subnets are not checked). A change replaces the subnet and every
        UltraServer node group in it. Default 10.0.192.0/18.
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
        delete themselves a day later); refused for more than
        ``sharding.MAX_VALIDATION_ULTRASERVERS`` (64) UltraServers, whose manifests would
        not fit in the parent stack. Default ``False``.
    :param notification_email: subscribe this address to the Capacity Block events topic.
        Default: the topic has no subscription.
    :param notifications: create the Capacity Block events topic. Default ``True``.
    :param observability: the CloudWatch Observability add-on (GPU and EFA metrics), a
        dashboard and alarms (missing UltraServer nodes, GPU XID errors) to the events topic
        (see observability.py). Default ``True``.
    :param reserved_capacity: ODCRs and Capacity Blocks of other GPU instance types (p5,
        p5en, p6-b200, ...), each run by a managed node group or by Karpenter's
        ``gpu-reserved`` NodePool. A reservation outside the UltraServers' zone gets a
        private subnet of its own in a new VPC (10.0.128.0/21 + the zone letter's slot).
        An entry with ``sharing`` gets its GPUs shared (time-slicing or MPS, see
        docs/sharing-gpus.md). Default: none.
    :param node_repair: EKS node auto repair on every GPU node group, with reboots for the
        GPU failures a reboot clears (gpu_nodegroup.py ``NODE_REPAIR_OVERRIDES``,
        docs/node-health.md); ``False`` disables it. Default ``True``.
    :param burst_capacity: Karpenter with a Spot-first ``gpu-burst`` NodePool (never
        UltraServer instance types); with ``availability_zone``, only in that zone (a Local
        Zone too: a subnet of its own there, new VPC only); with ``sharing``, shared GPUs.
        Default: no Karpenter.
    :param kueue: install Kueue (topology-aware batch admission) with a Topology of the
        UltraServers' network layers and NVLink domains, a ResourceFlavor per kind of GPU
        capacity and the ``queues`` (constructs/kueue.py, docs/queues.md). Default ``True``.
    :param queues: the teams' queues (``queues.QueueSpec``: a ClusterQueue in one cohort and
        a LocalQueue in the team's namespace each, with GPU quotas per flavor). Default:
        none, so one ``default`` queue with every GPU (LocalQueue ``default`` in namespace
        ``default``). Refused with ``kueue=False``.
    :param kueue_configuration: Kueue ``Configuration`` fields merged over the library's
        (``helm/kueue.py``), e.g. ``{"integrations": {"frameworks": ["batch/job"]}}`` (the
        MPIJob integration is always kept). No cdk.json key. Default: none.
    :param capacity_block_end: before each Capacity Block ends (UltraServers' and
        ``reserved_capacity``'s), cordon and mark its nodes, publish to the notifications
        topic and optionally evict their pods (a scheduled Lambda function; see
        capacity_block_end.py). Default: ``CapacityBlockEndConfig()`` (90 minutes' notice,
        no eviction); ``enabled=False`` for none.
    :param runai: install NVIDIA Run:ai's cluster component (and kube-prometheus-stack)
        on the system nodes after the GPU platform add-ons, connected to the Run:ai control
        plane named there; the client secret by Secrets Manager reference only (see
        constructs/runai.py, docs/runai.md). Default: ``None``, no Run:ai.
    :param control_plane_tier: the EKS Provisioned Control Plane tier (``ControlPlaneTier``
        or its value: ``standard``, ``tier-xl`` ... ``tier-8xl``, ``tier-ultra``); every tier
        but ``standard`` is billed per hour. Synth warns when the fleet is past what EKS and
        upstream Kubernetes document for the tier (model.py ``control_plane_tier_advice``).
        Default: none written (EKS runs ``standard``); give ``standard`` to leave a
        Provisioned tier.
    :param vpc_cni: VPC CNI settings written to the ``vpc-cni`` add-on's configuration
        values (prefix delegation, warm targets). Default: none (the add-on's defaults:
        secondary addresses, one interface's worth kept free). A change rolls ``aws-node``.
    :param ultraserver_shards: how many nested stacks the UltraServer node groups spread
        over (``sharding.ULTRASERVER_SHARD_COUNTS``: 16 to 256), each UltraServer in the one
        its name hashes to, at most ``MAX_ULTRASERVERS_PER_SHARD`` (70) in one. Fixed when the
        environment is created: another count moves node groups to other nested stacks
        (replacing them); the parent stack's ``UltraServerShards`` output records it for
        ``eks-ultraserver preflight``. Default 16 (about 1,000 UltraServers; 128 or 256
        for 5,556, EKS's 100,000 nodes). See docs/sharding.md.
    """

    #: The reserved-capacity subnets added to a new VPC, by zone.
    reserved_subnets: dict[str, ec2.ISubnet]

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
        ultraserver_subnet_cidr: str = ULTRASERVER_SUBNET_CIDR,
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
        observability: bool = True,
        reserved_capacity: Sequence[ReservedCapacitySpec] = (),
        burst_capacity: BurstCapacitySpec | None = None,
        node_repair: bool = True,
        capacity_block_end: CapacityBlockEndConfig | None = None,
        runai: RunAiConfig | None = None,
        control_plane_tier: ControlPlaneTier | str | None = None,
        vpc_cni: VpcCniConfig | None = None,
        kueue: bool = True,
        queues: Sequence[QueueSpec] = (),
        kueue_configuration: Mapping[str, Any] | None = None,
        ultraserver_shards: int = DEFAULT_ULTRASERVER_SHARDS,
    ) -> None:
        addons = addons or AddonsConfig()
        ultraservers = tuple(ultraservers)
        reserved_capacity = tuple(reserved_capacity)
        addons_plan = check_environment(
            f"UltraServerEnvironment {id!r}",
            ultraservers=ultraservers,
            availability_zone=availability_zone,
            kubernetes_version=kubernetes_version,
            efa_layout=efa_layout,
            vpc=vpc,
            ultraserver_subnets=ultraserver_subnets,
            endpoint_access=endpoint_access,
            public_access_cidrs=public_access_cidrs,
            system_nodes=system_nodes,
            nat_gateways=nat_gateways,
            addons=addons,
            reserved_capacity=reserved_capacity,
            burst_zone=burst_capacity.availability_zone if burst_capacity is not None else None,
            device_plugin_configs=sharing_configs(reserved_capacity, burst_capacity),
            burst_capacity=burst_capacity,
            control_plane_tier=control_plane_tier,
            vpc_cni=vpc_cni,
            ultraserver_subnet_cidr=ultraserver_subnet_cidr,
            ultraserver_shards=ultraserver_shards,
            validation_jobs=validation_jobs,
        )
        kueue_flavors = _kueue_flavors(
            id, kueue, queues, ultraservers, reserved_capacity, burst_capacity, kueue_configuration
        )
        efa_layout = EfaLayout(efa_layout)
        tier = ControlPlaneTier(control_plane_tier) if control_plane_tier is not None else None
        self.fleet = Fleet.of(
            ultraservers=ultraservers,
            availability_zone=availability_zone,
            reserved_capacity=reserved_capacity,
            burst_capacity=burst_capacity,
            system_nodes=system_nodes,
        )
        endpoint_access = EndpointAccess(endpoint_access)

        super().__init__(scope, id)
        self.availability_zone = availability_zone
        self.kubernetes_version = kubernetes_version
        self.node_repair = node_repair
        #: How many nested stacks the UltraServer node groups spread over (fixed at creation).
        self.ultraserver_shards = ultraserver_shards
        self._network(
            vpc=vpc,
            ultraserver_subnets=ultraserver_subnets,
            ultraserver_subnet_cidr=ultraserver_subnet_cidr,
            nat_gateways=nat_gateways,
            vpc_endpoints=vpc_endpoints,
        )
        self._cluster(
            cluster_name=cluster_name,
            endpoint_access=endpoint_access,
            public_access_cidrs=public_access_cidrs,
            admin_principal_arn=admin_principal_arn,
            control_plane_tier=tier,
        )
        self._system_nodes(system_instance_type, system_nodes)
        self._addons(addons, addons_plan, vpc_cni)
        self._runai(runai)
        self._ultraservers(ultraservers, efa_layout)
        self._capacity(reserved_capacity, burst_capacity, cluster_name)
        self.kueue = (
            self._kueue(kueue_flavors, tuple(queues), kueue_configuration)
            if kueue_flavors is not None
            else None
        )
        self._warnings(
            endpoint_access=endpoint_access,
            public_access_cidrs=public_access_cidrs,
            admin_principal_arn=admin_principal_arn,
            control_plane_tier=tier,
        )
        self.validation_manifests: list[eks.KubernetesManifest] = []
        if validation_jobs:
            self._validation(
                ValidationTargets(ultraservers=ultraservers, efa_layout=efa_layout, addons=addons)
            )
        self._notifications(ultraservers, reserved_capacity, notification_email, notifications)
        self.observability = self._observability(addons) if observability else None
        self._capacity_block_end(
            ultraservers, reserved_capacity, capacity_block_end or CapacityBlockEndConfig()
        )
        self.kubernetes_base = self._kubernetes_objects_after_base()
        suppress_cluster_findings(self.cluster)
        suppress_node_role(self.node_role)
        suppress_node_role(self.system_nodegroup.role)
        self._outputs()

    # ---------------------------------------------------------------------- public

    def add_ultraserver(
        self, spec: UltraServerSpec, *, efa_layout: EfaLayout = EfaLayout.PER_GPU
    ) -> UltraServerNodeGroup:
        """Adds the node group of one Capacity Block (its construct id is its name), in
        the nested stack its name hashes to; refuses one that nested stack has no room for
        (``MAX_ULTRASERVERS_PER_SHARD``)."""
        shard = ultraserver_shard(spec.name, self.ultraserver_shards)
        if self._shard_sizes.get(shard, 0) >= MAX_ULTRASERVERS_PER_SHARD:
            problems = Problems()
            names = [*self.ultraserver_nodegroups, spec.name]
            fleet_problems(names, self.ultraserver_shards, "ultraserver_shards", problems)
            problems.raise_if_any(f"UltraServerEnvironment {self.node.id!r}: add_ultraserver({spec.name!r})")
        self._shard_sizes[shard] = self._shard_sizes.get(shard, 0) + 1
        group = UltraServerNodeGroup(
            self._shard(shard),
            f"UltraServer-{spec.name}",
            cluster=self._icluster,
            capacity_reservation_id=spec.capacity_reservation_id,
            ultraserver_type=spec.type,
            name=spec.name,
            subnets=self.ultraserver_subnets,
            availability_zone=self.availability_zone,
            efa_layout=efa_layout,
            node_role=self.node_role,
            efa_security_group=self.efa_security_group,
            node_repair=self.node_repair,
        )
        if self._nodegroup_outputs:
            cdk.CfnOutput(self, f"Nodegroup-{spec.name}", value=group.nodegroup_name)
        self.ultraserver_nodegroups[spec.name] = group
        return group

    @classmethod
    def from_config(
        cls, scope: Construct, id: str, config: EnvironmentConfig, **kwargs
    ) -> UltraServerEnvironment:
        """Builds the environment from an ``EnvironmentConfig`` (cdk.json context): each
        field to the argument of the same name, ``vpc_id`` to ``vpc`` (looked up) and
        ``ultraserver_subnet_ids`` to ``ultraserver_subnets`` (in the reservations' zone). Not
        mapped: ``region`` and ``account``, which are the stack's environment. ``kwargs``:
        the arguments cdk.json has no key for (``system_nodes``, ``nat_gateways``, ...)."""
        return cls(
            scope,
            id,
            ultraservers=config.ultraservers,
            availability_zone=config.availability_zone,
            kubernetes_version=config.kubernetes_version,
            efa_layout=config.efa_layout,
            vpc=ec2.Vpc.from_lookup(scope, f"{id}Vpc", vpc_id=config.vpc_id) if config.vpc_id else None,
            ultraserver_subnets=[
                ec2.Subnet.from_subnet_attributes(
                    scope,
                    f"{id}UltraServerSubnet{i}",
                    subnet_id=subnet_id,
                    availability_zone=config.availability_zone,
                )
                for i, subnet_id in enumerate(config.ultraserver_subnet_ids)
            ]
            or None,
            admin_principal_arn=config.admin_principal_arn,
            endpoint_access=config.endpoint_access,
            public_access_cidrs=config.public_access_cidrs,
            cluster_name=config.cluster_name,
            addons=config.addons,
            validation_jobs=config.validation_jobs,
            notification_email=config.notification_email,
            observability=config.observability,
            reserved_capacity=config.reserved_capacity,
            burst_capacity=config.burst_capacity,
            node_repair=config.node_repair,
            capacity_block_end=config.capacity_block_end,
            runai=config.runai,
            control_plane_tier=config.control_plane_tier,
            vpc_cni=config.vpc_cni,
            # cdk.json's key first; before it, Python callers passed the argument in kwargs
            ultraserver_subnet_cidr=config.ultraserver_subnet_cidr
            or kwargs.pop("ultraserver_subnet_cidr", ULTRASERVER_SUBNET_CIDR),
            kueue=config.kueue,
            queues=config.queues,
            ultraserver_shards=config.ultraserver_shards,
            **kwargs,
        )

    # ---------------------------------------------------------------------- concerns

    @property
    def _icluster(self) -> eks.ICluster:
        """``cluster`` as an ``aws_eks_v2.ICluster``, which every construct of this library
        takes. (A cast: ``Cluster`` is ``@jsii.implements(ICluster)``, but its Python stub
        lacks the ``kubectl_provider_options`` property that ``ICluster`` declares, so mypy
        does not see it as one.)"""
        return cast(eks.ICluster, self.cluster)

    def _network(
        self,
        *,
        vpc: ec2.IVpc | None,
        ultraserver_subnets: Sequence[ec2.ISubnet] | None,
        ultraserver_subnet_cidr: str,
        nat_gateways: int,
        vpc_endpoints: bool,
    ) -> None:
        """The VPC and zone subnets, as children of the environment (see network.py)."""
        self.network = UltraServerNetwork(
            self,
            availability_zone=self.availability_zone,
            vpc=vpc,
            ultraserver_subnets=ultraserver_subnets,
            ultraserver_subnet_cidr=ultraserver_subnet_cidr,
            nat_gateways=nat_gateways,
            vpc_endpoints=vpc_endpoints,
        )
        self.vpc = self.network.vpc
        self.ultraserver_subnets = self.network.ultraserver_subnets
        self.reserved_subnets = self.network.zone_subnets

    def _cluster(
        self,
        *,
        cluster_name: str | None,
        endpoint_access: EndpointAccess,
        public_access_cidrs: Sequence[str] | None,
        admin_principal_arn: str | None,
        control_plane_tier: ControlPlaneTier | None,
    ) -> None:
        """The EKS cluster and its secrets key (see cluster.py)."""
        self.cluster, self.secrets_key = eks_cluster(
            self,
            kubernetes_version=self.kubernetes_version,
            vpc=self.vpc,
            cluster_name=cluster_name,
            endpoint_access=endpoint_access,
            public_access_cidrs=public_access_cidrs,
            admin_principal_arn=admin_principal_arn,
            control_plane_tier=control_plane_tier,
        )

    def _system_nodes(self, instance_type: str, size: int) -> None:
        """The on-demand Graviton node group for controllers (see cluster.py)."""
        self.system_nodegroup = system_nodegroup(self, self.cluster, instance_type=instance_type, size=size)

    def _addons(self, addons: AddonsConfig, plan: AddonsPlan, vpc_cni: VpcCniConfig | None) -> None:
        """The EKS managed add-ons (the VPC CNI with ``vpc_cni``), then the GPU platform
        (controllers on the system nodes; node agents tolerate the GPU taint)."""
        self.eks_addons = managed_addons(self, self.cluster, after=self.system_nodegroup, vpc_cni=vpc_cni)
        self.addons = GpuPlatformAddons(
            self,
            "GpuPlatform",
            cluster=self._icluster,
            addons=addons,
            kubernetes_version=self.kubernetes_version,
            system_node_selector=SYSTEM_NODE_SELECTOR,
            plan=plan,
        )
        self.addons.node.add_dependency(self.system_nodegroup)

    def _runai(self, config: RunAiConfig | None) -> None:
        """NVIDIA Run:ai's cluster component, after every GPU platform add-on (see runai.py)."""
        self.runai: RunAi | None = None
        if config is None:
            return
        from eks_ultraserver.constructs.runai import RunAi

        self.runai = RunAi(
            self,
            "RunAi",
            cluster=self._icluster,
            config=config,
            system_node_selector=SYSTEM_NODE_SELECTOR,
            after=self.addons.ready,
            gpu_operator_version=self.addons.releases["gpuOperator"].version,
        )

    def _ultraservers(self, ultraservers: Sequence[UltraServerSpec], efa_layout: EfaLayout) -> None:
        """The GPU node role and EFA security group they share, and one node group per
        UltraServer."""
        self.node_role = node_role(self, "GpuNodeRole")
        self.efa_security_group = (
            EfaSecurityGroup(self, "EfaSecurityGroup", vpc=self.vpc).security_group
            if efa_layout is not EfaLayout.NONE
            else None
        )
        self.ultraserver_nodegroups: dict[str, UltraServerNodeGroup] = {}
        self.ultraserver_stacks: dict[int, cdk.NestedStack] = {}
        self._shard_sizes: dict[int, int] = {}
        self._nodegroup_outputs = len(ultraservers) <= MAX_NODEGROUP_OUTPUTS
        for spec in ultraservers:
            self.add_ultraserver(spec, efa_layout=efa_layout)

    def _shard(self, index: int) -> cdk.NestedStack:
        shard = self.ultraserver_stacks.get(index)
        if shard is None:
            shard = self.ultraserver_stacks[index] = shard_stack(self, index)
            # Start the GPU nodes once the add-ons they need (VPC CNI) are managed.
            for addon in self.eks_addons.values():
                shard.node.add_dependency(addon)
        return shard

    def _capacity(
        self,
        reserved_capacity: Sequence[ReservedCapacitySpec],
        burst_capacity: BurstCapacitySpec | None,
        cluster_name: str | None,
    ) -> None:
        """Reserved capacity of other GPU types (a node group each, or Karpenter's
        ``gpu-reserved`` pool) and the burst pool; Karpenter only when one needs it."""
        self.reserved_nodegroups: dict[str, ReservedGpuNodeGroup] = {}
        for spec in reserved_capacity:
            if spec.provisioner is not ReservedProvisioner.NODEGROUP:
                continue
            from eks_ultraserver.constructs.reserved import ReservedGpuNodeGroup

            group = ReservedGpuNodeGroup.from_spec(
                self,
                f"Reserved-{spec.name}",
                cluster=self._icluster,
                spec=spec,
                subnets=self.network.reserved_subnets(spec.availability_zone or self.availability_zone),
                node_role=self.node_role,
                efa_security_group=self.efa_security_group,
                node_repair=self.node_repair,
            )
            for addon in self.eks_addons.values():
                group.node.add_dependency(addon)
            self.reserved_nodegroups[spec.name] = group
        self.karpenter: Karpenter | None = None
        # Karpenter's reservations, in their zone (none given: the UltraServers', as for
        # node groups); their classes select the subnets of those zones by id.
        karpenter_reserved = [
            replace(spec, availability_zone=spec.availability_zone or self.availability_zone)
            for spec in reserved_capacity
            if spec.provisioner is ReservedProvisioner.KARPENTER
        ]
        if burst_capacity is None and not karpenter_reserved:
            return
        from eks_ultraserver.constructs.karpenter import Karpenter

        self.karpenter = Karpenter(
            self,
            "Karpenter",
            cluster=self._icluster,
            subnets=self.vpc.private_subnets,
            discovery=cluster_name,
        )
        self.karpenter.node.add_dependency(self.eks_addons["eks-pod-identity-agent"], self.system_nodegroup)
        burst_zone = burst_capacity.availability_zone if burst_capacity is not None else None
        self.karpenter.add_gpu_capacity(
            burst=burst_capacity,
            reserved=karpenter_reserved,
            reserved_subnets=[
                subnet
                for zone in sorted({spec.availability_zone or "" for spec in karpenter_reserved})
                for subnet in self.network.reserved_subnets(zone)
            ],
            # a burst pool in a zone of its own (e.g. a Local Zone): that zone's subnet
            burst_subnets=self.network.reserved_subnets(burst_zone) if burst_zone else (),
        )

    def _kueue(
        self,
        flavors: dict[str, Flavor],
        queues: tuple[QueueSpec, ...],
        configuration: Mapping[str, Any] | None,
    ) -> KueueQueues:
        """Kueue on the system nodes, after the MPI operator (its MPIJob integration needs
        the CRD), then the Topology, flavors and queues (see constructs/kueue.py)."""
        from eks_ultraserver.constructs.kueue import KueueQueues

        kueue = KueueQueues(
            self,
            "Kueue",
            cluster=self._icluster,
            flavors=flavors,
            queues=queues,
            system_node_selector=SYSTEM_NODE_SELECTOR,
            configuration=configuration,
            after=[self.addons.mpi_operator, self.system_nodegroup],
        )
        # Kueue's webhooks see every Job and MPIJob (fail closed while Kueue is not ready):
        # workloads that wait for the add-ons (the validation jobs) wait for Kueue too.
        self.addons.ready.add(kueue.helm_chart)
        return kueue

    def _warnings(
        self,
        *,
        endpoint_access: EndpointAccess,
        public_access_cidrs: Sequence[str] | None,
        admin_principal_arn: str | None,
        control_plane_tier: ControlPlaneTier | None,
    ) -> None:
        """Synth warnings: who can reach the API, extended support, the node group quota,
        the control plane tier for the fleet."""
        environment_warnings(
            self,
            kubernetes_version=self.kubernetes_version,
            endpoint_access=endpoint_access,
            public_access_cidrs=public_access_cidrs,
            admin_principal_arn=admin_principal_arn,
            # the system node group, one per UltraServer, one per reserved node group
            nodegroups=1 + len(self.ultraserver_nodegroups) + len(self.reserved_nodegroups),
            control_plane_tier=control_plane_tier,
            fleet_nodes=self.fleet.nodes,
            fleet_gpus=self.fleet.gpus,
        )

    def _validation(self, targets: ValidationTargets) -> None:
        """The IMEX channel check and nvbandwidth job of each UltraServer, each after the
        add-ons and its node group (see validation_jobs.py)."""
        self.validation_manifests = validation_manifests(
            self.cluster, targets, addons_ready=self.addons.ready, nodegroups=self.ultraserver_nodegroups
        )

    def _notifications(
        self,
        ultraservers: Sequence[UltraServerSpec],
        reserved_capacity: Sequence[ReservedCapacitySpec],
        email: str | None,
        enabled: bool,
    ) -> None:
        """The Capacity Block events topic, for every Capacity Block of the environment:
        the UltraServers' and those of the reserved capacity (node group or Karpenter
        alike); ODCRs send no such events."""
        capacity_blocks = [u.capacity_reservation_id for u in ultraservers] + [
            spec.capacity_reservation_id
            for spec in reserved_capacity
            if spec.kind is ReservationKind.CAPACITY_BLOCK and spec.capacity_reservation_id
        ]
        self.notifications = (
            CapacityBlockNotifications(
                self, "CapacityBlockEvents", reservation_ids=list(dict.fromkeys(capacity_blocks)), email=email
            )
            if enabled
            else None
        )

    def _capacity_block_end(
        self,
        ultraservers: Sequence[UltraServerSpec],
        reserved_capacity: Sequence[ReservedCapacitySpec],
        config: CapacityBlockEndConfig,
    ) -> None:
        """The scheduled handler that cordons, marks and optionally drains the nodes of
        every Capacity Block of the environment before it ends, announcing it on the
        notifications topic (when there is one)."""
        from eks_ultraserver.constructs.capacity_block_end import CapacityBlockEndHandler, WatchedBlock

        self.capacity_block_end: CapacityBlockEndHandler | None = None
        if not config.enabled:
            return
        blocks = [WatchedBlock.for_ultraserver(u) for u in ultraservers]
        blocks += [b for spec in reserved_capacity if (b := WatchedBlock.for_reserved(spec)) is not None]
        self.capacity_block_end = CapacityBlockEndHandler(
            self,
            "CapacityBlockEnd",
            cluster=self._icluster,
            blocks=blocks,
            vpc=self.vpc,
            topic=self.notifications.topic if self.notifications else None,
            topic_key=self.notifications.encryption_key if self.notifications else None,
            config=config,
        )

    def _observability(self, addons: AddonsConfig) -> GpuObservability:
        """The CloudWatch Observability add-on, the GPU dashboard and its alarms (to the events
        topic), after the Pod Identity agent and the system nodes (see observability.py). After
        ``_notifications``: the alarms need its topic."""
        return GpuObservability(
            self,
            "Observability",
            cluster=self._icluster,
            ultraservers=[
                UltraServerTarget(
                    name=name,
                    capacity_reservation_id=g.capacity_reservation_id,
                    instance_count=g.instance_count,
                    alarm_scope=g,  # in the UltraServer's nested stack, beside its node group
                )
                for name, g in self.ultraserver_nodegroups.items()
            ],
            topic=self.notifications.topic if self.notifications else None,
            efa_metrics=addons.efa_mode is EfaMode.DEVICE_PLUGIN and self.efa_security_group is not None,
            after=[self.eks_addons["eks-pod-identity-agent"], self.system_nodegroup],
        )

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

    def _outputs(self) -> None:
        """The cluster's name, the command that writes its kubeconfig, and the shard count
        (which ``eks-ultraserver preflight`` compares with the configured one)."""
        cdk.CfnOutput(self, "ClusterName", value=self.cluster.cluster_name)
        cdk.CfnOutput(
            self,
            SHARDS_OUTPUT,
            value=str(self.ultraserver_shards),
            description="Nested stacks of the UltraServer node groups (ultraServerShards); "
            "fixed at creation, see docs/sharding.md",
        )
        region = cdk.Stack.of(self).region
        command = ["aws eks update-kubeconfig --name ", self.cluster.cluster_name, " --region ", region]
        cdk.CfnOutput(self, "UpdateKubeconfigCommand", value=cdk.Fn.join("", command))


def _kueue_flavors(
    id: str,
    kueue: bool,
    queues: Sequence[QueueSpec],
    ultraservers: Sequence[UltraServerSpec],
    reserved_capacity: Sequence[ReservedCapacitySpec],
    burst_capacity: BurstCapacitySpec | None,
    configuration: Mapping[str, Any] | None,
) -> dict[str, Flavor] | None:
    """The fleet's Kueue flavors (``None`` with Kueue off), once ``kueue``, ``queues`` and
    ``kueue_configuration`` are checked against each other and against the fleet, before
    any construct is made; raises one ``ConfigurationError``."""
    from eks_ultraserver.helm.kueue import KueueValues

    problems = Problems()
    checked = check_queues(kueue, list(queues), Naming(), problems)
    problems.extend(KueueValues.configuration_problems(configuration, "kueue_configuration"))
    flavors = fleet_flavors(
        ultraserver_gpus=sum(u.type.gpu_count for u in ultraservers),
        reserved_capacity=reserved_capacity,
        burst_capacity=burst_capacity,
    )
    if kueue and isinstance(checked, tuple) and not problems:
        problems.extend(queue_problems(checked, flavors))
        default = default_queue(flavors)
        if not checked and len(default.quotas) > MAX_FLAVORS_PER_QUEUE:
            problems.add(
                f"reserved_capacity: {len(reserved_capacity)} entries give Kueue's default queue "
                f"{len(default.quotas)} flavors, more than the {MAX_FLAVORS_PER_QUEUE} a ClusterQueue's "
                "resource group holds; give queues (each team with quotas on at most "
                f"{MAX_FLAVORS_PER_QUEUE} flavors) or set kueue to false"
            )
    problems.raise_if_any(f"UltraServerEnvironment {id!r}")
    return flavors if kueue else None
