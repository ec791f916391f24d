"""The pods of an MpiJob: the launcher's and the workers' pod templates, built from an
:class:`~eks_ultraserver.charts.mpijob_spec.MpiJobSpec`.

Plain functions that return the dicts the MPIJob's ``mpiReplicaSpecs`` hold:

- both pods tolerate the GPU taint and run only on the targeted nodes (node affinity on
  ``eks-ultraserver.io/ultraserver`` and ``nvidia.com/gpu.clique``, or on the capacity's
  labels);
- the launcher takes no GPU and runs ``mpirun -np <workers x slots> --map-by
  ppr:<slots>:node``, exporting the job's environment to every rank (``-x NAME``, OpenMPI);
- a worker takes whole GPUs (``nvidia.com/gpu``), the ComputeDomain's channel, EFA devices
  (``vpc.amazonaws.com/efa`` or a DRA claim on DeviceClass ``efa.networking.k8s.aws``) and
  its volumes; the workers of a job on one UltraServer share one NVLink clique (pod
  affinity on ``nvidia.com/gpu.clique``, as in the EKS guide).

Sources: EKS user guide ml-eks-nvidia-ultraserver (nvbandwidth MPIJob); EKS user guide
device-management-efa (EFA claims with DRANET).
"""

from __future__ import annotations

from typing import Any

from eks_ultraserver.charts.compute_domain import ComputeDomain
from eks_ultraserver.charts.mpijob_spec import EFA_CLAIM_NAME, MpiJobSpec, TopologyPlacement
from eks_ultraserver.charts.mpijob_targets import SHARED_MEMORY
from eks_ultraserver.config import EfaMode
from eks_ultraserver.model import GPU_CLIQUE_LABEL, GPU_TAINT, LABEL_PREFIX, ULTRASERVER_LABEL

#: Extended resource of the NVIDIA device plugin (the GPU Operator installs it).
GPU_RESOURCE = "nvidia.com/gpu"
#: Extended resource of the AWS EFA device plugin.
EFA_RESOURCE = "vpc.amazonaws.com/efa"
#: DeviceClass of the EFA DRA driver (DRANET); EKS user guide, device-management-efa.
EFA_DEVICE_CLASS = "efa.networking.k8s.aws"

#: Labels this library puts on a job's objects and pods.
JOB_LABEL = f"{LABEL_PREFIX}/mpijob"
ROLE_LABEL = f"{LABEL_PREFIX}/mpijob-role"

#: Tolerates the GPU taint whatever its value: node groups of this library set
#: ``nvidia.com/gpu=true:NoSchedule``, other tools ``nvidia.com/gpu=present``.
GPU_TOLERATION: dict[str, str] = {"key": GPU_TAINT.key, "operator": "Exists", "effect": GPU_TAINT.effect}


def node_affinity(spec: MpiJobSpec) -> dict[str, Any]:
    """Required node affinity of both pods: the capacity's labels, or the targeted
    UltraServers' nodes that have a working NVLink fabric."""
    if spec.capacity is not None:
        expressions = [
            {"key": key, "operator": "In", "values": [value]}
            for key, value in sorted(spec.capacity.node_selector.items())
        ]
    else:
        expressions = [
            {"key": ULTRASERVER_LABEL, "operator": "In", "values": [t.name for t in spec.ultraservers]},
            # A node without the clique label has no working NVLink fabric
            # (GPU Feature Discovery sets it): never a false positive there.
            {"key": GPU_CLIQUE_LABEL, "operator": "Exists"},
        ]
    return {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": expressions}]
        }
    }


def container_env(spec: MpiJobSpec) -> dict[str, Any]:
    """The ``env`` of the launcher and worker containers (nothing when the job has none)."""
    env_list = [{"name": k, "value": v} for k, v in (spec.env or {}).items()]
    return {"env": env_list} if env_list else {}


def security_context(spec: MpiJobSpec) -> dict[str, Any]:
    """The containers' ``securityContext`` (nothing: the image's user)."""
    return {"securityContext": {"runAsUser": spec.run_as_user}} if spec.run_as_user is not None else {}


