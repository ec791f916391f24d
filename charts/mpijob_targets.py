"""Where an MpiJob runs and what it mounts: UltraServer and capacity targets, volumes.

Value objects of :class:`~eks_ultraserver.charts.mpijob.MpiJob` (and re-exported there):

- :class:`UltraServerTarget`: an UltraServer, by the value of its
  ``eks-ultraserver.io/ultraserver`` node label, with its type and EFA layout;
- :class:`CapacityTarget`: GPU nodes beside the UltraServers (reserved or burst), by labels;
- :class:`Volume`: a scratch (``emptyDir``) or host directory mounted into every worker.

Each validates itself; bad values raise one ``ConfigurationError`` (``Volume`` reports its
problems to the job, which raises them with every other problem).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eks_ultraserver.config import EnvironmentConfig
from eks_ultraserver.model import (
    CAPACITY_TYPE_LABEL,
    RESERVED_CAPACITY_LABEL,
    EfaLayout,
    Problems,
    UltraServerType,
    is_dns1123_label,
    is_label_key,
    is_label_value,
)

#: Karpenter's well-known capacity type label (spot, on-demand, reserved).
KARPENTER_CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"

#: Where nodeadm mounts the RAID0 array of the instance stores (``localStorage: RAID0``);
#: kubelet's and containerd's directories, and so every emptyDir, live on it.
INSTANCE_STORE_PATH = "/mnt/k8s-disks/0"

#: Host paths a workload must never mount: with ``/dev/infiniband`` as a hostPath every
#: uverbs device of the node is in the container, libfabric then fails to open the ones
#: that are not EFA devices and NCCL silently falls back to TCP sockets (aws-samples/aws-do-eks
#: #63). EFA devices reach a pod through the EFA device plugin or DRANET only.
FORBIDDEN_HOST_PATHS = ("/dev/infiniband",)

_QUANTITY_RE = re.compile(r"\d+(\.\d+)?([KMGTPE]i?|[mk])?")


def is_whole(value: object, minimum: int) -> bool:
    """``value`` is an ``int`` (not a ``bool``) of at least ``minimum``."""
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
        if not is_whole(self.gpus_per_node, 1):
            problems.add(f"gpus_per_node: {self.gpus_per_node!r} is not a whole number (1 or more)")
        if not is_whole(self.efa_devices, 0):
            problems.add(f"efa_devices: {self.efa_devices!r} is not a whole number (0 or more)")
        if self.nodes is not None and not is_whole(self.nodes, 1):
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
        """Every problem of this volume, each prefixed with ``where`` (``volumes[0]``)."""
        out = []
        if not is_dns1123_label(self.name):
            out.append(f"{where}.name: {self.name!r} is not a DNS-1123 label")
        if not _is_absolute(self.mount_path):
            out.append(f"{where}.mount_path: {self.mount_path!r} is not an absolute path")
        if self.host_path is not None and not _is_absolute(self.host_path):
            out.append(f"{where}.host_path: {self.host_path!r} is not an absolute path")
        elif self.host_path is not None:
            out.extend(_forbidden_host_path_problems(where, self.host_path))
        if self.size_limit is not None:
            if self.host_path is not None:
                out.append(
                    f"{where}.size_limit: {self.size_limit!r} applies only to an emptyDir; drop it or host_path"
                )
            elif not (isinstance(self.size_limit, str) and _QUANTITY_RE.fullmatch(self.size_limit)):
                out.append(
                    f"{where}.size_limit: {self.size_limit!r} is not a Kubernetes quantity such as '500Gi'"
                )
        return out

    def pod_volume(self) -> dict[str, Any]:
        """The entry for the pod's ``spec.volumes``."""
        if self.host_path is not None:
            return {"name": self.name, "hostPath": {"path": self.host_path, "type": "DirectoryOrCreate"}}
        empty: dict[str, Any] = {}
        if self.size_limit is not None:
            empty["sizeLimit"] = self.size_limit
        return {"name": self.name, "emptyDir": empty}

    def mount(self) -> dict[str, Any]:
        """The entry for a container's ``volumeMounts``."""
        out: dict[str, Any] = {"name": self.name, "mountPath": self.mount_path}
        if self.read_only:
            out["readOnly"] = True
        return out


def _is_absolute(path: object) -> bool:
    return isinstance(path, str) and path.startswith("/")


def _forbidden_host_path_problems(where: str, host_path: str) -> list[str]:
    """A host path that is, is inside or contains one of :data:`FORBIDDEN_HOST_PATHS`."""
    out = []
    normal = "/" + "/".join(part for part in host_path.split("/") if part)
    for forbidden in FORBIDDEN_HOST_PATHS:
        inside = normal == forbidden or normal.startswith(forbidden + "/")
        if inside or forbidden.startswith(normal.rstrip("/") + "/"):
            out.append(
                f"{where}.host_path: {host_path!r} would mount {forbidden}: libfabric then "
                "fails on the non-EFA uverbs devices and NCCL silently falls back to TCP "
                "(aws-samples/aws-do-eks #63); EFA devices come from the EFA device plugin "
                "or DRANET (efa_devices=)"
            )
    return out


#: The in-memory ``/dev/shm`` of the workers (``shared_memory=True``).
SHARED_MEMORY = Volume(name="dshm", mount_path="/dev/shm")


__all__ = [
    "FORBIDDEN_HOST_PATHS",
    "INSTANCE_STORE_PATH",
    "KARPENTER_CAPACITY_TYPE_LABEL",
    "SHARED_MEMORY",
    "CapacityTarget",
    "UltraServerTarget",
    "Volume",
    "is_whole",
]
