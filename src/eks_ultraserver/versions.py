"""Every version this library pins, in one place.

This module is the only place a Kubernetes, chart, image or CRD version is written.
The README's version table is generated from it (``python -m eks_ultraserver versions``)
and a test keeps the two equal. Each entry's ``notes`` say why that version, with the
source where it is not obvious.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

# --------------------------------------------------------------------------------------
# Kubernetes
# --------------------------------------------------------------------------------------

#: Kubernetes versions this library supports: those EKS offers that have DRA (ComputeDomains,
#: IMEX channels need Kubernetes 1.33 or later on EKS), each with its
#: ``aws_eks_v2.KubernetesVersion`` in aws-cdk-lib and its ``aws-cdk.lambda-layer-kubectl-vNN``
#: package (a runtime dependency of this library).
SUPPORTED_KUBERNETES_VERSIONS: tuple[str, ...] = ("1.33", "1.34", "1.35", "1.36")

#: The version a new environment gets when none is configured: the newest EKS offers.
DEFAULT_KUBERNETES_VERSION = "1.36"

#: Last day of EKS standard support of each supported version (EKS user guide,
#: kubernetes-versions, "Amazon EKS Kubernetes release calendar"): a minor version has 14
#: months of standard support after its EKS release, then 12 months of extended support at
#: a higher price per cluster hour. ``None``: not announced when this table was written
#: (1.36 was released on EKS in June 2026, so standard support runs to about August 2027).
EKS_STANDARD_SUPPORT_ENDS: dict[str, date | None] = {
    "1.33": date(2026, 7, 29),
    "1.34": date(2026, 12, 2),
    "1.35": date(2027, 3, 27),
    "1.36": None,
}


def in_extended_support(kubernetes_version: str, today: date | None = None) -> bool:
    """True when EKS standard support of the version has ended on ``today`` (default: the
    current date), so a cluster on it is billed for extended support."""
    ends = EKS_STANDARD_SUPPORT_ENDS.get(kubernetes_version)
    return ends is not None and (today or date.today()) >= ends


def extended_support_warning(kubernetes_version: str, today: date | None = None) -> str | None:
    """The warning synth prints for a version in extended support, else ``None``."""
    if not in_extended_support(kubernetes_version, today):
        return None
    standard = [v for v in SUPPORTED_KUBERNETES_VERSIONS if not in_extended_support(v, today)]
    return (
        f"kubernetesVersion {kubernetes_version}: EKS standard support ended on "
        f"{EKS_STANDARD_SUPPORT_ENDS[kubernetes_version]}; the cluster runs in extended support, "
        "billed at a higher price per cluster hour (EKS user guide, kubernetes-versions). "
        f"Versions in standard support: {', '.join(standard) or 'none known to this library'}"
    )


#: Oldest Kubernetes version on which the EFA DRA driver (aws-dranet) runs.
DRANET_MIN_KUBERNETES_VERSION = "1.34"

#: Python runtime of the library's Lambda functions (the Capacity Block end handler): the
#: newest ``aws_lambda.Runtime`` of aws-cdk-lib 2.275 that Lambda offers (Lambda developer
#: guide, lambda-runtimes); its standard library and boto3 are all the code uses.
LAMBDA_PYTHON_RUNTIME = "python3.14"

#: Oldest AL2023 ARM64 NVIDIA AMI release with NVIDIA driver 580 and CDMM, which the
#: P6e-GB200 guide requires (EKS user guide, ml-eks-nvidia-ultraserver).
MIN_AMI_RELEASE_DATE = "20251103"


@dataclass(frozen=True, order=True, slots=True)
class KubernetesVersion:
    """A Kubernetes ``major.minor`` version, parsed once: compares as numbers (1.9 < 1.34),
    prints as written (``str(v) == "1.34"``)."""

    major: int
    minor: int

    @classmethod
    def parse(cls, value: object) -> KubernetesVersion:
        """``"1.34"`` (or a ``KubernetesVersion``) -> ``KubernetesVersion(1, 34)``; raises
        ``ValueError`` for anything else."""
        if isinstance(value, KubernetesVersion):
            return value
        major, _, minor = str(value).partition(".")
        if not (major.isdigit() and minor.isdigit()):
            raise ValueError(f"not a Kubernetes version: {value!r}")
        return cls(int(major), int(minor))

    @classmethod
    def of(cls, value: object) -> KubernetesVersion | None:
        """:meth:`parse`, or ``None`` for anything that is not a version."""
        try:
            return cls.parse(value)
        except ValueError:
            return None

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


#: The oldest supported version and the oldest with DRANET, as values.
MIN_KUBERNETES = KubernetesVersion.parse(SUPPORTED_KUBERNETES_VERSIONS[0])
DRANET_MIN_KUBERNETES = KubernetesVersion.parse(DRANET_MIN_KUBERNETES_VERSION)


def kubectl_layer_module(kubernetes_version: str | KubernetesVersion) -> str:
    """Python module of the kubectl Lambda layer for a Kubernetes version."""
    version = KubernetesVersion.parse(kubernetes_version)
    return f"aws_cdk.lambda_layer_kubectl_v{version.minor}" if version.major == 1 else ""


def kubectl_layer_class(kubernetes_version: str | KubernetesVersion) -> str:
    """Class name of the kubectl Lambda layer for a Kubernetes version (``KubectlV35Layer``)."""
    return f"KubectlV{KubernetesVersion.parse(kubernetes_version).minor}Layer"


def parse_kubernetes_version(value: str) -> tuple[int, int]:
    """``"1.34"`` -> ``(1, 34)``; raises ``ValueError`` for anything else. Kept for callers
    that compare tuples; new code uses :class:`KubernetesVersion`."""
    version = KubernetesVersion.parse(value)
    return version.major, version.minor


#: EKS managed add-ons of every environment. ``None`` means "EKS's default version for the
#: cluster's Kubernetes version at the time the add-on is created" (what
#: ``aws eks describe-addon-versions --kubernetes-version X`` marks as default); pin a
#: version string here to hold it. ``eks-node-monitoring-agent`` reports the node
#: conditions EKS node auto repair acts on (EKS user guide, node-health-nma).
EKS_MANAGED_ADDONS: dict[str, str | None] = {
    "vpc-cni": None,
    "kube-proxy": None,
    "coredns": None,
    "eks-pod-identity-agent": None,
    "eks-node-monitoring-agent": None,
}

#: The ``amazon-cloudwatch-observability`` EKS add-on (Container Insights with enhanced
#: observability; GPU, EFA metrics), created when the ``observability`` context key is true.
#: ``None``: EKS's default version, as above. It must be v3.1.0 or later (EKS Pod Identity)
#: and list ``p6e-gb200.36xlarge`` in its DCGM exporter's node affinity (recent versions do);
#: ``aws eks describe-addon-versions --addon-name amazon-cloudwatch-observability`` lists them.
CLOUDWATCH_OBSERVABILITY_ADDON: str | None = None

# --------------------------------------------------------------------------------------
# Helm charts and release manifests
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ChartVersion:
    """A pinned Helm chart (or release manifest) of one platform component."""

    component: str
    chart: str
    repository: str
    version: str
    app_version: str = ""
    namespace: str
    release: str
    notes: str = ""
    #: SHA-256 of a release manifest (components shipped without a Helm chart).
    sha256: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    #: Newer upstream releases that are not pinned, and why (the versions table shows it).
    newer: str = ""

    @property
    def helm_repository(self) -> str:
        """``repository`` as aws_eks_v2's ``HelmChart`` needs it: for an OCI registry the
        kubectl handler runs ``helm pull <repository> --version`` and installs the directory
        named after the repository's last path segment (aws-eks-v2 kubectl-handler
        helm/__init__.py, ``get_chart_from_oci``), so the repository must name the chart."""
        if self.repository.startswith("oci://"):
            return f"{self.repository.rstrip('/')}/{self.chart}"
        return self.repository


GPU_OPERATOR = ChartVersion(
    component="NVIDIA GPU Operator",
    chart="gpu-operator",
    repository="https://helm.ngc.nvidia.com/nvidia",
    version="v26.3.3",
    app_version="v26.3.3",
    namespace="gpu-operator",
    release="gpu-operator",
    notes=(
        "EKS guide uses v25.3.4. v26.3.3 ships device plugin v0.19.3, which reverted the MOFED "
        "default of v0.19.0-0.19.2 that took the EFA devices (NVIDIA/k8s-device-plugin #1692); "
        "v26.7.0 ships ComputeDomain CRDs that clash with the DRA driver chart."
    ),
    extra={"device_plugin": "v0.19.3"},
    newer="v26.7.0: ships ComputeDomain CRDs that clash with the DRA driver chart (refused next to it)",
)

#: Device plugin version of each GPU Operator chart version we know (``devicePlugin.version``
#: of that chart's values.yaml); used to refuse a combination that conflicts with the EFA
#: device plugin.
GPU_OPERATOR_DEVICE_PLUGIN: dict[str, str] = {
    "v25.3.4": "v0.17.4",
    "v25.10.1": "v0.18.1",
    "v26.3.3": "v0.19.3",
    "v26.7.0": "v0.20.0",
}

DRA_DRIVER = ChartVersion(
    component="NVIDIA DRA driver (kubernetes-sigs line)",
    chart="dra-driver-nvidia-gpu",
    repository="oci://registry.k8s.io/dra-driver-nvidia/charts",
    version="0.4.1",
    app_version="v0.4.1",
    namespace="nvidia-dra-driver-gpu",
    release="nvidia-dra-driver-gpu",
    notes="Where the project moved; ComputeDomain numNodes optional (0 = elastic).",
    newer="0.5.0 (2026-08): its chart values and CRD are not in tests/third_party yet; once they are, bumping is a one-line change here",
)

DRA_DRIVER_LEGACY = ChartVersion(
    component="NVIDIA DRA driver (NGC line)",
    chart="nvidia-dra-driver-gpu",
    repository="https://helm.ngc.nvidia.com/nvidia",
    version="25.8.0",
    app_version="v25.8.0",
    namespace="nvidia-dra-driver-gpu",
    release="nvidia-dra-driver-gpu",
    notes="What the EKS guide installs; ComputeDomain numNodes required.",
)

EFA_DEVICE_PLUGIN = ChartVersion(
    component="AWS EFA Kubernetes device plugin",
    chart="aws-efa-k8s-device-plugin",
    repository="https://aws.github.io/eks-charts",
    version="v0.5.30",
    app_version="v0.5.20",
    namespace="kube-system",
    release="aws-efa-k8s-device-plugin",
    notes="EKS guide uses 0.5.14; versions before ~0.5.6 miscount NVLink devices on P6.",
)

DRANET = ChartVersion(
    component="AWS EFA DRA driver (DRANET)",
    chart="aws-dranet",
    repository="https://aws.github.io/eks-charts",
    version="1.0.0",
    app_version="v1.2.0-eksbuild.2",
    namespace="kube-system",
    release="aws-dranet",
    notes="Kubernetes 1.34+ only; never on nodes that run the EFA device plugin.",
)

MPI_OPERATOR = ChartVersion(
    component="Kubeflow MPI operator",
    chart="mpi-operator (release manifest)",
    repository=(
        "https://raw.githubusercontent.com/kubeflow/mpi-operator/v0.8.0/deploy/v2beta1/mpi-operator.yaml"
    ),
    version="v0.8.0",
    app_version="v0.8.0",
    namespace="mpi-operator",
    release="mpi-operator",
    notes=(
        "No upstream Helm chart; the release manifest is verified by SHA-256. "
        "v0.8.2 (same content as v0.8.0 per upstream RELEASE.md; v0.8.1 never shipped) is newer, "
        "but its tagged manifest could not be obtained and checksummed here, so v0.8.0 is pinned."
    ),
    sha256="b38def13a94abe60b2a4b3485239d77f64892b8fbd202e9e435a6031b7500a8f",
    newer="v0.8.2 (v0.8.1 never shipped; same content as v0.8.0 per upstream RELEASE.md): its tagged manifest could not be obtained with provenance yet",
)

KARPENTER = ChartVersion(
    component="Karpenter",
    chart="karpenter",
    repository="oci://public.ecr.aws/karpenter",
    version="1.14.1",
    app_version="1.14.1",
    namespace="kube-system",
    release="karpenter",
    notes="Burst capacity only: never provisions UltraServer nodes (no DRA support).",
    newer="1.15.x (alpha DRA, no ComputeDomains): its chart values and CRDs are not in tests/third_party yet; once they are, bumping is a one-line change here",
)

RUNAI_CLUSTER = ChartVersion(
    component="NVIDIA Run:ai cluster (optional, `runai`)",
    chart="runai-cluster",
    repository="https://helm.ngc.nvidia.com/nvidia/runai-oss",
    version="3.0.24",
    app_version="3.0.24",
    namespace="runai",
    release="runai-cluster",
    notes=(
        "Run:ai self-hosted docs v3.0, 'Hotfixes for Version 3.0' (3.0.24, 11/15/2026, the versions "
        "published in NGC's runai-oss collection); 'Upgrade NVIDIA Run:ai': NGC is the only "
        "supported artifact source since v2.25 (JFrog deprecated), runai-oss needs no authentication."
    ),
)

#: Oldest GPU Operator with which Run:ai's GPU fractions work (Run:ai v3.0 support matrix,
#: footnote 1: "GPU Operator 26.7.1 is required to use GPU fractions, alongside CUDA driver
#: r615 or later"); synth warns when the environment's GPU Operator is older.
RUNAI_GPU_FRACTIONS_MIN_GPU_OPERATOR = "v26.7.1"

#: kube-prometheus-stack, the Prometheus Operator the Run:ai cluster needs ("Prometheus:
#: prerequisite, every installation"); only installed with ``runai``.
KUBE_PROMETHEUS_STACK = ChartVersion(
    component="kube-prometheus-stack (with `runai` only)",
    chart="kube-prometheus-stack",
    repository="https://prometheus-community.github.io/helm-charts",
    version="88.6.5",
    # the chart's appVersion is its Prometheus Operator's, not recorded here; the support
    # matrix pairs this chart version with Prometheus 3.13.1
    app_version="",
    namespace="monitoring",
    release="prometheus",
    notes=(
        "Run:ai v3.0 support matrix: 'Prometheus / Kube-Prometheus Stack 3.13.1 / 88.6.5 and above'; "
        "release 'prometheus' in namespace 'monitoring' as in NVIDIA's NIM LLM with Run:ai reference "
        "architecture, Appendix A."
    ),
)

KUEUE = ChartVersion(
    component="Kueue",
    chart="kueue",
    repository="oci://registry.k8s.io/kueue/charts",
    version="0.19.2",
    app_version="v0.19.2",
    namespace="kueue-system",
    release="kueue",
    notes=(
        "Kueue's install docs: helm install kueue oci://registry.k8s.io/kueue/charts/kueue "
        "--version=0.19.2 --namespace kueue-system --create-namespace --wait. "
        "Topology-aware scheduling is beta and on by default since 0.14; the MPIJob "
        "integration (kubeflow.org/mpijob) is in the chart's default frameworks."
    ),
    extra={"image": "registry.k8s.io/kueue/kueue"},
)

#: AMI of Karpenter's GPU EC2NodeClasses: the EKS-optimized AL2023 AMI, whose NVIDIA variant
#: Karpenter picks for NVIDIA instance types (Karpenter docs, EC2NodeClass amiSelectorTerms
#: alias). ``latest`` rather than a pinned release: a pinned alias such as al2023@v20251103
#: has no image for Kubernetes versions released after it. New AMIs make running nodes
#: drifted; the GPU NodePools' disruption budgets never replace a drifted node (jobs keep
#: running), so only nodes launched afterwards get the new AMI. Pin with
#: ``burstCapacity.amiAlias``.
KARPENTER_AMI_ALIAS = "al2023@latest"

# --------------------------------------------------------------------------------------
# Custom resource API versions and workload images
# --------------------------------------------------------------------------------------

COMPUTE_DOMAIN_API_VERSION = "resource.nvidia.com/v1beta1"
MPIJOB_API_VERSION = "kubeflow.org/v2beta1"
#: Kueue's API (Topology, ResourceFlavor, ClusterQueue, LocalQueue): v1beta2 is the stored
#: version of the v0.19 CRDs; v1beta1 is still served but deprecated.
KUEUE_API_VERSION = "kueue.x-k8s.io/v1beta2"

#: nvbandwidth image of the EKS guide's validation job.
NVBANDWIDTH_IMAGE = "ghcr.io/nvidia/k8s-samples:nvbandwidth-v0.7-8d103163"

#: DRA API group version of ResourceClaimTemplate (GA in Kubernetes 1.34), used for
#: EFA claims when efaMode is 'dranet' (EKS user guide, device-management-efa).
DRA_RESOURCE_API_VERSION = "resource.k8s.io/v1"

#: Image of the IMEX channel check pod: the ubuntu:22.04 the NVIDIA DRA driver's
#: ComputeDomain example uses, from the ECR Public mirror of Docker Official Images
#: (no Docker Hub pull limits on EKS nodes).
IMEX_CHECK_IMAGE = "public.ecr.aws/docker/library/ubuntu:22.04"

#: No nccl-tests image is pinned. The arm64 image of awsome-distributed-training's GB200
#: sample (micro-benchmarks/nccl-tests/kubernetes/nccl-tests-gb200.yaml,
#: ``public.ecr.aws/u1m6g1t5/nccl-tests-arm64``) is published only as ``latest``, and no
#: tag naming a version, nor a digest, of an arm64 build could be found; AWS's versioned
#: ``public.ecr.aws/hpc-cloud/nccl-tests:<cuda>-<efa>-<ofi>-<nccl>-<tests>`` tags come from
#: the x86_64 nccl-tests.Dockerfile (the GB200 sample needed an arm64 image of its own).
#: So the NCCL benchmark takes its image as a required argument (``manifests
#: --nccl-image``) that must name a version tag or a digest: build this Dockerfile into your
#: registry and tag the image with its component versions.
NCCL_TESTS_DOCKERFILE = (
    "https://github.com/aws-samples/awsome-distributed-training/blob/main/"
    "micro-benchmarks/nccl-tests/nccl-tests-gb200.Dockerfile"
)

ALL_CHARTS: tuple[ChartVersion, ...] = (
    GPU_OPERATOR,
    DRA_DRIVER,
    DRA_DRIVER_LEGACY,
    EFA_DEVICE_PLUGIN,
    DRANET,
    MPI_OPERATOR,
    KARPENTER,
    RUNAI_CLUSTER,
    KUBE_PROMETHEUS_STACK,
    KUEUE,
)


def markdown_table() -> str:
    """The versions table of docs/versions.md, generated from this module."""
    rows = [
        "| component | chart | version | app version | repository | newer upstream, not pinned |",
        "|---|---|---|---|---|---|",
        "| Kubernetes (EKS) | - | "
        + ", ".join(SUPPORTED_KUBERNETES_VERSIONS)
        + f" (default {DEFAULT_KUBERNETES_VERSION}) | - | - | - |",
        "| EKS standard support ends | - | "
        + ", ".join(
            f"{v}: {EKS_STANDARD_SUPPORT_ENDS[v] or 'not announced'}" for v in SUPPORTED_KUBERNETES_VERSIONS
        )
        + " | - | then 12 months of extended support, billed higher | - |",
        f"| EKS AL2023 ARM64 NVIDIA AMI | - | release v{MIN_AMI_RELEASE_DATE} or later | - | - | - |",
    ]
    for c in ALL_CHARTS:
        rows.append(
            f"| {c.component} | `{c.chart}` | {c.version} | {c.app_version} | `{c.repository}` | {c.newer or '-'} |"
        )
    for addon, version in EKS_MANAGED_ADDONS.items():
        shown = version or "EKS default for the cluster's Kubernetes version"
        rows.append(f"| EKS managed add-on | `{addon}` | {shown} | - | - | - |")
    for what, image in (
        ("nvbandwidth validation image", NVBANDWIDTH_IMAGE),
        ("IMEX channel check image", IMEX_CHECK_IMAGE),
    ):
        rows.append(f"| {what} | - | `{image}` | - | - | - |")
    rows.append(
        "| NCCL tests image (arm64) | - | none pinned: build "
        f"[nccl-tests-gb200.Dockerfile]({NCCL_TESTS_DOCKERFILE}) and pass `--nccl-image` | - | - | - |"
    )
    rows.append(
        f"| API versions | - | `{COMPUTE_DOMAIN_API_VERSION}`, `{MPIJOB_API_VERSION}`, `{KUEUE_API_VERSION}` | - | - | - |"
    )
    return "\n".join(rows) + "\n"
