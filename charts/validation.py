"""Charts that check an UltraServer environment end to end.

- :class:`ImexChannelCheck`: a ComputeDomain and a Job (batch/v1, one pod) that claims its
  channel and lists ``/dev/nvidia-caps-imex-channels`` (the DRA driver's ComputeDomain
  example, with the GPU taint tolerated). It proves the DRA driver, the IMEX daemon and the
  channel injection work on one node of an UltraServer.
- :class:`NvbandwidthJob`: the EKS guide's nvbandwidth MPIJob (2 workers x 4 GPUs,
  ``multinode_device_to_device_memcpy_read_ce``) on one UltraServer: GPU memory copies
  between two nodes over multi-node NVLink.
- :class:`NcclAllReduceJob`: nccl-tests ``all_reduce_perf`` on every GPU of one
  UltraServer (NVLink, NVLS) or of several (NVLink inside each, EFA between), after
  awsome-distributed-training's ``nccl-tests-gb200.yaml``; with EFA devices it fails rather
  than report socket bandwidth (see :data:`NCCL_EFA_ENV`).

The validation checks are finite (a Job and an MPIJob that delete themselves
:data:`VALIDATION_TTL_SECONDS` after they finish), so that, deployed by the stack
(``validationJobs``), nothing of theirs lingers as a running workload.

Sources: EKS user guide ml-eks-nvidia-ultraserver ("Validate IMEX over Multi-Node
NVLink"); NVIDIA DRA driver ComputeDomain docs (imex-channel-injection example);
aws-samples/awsome-distributed-training micro-benchmarks/nccl-tests (GB200 manifest and
gb200-env.sh: FI_PROVIDER=efa, FI_EFA_FORK_SAFE=1, NCCL_NVLS_ENABLE=1, NCCL_MNNVL_ENABLE=1);
aws-ofi-nccl (src/nccl_ofi_interface_nvidia.cpp: the plugin answers to ``NCCL_NET`` "AWS
Libfabric" in every release, its pre-1.12 name); libfabric fi_efa(7)
(``FI_EFA_USE_DEVICE_RDMA``); NVIDIA NCCL environment variables (``NCCL_NET``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import cdk8s

from constructs import Construct
from eks_ultraserver.charts.compute_domain import IMEX_CHANNEL_DIR, ComputeDomain, DraDriverTarget
from eks_ultraserver.charts.mpijob import GPU_TOLERATION, MpiJob, UltraServerTarget
from eks_ultraserver.config import EfaMode
from eks_ultraserver.model import (
    GPU_CLIQUE_LABEL,
    GPUS_PER_INSTANCE,
    LABEL_PREFIX,
    ULTRASERVER_LABEL,
    ConfigurationError,
    Problems,
    is_dns1123_label,
)
from eks_ultraserver.versions import IMEX_CHECK_IMAGE, NCCL_TESTS_DOCKERFILE, NVBANDWIDTH_IMAGE

#: Label on every object of a validation or benchmark chart: which check it belongs to.
CHECK_LABEL = f"{LABEL_PREFIX}/check"

#: What the check pod prints when the channel is there.
IMEX_CHECK_SUCCESS = "IMEX channel0 is available"

#: nvbandwidth test case of the EKS guide: cuMemcpyAsync reads between GPUs of two nodes.
NVBANDWIDTH_TESTCASE = "multinode_device_to_device_memcpy_read_ce"

#: nccl-tests' all_reduce_perf sweep of the GB200 sample: 8 B to 16 GiB, doubling, one GPU
#: per rank, data checked (``#wrong`` must be 0), 100 iterations per size.
NCCL_ALL_REDUCE_ARGS: tuple[str, ...] = ("-b", "8", "-e", "16G", "-f", "2", "-g", "1", "-c", "1", "-n", "100")

#: How long a finished validation Job or MPIJob (and its pods, with their logs) stays before
#: Kubernetes (the TTL controller) or the MPI operator deletes it: a day to read the logs.
VALIDATION_TTL_SECONDS = 86_400

#: What makes the NCCL benchmark fail rather than report socket bandwidth when it has EFA
#: devices:
#:
#: - ``NCCL_NET="AWS Libfabric"``: NCCL uses that network plugin or stops with "network not
#:   found"; without it NCCL falls back to its internal Socket transport when the plugin does
#:   not load (NVIDIA NCCL docs, NCCL_NET). aws-ofi-nccl up to 1.11 is named "AWS Libfabric";
#:   1.12 and later are named "Libfabric" and take "AWS Libfabric" (or "OFI") as an alias.
#: - ``FI_PROVIDER=efa``: libfabric offers the EFA provider only (never tcp or sockets).
#: - ``FI_EFA_USE_DEVICE_RDMA=1``: libfabric aborts the program when the EFA device has no
#:   RDMA support instead of emulating it (fi_efa(7)); newer releases pick RDMA by default,
#:   this makes it a requirement.
NCCL_EFA_ENV: dict[str, str] = {
    "NCCL_NET": "AWS Libfabric",
    "FI_PROVIDER": "efa",
    "FI_EFA_USE_DEVICE_RDMA": "1",
    "FI_EFA_FORK_SAFE": "1",
}

_NCCL_MPIRUN = "/opt/amazon/openmpi/bin/mpirun"
_DIGEST_RE = re.compile(r"@sha256:[0-9a-f]{64}$")
_NCCL_BINARY = "/opt/nccl-tests/build/all_reduce_perf"


def image_reference_problems(where: str, image: object) -> list[str]:
    """Problems of a benchmark image reference: it must name a version (a tag other than
    ``latest``) or a digest (``@sha256:<64 hex>``), so that a result can be reproduced."""
    if not isinstance(image, str) or not image or any(c.isspace() for c in image):
        return [f"{where}: {image!r} is not a container image reference"]
    if _DIGEST_RE.search(image):
        return []
    last = image.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else None
    if tag is None or tag == "latest":
        return [
            f"{where}: {image!r} names no version ({'tag latest' if tag else 'no tag'}), so a "
            "result cannot be tied to the NCCL, aws-ofi-nccl and EFA installer it ran; use a tag "
            "naming a version or a digest (@sha256:...), e.g. an image built from "
            f"{NCCL_TESTS_DOCKERFILE} and tagged with its component versions"
        ]
    return []


def _check_name(where: str, value: str, problems: Problems) -> None:
    if not is_dns1123_label(value) or not value[:1].isalpha():
        problems.add(f"{where}: {value!r} is not a DNS-1123 label starting with a letter")


class ImexChannelCheck(cdk8s.Chart):
    """A ComputeDomain (1 node) and a Job whose one pod claims its channel and checks it.

    The Job completes and its pod logs ``IMEX channel0 is available`` when the driver
    injected ``/dev/nvidia-caps-imex-channels/channel0``; the pod stays
    ``ContainerCreating`` when the IMEX daemon never gets ready, and the Job fails (no
    retry) when the channel is missing. A Job rather than a bare Pod: a finished Job is
    deleted with its pod by Kubernetes' TTL controller, and a Job is what ``kubectl wait
    --for=condition=complete`` understands.

    :param ultraserver: the UltraServer to check (node affinity on its name).
    :param name: name of the ComputeDomain and the Job. Default:
        ``imex-channel-check-<ultraserver>``.
    :param image: an image with bash. Default: ``versions.IMEX_CHECK_IMAGE`` (ubuntu 22.04).
    :param dra_driver: the installed NVIDIA DRA driver. Default: the kubernetes-sigs line.
    :param namespace: Default: ``default``.
    :param ttl_seconds_after_finished: the Job's ``ttlSecondsAfterFinished``. Default:
        :data:`VALIDATION_TTL_SECONDS` (a day); ``None`` keeps the finished Job.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        ultraserver: UltraServerTarget,
        name: str | None = None,
        image: str = IMEX_CHECK_IMAGE,
        dra_driver: DraDriverTarget | None = None,
        namespace: str = "default",
        ttl_seconds_after_finished: int | None = VALIDATION_TTL_SECONDS,
        queue: str | None = None,
    ) -> None:
        problems = Problems()
        # The annotation is the contract; callers that are not type-checked may still pass
        # anything, so the check looks at the value as an ``object``.
        given: object = ultraserver
        if not isinstance(given, UltraServerTarget):
            problems.add(f"ultraserver: {given!r} is not an UltraServerTarget")
            problems.raise_if_any("ImexChannelCheck")
        name = name or f"imex-channel-check-{ultraserver.name}"
        _check_name("name", name, problems)
        if not is_dns1123_label(namespace):
            problems.add(f"namespace: {namespace!r} is not a DNS-1123 label")
        if not isinstance(image, str) or not image:
            problems.add(f"image: {image!r} is not a container image reference")
        if ttl_seconds_after_finished is not None and (
            not isinstance(ttl_seconds_after_finished, int)
            or isinstance(ttl_seconds_after_finished, bool)
            or ttl_seconds_after_finished < 0
        ):
            problems.add(
                f"ttl_seconds_after_finished: {ttl_seconds_after_finished!r} is not a whole number "
                "of seconds (0 or more), or None to keep the finished Job"
            )
        problems.raise_if_any(f"ImexChannelCheck {name!r}")

        super().__init__(scope, id, namespace=namespace, labels={CHECK_LABEL: "imex-channel-check"})
        self.check_name = name
        self.ultraservers: tuple[UltraServerTarget, ...] = (ultraserver,)
        self.compute_domain = ComputeDomain(
            self, "ComputeDomain", name=name, num_nodes=1, dra_driver=dra_driver
        )
        channel0 = f"{IMEX_CHANNEL_DIR}/channel0"
        script = f"set -eu; ls -la {IMEX_CHANNEL_DIR}; test -c {channel0}; echo '{IMEX_CHECK_SUCCESS}'"
        pod_spec = {
            "restartPolicy": "Never",
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": ULTRASERVER_LABEL,
                                        "operator": "In",
                                        "values": [ultraserver.name],
                                    },
                                    {"key": GPU_CLIQUE_LABEL, "operator": "Exists"},
                                ]
                            }
                        ]
                    }
                }
            },
            "tolerations": [dict(GPU_TOLERATION)],
            "containers": [
                {
                    "name": "check",
                    "image": image,
                    "command": ["bash", "-c"],
                    "args": [script],
                    "resources": {"claims": [ComputeDomain.container_claim()]},
                }
            ],
            "resourceClaims": [self.compute_domain.pod_resource_claim()],
        }
        self.job = cdk8s.ApiObject(
            self, "Job", api_version="batch/v1", kind="Job", metadata=cdk8s.ApiObjectMetadata(name=name)
        )
        self.job.add_json_patch(
            cdk8s.JsonPatch.add(
                "/spec",
                {
                    # One try: a missing channel is a finding, not a flake to retry.
                    "backoffLimit": 0,
                    **(
                        {"ttlSecondsAfterFinished": ttl_seconds_after_finished}
                        if ttl_seconds_after_finished is not None
                        else {}
                    ),
                    "template": {
                        "metadata": {"labels": {CHECK_LABEL: "imex-channel-check"}},
                        "spec": pod_spec,
                    },
                },
            )
        )


