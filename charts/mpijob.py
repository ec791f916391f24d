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

Sources: EKS user guide ml-eks-nvidia-ultraserver (nvbandwidth MPIJob); MPI operator v0.7.0
CRD and controller (worker pod names ``<name>-worker-<i>``, default worker command
``/usr/sbin/sshd -De``); EKS user guide device-management-efa (EFA claims with DRANET).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cdk8s

from constructs import Construct
from eks_ultraserver.charts.compute_domain import (
    ChannelAllocationMode,
    ComputeDomain,
    DraDriverTarget,
    compute_domain_problems,
)
from eks_ultraserver.config import EfaMode, EnvironmentConfig
from eks_ultraserver.model import (
    CAPACITY_TYPE_LABEL,
    GPU_CLIQUE_LABEL,
    GPU_TAINT,
    GPUS_PER_INSTANCE,
    INSTANCE_TYPE,
    LABEL_PREFIX,
    RESERVED_CAPACITY_LABEL,
    ULTRASERVER_LABEL,
    ConfigurationError,
    EfaLayout,
    Problems,
    UltraServerType,
    is_dns1123_label,
    is_label_key,
    is_label_value,
)
from eks_ultraserver.versions import DRA_RESOURCE_API_VERSION, MPIJOB_API_VERSION

#: Extended resource of the NVIDIA device plugin (the GPU Operator installs it).
GPU_RESOURCE = "nvidia.com/gpu"
#: Extended resource of the AWS EFA device plugin.
EFA_RESOURCE = "vpc.amazonaws.com/efa"
#: DeviceClass of the EFA DRA driver (DRANET); EKS user guide, device-management-efa.
EFA_DEVICE_CLASS = "efa.networking.k8s.aws"
#: Pod-level claim name for the EFA devices when efa_mode is DRANET.
EFA_CLAIM_NAME = "efa"
#: Where nodeadm mounts the RAID0 array of the instance stores (``localStorage: RAID0``);
#: kubelet's and containerd's directories, and so every emptyDir, live on it.
INSTANCE_STORE_PATH = "/mnt/k8s-disks/0"

#: Labels this library puts on a job's objects and pods.
JOB_LABEL = f"{LABEL_PREFIX}/mpijob"
ROLE_LABEL = f"{LABEL_PREFIX}/mpijob-role"

#: Tolerates the GPU taint whatever its value: node groups of this library set
#: ``nvidia.com/gpu=true:NoSchedule``, other tools ``nvidia.com/gpu=present``.
GPU_TOLERATION: dict[str, str] = {"key": GPU_TAINT.key, "operator": "Exists", "effect": GPU_TAINT.effect}

# The MPI operator names worker pods "<name>-worker-<index>"; a pod's hostname must be a
# DNS label (at most 63 characters) and the workers' Service "<name>-worker" a DNS-1035
# label (starts with a letter).
_WORKER_INFIX = "-worker-"
_ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_RANK_FLAGS = ("-np", "-n", "--np", "-c")
_MAPPING_FLAGS = ("--map-by", "-map-by", "-npernode", "--npernode", "-N")


class LauncherCreationPolicy(enum.StrEnum):
    """``spec.launcherCreationPolicy`` of an MPIJob."""

    #: Create the launcher together with the workers (the operator's default).
    AT_STARTUP = "AtStartup"
    #: Create the launcher once every worker is Ready (EKS guide; avoids ssh retries).
    WAIT_FOR_WORKERS_READY = "WaitForWorkersReady"


class CleanPodPolicy(enum.StrEnum):
    """``spec.runPolicy.cleanPodPolicy``: which pods to delete when the job ends."""

    NONE = "None"
    #: Delete the pods still running (the workers), releasing GPUs and IMEX channels.
    RUNNING = "Running"
    ALL = "All"


