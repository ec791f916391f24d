"""Helm values of the NVIDIA DRA driver (ComputeDomains and IMEX channels) on EKS.

Two chart lines exist (``config.DraDriverLine``):

- ``dra-driver-nvidia-gpu`` 0.4.x from ``oci://registry.k8s.io/dra-driver-nvidia/charts``,
  where the project lives now (kubernetes-sigs/dra-driver-nvidia-gpu); the default;
- ``nvidia-dra-driver-gpu`` 25.8.x from the NGC repository, what the EKS guide installs.

Both take the same values (checked against each line's values.yaml). What they do, and
why (EKS user guide, ml-eks-nvidia-ultraserver, "Install NVIDIA DRA driver"):

- ``resources.gpus.enabled=false``: GPU allocation through DRA is experimental; GPUs stay
  with the device plugin of the GPU Operator. The chart refuses to render with GPU
  allocation on unless ``gpuResourcesEnabledOverride=true``.
- ``resources.computeDomains.enabled=true``: ComputeDomains, which set up IMEX channels
  for multi-node NVLink.
- ``controller.nodeSelector`` / ``controller.affinity`` null and ``controller.tolerations``
  empty: 25.8 requires control-plane nodes for the controller, which EKS does not have
  (the controller then stays Pending); 0.4 only prefers them. Then, unlike the guide,
  the controller is pinned to the system nodes when a selector is given.
- ``kubeletPlugin.affinity`` on ``nvidia.com/gpu.present=true`` (the guide's) and, beyond
  the guide, on our ``eks-ultraserver.io/ultraserver`` label, with a toleration of the GPU
  taint: with GPU allocation off the plugin only serves ComputeDomains (IMEX), which exist
  on UltraServer nodes alone, so it stays off reserved and burst GPU nodes (p5, g6e, ...).

Where this corrects the EKS guide: the guide installs 25.8.0 from NGC; the default here
is the kubernetes-sigs line (0.4.1), where ``ComputeDomain.spec.numNodes`` is optional.
The guide's values are kept for both lines.

``addonValues.draDriver`` that contradict the platform are refused at synth rather than
failing at deploy: ``resources.gpus.enabled: true`` without
``gpuResourcesEnabledOverride: true`` (the chart's own check stops ``helm install``: GPU
allocation through DRA is experimental, and the GPUs are the device plugin's here), and
``resources.computeDomains.enabled: false`` (ComputeDomains are what this driver is
installed for: every validation job and ``MpiJob`` on an UltraServer claims one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eks_ultraserver.config import DraDriverLine
from eks_ultraserver.helm.values import (
    deep_merge,
    gpu_node_affinity,
    gpu_node_toleration,
    label_selector_problems,
    parse_version,
    tolerations_problems,
    values_problems,
    with_version,
)
from eks_ultraserver.model import ULTRASERVER_LABEL, Problems, parse_enum
from eks_ultraserver.versions import DRA_DRIVER, DRA_DRIVER_LEGACY, ChartVersion

__all__ = ["DraDriverValues", "contradiction_problems", "pinned_chart"]

#: Oldest NGC-line chart the EKS P6e-GB200 guide supports ("25.8.0+").
MIN_NGC_VERSION = (25, 8, 0)

_VERSION_KEY = "addonVersions.draDriver"
_VALUES_KEY = "addonValues.draDriver"


def pinned_chart(line: DraDriverLine) -> ChartVersion:
    """The pinned chart of a DRA driver line."""
    return DRA_DRIVER if line is DraDriverLine.KUBERNETES_SIGS else DRA_DRIVER_LEGACY


@dataclass(frozen=True, kw_only=True, slots=True)
class DraDriverValues:
    """The NVIDIA DRA driver release: chart line, version and Helm values.

    Validated when created (one ``ConfigurationError`` listing every problem).

    :param line: ``dra-driver-nvidia-gpu`` (default: the kubernetes-sigs chart, 0.4.x, from
        registry.k8s.io) or ``nvidia-dra-driver-gpu`` (the NGC chart, 25.8.x, as in the EKS
        guide).
    :param version: the chart version. Default: the line's pinned version
        (``versions.DRA_DRIVER`` / ``versions.DRA_DRIVER_LEGACY``).
    :param system_node_selector: node labels of the nodes that run the controller.
        Default: not pinned (any node that fits; GPU nodes are tainted).
    :param system_node_tolerations: tolerations for the controller. Default: none.
    :param extra_values: Helm values deep-merged over the library's. Default: none.
    """

    line: DraDriverLine = DraDriverLine.KUBERNETES_SIGS
    version: str | None = None
    system_node_selector: Mapping[str, str] | None = None
    system_node_tolerations: Sequence[Mapping[str, Any]] = ()
    extra_values: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = Problems()
        line = parse_enum("draDriverLine", self.line, DraDriverLine, problems)
        if line is not None:
            object.__setattr__(self, "line", line)
            problems.extend(self._version_problems(line))
        problems.extend(values_problems(_VALUES_KEY, self.extra_values))
        problems.extend(contradiction_problems(self.extra_values))
        problems.extend(label_selector_problems("system_node_selector", self.system_node_selector))
        problems.extend(tolerations_problems("system_node_tolerations", self.system_node_tolerations))
        problems.raise_if_any("NVIDIA DRA driver configuration")

    @property
    def chart(self) -> ChartVersion:
        """The pinned chart of the line, at ``version``."""
        return with_version(pinned_chart(self.line), self.version)

    def values(self) -> dict[str, Any]:
        """The Helm values: the library's, with ``extra_values`` deep-merged over them."""
        selector = dict(self.system_node_selector or {})
        ours: dict[str, Any] = {
            "resources": {
                "gpus": {"enabled": False},
                "computeDomains": {"enabled": True},
            },
            "controller": {
                # null removes the chart's control-plane node selector/affinity (Helm
                # deletes a default key set to null); EKS has no control-plane nodes.
                "nodeSelector": selector or None,
                "affinity": None,
                "tolerations": [dict(t) for t in self.system_node_tolerations],
            },
            "kubeletPlugin": {
                "affinity": _ultraserver_node_affinity(),
                "tolerations": [gpu_node_toleration()],
            },
        }
        return deep_merge(ours, self.extra_values)

    def _version_problems(self, line: DraDriverLine) -> list[str]:
        if self.version is None:
            return []
        parsed = parse_version(self.version)
        pinned = pinned_chart(line)
        other = DraDriverLine.NGC if line is DraDriverLine.KUBERNETES_SIGS else DraDriverLine.KUBERNETES_SIGS
        if parsed is None:
            return [f"{_VERSION_KEY}: {self.version!r} is not a chart version like {pinned.version!r}"]
        # The NGC line is versioned by date (25.8.0, 25.12.0); the kubernetes-sigs line
        # restarted at 0.x when the project moved.
        if line is DraDriverLine.KUBERNETES_SIGS and parsed[0] >= 25:
            return [
                f"{_VERSION_KEY}: {self.version!r} is a version of the NGC chart "
                f"{DRA_DRIVER_LEGACY.chart!r}, but draDriverLine is {line.value!r} "
                f"(chart {DRA_DRIVER.chart!r}, versions 0.x); use -c draDriverLine={other.value} "
                f"or a 0.x version such as {DRA_DRIVER.version!r}"
            ]
        if line is DraDriverLine.NGC and parsed[0] < 25:
            return [
                f"{_VERSION_KEY}: {self.version!r} is a version of the kubernetes-sigs chart "
                f"{DRA_DRIVER.chart!r}, but draDriverLine is {line.value!r} (chart "
                f"{DRA_DRIVER_LEGACY.chart!r}, versions 25.x); use -c draDriverLine={other.value} "
                f"or a version such as {DRA_DRIVER_LEGACY.version!r}"
            ]
        if line is DraDriverLine.NGC and parsed < MIN_NGC_VERSION:
            return [
                f"{_VERSION_KEY}: {self.version!r} is older than 25.8.0, the oldest DRA driver "
                f"the EKS P6e-GB200 guide supports; use {DRA_DRIVER_LEGACY.version!r}"
            ]
        return []