class NvbandwidthJob(MpiJob):
    """The EKS guide's nvbandwidth MPIJob on one UltraServer.

    Workers run the image's sshd as ``mpiuser`` (uid 1000) with its own sshd config; the
    launcher runs ``mpirun --bind-to core --map-by ppr:4:node -np 8 nvbandwidth -t
    multinode_device_to_device_memcpy_read_ce``.

    :param ultraserver: the UltraServer to test.
    :param name: Default: ``nvbandwidth-<ultraserver>``.
    :param workers: nodes to copy between. Default: 2, as in the EKS guide.
    :param testcase: the nvbandwidth test case. Default: ``multinode_device_to_device_memcpy_read_ce``.
    :param image: Default: ``versions.NVBANDWIDTH_IMAGE``.
    :param dra_driver: the installed NVIDIA DRA driver. Default: the kubernetes-sigs line.
    :param namespace: Default: ``default``.
    :param ttl_seconds_after_finished: the MPIJob's ``runPolicy.ttlSecondsAfterFinished``.
        Default: :data:`VALIDATION_TTL_SECONDS` (a day); ``None`` keeps the finished job.
    :param queue: the Kueue LocalQueue (in ``namespace``) to submit the job to (see
        ``MpiJob``). Default: none.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        ultraserver: UltraServerTarget,
        name: str | None = None,
        workers: int = 2,
        testcase: str = NVBANDWIDTH_TESTCASE,
        image: str = NVBANDWIDTH_IMAGE,
        dra_driver: DraDriverTarget | None = None,
        namespace: str = "default",
        ttl_seconds_after_finished: int | None = VALIDATION_TTL_SECONDS,
        queue: str | None = None,
    ) -> None:
        default_name = (
            f"nvbandwidth-{ultraserver.name}" if isinstance(ultraserver, UltraServerTarget) else "nvbandwidth"
        )
        super().__init__(
            scope,
            id,
            name=name or default_name,
            image=image,
            command=["nvbandwidth", "-t", testcase],
            ultraservers=[ultraserver],
            workers=workers,
            slots_per_worker=GPUS_PER_INSTANCE,
            mpirun="mpirun",
            mpirun_args=["--bind-to", "core", "--report-bindings", "-q"],
            worker_command=["/usr/sbin/sshd", "-De", "-f", "/home/mpiuser/.sshd_config"],
            run_as_user=1000,
            ssh_auth_mount_path="/home/mpiuser/.ssh",
            shared_memory=False,
            ttl_seconds_after_finished=ttl_seconds_after_finished,
            dra_driver=dra_driver,
            namespace=namespace,
            labels={CHECK_LABEL: "nvbandwidth"},
            queue=queue,
        )


class NcclAllReduceJob(MpiJob):
    """nccl-tests ``all_reduce_perf`` on every GPU of one or several UltraServers.

    One worker per node (4 ranks each, all 4 GPUs), ``NCCL_MNNVL_ENABLE=1`` (multi-node
    NVLink through the ComputeDomain's IMEX channel) and ``NCCL_NVLS_ENABLE=1`` (NVLink
    SHARP). Each worker takes every EFA device the node group's layout gives it; across
    UltraServers that is the only path between them. With EFA devices the job runs with
    :data:`NCCL_EFA_ENV`: NCCL must use aws-ofi-nccl on libfabric's EFA provider with device
    RDMA, or the ranks stop with an error; it never prints a table measured over TCP
    sockets. No ``/dev/infiniband`` hostPath is mounted (EFA devices come from the device
    plugin or DRANET).

    :param ultraservers: one UltraServer (intra-domain run, 36 or 72 GPUs) or several.
    :param image: required: an arm64 image with OpenMPI in /opt/amazon/openmpi, aws-ofi-nccl
        and nccl-tests in /opt/nccl-tests, as a tag naming a version or a digest (``latest``
        is refused). No default: no versioned arm64 build is published (see
        ``versions.NCCL_TESTS_DOCKERFILE``).
    :param name: Default: ``nccl-<ultraserver>`` for one, ``nccl-all-ultraservers`` for several.
    :param efa_mode: how EFA devices are handed out. Default: the EFA device plugin.
    :param all_reduce_args: all_reduce_perf's options. Default: ``NCCL_ALL_REDUCE_ARGS``.
    :param dra_driver: the installed NVIDIA DRA driver. Default: the kubernetes-sigs line.
    :param namespace: Default: ``default``.
    :param queue: the Kueue LocalQueue (in ``namespace``) to submit the job to (see
        ``MpiJob``: the whole job in one NVLink domain on one UltraServer, in slices of one
        UltraServer across several). Default: none.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        ultraservers: Sequence[UltraServerTarget],
        image: str,
        name: str | None = None,
        efa_mode: EfaMode | str = EfaMode.DEVICE_PLUGIN,
        all_reduce_args: Sequence[str] = NCCL_ALL_REDUCE_ARGS,
        dra_driver: DraDriverTarget | None = None,
        namespace: str = "default",
        queue: str | None = None,
    ) -> None:
        image_problems = image_reference_problems("image", image)
        if image_problems:
            raise ConfigurationError(image_problems, subject="NcclAllReduceJob")
        targets = [t for t in ultraservers if isinstance(t, UltraServerTarget)]
        if name is None:
            name = f"nccl-{targets[0].name}" if len(targets) == 1 else "nccl-all-ultraservers"
        # (an empty or bad list is reported by MpiJob, with every other problem)
        efa = min((t.efa_layout.efa_devices for t in targets), default=0)
        env = {"NCCL_DEBUG": "INFO", "NCCL_MNNVL_ENABLE": "1", "NCCL_NVLS_ENABLE": "1"}
        if efa:
            env = {**NCCL_EFA_ENV, **env}
        super().__init__(
            scope,
            id,
            name=name,
            image=image,
            command=[_NCCL_BINARY, *all_reduce_args],
            ultraservers=list(ultraservers),
            workers=sum(t.nodes for t in targets),
            slots_per_worker=GPUS_PER_INSTANCE,
            efa_devices=efa,
            efa_mode=efa_mode,
            env=env,
            mpirun=_NCCL_MPIRUN,
            mpirun_args=[
                "--allow-run-as-root",
                "--tag-output",
                "--bind-to",
                "none",
                # PATH and LD_LIBRARY_PATH of the image (ssh sessions do not get them).
                "-x",
                "PATH",
                "-x",
                "LD_LIBRARY_PATH",
                "--mca",
                "btl",
                "tcp,self",
                "--mca",
                "btl_tcp_if_exclude",
                "lo,docker0,veth_def_agent",
            ],
            dra_driver=dra_driver,
            namespace=namespace,
            labels={CHECK_LABEL: "nccl-all-reduce"},
            queue=queue,
        )


__all__ = [
    "CHECK_LABEL",
    "IMEX_CHECK_SUCCESS",
    "NCCL_ALL_REDUCE_ARGS",
    "NCCL_EFA_ENV",
    "NVBANDWIDTH_TESTCASE",
    "VALIDATION_TTL_SECONDS",
    "ImexChannelCheck",
    "NcclAllReduceJob",
    "NvbandwidthJob",
    "image_reference_problems",
]
