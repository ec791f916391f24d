"""MpiJob: a Kubeflow MPIJob (kubeflow.org/v2beta1) wired for P6e-GB200 UltraServers.

One chart holds everything one multi-node job needs, with numbers that agree:

- a ComputeDomain of its own (EKS guide: one per job), whose ResourceClaimTemplate every
  worker claims, so the DRA driver injects the IMEX channel into each worker;
- workers that each take whole GPUs (``nvidia.com/gpu``), optionally EFA devices
  (``vpc.amazonaws.com/efa`` from the EFA device plugin, or a DRA claim on DeviceClass
  ``efa.networking.k8s.aws`` when the cluster runs DRANET), tolerate the GPU taint, run only
  on the targeted UltraServers (node affinity on ``eks-ultraserver.io/ultraserver``) and,
  for a job on one UltraServer, share one NVLink clique (pod affinity on
  ``nvidia.com/gpu.clique``, as in the EKS guide);
- a launcher that runs ``mpirun -np <workers x slots> --map-by ppr:<slots>:node`` and
  exports the job's environment to every rank (``-x NAME``, OpenMPI).

Bad input raises one ``ConfigurationError`` listing every problem, before any object is
created. The MPIJob is a thin ``cdk8s.ApiObject``; the 300 KB CRD is not imported as code.

The parts live apart: ``mpijob_targets`` (where a job runs, what it mounts),
``mpijob_spec`` (:class:`MpiJobSpec`, the arguments validated) and ``mpijob_pods`` (the
launcher's and workers' pod templates); every public name of them is importable from here.

Sources: EKS user guide ml-eks-nvidia-ultraserver (nvbandwidth MPIJob); the MPI operator's
CRD and controller at the version this library pins (``versions.MPI_OPERATOR``): worker pod
names ``<name>-worker-<i>``, default worker command ``/usr/sbin/sshd -De``; EKS user guide
device-management-efa (EFA claims with DRANET).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cdk8s

from constructs import Construct
from eks_ultraserver.charts.compute_domain import ChannelAllocationMode, ComputeDomain, DraDriverTarget
from eks_ultraserver.charts.mpijob_pods import (
    EFA_DEVICE_CLASS,
    EFA_RESOURCE,
    GPU_RESOURCE,
    GPU_TOLERATION,
    JOB_LABEL,
    ROLE_LABEL,
    efa_claim_template_spec,
    launcher_pod_template,
    worker_pod_template,
)
from eks_ultraserver.charts.mpijob_spec import (
    EFA_CLAIM_NAME,
    CleanPodPolicy,
    LauncherCreationPolicy,
    MpiJobSpec,
    TopologyPlacement,
    max_job_name_length,
)
from eks_ultraserver.charts.mpijob_targets import (
    FORBIDDEN_HOST_PATHS,
    INSTANCE_STORE_PATH,
    KARPENTER_CAPACITY_TYPE_LABEL,
    CapacityTarget,
    UltraServerTarget,
    Volume,
)
from eks_ultraserver.config import EfaMode
from eks_ultraserver.model import GPUS_PER_INSTANCE, ConfigurationError
from eks_ultraserver.queues import QUEUE_NAME_LABEL
from eks_ultraserver.versions import DRA_RESOURCE_API_VERSION, MPIJOB_API_VERSION


class MpiJob(cdk8s.Chart):
    """A chart with one MPIJob and the ComputeDomain (and EFA claim) its workers use.

    :param name: the MPIJob's name; also the ComputeDomain's. A DNS-1123 label starting
        with a letter, short enough for the worker pod names ``<name>-worker-<i>``.
    :param image: the container image of the launcher and the workers (must have OpenMPI
        and an sshd for the workers).
    :param command: the program each rank runs, with its arguments (``mpirun`` runs it).
    :param ultraservers: the UltraServers the job may use. With one, the job is a
        single-domain job: all workers share its NVLink domain (pod affinity on the
        clique), so ``workers`` is at most its node count. With several, workers spread
        over them and talk over EFA between UltraServers.
    :param workers: worker pods, one per node when each takes 4 GPUs.
    :param slots_per_worker: MPI ranks per worker (``slotsPerWorker``). Default: 4, one per
        GPU of a p6e-gb200.36xlarge; at most 4.
    :param gpus_per_worker: ``nvidia.com/gpu`` per worker. Default: ``slots_per_worker``.
    :param ranks: the total MPI ranks (``mpirun -np``). Default: ``workers *
        slots_per_worker``; any other value is refused.
    :param efa_devices: EFA devices per worker. Default: 0 (no EFA: traffic inside one
        UltraServer goes over NVLink). At most what the UltraServers' EFA layout provides.
    :param efa_mode: how the cluster hands out EFA devices. Default: the EFA device plugin
        (``vpc.amazonaws.com/efa``); with ``EfaMode.DRANET`` a ResourceClaimTemplate
        ``<name>-efa`` on DeviceClass ``efa.networking.k8s.aws`` is created and claimed.
    :param env: environment of the launcher and workers, exported to every rank with
        ``mpirun -x NAME``. Default: none.
    :param volumes: volumes mounted into every worker. Default: none.
    :param shared_memory: mount an in-memory emptyDir at ``/dev/shm`` in the workers
        (NCCL needs more than the container runtime's 64 MB). Default: on.
    :param mpirun: the mpirun executable. Default: ``mpirun`` from the image's PATH.
    :param mpirun_args: extra mpirun options before ``--map-by``/``-np`` (for example
        ``("--bind-to", "core")``). Default: none. Must not set the rank count or mapping.
    :param worker_command: the workers' command. Default: none, so the MPI operator runs
        ``/usr/sbin/sshd -De``.
    :param run_as_user: ``securityContext.runAsUser`` of the containers. Default: the
        image's user.
    :param ssh_auth_mount_path: where the operator mounts the ssh keys
        (``sshAuthMountPath``). Default: ``/root/.ssh``.
    :param launcher_creation_policy: Default: ``WaitForWorkersReady``, as in the EKS guide.
    :param clean_pod_policy: Default: ``Running`` (workers are deleted when the job ends,
        which frees their GPUs and IMEX channels).
    :param backoff_limit: launcher retries before the job fails. Default: 6.
    :param ttl_seconds_after_finished: ``runPolicy.ttlSecondsAfterFinished``: the operator
        deletes the MPIJob (and its pods) that long after it finished. Default: never.
    :param compute_domain_nodes: the ComputeDomain's ``numNodes``. Default: ``workers``
        when each worker takes all 4 GPUs of a node, else 0 (elastic).
    :param channel_allocation_mode: the ComputeDomain's channel allocation mode. Default:
        ``Single``.
    :param dra_driver: the installed NVIDIA DRA driver. Default: the kubernetes-sigs line
        at the pinned version.
    :param namespace: namespace of every object. Default: ``default``.
    :param labels: extra labels on every object of the chart (not on the pods). Default:
        only ``eks-ultraserver.io/mpijob: <name>``.
    :param queue: the Kueue LocalQueue (in ``namespace``) the job is submitted to: the
        MPIJob gets the label ``kueue.x-k8s.io/queue-name``, and Kueue admits the whole job
        (launcher and workers) at once when its ClusterQueue has the GPUs. Default: none (the
        job is not queued; Kueue does not manage it).
    :param topology: with ``queue``, how Kueue places the pods on NVLink domains
        (``nvidia.com/gpu.clique``; :class:`TopologyPlacement`): ``required`` (all in one
        domain), ``preferred``, ``slices`` (workers in slices of one UltraServer's nodes,
        each slice in one domain) or ``unconstrained``. Default: ``required`` when the
        workers fit in one UltraServer, ``slices`` when they divide into the smallest
        targeted UltraServer's nodes, else ``preferred``; none on ``capacity`` (no
        Topology there). The ComputeDomain, EFA requests and affinities are the same either way.
    :raises ConfigurationError: one error listing every problem of the arguments.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        image: str,
        command: Sequence[str],
        ultraservers: Sequence[UltraServerTarget] = (),
        workers: int,
        slots_per_worker: int = GPUS_PER_INSTANCE,
        gpus_per_worker: int | None = None,
        ranks: int | None = None,
        efa_devices: int = 0,
        efa_mode: EfaMode | str = EfaMode.DEVICE_PLUGIN,
        env: Mapping[str, str] | None = None,
        volumes: Sequence[Volume] = (),
        shared_memory: bool = True,
        mpirun: str = "mpirun",
        mpirun_args: Sequence[str] = (),
        worker_command: Sequence[str] | None = None,
        run_as_user: int | None = None,
        ssh_auth_mount_path: str = "/root/.ssh",
        launcher_creation_policy: LauncherCreationPolicy
        | str = LauncherCreationPolicy.WAIT_FOR_WORKERS_READY,
        clean_pod_policy: CleanPodPolicy | str = CleanPodPolicy.RUNNING,
        backoff_limit: int = 6,
        ttl_seconds_after_finished: int | None = None,
        compute_domain_nodes: int | None = None,
        channel_allocation_mode: ChannelAllocationMode | str = ChannelAllocationMode.SINGLE,
        dra_driver: DraDriverTarget | None = None,
        namespace: str = "default",
        labels: Mapping[str, str] | None = None,
        capacity: CapacityTarget | None = None,
        queue: str | None = None,
        topology: TopologyPlacement | str | None = None,
    ) -> None:
        spec = MpiJobSpec(
            name=name,
            image=image,
            command=command,
            ultraservers=ultraservers,
            workers=workers,
            slots_per_worker=slots_per_worker,
            gpus_per_worker=gpus_per_worker,
            ranks=ranks,
            efa_devices=efa_devices,
            efa_mode=efa_mode,
            env=env,
            volumes=volumes,
            shared_memory=shared_memory,
            mpirun=mpirun,
            mpirun_args=mpirun_args,
            worker_command=worker_command,
            run_as_user=run_as_user,
            ssh_auth_mount_path=ssh_auth_mount_path,
            launcher_creation_policy=launcher_creation_policy,
            clean_pod_policy=clean_pod_policy,
            backoff_limit=backoff_limit,
            ttl_seconds_after_finished=ttl_seconds_after_finished,
            compute_domain_nodes=compute_domain_nodes,
            channel_allocation_mode=channel_allocation_mode,
            dra_driver=dra_driver,
            namespace=namespace,
            labels=labels,
            capacity=capacity,
            queue=queue,
            topology=topology,
        )
        super().__init__(
            scope, id, namespace=spec.namespace, labels={**(spec.labels or {}), JOB_LABEL: spec.name}
        )
        self.spec: MpiJobSpec = spec
        self.job_name: str = spec.name
        self.workers: int = spec.workers
        self.slots_per_worker: int = spec.slots_per_worker
        self.gpus_per_worker: int = spec.worker_gpus
        self.ranks: int = spec.total_ranks
        self.efa_devices: int = spec.efa_devices
        self.efa_mode: EfaMode = EfaMode(spec.efa_mode)
        self.ultraservers: tuple[UltraServerTarget, ...] = tuple(spec.ultraservers)
        self.capacity: CapacityTarget | None = spec.capacity
        self.queue: str | None = spec.queue
        self.topology_placement: TopologyPlacement | None = spec.topology_placement
        self.single_domain: bool = spec.single_domain
        self.compute_domain: ComputeDomain | None = self._add_compute_domain(spec)
        self.efa_claim_template: cdk8s.ApiObject | None = self._add_efa_claim_template(spec)
        self.mpijob: cdk8s.ApiObject = self._add_mpijob(spec)

    def _add_compute_domain(self, spec: MpiJobSpec) -> ComputeDomain | None:
        """The job's ComputeDomain (UltraServers only: other GPU nodes have no NVLink domain)."""
        num_nodes = spec.compute_domain_num_nodes
        if num_nodes is None:
            return None
        return ComputeDomain(
            self,
            "ComputeDomain",
            name=spec.name,
            num_nodes=num_nodes,
            allocation_mode=spec.channel_allocation_mode,
            dra_driver=spec.dra_driver,
        )

    def _add_efa_claim_template(self, spec: MpiJobSpec) -> cdk8s.ApiObject | None:
        """The ResourceClaimTemplate of the workers' EFA devices (DRANET only)."""
        if spec.efa_claim_template_name is None:
            return None
        return self._add_object(
            "EfaClaimTemplate",
            api_version=DRA_RESOURCE_API_VERSION,
            kind="ResourceClaimTemplate",
            name=spec.efa_claim_template_name,
            spec=efa_claim_template_spec(spec),
        )

    def _add_mpijob(self, spec: MpiJobSpec) -> cdk8s.ApiObject:
        """The MPIJob: OpenMPI, one launcher (retried on failure), the workers (never restarted)."""
        ttl = spec.ttl_seconds_after_finished
        launcher = launcher_pod_template(spec)
        worker = worker_pod_template(spec, self.compute_domain)
        body = {
            "slotsPerWorker": spec.slots_per_worker,
            "mpiImplementation": "OpenMPI",
            "launcherCreationPolicy": LauncherCreationPolicy(spec.launcher_creation_policy).value,
            "runPolicy": {
                "cleanPodPolicy": CleanPodPolicy(spec.clean_pod_policy).value,
                "backoffLimit": spec.backoff_limit,
                **({"ttlSecondsAfterFinished": ttl} if ttl is not None else {}),
            },
            "sshAuthMountPath": spec.ssh_auth_mount_path,
            "mpiReplicaSpecs": {
                "Launcher": {"replicas": 1, "restartPolicy": "OnFailure", "template": launcher},
                "Worker": {"replicas": spec.workers, "restartPolicy": "Never", "template": worker},
            },
        }
        mpijob = self._add_object(
            "MPIJob", api_version=MPIJOB_API_VERSION, kind="MPIJob", name=spec.name, spec=body
        )
        if spec.queue is not None:
            mpijob.metadata.add_label(QUEUE_NAME_LABEL, spec.queue)
        return mpijob

    def _add_object(
        self, id: str, *, api_version: str, kind: str, name: str, spec: dict[str, Any]
    ) -> cdk8s.ApiObject:
        """An object of the chart as a thin ``cdk8s.ApiObject``, its ``spec`` added as a JSON
        patch (no generated classes: the MPIJob CRD alone is 300 KB)."""
        api_object = cdk8s.ApiObject(
            self, id, api_version=api_version, kind=kind, metadata=cdk8s.ApiObjectMetadata(name=name)
        )
        api_object.add_json_patch(cdk8s.JsonPatch.add("/spec", spec))
        return api_object

    @property
    def launcher_job_name(self) -> str:
        """The batch Job the operator creates for the launcher (``kubectl logs job/<this>``)."""
        return f"{self.job_name}-launcher"


__all__ = [
    "EFA_CLAIM_NAME",
    "EFA_DEVICE_CLASS",
    "EFA_RESOURCE",
    "FORBIDDEN_HOST_PATHS",
    "GPU_RESOURCE",
    "GPU_TOLERATION",
    "INSTANCE_STORE_PATH",
    "JOB_LABEL",
    "KARPENTER_CAPACITY_TYPE_LABEL",
    "ROLE_LABEL",
    "CapacityTarget",
    "CleanPodPolicy",
    "ConfigurationError",
    "LauncherCreationPolicy",
    "MpiJob",
    "MpiJobSpec",
    "TopologyPlacement",
    "UltraServerTarget",
    "Volume",
    "max_job_name_length",
]
