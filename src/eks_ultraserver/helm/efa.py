"""Helm values of the two ways EFA devices reach pods: the AWS EFA device plugin
(default) or the EFA DRA driver, DRANET (``config.EfaMode``).

Never both: the EKS user guide (device-management-efa, "EFA DRA driver") says the two
cannot coexist on a node and would silently oversubscribe the devices. This library
installs exactly one of them, cluster-wide.

EFA device plugin (``aws-efa-k8s-device-plugin``, eks-charts), as in the EKS P6e-GB200
guide (ml-eks-nvidia-ultraserver, "Install the EFA device plugin"): in ``kube-system``,
tolerating ``nvidia.com/gpu`` (Exists, NoSchedule). Additionally, unlike the guide, a
node selector on ``nvidia.com/gpu.present=true`` keeps it on the GPU nodes (the chart's
own affinity already limits it to EFA-capable instance types). Corrected from the guide:
chart v0.5.30 instead of v0.5.14, and chart versions before v0.5.14 (the guide's minimum)
are refused.

DRANET (``aws-dranet``, eks-charts): Kubernetes 1.34 or later (EKS user guide,
device-management-efa; the chart's README says 1.35+, the newer AWS page wins). Same
toleration and node selector. It creates the DeviceClass ``efa.networking.k8s.aws``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eks_ultraserver.helm.values import (
    deep_merge,
    gpu_node_toleration,
    parse_version,
    values_problems,
    with_version,
)
from eks_ultraserver.model import GPU_PRESENT_LABEL, ConfigurationError
from eks_ultraserver.versions import (
    DRANET,
    DRANET_MIN_KUBERNETES,
    DRANET_MIN_KUBERNETES_VERSION,
    EFA_DEVICE_PLUGIN,
    ChartVersion,
    KubernetesVersion,
)

__all__ = ["DranetValues", "EfaDevicePluginValues"]

#: Oldest EFA device plugin chart the EKS P6e-GB200 guide lists ("0.5.14+"; older plugins
#: count the NVLink controllers of P6 instances as EFA devices).
MIN_DEVICE_PLUGIN_VERSION = (0, 5, 14)


def _gpu_node_values() -> dict[str, Any]:
    return {
        "tolerations": [gpu_node_toleration()],
        "nodeSelector": {GPU_PRESENT_LABEL: "true"},
    }


@dataclass(frozen=True, kw_only=True, slots=True)
class EfaDevicePluginValues:
    """The AWS EFA Kubernetes device plugin release (``vpc.amazonaws.com/efa``).

    :param version: the chart version. Default: ``versions.EFA_DEVICE_PLUGIN.version``;
        versions before v0.5.14 are refused.
    :param extra_values: Helm values deep-merged over the library's. Default: none.
    """

    version: str = EFA_DEVICE_PLUGIN.version
    extra_values: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = values_problems("addonValues.efaDevicePlugin", self.extra_values)
        parsed = parse_version(self.version)
        if parsed is None:
            problems.append(
                f"addonVersions.efaDevicePlugin: {self.version!r} is not a chart version like "
                f"{EFA_DEVICE_PLUGIN.version!r}"
            )
        elif parsed < MIN_DEVICE_PLUGIN_VERSION:
            problems.append(
                f"addonVersions.efaDevicePlugin: {self.version!r} is older than v0.5.14, the "
                "oldest EFA device plugin chart the EKS P6e-GB200 guide supports (older "
                "plugins miscount NVLink devices as EFA); use "
                f"{EFA_DEVICE_PLUGIN.version!r}"
            )
        if problems:
            raise ConfigurationError(problems, subject="EFA device plugin configuration")

    @property
    def chart(self) -> ChartVersion:
        return with_version(EFA_DEVICE_PLUGIN, self.version)

    def values(self) -> dict[str, Any]:
        """The Helm values: the library's, with ``extra_values`` deep-merged over them."""
        return deep_merge(_gpu_node_values(), self.extra_values)


@dataclass(frozen=True, kw_only=True, slots=True)
class DranetValues:
    """The AWS EFA DRA driver (DRANET) release (DeviceClass ``efa.networking.k8s.aws``).

    :param kubernetes_version: the cluster's Kubernetes version; DRANET needs 1.34 or later.
    :param version: the chart version. Default: ``versions.DRANET.version``.
    :param extra_values: Helm values deep-merged over the library's. Default: none.
    """

    kubernetes_version: str
    version: str = DRANET.version
    extra_values: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = values_problems("addonValues.dranet", self.extra_values)
        if parse_version(self.version) is None:
            problems.append(
                f"addonVersions.dranet: {self.version!r} is not a chart version like {DRANET.version!r}"
            )
        version = KubernetesVersion.of(self.kubernetes_version)
        if version is None:
            problems.append(
                f"kubernetes_version: {self.kubernetes_version!r} is not a Kubernetes version like '1.35'"
            )
        elif version < DRANET_MIN_KUBERNETES:
            problems.append(
                f"efaMode: 'dranet' needs Kubernetes {DRANET_MIN_KUBERNETES_VERSION} or later "
                f"(EKS user guide, device-management-efa), but kubernetesVersion is "
                f"{self.kubernetes_version!r}; use -c efaMode=device-plugin or -c "
                f"kubernetesVersion={DRANET_MIN_KUBERNETES_VERSION}"
            )
        if problems:
            raise ConfigurationError(problems, subject="DRANET configuration")

    @property
    def chart(self) -> ChartVersion:
        return with_version(DRANET, self.version)

    def values(self) -> dict[str, Any]:
        """The Helm values: the library's, with ``extra_values`` deep-merged over them."""
        return deep_merge(_gpu_node_values(), self.extra_values)