def launcher_args(spec: MpiJobSpec) -> list[str]:
    """mpirun's arguments: the extra options, the mapping and rank count MpiJob derives, an
    ``-x NAME`` per environment variable, then the program each rank runs."""
    args = [*spec.mpirun_args, "--map-by", f"ppr:{spec.slots_per_worker}:node", "-np", str(spec.total_ranks)]
    for key in spec.env or {}:
        args += ["-x", key]
    return args + list(spec.command)


#: Kueue's pod-set annotations (Kueue docs, "Topology Aware Scheduling"; read from
#: ``mpiReplicaSpecs[*].template.metadata.annotations`` for MPIJobs).
KUEUE_ANNOTATION_PREFIX = "kueue.x-k8s.io/"
REQUIRED_TOPOLOGY = f"{KUEUE_ANNOTATION_PREFIX}podset-required-topology"
PREFERRED_TOPOLOGY = f"{KUEUE_ANNOTATION_PREFIX}podset-preferred-topology"
UNCONSTRAINED_TOPOLOGY = f"{KUEUE_ANNOTATION_PREFIX}podset-unconstrained-topology"
SLICE_REQUIRED_TOPOLOGY = f"{KUEUE_ANNOTATION_PREFIX}podset-slice-required-topology"
SLICE_SIZE = f"{KUEUE_ANNOTATION_PREFIX}podset-slice-size"


def topology_annotations(spec: MpiJobSpec, role: str) -> dict[str, str]:
    """The Kueue pod-set annotations of one role's template (none without a queue).

    Workers: the placement's annotation on ``nvidia.com/gpu.clique``; with slices, the
    slice size too. The launcher (one pod, no GPU) gets the same level: required, except
    preferred when the workers' placement is preferred and unconstrained when theirs is
    (a slice size of 1 would add nothing)."""
    placement = spec.topology_placement
    if placement is None:
        return {}
    if placement is TopologyPlacement.UNCONSTRAINED:
        return {UNCONSTRAINED_TOPOLOGY: "true"}
    if placement is TopologyPlacement.PREFERRED:
        return {PREFERRED_TOPOLOGY: GPU_CLIQUE_LABEL}
    if placement is TopologyPlacement.SLICES and role == "worker":
        return {SLICE_REQUIRED_TOPOLOGY: GPU_CLIQUE_LABEL, SLICE_SIZE: str(spec.topology_slice_size)}
    return {REQUIRED_TOPOLOGY: GPU_CLIQUE_LABEL}


def pod_metadata(spec: MpiJobSpec, role: str) -> dict[str, Any]:
    """A role's pod template ``metadata``: its labels and Kueue's annotations."""
    annotations = topology_annotations(spec, role)
    return {"labels": pod_labels(spec, role), **({"annotations": annotations} if annotations else {})}


def launcher_pod_template(spec: MpiJobSpec) -> dict[str, Any]:
    """The launcher: no GPUs; runs on the same (arm64) nodes as the workers, so a
    single-architecture image works, and tolerates the GPU taint to get there."""
    container: dict[str, Any] = {
        "name": "launcher",
        "image": spec.image,
        "command": [spec.mpirun],
        "args": launcher_args(spec),
        **container_env(spec),
        **security_context(spec),
    }
    return {
        "metadata": pod_metadata(spec, "launcher"),
        "spec": {
            "affinity": {"nodeAffinity": node_affinity(spec)},
            "tolerations": [dict(GPU_TOLERATION)],
            "containers": [container],
        },
    }


def pod_labels(spec: MpiJobSpec, role: str) -> dict[str, str]:
    """The labels of the job's pods of one role (``launcher`` or ``worker``)."""
    return {JOB_LABEL: spec.name, ROLE_LABEL: role}