def _is_whole(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


@dataclass(frozen=True, kw_only=True, slots=True)
class UltraServerTarget:
    """An UltraServer a job may run on: the value of its ``eks-ultraserver.io/ultraserver``
    node label, its type (which fixes its node count) and its EFA layout.

    :param name: the UltraServer's name (what ``cdk.json``'s ``ultraServers[].name`` and
        ``UltraServerNodeGroup(name=...)`` set).
    :param type: ``u-p6e-gb200x36`` (9 nodes) or ``u-p6e-gb200x72`` (18 nodes).
    :param efa_layout: the node group's EFA layout. Default: ``per-gpu`` (4 EFA devices per
        node), the library's default.
    """

    name: str
    type: UltraServerType
    efa_layout: EfaLayout = EfaLayout.PER_GPU

    def __post_init__(self) -> None:
        problems = Problems()
        if not is_dns1123_label(self.name):
            problems.add(f"name: {self.name!r} is not a DNS-1123 label")
        for attr, enum_type, what in (
            ("type", UltraServerType, "an UltraServer type"),
            ("efa_layout", EfaLayout, "an EFA layout"),
        ):
            value = getattr(self, attr)
            try:
                object.__setattr__(self, attr, enum_type(value))
            except ValueError:
                allowed = ", ".join(repr(t.value) for t in enum_type)
                problems.add(f"{attr}: {value!r} is not {what}; use one of {allowed}")
        problems.raise_if_any("UltraServerTarget")

    @property
    def nodes(self) -> int:
        return self.type.instance_count

    @classmethod
    def from_config(cls, config: EnvironmentConfig) -> tuple[UltraServerTarget, ...]:
        """One target per UltraServer of an environment, in ``cdk.json`` order."""
        return tuple(cls(name=u.name, type=u.type, efa_layout=config.efa_layout) for u in config.ultraservers)


#: Karpenter's well-known capacity type label (spot, on-demand, reserved).
KARPENTER_CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"


@dataclass(frozen=True, kw_only=True, slots=True)
class CapacityTarget:
    """GPU nodes beside the UltraServers (reserved or burst capacity), chosen by labels.

    Such nodes share no NVLink domain across nodes, so a job there gets no ComputeDomain:
    ranks talk over EFA (or TCP) between nodes.

    :param node_selector: labels every worker's node must carry.
    :param gpus_per_node: GPUs of one node (p5.48xlarge: 8).
    :param efa_devices: EFA devices one node offers. Default 0.
    :param nodes: nodes available, if fixed (a reservation's instance count). Default:
        unknown (burst capacity grows with demand).
    """

    node_selector: Mapping[str, str]
    gpus_per_node: int
    efa_devices: int = 0
    nodes: int | None = None

    def __post_init__(self) -> None:
        problems = Problems()
        if not self.node_selector:
            problems.add("node_selector: empty; give the labels that pick the nodes")
        for key, value in dict(self.node_selector).items():
            if not is_label_key(key) or not is_label_value(value):
                problems.add(f"node_selector: {key!r}: {value!r} is not a valid label")
        if not _is_whole(self.gpus_per_node, 1):
            problems.add(f"gpus_per_node: {self.gpus_per_node!r} is not a whole number (1 or more)")
        if not _is_whole(self.efa_devices, 0):
            problems.add(f"efa_devices: {self.efa_devices!r} is not a whole number (0 or more)")
        if self.nodes is not None and not _is_whole(self.nodes, 1):
            problems.add(f"nodes: {self.nodes!r} is not a whole number (1 or more)")
        problems.raise_if_any("CapacityTarget")
        object.__setattr__(self, "node_selector", dict(self.node_selector))

    @classmethod
    def reserved(
        cls, name: str, *, gpus_per_node: int, efa_devices: int = 0, nodes: int | None = None
    ) -> CapacityTarget:
        """The nodes of one ``reservedCapacity`` entry (its node group's label)."""
        return cls(
            node_selector={RESERVED_CAPACITY_LABEL: name},
            gpus_per_node=gpus_per_node,
            efa_devices=efa_devices,
            nodes=nodes,
        )

    @classmethod
    def burst(cls, *, gpus_per_node: int, efa_devices: int = 0, spot: bool | None = None) -> CapacityTarget:
        """Karpenter's ``gpu-burst`` pool; ``spot=True``/``False`` pins Spot or On-Demand,
        ``None`` takes either."""
        selector = {CAPACITY_TYPE_LABEL: "burst"}
        if spot is not None:
            selector[KARPENTER_CAPACITY_TYPE_LABEL] = "spot" if spot else "on-demand"
        return cls(node_selector=selector, gpus_per_node=gpus_per_node, efa_devices=efa_devices)


#: Host paths a workload must never mount: with ``/dev/infiniband`` as a hostPath every
#: uverbs device of the node is in the container, libfabric then fails to open the ones
#: that are not EFA devices and NCCL silently falls back to TCP sockets (aws-samples/aws-do-eks
#: #63). EFA devices reach a pod through the EFA device plugin or DRANET only.
FORBIDDEN_HOST_PATHS = ("/dev/infiniband",)


@dataclass(frozen=True, kw_only=True, slots=True)
class Volume:
    """A scratch or host directory mounted into every worker.

    :param name: the volume's name, a DNS-1123 label.
    :param mount_path: where it appears in the worker containers (absolute path).
    :param host_path: a directory of the node, e.g. ``f"{INSTANCE_STORE_PATH}/scratch"``
        on the RAID0 instance store (created if missing). Default: an ``emptyDir``, which
        also lives on the instance store when the node group uses ``RAID0`` and is deleted
        with the pod.
    :param size_limit: ``emptyDir.sizeLimit`` (a Kubernetes quantity such as ``"2Ti"``).
        Default: no limit. Only with an emptyDir.
    :param read_only: mount read-only. Default: read-write.
    """

    name: str
    mount_path: str
    host_path: str | None = None
    size_limit: str | None = None
    read_only: bool = False

    def problems(self, where: str) -> list[str]:
        out = []
        if not is_dns1123_label(self.name):
            out.append(f"{where}.name: {self.name!r} is not a DNS-1123 label")
        if not (isinstance(self.mount_path, str) and self.mount_path.startswith("/")):
            out.append(f"{where}.mount_path: {self.mount_path!r} is not an absolute path")
        if self.host_path is not None and not (
            isinstance(self.host_path, str) and self.host_path.startswith("/")
        ):
            out.append(f"{where}.host_path: {self.host_path!r} is not an absolute path")
        elif isinstance(self.host_path, str):
            normal = "/" + "/".join(part for part in self.host_path.split("/") if part)
            for forbidden in FORBIDDEN_HOST_PATHS:
                inside = normal == forbidden or normal.startswith(forbidden + "/")
                if inside or forbidden.startswith(normal.rstrip("/") + "/"):
                    out.append(
                        f"{where}.host_path: {self.host_path!r} would mount {forbidden}: libfabric then "
                        "fails on the non-EFA uverbs devices and NCCL silently falls back to TCP "
                        "(aws-samples/aws-do-eks #63); EFA devices come from the EFA device plugin "
                        "or DRANET (efa_devices=)"
                    )
        if self.size_limit is not None:
            if self.host_path is not None:
                out.append(
                    f"{where}.size_limit: {self.size_limit!r} applies only to an emptyDir; drop it or host_path"
                )
            elif not (
                isinstance(self.size_limit, str)
                and re.fullmatch(r"\d+(\.\d+)?([KMGTPE]i?|[mk])?", self.size_limit)
            ):
                out.append(
                    f"{where}.size_limit: {self.size_limit!r} is not a Kubernetes quantity such as '500Gi'"
                )
        return out

    def pod_volume(self) -> dict[str, Any]:
        if self.host_path is not None:
            return {"name": self.name, "hostPath": {"path": self.host_path, "type": "DirectoryOrCreate"}}
        empty: dict[str, Any] = {}
        if self.size_limit is not None:
            empty["sizeLimit"] = self.size_limit
        return {"name": self.name, "emptyDir": empty}

    def mount(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "mountPath": self.mount_path}
        if self.read_only:
            out["readOnly"] = True
        return out


_SHM = Volume(name="dshm", mount_path="/dev/shm")


def max_job_name_length(workers: int) -> int:
    """Longest job name whose worker pod names ``<name>-worker-<index>`` fit in 63 characters."""
    return 63 - len(_WORKER_INFIX) - len(str(max(workers - 1, 0)))


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
    ) -> None:
        dra_driver = dra_driver or DraDriverTarget()
        env = dict(env or {})
        command = list(command) if not isinstance(command, str) else [command]
        mpirun_args = list(mpirun_args) if not isinstance(mpirun_args, str) else [mpirun_args]
        volumes = list(volumes)
        targets = list(ultraservers) if not isinstance(ultraservers, UltraServerTarget) else [ultraservers]

        p = Problems()
        # --- names
        if not is_dns1123_label(name) or not name[:1].isalpha():
            p.add(
                f"name: {name!r} is not a DNS-1123 label starting with a letter (lowercase "
                "letters, digits and '-'); the MPI operator derives pod, Job and Service names from it"
            )
        elif _is_whole(workers, 1) and len(name) > max_job_name_length(workers):
            p.add(
                f"name: {name!r} has {len(name)} characters; with {workers} workers the pod name "
                f"'{name}{_WORKER_INFIX}{workers - 1}' would exceed 63, so use at most "
                f"{max_job_name_length(workers)} characters"
            )
        if not is_dns1123_label(namespace):
            p.add(f"namespace: {namespace!r} is not a DNS-1123 label")
        if not isinstance(image, str) or not image or any(c.isspace() for c in image):
            p.add(f"image: {image!r} is not a container image reference")
        if not command or not all(isinstance(c, str) and c for c in command):
            p.add(
                f"command: {command!r} must be a non-empty list of non-empty strings (the program each rank runs)"
            )
        if not isinstance(mpirun, str) or not mpirun:
            p.add(f"mpirun: {mpirun!r} is not an executable name or path")

        # --- where: the UltraServers
        if capacity is not None and not isinstance(capacity, CapacityTarget):
            p.add(f"capacity: {capacity!r} is not a CapacityTarget")
            capacity = None
        if capacity is not None and targets:
            p.add(
                "capacity: given together with ultraservers; a job runs on UltraServers or on other GPU capacity, not both"
            )
        if not targets and capacity is None:
            p.add(
                "ultraservers: empty; give the UltraServer(s) the job runs on (or capacity= for reserved or burst GPU nodes)"
            )
        seen: set[str] = set()
        for i, t in enumerate(targets):
            if not isinstance(t, UltraServerTarget):
                p.add(f"ultraservers[{i}]: {t!r} is not an UltraServerTarget")
                continue
            if t.name in seen:
                p.add(f"ultraservers[{i}]: UltraServer {t.name!r} is listed twice")
            seen.add(t.name)
        targets = [t for t in targets if isinstance(t, UltraServerTarget)]
        single_domain = len(targets) == 1 and capacity is None
        node_gpus = capacity.gpus_per_node if capacity is not None and not targets else GPUS_PER_INSTANCE
        node_kind = (
            "node of that capacity" if capacity is not None and not targets else f"{INSTANCE_TYPE} node"
        )
        other_capacity = capacity if not targets else None
        capacity = sum(t.nodes for t in targets)

        # --- how many: workers, slots, GPUs, ranks
        if not _is_whole(workers, 1):
            p.add(f"workers: {workers!r} is not a whole number of worker pods (1 or more)")
        elif targets and single_domain and workers > capacity:
            t = targets[0]
            p.add(
                f"workers: {workers} is more than the {t.nodes} nodes of UltraServer {t.name!r} "
                f"({t.type.value}); a job on one UltraServer (one NVLink domain) runs at most "
                f"{t.nodes} workers: lower workers, or list several UltraServers to span them over EFA"
            )
        elif targets and workers > capacity:
            names = ", ".join(repr(t.name) for t in targets)
            p.add(f"workers: {workers} is more than the {capacity} nodes of UltraServers {names}")
        elif (
            other_capacity is not None and other_capacity.nodes is not None and workers > other_capacity.nodes
        ):
            p.add(f"workers: {workers} is more than the {other_capacity.nodes} nodes of the target capacity")
        if not _is_whole(slots_per_worker, 1) or slots_per_worker > node_gpus:
            p.add(
                f"slots_per_worker: {slots_per_worker!r} is not allowed; a {node_kind} has "
                f"{node_gpus} GPUs, so use 1 to {node_gpus} ranks per worker"
            )
        gpus = slots_per_worker if gpus_per_worker is None else gpus_per_worker
        if gpus_per_worker is not None and (not _is_whole(gpus_per_worker, 1) or gpus_per_worker > node_gpus):
            p.add(
                f"gpus_per_worker: {gpus_per_worker!r} is not allowed; a {node_kind} has "
                f"{node_gpus} GPUs, so use 1 to {node_gpus}"
            )
        expected_ranks = (
            workers * slots_per_worker if _is_whole(workers, 1) and _is_whole(slots_per_worker, 1) else None
        )
        total_ranks = expected_ranks if ranks is None else ranks
        if ranks is not None and expected_ranks is not None and ranks != expected_ranks:
            p.add(
                f"ranks: {ranks!r} does not equal workers x slots_per_worker = {workers} x "
                f"{slots_per_worker} = {expected_ranks}; mpirun -np must match the slots the "
                "operator's hostfile offers (drop ranks to use the product)"
            )
        for i, arg in enumerate(mpirun_args):
            if arg in _RANK_FLAGS:
                p.add(
                    f"mpirun_args[{i}]: {arg!r} sets the rank count, which MpiJob derives; use ranks= instead"
                )
            elif arg in _MAPPING_FLAGS or arg.startswith("--map-by="):
                p.add(
                    f"mpirun_args[{i}]: {arg!r} sets the process mapping, which MpiJob sets to "
                    "--map-by ppr:<slots_per_worker>:node; use slots_per_worker instead"
                )

        # --- EFA
        try:
            efa_mode = EfaMode(efa_mode)
        except ValueError:
            p.add(
                f"efa_mode: {efa_mode!r} is not allowed; use one of {', '.join(repr(m.value) for m in EfaMode)}"
            )
            efa_mode = EfaMode.DEVICE_PLUGIN
        if not _is_whole(efa_devices, 0):
            p.add(f"efa_devices: {efa_devices!r} is not a whole number (0 or more)")
        elif efa_devices and other_capacity is not None and efa_devices > other_capacity.efa_devices:
            p.add(
                f"efa_devices: {efa_devices} is more than the {other_capacity.efa_devices} EFA "
                f"devices per node of the target capacity; use 0 to {other_capacity.efa_devices}"
            )
        elif efa_devices and targets:
            provided = min(t.efa_layout.efa_devices for t in targets)
            if efa_devices > provided:
                layouts = ", ".join(sorted({f"{t.efa_layout.value!r}" for t in targets}))
                p.add(
                    f"efa_devices: {efa_devices} is more than the {provided} EFA devices per node "
                    f"that EFA layout {layouts} provides; use 0 to {provided}"
                )

        # --- environment, volumes, misc
        for key, value in env.items():
            if not isinstance(key, str) or not _ENV_NAME_RE.match(key):
                p.add(f"env: {key!r} is not a valid environment variable name")
            if not isinstance(value, str):
                p.add(f"env[{key!r}]: {value!r} is not a string")
        mount_paths: dict[str, str] = {_SHM.mount_path: "shared_memory"} if shared_memory else {}
        volume_names: set[str] = {_SHM.name} if shared_memory else set()
        reserved = {"compute-domain-channel", EFA_CLAIM_NAME}
        for i, v in enumerate(volumes):
            if not isinstance(v, Volume):
                p.add(f"volumes[{i}]: {v!r} is not an MpiJob Volume")
                continue
            p.extend(v.problems(f"volumes[{i}]"))
            if v.name in volume_names or v.name in reserved:
                p.add(f"volumes[{i}].name: {v.name!r} is used twice (or reserved by MpiJob)")
            volume_names.add(v.name)
            if v.mount_path in mount_paths:
                p.add(
                    f"volumes[{i}].mount_path: {v.mount_path!r} is already mounted by {mount_paths[v.mount_path]}"
                )
            mount_paths.setdefault(v.mount_path, f"volumes[{i}]")
        if worker_command is not None and (
            isinstance(worker_command, str)
            or not worker_command
            or not all(isinstance(c, str) and c for c in worker_command)
        ):
            p.add(
                f"worker_command: {worker_command!r} must be a non-empty list of strings, or None for the operator's sshd"
            )
        if run_as_user is not None and not _is_whole(run_as_user, 0):
            p.add(f"run_as_user: {run_as_user!r} is not a user id (0 or more)")
        if not (isinstance(ssh_auth_mount_path, str) and ssh_auth_mount_path.startswith("/")):
            p.add(f"ssh_auth_mount_path: {ssh_auth_mount_path!r} is not an absolute path")
        for arg, enum_type, value in (
            ("launcher_creation_policy", LauncherCreationPolicy, launcher_creation_policy),
            ("clean_pod_policy", CleanPodPolicy, clean_pod_policy),
        ):
            try:
                enum_type(value)
            except ValueError:
                p.add(
                    f"{arg}: {value!r} is not allowed; use one of {', '.join(repr(m.value) for m in enum_type)}"
                )
        labels = dict(labels or {})
        for key, value in labels.items():
            if not is_label_key(key):
                p.add(f"labels: {key!r} is not a valid Kubernetes label key")
            if not is_label_value(value):
                p.add(f"labels[{key!r}]: {value!r} is not a valid Kubernetes label value")
        if not _is_whole(backoff_limit, 0):
            p.add(f"backoff_limit: {backoff_limit!r} is not a whole number (0 or more)")
        if ttl_seconds_after_finished is not None and not _is_whole(ttl_seconds_after_finished, 0):
            p.add(
                f"ttl_seconds_after_finished: {ttl_seconds_after_finished!r} is not a whole number "
                "of seconds (0 or more), or None to keep the finished job"
            )

        # --- the ComputeDomain (UltraServers only: other GPU nodes have no NVLink domain)
        cd_nodes = 0
        if other_capacity is not None:
            if compute_domain_nodes is not None:
                p.add(
                    "compute_domain_nodes: given, but a job on capacity= gets no ComputeDomain (no multi-node NVLink there)"
                )
        elif compute_domain_nodes is None:
            whole_nodes = _is_whole(gpus, 1) and gpus == GPUS_PER_INSTANCE
            cd_nodes = workers if whole_nodes and _is_whole(workers, 1) else 0
            if cd_nodes == 0 and not dra_driver.elastic_supported:
                p.add(
                    f"compute_domain_nodes: needed, because workers take {gpus!r} of the "
                    f"{GPUS_PER_INSTANCE} GPUs of a node (so the node count is not the worker "
                    f"count) and the DRA driver {dra_driver.describe()} does not accept 0 (elastic)"
                )
                cd_nodes = 1
        else:
            cd_nodes = compute_domain_nodes
        if other_capacity is None:
            p.extend(
                problem.replace("num_nodes:", "compute_domain_nodes:").replace(
                    "allocation_mode:", "channel_allocation_mode:"
                )
                for problem in compute_domain_problems(
                    name=name if is_dns1123_label(name) else "job",
                    num_nodes=cd_nodes,
                    allocation_mode=channel_allocation_mode,
                    resource_claim_template_name="job-channel",
                    dra_driver=dra_driver,
                )
            )
        if compute_domain_nodes is not None and _is_whole(cd_nodes, 1) and targets and cd_nodes > capacity:
            p.add(
                f"compute_domain_nodes: {cd_nodes} is more than the {capacity} nodes of the targeted UltraServers"
            )
        p.raise_if_any(f"MpiJob {name!r}")

        super().__init__(scope, id, namespace=namespace, labels={**labels, JOB_LABEL: name})
        self.job_name: str = name
        self.workers: int = workers
        self.slots_per_worker: int = slots_per_worker
        self.gpus_per_worker: int = gpus
        self.ranks: int = int(total_ranks)
        self.efa_devices: int = efa_devices
        self.efa_mode: EfaMode = efa_mode
        self.ultraservers: tuple[UltraServerTarget, ...] = tuple(targets)
        self.capacity: CapacityTarget | None = other_capacity
        self.single_domain: bool = single_domain

        self.compute_domain: ComputeDomain | None = None
        if other_capacity is None:
            self.compute_domain = ComputeDomain(
                self,
                "ComputeDomain",
                name=name,
                num_nodes=cd_nodes,
                allocation_mode=channel_allocation_mode,
                dra_driver=dra_driver,
            )
        self.efa_claim_template: cdk8s.ApiObject | None = None
        if efa_devices and efa_mode is EfaMode.DRANET:
            self.efa_claim_template = cdk8s.ApiObject(
                self,
                "EfaClaimTemplate",
                api_version=DRA_RESOURCE_API_VERSION,
                kind="ResourceClaimTemplate",
                metadata=cdk8s.ApiObjectMetadata(name=f"{name}-efa"),
            )
            self.efa_claim_template.add_json_patch(
                cdk8s.JsonPatch.add(
                    "/spec",
                    {
                        "spec": {
                            "devices": {
                                "requests": [
                                    {
                                        "name": EFA_CLAIM_NAME,
                                        "exactly": {
                                            "deviceClassName": EFA_DEVICE_CLASS,
                                            "allocationMode": "ExactCount",
                                            "count": efa_devices,
                                        },
                                    }
                                ]
                            }
                        }
                    },
                )
            )

        if other_capacity is not None:
            expressions = [
                {"key": key, "operator": "In", "values": [value]}
                for key, value in sorted(other_capacity.node_selector.items())
            ]
        else:
            expressions = [
                {"key": ULTRASERVER_LABEL, "operator": "In", "values": [t.name for t in targets]},
                # A node without the clique label has no working NVLink fabric
                # (GPU Feature Discovery sets it): never a false positive there.
                {"key": GPU_CLIQUE_LABEL, "operator": "Exists"},
            ]
        node_affinity = {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": expressions}]
            }
        }
        security = {"securityContext": {"runAsUser": run_as_user}} if run_as_user is not None else {}
        env_list = [{"name": k, "value": v} for k, v in env.items()]

        # Launcher: no GPUs; runs on the same (arm64) nodes as the workers, so a
        # single-architecture image works, and tolerates the GPU taint to get there.
        launcher_args = [*mpirun_args, "--map-by", f"ppr:{slots_per_worker}:node", "-np", str(self.ranks)]
        for key in env:
            launcher_args += ["-x", key]
        launcher_args += command
        launcher_container: dict[str, Any] = {
            "name": "launcher",
            "image": image,
            "command": [mpirun],
            "args": launcher_args,
            **({"env": env_list} if env_list else {}),
            **security,
        }
        launcher_pod = {
            "metadata": {"labels": {JOB_LABEL: name, ROLE_LABEL: "launcher"}},
            "spec": {
                "affinity": {"nodeAffinity": node_affinity},
                "tolerations": [dict(GPU_TOLERATION)],
                "containers": [launcher_container],
            },
        }

        # Workers: whole GPUs, the ComputeDomain channel, optional EFA.
        limits: dict[str, int] = {GPU_RESOURCE: gpus}
        claims = [ComputeDomain.container_claim()] if self.compute_domain else []
        pod_claims = [self.compute_domain.pod_resource_claim()] if self.compute_domain else []
        if efa_devices and efa_mode is EfaMode.DEVICE_PLUGIN:
            limits[EFA_RESOURCE] = efa_devices
        elif efa_devices:
            claims.append({"name": EFA_CLAIM_NAME})
            pod_claims.append({"name": EFA_CLAIM_NAME, "resourceClaimTemplateName": f"{name}-efa"})
        all_volumes = ([_SHM] if shared_memory else []) + volumes
        worker_container: dict[str, Any] = {
            "name": "worker",
            "image": image,
            **({"command": list(worker_command)} if worker_command else {}),
            **({"env": env_list} if env_list else {}),
            "resources": {"limits": limits, **({"claims": claims} if claims else {})},
            **({"volumeMounts": [v.mount() for v in all_volumes]} if all_volumes else {}),
            **security,
        }
        affinity: dict[str, Any] = {"nodeAffinity": node_affinity}
        if single_domain:
            # EKS guide: workers of one job share one NVLink domain.
            affinity["podAffinity"] = {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": {JOB_LABEL: name, ROLE_LABEL: "worker"}},
                        "topologyKey": GPU_CLIQUE_LABEL,
                    }
                ]
            }
        pod_volumes = [v.pod_volume() for v in all_volumes]
        if shared_memory:
            pod_volumes[0] = {"name": _SHM.name, "emptyDir": {"medium": "Memory"}}
        worker_pod = {
            "metadata": {"labels": {JOB_LABEL: name, ROLE_LABEL: "worker"}},
            "spec": {
                "affinity": affinity,
                "tolerations": [dict(GPU_TOLERATION)],
                "containers": [worker_container],
                **({"resourceClaims": pod_claims} if pod_claims else {}),
                **({"volumes": pod_volumes} if pod_volumes else {}),
            },
        }

        self.mpijob = cdk8s.ApiObject(
            self,
            "MPIJob",
            api_version=MPIJOB_API_VERSION,
            kind="MPIJob",
            metadata=cdk8s.ApiObjectMetadata(name=name),
        )
        self.mpijob.add_json_patch(
            cdk8s.JsonPatch.add(
                "/spec",
                {
                    "slotsPerWorker": slots_per_worker,
                    "mpiImplementation": "OpenMPI",
                    "launcherCreationPolicy": LauncherCreationPolicy(launcher_creation_policy).value,
                    "runPolicy": {
                        "cleanPodPolicy": CleanPodPolicy(clean_pod_policy).value,
                        "backoffLimit": backoff_limit,
                        **(
                            {"ttlSecondsAfterFinished": ttl_seconds_after_finished}
                            if ttl_seconds_after_finished is not None
                            else {}
                        ),
                    },
                    "sshAuthMountPath": ssh_auth_mount_path,
                    "mpiReplicaSpecs": {
                        "Launcher": {"replicas": 1, "restartPolicy": "OnFailure", "template": launcher_pod},
                        "Worker": {"replicas": workers, "restartPolicy": "Never", "template": worker_pod},
                    },
                },
            )
        )

    @property
    def launcher_job_name(self) -> str:
        """The batch Job the operator creates for the launcher (``kubectl logs job/<this>``)."""
        return f"{self.job_name}-launcher"


__all__ = [
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
    "UltraServerTarget",
    "Volume",
    "max_job_name_length",
]
