"""MpiJobSpec: what one MpiJob is (name, image, command, where, how many), validated.

A frozen value object built from :class:`~eks_ultraserver.charts.mpijob.MpiJob`'s keyword
arguments (documented there). ``__post_init__`` applies the defaults (``dra_driver``,
``env``, ``labels``), turns strings into the enums they name, then collects every problem
and raises one ``ConfigurationError``; a spec that exists is one the MPI operator, the DRA
driver and the scheduler accept. The pod builders (``mpijob_pods``) and the chart read it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from eks_ultraserver.charts.compute_domain import (
    CHANNEL_CLAIM_NAME,
    ChannelAllocationMode,
    DraDriverTarget,
    compute_domain_problems,
)
from eks_ultraserver.charts.mpijob_targets import (
    SHARED_MEMORY,
    CapacityTarget,
    UltraServerTarget,
    Volume,
    is_whole,
)
from eks_ultraserver.config import EfaMode
from eks_ultraserver.model import (
    GPUS_PER_INSTANCE,
    INSTANCE_TYPE,
    Problems,
    is_dns1123_label,
    is_label_key,
    is_label_value,
)

#: Pod-level claim name for the EFA devices when efa_mode is DRANET.
EFA_CLAIM_NAME = "efa"

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


class TopologyPlacement(enum.StrEnum):
    """How Kueue's topology-aware scheduling places a queued job's pods (pod-set
    annotations on the launcher's and workers' templates; Kueue docs, "Topology Aware
    Scheduling"). The level is the NVLink domain, ``nvidia.com/gpu.clique``."""

    #: ``kueue.x-k8s.io/podset-required-topology``: every pod in one NVLink domain, or the
    #: job waits. The default for a job that fits in one UltraServer.
    REQUIRED = "required"
    #: ``kueue.x-k8s.io/podset-preferred-topology``: as few domains as possible.
    PREFERRED = "preferred"
    #: ``kueue.x-k8s.io/podset-slice-required-topology`` with ``podset-slice-size``: the
    #: workers in slices of whole UltraServers, each slice in one NVLink domain. The
    #: default for a job over several UltraServers whose workers divide into them.
    SLICES = "slices"
    #: ``kueue.x-k8s.io/podset-unconstrained-topology``: anywhere Kueue finds room.
    UNCONSTRAINED = "unconstrained"


def max_job_name_length(workers: int) -> int:
    """Longest job name whose worker pod names ``<name>-worker-<index>`` fit in 63 characters."""
    return 63 - len(_WORKER_INFIX) - len(str(max(workers - 1, 0)))


#: Arguments given as a string naming an enum member; the spec holds the member.
_ENUM_FIELDS: tuple[tuple[str, type[enum.StrEnum]], ...] = (
    ("efa_mode", EfaMode),
    ("launcher_creation_policy", LauncherCreationPolicy),
    ("clean_pod_policy", CleanPodPolicy),
    ("channel_allocation_mode", ChannelAllocationMode),
    ("topology", TopologyPlacement),
)


@dataclass(frozen=True, kw_only=True, slots=True)
class MpiJobSpec:
    """What one MpiJob is: every keyword argument of
    :class:`~eks_ultraserver.charts.mpijob.MpiJob` (same names, defaults and meaning,
    documented there), validated.

    After ``__post_init__``: ``command``, ``mpirun_args``, ``ultraservers``, ``volumes``
    and ``worker_command`` are tuples (a lone string or target becomes a tuple of one),
    ``env`` and ``labels`` dicts, ``dra_driver`` a :class:`DraDriverTarget`, and the
    policy, mode and EFA mode arguments enum members.

    :raises ConfigurationError: one error listing every problem, titled ``MpiJob '<name>'``.
    """

    name: str
    image: str
    command: Sequence[str]
    ultraservers: Sequence[UltraServerTarget] = ()
    workers: int
    slots_per_worker: int = GPUS_PER_INSTANCE
    gpus_per_worker: int | None = None
    ranks: int | None = None
    efa_devices: int = 0
    efa_mode: EfaMode | str = EfaMode.DEVICE_PLUGIN
    env: Mapping[str, str] | None = None
    volumes: Sequence[Volume] = ()
    shared_memory: bool = True
    mpirun: str = "mpirun"
    mpirun_args: Sequence[str] = ()
    worker_command: Sequence[str] | None = None
    run_as_user: int | None = None
    ssh_auth_mount_path: str = "/root/.ssh"
    launcher_creation_policy: LauncherCreationPolicy | str = LauncherCreationPolicy.WAIT_FOR_WORKERS_READY
    clean_pod_policy: CleanPodPolicy | str = CleanPodPolicy.RUNNING
    backoff_limit: int = 6
    ttl_seconds_after_finished: int | None = None
    compute_domain_nodes: int | None = None
    channel_allocation_mode: ChannelAllocationMode | str = ChannelAllocationMode.SINGLE
    dra_driver: DraDriverTarget | None = None
    namespace: str = "default"
    labels: Mapping[str, str] | None = None
    capacity: CapacityTarget | None = None
    queue: str | None = None
    topology: TopologyPlacement | str | None = None

    def __post_init__(self) -> None:
        self._apply_defaults()
        where = _placement(self)
        p = Problems()
        p.extend(_naming_problems(self))
        p.extend(where.problems)
        p.extend(_count_problems(self, where))
        p.extend(_mpirun_args_problems(self.mpirun_args))
        p.extend(_efa_problems(self, where))
        p.extend(_env_problems(self.env or {}))
        p.extend(_volume_problems(self.volumes, self.shared_memory))
        p.extend(_run_problems(self))
        p.extend(_compute_domain_problems(self, where))
        p.extend(_queue_problems(self, where))
        p.raise_if_any(f"MpiJob {self.name!r}")
        if self.worker_command is not None:
            object.__setattr__(self, "worker_command", tuple(self.worker_command))

    def _apply_defaults(self) -> None:
        set_ = object.__setattr__
        command, mpirun_args, ultraservers = self.command, self.mpirun_args, self.ultraservers
        set_(self, "command", (command,) if isinstance(command, str) else tuple(command))
        set_(self, "mpirun_args", (mpirun_args,) if isinstance(mpirun_args, str) else tuple(mpirun_args))
        set_(
            self,
            "ultraservers",
            (ultraservers,) if isinstance(ultraservers, UltraServerTarget) else tuple(ultraservers),
        )
        set_(self, "volumes", tuple(self.volumes))
        set_(self, "env", dict(self.env or {}))
        set_(self, "labels", dict(self.labels or {}))
        set_(self, "dra_driver", self.dra_driver or DraDriverTarget())
        for attr, enum_type in _ENUM_FIELDS:
            if getattr(self, attr) is None:
                continue
            if not _enum_problems(attr, enum_type, getattr(self, attr)):
                set_(self, attr, enum_type(getattr(self, attr)))

    @property
    def worker_gpus(self) -> int:
        """``nvidia.com/gpu`` of each worker: ``gpus_per_worker``, else ``slots_per_worker``."""
        return self.slots_per_worker if self.gpus_per_worker is None else self.gpus_per_worker

    @property
    def total_ranks(self) -> int:
        """``mpirun -np``: ``workers x slots_per_worker`` (``ranks`` must equal it)."""
        return self.workers * self.slots_per_worker

    @property
    def single_domain(self) -> bool:
        """The job runs on one UltraServer: its workers share one NVLink domain."""
        return len(self.ultraservers) == 1 and self.capacity is None

    @property
    def compute_domain_num_nodes(self) -> int | None:
        """``numNodes`` of the job's ComputeDomain; ``None`` for a job on ``capacity=``, which
        gets no ComputeDomain (no multi-node NVLink there)."""
        if self.capacity is not None:
            return None
        if self.compute_domain_nodes is not None:
            return self.compute_domain_nodes
        return _default_num_nodes(self.workers, self.worker_gpus)

    @property
    def topology_placement(self) -> TopologyPlacement | None:
        """The placement Kueue is asked for: ``topology``, else (with a queue, on
        UltraServers) :attr:`TopologyPlacement.REQUIRED` when the workers fit in one
        UltraServer, :attr:`TopologyPlacement.SLICES` when they divide into slices of the
        smallest targeted UltraServer, else :attr:`TopologyPlacement.PREFERRED`. ``None``
        without a queue or on ``capacity`` (no Topology there)."""
        if self.queue is None or self.capacity is not None or not self.ultraservers:
            return None
        if self.topology is not None:
            return TopologyPlacement(self.topology)
        nodes = [t.nodes for t in self.ultraservers if isinstance(t, UltraServerTarget)]
        if not nodes or self.workers <= max(nodes):
            return TopologyPlacement.REQUIRED
        return TopologyPlacement.SLICES if self.workers % min(nodes) == 0 else TopologyPlacement.PREFERRED

    @property
    def topology_slice_size(self) -> int:
        """Workers per slice with :attr:`TopologyPlacement.SLICES`: the nodes of the
        smallest targeted UltraServer (one worker per node)."""
        return min((t.nodes for t in self.ultraservers if isinstance(t, UltraServerTarget)), default=1)

    @property
    def efa_claim_template_name(self) -> str | None:
        """The ResourceClaimTemplate of the workers' EFA devices (DRANET only), else ``None``."""
        return f"{self.name}-efa" if self.efa_devices and self.efa_mode is EfaMode.DRANET else None


class _Placement(NamedTuple):
    """Where a job runs, as far as its arguments say (they may still be wrong)."""

    #: the UltraServers given that are UltraServerTargets
    targets: tuple[UltraServerTarget, ...]
    #: the capacity, when given alone (no valid UltraServer): the job gets no ComputeDomain
    other: CapacityTarget | None
    #: one UltraServer and no capacity: the job's workers share one NVLink domain
    single_domain: bool
    #: problems of ``ultraservers`` and ``capacity``
    problems: list[str]

    @property
    def nodes(self) -> int:
        return sum(t.nodes for t in self.targets)

    @property
    def node_gpus(self) -> int:
        return self.other.gpus_per_node if self.other is not None else GPUS_PER_INSTANCE

    @property
    def node_kind(self) -> str:
        return "node of that capacity" if self.other is not None else f"{INSTANCE_TYPE} node"


def _placement(spec: MpiJobSpec) -> _Placement:
    out: list[str] = []
    given: Sequence[object] = spec.ultraservers
    capacity: object = spec.capacity
    if capacity is not None and not isinstance(capacity, CapacityTarget):
        out.append(f"capacity: {capacity!r} is not a CapacityTarget")
        capacity = None
    if capacity is not None and given:
        out.append(
            "capacity: given together with ultraservers; a job runs on UltraServers or on other GPU capacity, not both"
        )
    if not given and capacity is None:
        out.append(
            "ultraservers: empty; give the UltraServer(s) the job runs on (or capacity= for reserved or burst GPU nodes)"
        )
    seen: set[str] = set()
    for i, t in enumerate(given):
        if not isinstance(t, UltraServerTarget):
            out.append(f"ultraservers[{i}]: {t!r} is not an UltraServerTarget")
            continue
        if t.name in seen:
            out.append(f"ultraservers[{i}]: UltraServer {t.name!r} is listed twice")
        seen.add(t.name)
    targets = tuple(t for t in given if isinstance(t, UltraServerTarget))
    return _Placement(
        targets=targets,
        other=capacity if isinstance(capacity, CapacityTarget) and not targets else None,
        single_domain=len(targets) == 1 and capacity is None,
        problems=out,
    )


def _naming_problems(spec: MpiJobSpec) -> list[str]:
    out: list[str] = []
    name, workers, image, command, mpirun = spec.name, spec.workers, spec.image, spec.command, spec.mpirun
    if not is_dns1123_label(name) or not name[:1].isalpha():
        out.append(
            f"name: {name!r} is not a DNS-1123 label starting with a letter (lowercase "
            "letters, digits and '-'); the MPI operator derives pod, Job and Service names from it"
        )
    elif is_whole(workers, 1) and len(name) > max_job_name_length(workers):
        out.append(
            f"name: {name!r} has {len(name)} characters; with {workers} workers the pod name "
            f"'{name}{_WORKER_INFIX}{workers - 1}' would exceed 63, so use at most "
            f"{max_job_name_length(workers)} characters"
        )
    if not is_dns1123_label(spec.namespace):
        out.append(f"namespace: {spec.namespace!r} is not a DNS-1123 label")
    if not isinstance(image, str) or not image or any(c.isspace() for c in image):
        out.append(f"image: {image!r} is not a container image reference")
    if not command or not all(isinstance(c, str) and c for c in command):
        out.append(
            f"command: {list(command)!r} must be a non-empty list of non-empty strings (the program each rank runs)"
        )
    if not isinstance(mpirun, str) or not mpirun:
        out.append(f"mpirun: {mpirun!r} is not an executable name or path")
    return out


def _count_problems(spec: MpiJobSpec, where: _Placement) -> list[str]:
    """workers, slots_per_worker, gpus_per_worker and ranks, against the nodes targeted."""
    out: list[str] = []
    workers, slots, gpus, ranks = spec.workers, spec.slots_per_worker, spec.gpus_per_worker, spec.ranks
    targets, other, nodes = where.targets, where.other, where.nodes
    node_gpus, node_kind = where.node_gpus, where.node_kind
    if not is_whole(workers, 1):
        out.append(f"workers: {workers!r} is not a whole number of worker pods (1 or more)")
    elif targets and where.single_domain and workers > nodes:
        t = targets[0]
        out.append(
            f"workers: {workers} is more than the {t.nodes} nodes of UltraServer {t.name!r} "
            f"({t.type.value}); a job on one UltraServer (one NVLink domain) runs at most "
            f"{t.nodes} workers: lower workers, or list several UltraServers to span them over EFA"
        )
    elif targets and workers > nodes:
        names = ", ".join(repr(t.name) for t in targets)
        out.append(f"workers: {workers} is more than the {nodes} nodes of UltraServers {names}")
    elif other is not None and other.nodes is not None and workers > other.nodes:
        out.append(f"workers: {workers} is more than the {other.nodes} nodes of the target capacity")
    if not is_whole(slots, 1) or slots > node_gpus:
        out.append(
            f"slots_per_worker: {slots!r} is not allowed; a {node_kind} has "
            f"{node_gpus} GPUs, so use 1 to {node_gpus} ranks per worker"
        )
    if gpus is not None and (not is_whole(gpus, 1) or gpus > node_gpus):
        out.append(
            f"gpus_per_worker: {gpus!r} is not allowed; a {node_kind} has {node_gpus} GPUs, so use 1 to {node_gpus}"
        )
    expected = workers * slots if is_whole(workers, 1) and is_whole(slots, 1) else None
    if ranks is not None and expected is not None and ranks != expected:
        out.append(
            f"ranks: {ranks!r} does not equal workers x slots_per_worker = {workers} x "
            f"{slots} = {expected}; mpirun -np must match the slots the "
            "operator's hostfile offers (drop ranks to use the product)"
        )
    return out


def _mpirun_args_problems(mpirun_args: Sequence[str]) -> list[str]:
    out: list[str] = []
    for i, arg in enumerate(mpirun_args):
        if arg in _RANK_FLAGS:
            out.append(
                f"mpirun_args[{i}]: {arg!r} sets the rank count, which MpiJob derives; use ranks= instead"
            )
        elif arg in _MAPPING_FLAGS or arg.startswith("--map-by="):
            out.append(
                f"mpirun_args[{i}]: {arg!r} sets the process mapping, which MpiJob sets to "
                "--map-by ppr:<slots_per_worker>:node; use slots_per_worker instead"
            )
    return out


def _efa_problems(spec: MpiJobSpec, where: _Placement) -> list[str]:
    out = _enum_problems("efa_mode", EfaMode, spec.efa_mode)
    efa, other, targets = spec.efa_devices, where.other, where.targets
    if not is_whole(efa, 0):
        out.append(f"efa_devices: {efa!r} is not a whole number (0 or more)")
    elif efa and other is not None and efa > other.efa_devices:
        out.append(
            f"efa_devices: {efa} is more than the {other.efa_devices} EFA "
            f"devices per node of the target capacity; use 0 to {other.efa_devices}"
        )
    elif efa and targets:
        provided = min(t.efa_layout.efa_devices for t in targets)
        if efa > provided:
            layouts = ", ".join(sorted({f"{t.efa_layout.value!r}" for t in targets}))
            out.append(
                f"efa_devices: {efa} is more than the {provided} EFA devices per node "
                f"that EFA layout {layouts} provides; use 0 to {provided}"
            )
    return out


def _env_problems(env: Mapping[Any, object]) -> list[str]:
    out: list[str] = []
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_NAME_RE.match(key):
            out.append(f"env: {key!r} is not a valid environment variable name")
        if not isinstance(value, str):
            out.append(f"env[{key!r}]: {value!r} is not a string")
    return out


def _volume_problems(volumes: Sequence[object], shared_memory: bool) -> list[str]:
    """Each volume's problems, and names or mount paths used twice (``/dev/shm`` and the
    pod's claim names included)."""
    out: list[str] = []
    mount_paths: dict[str, str] = {SHARED_MEMORY.mount_path: "shared_memory"} if shared_memory else {}
    volume_names: set[str] = {SHARED_MEMORY.name} if shared_memory else set()
    reserved = {CHANNEL_CLAIM_NAME, EFA_CLAIM_NAME}
    for i, v in enumerate(volumes):
        if not isinstance(v, Volume):
            out.append(f"volumes[{i}]: {v!r} is not an MpiJob Volume")
            continue
        out.extend(v.problems(f"volumes[{i}]"))
        if v.name in volume_names or v.name in reserved:
            out.append(f"volumes[{i}].name: {v.name!r} is used twice (or reserved by MpiJob)")
        volume_names.add(v.name)
        if v.mount_path in mount_paths:
            out.append(
                f"volumes[{i}].mount_path: {v.mount_path!r} is already mounted by {mount_paths[v.mount_path]}"
            )
        mount_paths.setdefault(v.mount_path, f"volumes[{i}]")
    return out


def _run_problems(spec: MpiJobSpec) -> list[str]:
    """The pods' command and user, the operator's settings, labels and the run policy."""
    out: list[str] = []
    worker_command: object = spec.worker_command
    if worker_command is not None and (
        isinstance(worker_command, str)
        or not isinstance(worker_command, Sequence)
        or not worker_command
        or not all(isinstance(c, str) and c for c in worker_command)
    ):
        out.append(
            f"worker_command: {worker_command!r} must be a non-empty list of strings, or None for the operator's sshd"
        )
    if spec.run_as_user is not None and not is_whole(spec.run_as_user, 0):
        out.append(f"run_as_user: {spec.run_as_user!r} is not a user id (0 or more)")
    ssh = spec.ssh_auth_mount_path
    if not (isinstance(ssh, str) and ssh.startswith("/")):
        out.append(f"ssh_auth_mount_path: {ssh!r} is not an absolute path")
    out += _enum_problems("launcher_creation_policy", LauncherCreationPolicy, spec.launcher_creation_policy)
    out += _enum_problems("clean_pod_policy", CleanPodPolicy, spec.clean_pod_policy)
    for key, value in (spec.labels or {}).items():
        if not is_label_key(key):
            out.append(f"labels: {key!r} is not a valid Kubernetes label key")
        if not is_label_value(value):
            out.append(f"labels[{key!r}]: {value!r} is not a valid Kubernetes label value")
    if not is_whole(spec.backoff_limit, 0):
        out.append(f"backoff_limit: {spec.backoff_limit!r} is not a whole number (0 or more)")
    ttl = spec.ttl_seconds_after_finished
    if ttl is not None and not is_whole(ttl, 0):
        out.append(
            f"ttl_seconds_after_finished: {ttl!r} is not a whole number "
            "of seconds (0 or more), or None to keep the finished job"
        )
    return out


def _queue_problems(spec: MpiJobSpec, where: _Placement) -> list[str]:
    """The Kueue queue and the topology placement asked for."""
    out: list[str] = []
    queue, topology = spec.queue, spec.topology
    if queue is not None and not is_dns1123_label(queue):
        out.append(
            f"queue: {queue!r} is not a LocalQueue name (a DNS-1123 label: lowercase letters, "
            "digits and '-'); give the name of a LocalQueue in the job's namespace"
        )
    if topology is None:
        return out
    bad = _enum_problems("topology", TopologyPlacement, topology)
    if bad:
        return out + bad
    placement = TopologyPlacement(topology)
    if queue is None:
        out.append(
            f"topology: {placement.value!r} given without queue; Kueue reads the placement only for a "
            "job it admits: give queue= (the LocalQueue) too, or drop topology"
        )
    if where.other is not None:
        out.append(
            f"topology: {placement.value!r} on capacity= (reserved or burst GPU nodes): their Kueue "
            "flavors have no Topology (no NVLink domain across nodes), so Kueue would never "
            "admit the job; drop topology"
        )
    nodes = [t.nodes for t in where.targets]
    if nodes and is_whole(spec.workers, 1):
        if placement is TopologyPlacement.REQUIRED and spec.workers > max(nodes):
            out.append(
                f"topology: 'required' puts every worker in one NVLink domain, but {spec.workers} "
                f"workers do not fit in one UltraServer (at most {max(nodes)} nodes); use 'slices' "
                "or 'preferred'"
            )
        if placement is TopologyPlacement.SLICES and spec.workers % min(nodes) != 0:
            out.append(
                f"topology: 'slices' cuts the workers into slices of {min(nodes)} (the nodes of the "
                f"smallest UltraServer targeted), but {spec.workers} workers do not divide by "
                f"{min(nodes)}; use a multiple of {min(nodes)} workers or 'preferred'"
            )
    return out


def _default_num_nodes(workers: int, gpus: int) -> int:
    """One ComputeDomain node per worker when each worker takes a whole node, else 0
    (elastic: the node count is not the worker count)."""
    whole_nodes = is_whole(gpus, 1) and gpus == GPUS_PER_INSTANCE
    return workers if whole_nodes and is_whole(workers, 1) else 0


def _compute_domain_problems(spec: MpiJobSpec, where: _Placement) -> list[str]:
    """The ComputeDomain's settings (UltraServers only: other GPU nodes have no NVLink domain)."""
    out: list[str] = []
    given = spec.compute_domain_nodes
    dra_driver = spec.dra_driver or DraDriverTarget()
    gpus = spec.worker_gpus
    if where.other is not None:
        if given is not None:
            out.append(
                "compute_domain_nodes: given, but a job on capacity= gets no ComputeDomain (no multi-node NVLink there)"
            )
        return out
    if given is not None:
        num_nodes = given
    else:
        num_nodes = _default_num_nodes(spec.workers, gpus)
        if num_nodes == 0 and not dra_driver.elastic_supported:
            out.append(
                f"compute_domain_nodes: needed, because workers take {gpus!r} of the "
                f"{GPUS_PER_INSTANCE} GPUs of a node (so the node count is not the worker "
                f"count) and the DRA driver {dra_driver.describe()} does not accept 0 (elastic)"
            )
            num_nodes = 1
    out.extend(
        problem.replace("num_nodes:", "compute_domain_nodes:").replace(
            "allocation_mode:", "channel_allocation_mode:"
        )
        for problem in compute_domain_problems(
            name=spec.name if is_dns1123_label(spec.name) else "job",
            num_nodes=num_nodes,
            allocation_mode=spec.channel_allocation_mode,
            resource_claim_template_name="job-channel",
            dra_driver=dra_driver,
        )
    )
    if given is not None and is_whole(num_nodes, 1) and where.targets and num_nodes > where.nodes:
        out.append(
            f"compute_domain_nodes: {num_nodes} is more than the {where.nodes} nodes of the targeted UltraServers"
        )
    return out


def _enum_problems(arg: str, enum_type: type[enum.StrEnum], value: str) -> list[str]:
    """``value`` names no member of ``enum_type``: the one problem, with the allowed values."""
    try:
        enum_type(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum_type)
        return [f"{arg}: {value!r} is not allowed; use one of {allowed}"]
    return []


__all__ = [
    "EFA_CLAIM_NAME",
    "CleanPodPolicy",
    "LauncherCreationPolicy",
    "MpiJobSpec",
    "TopologyPlacement",
    "max_job_name_length",
]