def worker_resources(
    spec: MpiJobSpec, compute_domain: ComputeDomain | None
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """A worker container's ``resources`` (whole GPUs, EFA devices, claims) and the pod's
    ``resourceClaims`` (the ComputeDomain's channel, the DRANET EFA claim)."""
    limits: dict[str, int] = {GPU_RESOURCE: spec.worker_gpus}
    claims = [ComputeDomain.container_claim()] if compute_domain else []
    pod_claims = [compute_domain.pod_resource_claim()] if compute_domain else []
    efa_template = spec.efa_claim_template_name
    if spec.efa_devices and spec.efa_mode is EfaMode.DEVICE_PLUGIN:
        limits[EFA_RESOURCE] = spec.efa_devices
    elif efa_template is not None:
        claims.append({"name": EFA_CLAIM_NAME})
        pod_claims.append({"name": EFA_CLAIM_NAME, "resourceClaimTemplateName": efa_template})
    return {"limits": limits, **({"claims": claims} if claims else {})}, pod_claims


def worker_volumes(spec: MpiJobSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A worker container's ``volumeMounts`` and the pod's ``volumes``: ``/dev/shm`` in
    memory (``shared_memory``) first, then the job's volumes."""
    all_volumes = ([SHARED_MEMORY] if spec.shared_memory else []) + list(spec.volumes)
    pod_volumes = [v.pod_volume() for v in all_volumes]
    if spec.shared_memory:
        pod_volumes[0] = {"name": SHARED_MEMORY.name, "emptyDir": {"medium": "Memory"}}
    return [v.mount() for v in all_volumes], pod_volumes


def worker_affinity(spec: MpiJobSpec) -> dict[str, Any]:
    """The node affinity and, on one UltraServer, a pod affinity that keeps the job's
    workers in one NVLink clique (EKS guide: workers of one job share one NVLink domain)."""
    affinity: dict[str, Any] = {"nodeAffinity": node_affinity(spec)}
    if spec.single_domain:
        affinity["podAffinity"] = {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": pod_labels(spec, "worker")},
                    "topologyKey": GPU_CLIQUE_LABEL,
                }
            ]
        }
    return affinity


def worker_pod_template(spec: MpiJobSpec, compute_domain: ComputeDomain | None) -> dict[str, Any]:
    """A worker: whole GPUs, the ComputeDomain channel, optional EFA, the volumes; the MPI
    operator's sshd unless ``worker_command`` is given."""
    resources, pod_claims = worker_resources(spec, compute_domain)
    mounts, pod_volumes = worker_volumes(spec)
    container: dict[str, Any] = {
        "name": "worker",
        "image": spec.image,
        **({"command": list(spec.worker_command)} if spec.worker_command else {}),
        **container_env(spec),
        "resources": resources,
        **({"volumeMounts": mounts} if mounts else {}),
        **security_context(spec),
    }
    return {
        "metadata": pod_metadata(spec, "worker"),
        "spec": {
            "affinity": worker_affinity(spec),
            "tolerations": [dict(GPU_TOLERATION)],
            "containers": [container],
            **({"resourceClaims": pod_claims} if pod_claims else {}),
            **({"volumes": pod_volumes} if pod_volumes else {}),
        },
    }


def efa_claim_template_spec(spec: MpiJobSpec) -> dict[str, Any]:
    """``spec`` of the ResourceClaimTemplate of a worker's EFA devices (DRANET): exactly
    ``efa_devices`` devices of DeviceClass ``efa.networking.k8s.aws``."""
    request = {
        "name": EFA_CLAIM_NAME,
        "exactly": {
            "deviceClassName": EFA_DEVICE_CLASS,
            "allocationMode": "ExactCount",
            "count": spec.efa_devices,
        },
    }
    return {"spec": {"devices": {"requests": [request]}}}


__all__ = [
    "EFA_DEVICE_CLASS",
    "EFA_RESOURCE",
    "GPU_RESOURCE",
    "GPU_TOLERATION",
    "JOB_LABEL",
    "ROLE_LABEL",
    "container_env",
    "efa_claim_template_spec",
    "launcher_args",
    "launcher_pod_template",
    "node_affinity",
    "pod_labels",
    "pod_metadata",
    "security_context",
    "topology_annotations",
    "worker_affinity",
    "worker_pod_template",
    "worker_resources",
    "worker_volumes",
]
