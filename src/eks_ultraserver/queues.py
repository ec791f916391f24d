"""Kueue queues: the flavors of an environment's GPU capacity and the teams' queues.

Part of the shared model (no aws_cdk, no cdk8s): the cdk.json reader, the environment and
the ``charts/kueue.py`` chart all use these objects.

- :class:`Flavor`: one Kueue ``ResourceFlavor`` of the fleet, named by a fixed name:
  ``ultraserver`` (every UltraServer; topology-aware), ``reserved-<name>`` (one per
  ``reservedCapacity`` entry) and ``burst`` (Karpenter's burst pools); with its node labels,
  the GPU taint's toleration and the GPUs it holds (:func:`fleet_flavors`).
- :class:`QueueSpec`: one team (``queues[]`` in cdk.json): a ClusterQueue named after the
  team, in the cohort every queue of the environment shares, and a LocalQueue of the same
  name in the team's namespace; nominal GPU quotas per flavor, and optional borrowing and
  lending limits.
- :func:`check_queues`: the rules of ``kueue`` (Kueue on or off) and ``queues`` together.
  No teams: one ``default`` queue with all the fleet's GPUs (:func:`default_queue`).

Rules the fleet decides (unknown flavors, quotas over a flavor's GPUs) are checked by
:func:`queue_problems`, which ``EnvironmentConfig`` runs when it has the fleet.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from eks_ultraserver.capacity import (
    BurstCapacitySpec,
    CapacityClass,
    GpuSharingSpec,
    ReservedCapacitySpec,
    ReservedProvisioner,
)
from eks_ultraserver.model import (
    CAPACITY_TYPE_LABEL,
    GPU_CLIQUE_LABEL,
    GPU_TAINT,
    INSTANCE_TYPE,
    INVALID,
    RESERVED_CAPACITY_LABEL,
    Naming,
    Problems,
    SelfValidating,
    is_dns1123_label,
)

__all__ = [
    "BURST_FLAVOR",
    "COHORT",
    "DEFAULT_QUEUE",
    "DEFAULT_QUEUE_NAMESPACE",
    "EXAMPLE_QUEUES",
    "GPU_RESOURCE",
    "QUEUE_NAME_LABEL",
    "TOPOLOGY_LEVELS",
    "TOPOLOGY_NAME",
    "ULTRASERVER_FLAVOR",
    "Flavor",
    "FlavorKind",
    "QueueSpec",
    "check_queues",
    "default_queue",
    "fleet_flavors",
    "queue_problems",
    "reserved_flavor",
]

#: The resource Kueue's quotas count (the NVIDIA device plugin's); every other resource is
#: excluded from Kueue's accounting (``helm/kueue.py``).
GPU_RESOURCE = "nvidia.com/gpu"
#: The label that puts a job into a LocalQueue (Kueue docs, "Run a Kubeflow MPIJob").
QUEUE_NAME_LABEL = "kueue.x-k8s.io/queue-name"
#: The cohort every ClusterQueue of the environment belongs to: unused quota is lent
#: between teams, within their borrowing and lending limits.
COHORT = "eks-ultraserver"
ULTRASERVER_FLAVOR = "ultraserver"
BURST_FLAVOR = "burst"
#: The queue an environment gets when no ``queues`` are configured.
DEFAULT_QUEUE = "default"
DEFAULT_QUEUE_NAMESPACE = "default"
#: The Topology of the UltraServer flavor.
TOPOLOGY_NAME = "ultraserver"
#: Its levels, coarsest first: the EC2 network-node layers EKS labels UltraServer nodes with
#: (EKS user guide, ml-eks-nvidia-ultraserver and the EC2 instance topology labels), the
#: NVLink domain (``nvidia.com/gpu.clique``, GPU Feature Discovery) and the node. Kueue's
#: Topology requires ``kubernetes.io/hostname`` to be the lowest level if present.
TOPOLOGY_LEVELS: tuple[str, ...] = (
    "topology.k8s.aws/network-node-layer-1",
    "topology.k8s.aws/network-node-layer-2",
    "topology.k8s.aws/network-node-layer-3",
    GPU_CLIQUE_LABEL,
    "kubernetes.io/hostname",
)
#: Karpenter's well-known instance-type label (Karpenter reservations are told apart by it).
_INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
#: Set by Karpenter on the nodes it launches (``reserved`` on capacity reservations); managed
#: node groups never carry it, so it keeps a Karpenter reservation's flavor off the nodes of
#: a node-group reservation of the same instance type.
_KARPENTER_CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
#: ``reserved-`` + a reservedCapacity name (at most 40 characters): a valid flavor name.
_RESERVED_PREFIX = "reserved-"
EXAMPLE_QUEUES = (
    '[{"name":"team-a","namespace":"team-a","quotas":{"ultraserver":36}},'
    '{"name":"team-b","namespace":"team-b","quotas":{"ultraserver":36}}]'
)


def reserved_flavor(name: str) -> str:
    """The flavor of one ``reservedCapacity`` entry: ``reserved-<name>``."""
    return f"{_RESERVED_PREFIX}{name}"


class FlavorKind(enum.StrEnum):
    """What capacity a flavor stands for."""

    ULTRASERVER = "ultraserver"
    RESERVED = "reserved"
    BURST = "burst"


@dataclass(frozen=True, kw_only=True, slots=True)
class Flavor:
    """One ResourceFlavor: its name, node labels, the tolerations Kueue adds to admitted
    pods, the GPUs behind it (``None``: not known at synth, no upper bound checked) and
    whether it is topology-aware (``spec.topologyName``)."""

    name: str
    kind: FlavorKind
    node_labels: Mapping[str, str]
    gpus: int | None
    topology: bool = False

    @property
    def tolerations(self) -> list[dict[str, str]]:
        """The GPU taint's toleration (``Exists``, as the library's pods have it)."""
        return [{"key": GPU_TAINT.key, "operator": "Exists", "effect": GPU_TAINT.effect}]


def fleet_flavors(
    *,
    ultraserver_gpus: int,
    reserved_capacity: Sequence[ReservedCapacitySpec] = (),
    burst_capacity: BurstCapacitySpec | None = None,
) -> dict[str, Flavor]:
    """The flavors of an environment, by name.

    - ``ultraserver``: nodes of instance type ``p6e-gb200.36xlarge``
      (``node.kubernetes.io/instance-type``, set by the kubelet on every node; only
      UltraServers have that type, and Karpenter's pools exclude it), topology-aware, with
      the fleet's GPUs (``ultraserver_gpus``). Not the UltraServer type label: a
      ResourceFlavor's ``nodeLabels`` take one value per key, and a fleet may mix types;
    - ``reserved-<name>`` per reservation: node groups label their nodes
      ``eks-ultraserver.io/reserved-capacity: <name>``; Karpenter's reserved pool labels
      ``eks-ultraserver.io/capacity: reserved`` (as node-group reservations do), Karpenter
      adds ``karpenter.sh/capacity-type: reserved`` (which node groups never have), and the
      entry's instance type tells Karpenter reservations apart (two Karpenter reservations
      of one type select the same nodes). Not
      topology-aware: these instances have no NVLink domain across nodes, and a host-level
      Topology would add nothing the kube-scheduler does not do. GPUs: instances x GPUs per
      instance when the instance type is in the table, else unknown;
    - ``burst``: Karpenter's burst pools (``eks-ultraserver.io/capacity: burst``), at most
      ``maxGpus`` (each pool's limit).

    A pool that shares its GPUs (``sharing``, docs/sharing-gpus.md) advertises ``replicas``
    ``nvidia.com/gpu`` per physical GPU, and a pod's ``nvidia.com/gpu: 1`` is one replica,
    so its flavor counts physical GPUs x replicas. With ``renameByDefault`` the nodes
    advertise ``nvidia.com/gpu.shared`` instead, which the ClusterQueues do not cover: the
    flavor has no ``nvidia.com/gpu`` (0), and queued workloads cannot use such a pool
    (docs/queues.md).
    """
    out = {
        ULTRASERVER_FLAVOR: Flavor(
            name=ULTRASERVER_FLAVOR,
            kind=FlavorKind.ULTRASERVER,
            node_labels={_INSTANCE_TYPE_LABEL: INSTANCE_TYPE},
            gpus=ultraserver_gpus,
            topology=True,
        )
    }
    for spec in reserved_capacity:
        gpu_type = spec.gpu_type
        if spec.provisioner is ReservedProvisioner.NODEGROUP:
            labels = {RESERVED_CAPACITY_LABEL: spec.name}
        else:
            labels = {
                CAPACITY_TYPE_LABEL: CapacityClass.RESERVED.value,
                _KARPENTER_CAPACITY_TYPE_LABEL: "reserved",
                _INSTANCE_TYPE_LABEL: spec.instance_type,
            }
        name = reserved_flavor(spec.name)
        out[name] = Flavor(
            name=name,
            kind=FlavorKind.RESERVED,
            node_labels=labels,
            gpus=spec.instance_count * gpu_type.gpus * _replicas(spec.sharing)
            if gpu_type is not None
            else None,
        )
    if burst_capacity is not None:
        out[BURST_FLAVOR] = Flavor(
            name=BURST_FLAVOR,
            kind=FlavorKind.BURST,
            node_labels={CAPACITY_TYPE_LABEL: CapacityClass.BURST.value},
            gpus=burst_capacity.max_gpus * _replicas(burst_capacity.sharing),
        )
    return out


def _replicas(sharing: GpuSharingSpec | None) -> int:
    """``nvidia.com/gpu`` a node advertises per physical GPU under ``sharing``."""
    if sharing is None:
        return 1
    return 0 if sharing.rename_by_default else sharing.replicas


def _is_gpu_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _gpu_map(value: object, key: str, problems: Problems, *, required: bool) -> dict[str, int] | None:
    """A ``{flavor: GPUs}`` object; problems name ``key``."""
    if value is None or value == {}:
        if required:
            problems.add(
                f'{key}: missing; give the GPUs of each flavor the team may use, e.g. {{"ultraserver": 72}}'
            )
        return {} if not required else None
    if not isinstance(value, Mapping):
        problems.add(f'{key}: {value!r} is not an object of flavor name -> GPUs, e.g. {{"ultraserver": 72}}')
        return None
    out: dict[str, int] = {}
    for flavor, gpus in value.items():
        if not _is_gpu_count(gpus):
            problems.add(f"{key}.{flavor}: {gpus!r} is not a whole number of GPUs (0 or more)")
        else:
            out[str(flavor)] = gpus
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueSpec(SelfValidating):
    """One team's queue: ``{"name": "team-a", "namespace": "team-a", "quotas":
    {"ultraserver": 72}, "borrowingLimit": {"ultraserver": 72}, "lendingLimit":
    {"ultraserver": 36}}``.

    Checks itself: the name and namespace (DNS-1123 labels: the ClusterQueue's and
    LocalQueue's names and a namespace), quotas as an object of flavor -> whole GPUs (at
    least one flavor), and limits for flavors of the quotas only, a lending limit at most
    the quota. The fleet's rules (known flavors, GPUs) are :func:`queue_problems`'.
    """

    CONTEXT_KEYS: ClassVar[Mapping[str, str]] = {
        "name": "name",
        "namespace": "namespace",
        "quotas": "quotas",
        "borrowing_limit": "borrowingLimit",
        "lending_limit": "lendingLimit",
    }

    #: The team: names its ClusterQueue and its LocalQueue (``kueue.x-k8s.io/queue-name``).
    name: str
    #: The namespace of its LocalQueue (its jobs). Default: the team's name.
    namespace: str = ""
    #: Nominal GPU quota per flavor (``ultraserver``, ``reserved-<name>``, ``burst``).
    quotas: Mapping[str, int] = field(default_factory=dict)
    #: GPUs per flavor the team may borrow from the cohort above its quota. Default: no
    #: limit (every unused GPU of the cohort).
    borrowing_limit: Mapping[str, int] = field(default_factory=dict)
    #: GPUs per flavor the team lends to the cohort at most. Default: all its unused quota.
    lending_limit: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def _checked(cls, fields: dict[str, Any], name: Naming, problems: Problems) -> dict[str, Any]:
        out = dict(fields)
        team = fields["name"]
        if not is_dns1123_label(team):
            problems.add(
                f"{name('name')}: {team!r} is not a DNS-1123 label (at most 63 lowercase letters, "
                "digits and '-'); it names the team's ClusterQueue and LocalQueue"
            )
        namespace = fields["namespace"] or (team if isinstance(team, str) else "")
        out["namespace"] = namespace
        if not is_dns1123_label(namespace):
            problems.add(
                f"{name('namespace')}: {namespace!r} is not a Kubernetes namespace name (DNS-1123 label)"
            )
        quotas = _gpu_map(fields["quotas"], name("quotas"), problems, required=True)
        out["quotas"] = dict(quotas) if quotas is not None else fields["quotas"]
        for attr in ("borrowing_limit", "lending_limit"):
            limits = _gpu_map(fields[attr], name(attr), problems, required=False)
            out[attr] = dict(limits) if limits is not None else fields[attr]
            for flavor, gpus in (limits or {}).items():
                if quotas is not None and flavor not in quotas:
                    problems.add(
                        f"{name(attr)}.{flavor}: the team has no quota of flavor {flavor!r}; "
                        f"limits apply to the flavors of {name('quotas')} ({', '.join(quotas) or 'none'})"
                    )
                elif attr == "lending_limit" and quotas is not None and gpus > quotas[flavor]:
                    problems.add(
                        f"{name(attr)}.{flavor}: {gpus} is more than the team's quota of "
                        f"{quotas[flavor]} GPUs; a team lends at most its own quota"
                    )
        return out

    @property
    def cluster_queue(self) -> str:
        return self.name

    @property
    def local_queue(self) -> str:
        return self.name


def check_queues(enabled: object, queues: object, name: Naming, problems: Problems) -> Any:
    """The rules of ``kueue`` and ``queues`` together (``EnvironmentConfig`` runs them):
    ``enabled`` a boolean, ``queues`` a list of :class:`QueueSpec` with unique names (one
    ClusterQueue each), no queues with Kueue off, and a borrowing limit only where there is
    another queue to borrow from. Returns ``queues`` as a tuple (or as given when it is not
    a list)."""
    if enabled is not INVALID and not isinstance(enabled, bool):
        problems.add(
            f"{name('kueue')}: {enabled!r} is not a boolean" + name.example(name.key("kueue"), "false")
        )
    if isinstance(queues, list):
        queues = tuple(queues)
    if queues is INVALID:
        return queues
    if not isinstance(queues, tuple) or not all(isinstance(q, QueueSpec) for q in queues):
        problems.add(f"{name('queues')}: {queues!r} is not a list of QueueSpec")
        return queues
    if queues and enabled is False:
        problems.add(
            f"{name('queues')}: given, but {name.key('kueue')} is false (Kueue is not "
            f"installed); remove {name.key('queues')} or set {name.key('kueue')} to true"
        )
    seen: dict[str, int] = {}
    for i, q in enumerate(queues):
        if q.name in seen:
            problems.add(
                f"{name('queues')}[{i}].name: {q.name!r} is already the name of entry "
                f"{seen[q.name]}; each team has one ClusterQueue, named after it"
            )
        seen.setdefault(q.name, i)
    if len(queues) == 1 and queues[0].borrowing_limit:
        problems.add(
            f"{name('queues')}[0].borrowingLimit: {dict(queues[0].borrowing_limit)!r} with a "
            "single queue: there is no other queue in the cohort to borrow from; remove it "
            "or add the other teams"
        )
    return queues


#: Flavors one resource group of a ClusterQueue holds (the v0.19.2 CRD's
#: ``resourceGroups[].flavors`` ``maxItems``); every queue here has one resource group.
MAX_FLAVORS_PER_QUEUE = 64


def default_queue(flavors: Mapping[str, Flavor]) -> QueueSpec:
    """The queue of an environment without ``queues``: ``default`` in namespace
    ``default``, with every GPU of each flavor whose GPUs are known."""
    return QueueSpec(
        name=DEFAULT_QUEUE,
        namespace=DEFAULT_QUEUE_NAMESPACE,
        quotas={f.name: f.gpus for f in flavors.values() if f.gpus is not None},
    )


def queue_problems(
    queues: Sequence[QueueSpec], flavors: Mapping[str, Flavor], *, key: str = "queues"
) -> list[str]:
    """The fleet's rules: every flavor named exists, a queue has at most
    :data:`MAX_FLAVORS_PER_QUEUE` flavors, and no flavor's quotas (one team's, or all teams'
    together) exceed the GPUs behind it. Problems name ``key``."""
    out: list[str] = []
    known = ", ".join(repr(f) for f in flavors)
    totals: dict[str, int] = {}
    for i, q in enumerate(queues):
        where = f"{key}[{i}]"
        if len(q.quotas) > MAX_FLAVORS_PER_QUEUE:
            out.append(
                f"{where}.quotas: {len(q.quotas)} flavors, more than the {MAX_FLAVORS_PER_QUEUE} a "
                "Kueue ClusterQueue's resource group holds (kueue.x-k8s.io/v1beta2 CRD, "
                "resourceGroups[].flavors maxItems); give the team quotas on fewer reserved flavors"
            )
        for flavor, gpus in q.quotas.items():
            if flavor not in flavors:
                hint = ""
                if flavor.startswith(_RESERVED_PREFIX):
                    hint = " (a reserved flavor is 'reserved-' + the name of a reservedCapacity entry)"
                elif flavor == BURST_FLAVOR:
                    hint = " (the burst flavor exists with burstCapacity only)"
                out.append(
                    f"{where}.quotas.{flavor}: unknown flavor {flavor!r}{hint}; this environment has {known}"
                )
                continue
            totals[flavor] = totals.get(flavor, 0) + gpus
            bound = flavors[flavor].gpus
            if bound is not None and gpus > bound:
                out.append(f"{where}.quotas.{flavor}: {gpus} GPUs is more than the flavor has ({bound} GPUs)")
            if flavor in q.borrowing_limit and bound is not None and q.borrowing_limit[flavor] > bound:
                out.append(
                    f"{where}.borrowingLimit.{flavor}: {q.borrowing_limit[flavor]} GPUs is more than "
                    f"the flavor has ({bound} GPUs)"
                )
    for flavor, total in totals.items():
        bound = flavors[flavor].gpus
        if bound is not None and total > bound:
            out.append(
                f"{key}: the quotas of flavor {flavor!r} add up to {total} GPUs, more than the "
                f"{bound} GPUs it has; nominal quotas share the hardware, so lower them (a team "
                "can still use idle GPUs of others by borrowing)"
            )
    return out