def contradiction_problems(extra_values: Mapping[str, Any] | None) -> list[str]:
    """Problems of user values that contradict the platform (see the module docstring)."""
    if not isinstance(extra_values, Mapping):
        return []
    resources = extra_values.get("resources")
    resources = resources if isinstance(resources, Mapping) else {}
    out: list[str] = []
    gpus = resources.get("gpus")
    gpus_value = gpus.get("enabled") if isinstance(gpus, Mapping) else None
    gpus_on = _truthy(gpus_value)
    override = _truthy(extra_values.get("gpuResourcesEnabledOverride"))
    if gpus_on is True and override is not True:
        out.append(
            f"{_VALUES_KEY}.resources.gpus.enabled: {gpus_value!r} without "
            f"{_VALUES_KEY}.gpuResourcesEnabledOverride: true: the chart refuses to render "
            "(GPU allocation through DRA is experimental; its templates fail unless the "
            "override is set), and on this platform the GPUs belong to the GPU Operator's "
            "device plugin (EKS user guide ml-eks-nvidia-ultraserver: resources.gpus.enabled=false); "
            "leave it unset, or set both if you mean to try DRA GPU allocation"
        )
    domains = resources.get("computeDomains")
    domains_value = domains.get("enabled") if isinstance(domains, Mapping) else None
    if _truthy(domains_value) is False:
        out.append(
            f"{_VALUES_KEY}.resources.computeDomains.enabled: {domains_value!r} contradicts the "
            "platform: ComputeDomains (IMEX channels for multi-node NVLink) are what the DRA driver "
            "is installed for, and every validation job and MpiJob on an UltraServer claims one "
            "(EKS user guide ml-eks-nvidia-ultraserver: resources.computeDomains.enabled=true); "
            "leave it unset"
        )
    return out


def _truthy(value: object) -> bool | None:
    """A boolean as Helm templates read it (``True`` or ``"true"``); ``None`` otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _ultraserver_node_affinity() -> dict[str, Any]:
    """``nvidia.com/gpu.present=true`` and the UltraServer label present."""
    affinity = gpu_node_affinity()
    terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    terms[0]["matchExpressions"].append({"key": ULTRASERVER_LABEL, "operator": "Exists"})
    return affinity
