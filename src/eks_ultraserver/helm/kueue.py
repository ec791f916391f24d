"""Helm values of Kueue (kubernetes-sigs/kueue), the batch admission controller.

What the library sets, and why (chart ``kueue`` ``versions.KUEUE``, values checked against
the chart's ``values.yaml`` at the pinned tag, ``tests/third_party/kueue-values-v0.19.2.yaml``):

- ``controllerManager.manager.image``: the release image ``registry.k8s.io/kueue/kueue`` at
  the chart's app version. The ``values.yaml`` in git names the staging image
  (``us-central1-docker.pkg.dev/k8s-staging-images/kueue/kueue:release-0.19``, pull policy
  ``Always``); the published chart replaces it at release time. Setting it here keeps the
  controller on the pinned release whatever chart build is pulled;
- ``controllerManager.nodeSelector`` / ``tolerations``: the controller runs on the system
  nodes, like every other controller of the platform;
- ``managerConfig.controllerManagerConfigYaml``: Kueue's ``Configuration`` **as a YAML
  string** inside the values (the chart writes it into a ConfigMap verbatim). It is the
  chart's default configuration (:data:`DEFAULT_CONFIGURATION`, a copy of the one in the
  values at v0.19.2) with two changes:

  * ``integrations.frameworks``: the chart's default list without the pod-level
    integrations (:data:`POD_LEVEL_FRAMEWORKS`: ``pod``, ``deployment``, ``statefulset``
    and ``leaderworkerset``, which Kueue runs through pod groups). With ``pod`` enabled the
    chart's pod webhooks fail closed (``failurePolicy: Fail``) in every namespace but
    ``kube-system`` and ``kueue-system``, so while the Kueue controller is down no pod could
    be created in the GPU Operator's, the DRA driver's or the EFA plugin's namespace: a new
    UltraServer node would get no node agents. Job-level integrations only watch their own
    kinds. ``kubeflow.org/mpijob`` is always kept (an override that replaces the list gets
    it back); an override may add the pod-level ones back;
  * ``resources.excludeResourcePrefixes``: Kueue quotas cover GPUs only. A workload whose
    pods request a resource that its ClusterQueue does not cover is never admitted, and the
    pods of an MPIJob ask for CPU, memory and EFA devices as well as GPUs. Kueue's
    ``Configuration.resources.excludeResourcePrefixes`` ("defines which resources should be
    ignored by Kueue"; a prefix match) leaves them to the kube-scheduler, so a ClusterQueue
    needs ``nvidia.com/gpu`` alone.

Topology-aware scheduling (``TopologyAwareScheduling``) is a beta feature gate, on by
default since Kueue 0.14, so no feature gate is set. DRA ``resourceClaims`` (the
ComputeDomain's IMEX channel, DRANET's EFA claims) are not counted against quotas: Kueue's
``DynamicResourceAllocation`` gate is alpha and off in 0.19, and without it Kueue looks at
container resources only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from eks_ultraserver.helm.values import (
    deep_merge,
    label_selector_problems,
    tolerations_problems,
    values_problems,
)
from eks_ultraserver.model import Problems
from eks_ultraserver.versions import KUEUE, ChartVersion

__all__ = [
    "DEFAULT_CONFIGURATION",
    "EXCLUDED_RESOURCE_PREFIXES",
    "MPIJOB_FRAMEWORK",
    "POD_LEVEL_FRAMEWORKS",
    "KueueValues",
    "default_frameworks",
    "manager_configuration",
]

_VALUES_KEY = "addonValues.kueue"
_CONFIG_KEY = "managerConfig.controllerManagerConfigYaml"

#: Kueue's integration name of Kubeflow MPIJobs.
MPIJOB_FRAMEWORK = "kubeflow.org/mpijob"

#: Resources Kueue leaves to the kube-scheduler: everything a GPU job's pods ask for beside
#: ``nvidia.com/gpu`` (``vpc.amazonaws.com`` covers ``vpc.amazonaws.com/efa``).
EXCLUDED_RESOURCE_PREFIXES: tuple[str, ...] = (
    "cpu",
    "memory",
    "ephemeral-storage",
    "hugepages-",
    "vpc.amazonaws.com",
)

#: The chart's default ``managerConfig.controllerManagerConfigYaml`` at v0.19.2, as data
#: (tests compare it with the upstream values file).
DEFAULT_CONFIGURATION: Mapping[str, Any] = {
    "apiVersion": "config.kueue.x-k8s.io/v1beta2",
    "kind": "Configuration",
    "health": {"healthProbeBindAddress": ":8081"},
    "metrics": {"bindAddress": ":8443"},
    "webhook": {"port": 9443},
    "leaderElection": {"leaderElect": True, "resourceName": "c1f6bfd2.kueue.x-k8s.io"},
    "controller": {
        "groupKindConcurrency": {
            "Job.batch": 5,
            "Pod": 5,
            "Workload.kueue.x-k8s.io": 10,
            "LocalQueue.kueue.x-k8s.io": 5,
            "ClusterQueue.kueue.x-k8s.io": 5,
            "ResourceFlavor.kueue.x-k8s.io": 1,
        }
    },
    "clientConnection": {"qps": 300, "burst": 500},
    "integrations": {
        "frameworks": [
            "batch/job",
            MPIJOB_FRAMEWORK,
            "ray.io/rayjob",
            "ray.io/rayservice",
            "ray.io/raycluster",
            "jobset.x-k8s.io/jobset",
            "workload.codeflare.dev/appwrapper",
            "trainer.kubeflow.org/trainjob",
            "pod",
            "deployment",
            "statefulset",
            "leaderworkerset.x-k8s.io/leaderworkerset",
        ]
    },
}


#: The chart's default frameworks that Kueue runs through its pod webhooks, left out of the
#: library's default (see the module docstring).
POD_LEVEL_FRAMEWORKS: tuple[str, ...] = (
    "pod",
    "deployment",
    "statefulset",
    "leaderworkerset.x-k8s.io/leaderworkerset",
)


def default_frameworks() -> list[str]:
    """The chart's default frameworks without :data:`POD_LEVEL_FRAMEWORKS`."""
    return [f for f in DEFAULT_CONFIGURATION["integrations"]["frameworks"] if f not in POD_LEVEL_FRAMEWORKS]


def manager_configuration(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Kueue's ``Configuration``: the chart's default with job-level integrations only
    (:func:`default_frameworks`), GPUs-only quotas (:data:`EXCLUDED_RESOURCE_PREFIXES`),
    ``overrides`` deep-merged over it, and the MPIJob integration always among the
    frameworks."""
    config = deep_merge(
        DEFAULT_CONFIGURATION,
        {
            "resources": {"excludeResourcePrefixes": list(EXCLUDED_RESOURCE_PREFIXES)},
            "integrations": {"frameworks": default_frameworks()},
        },
        overrides,
    )
    integrations = config.setdefault("integrations", {})
    frameworks = integrations.get("frameworks")
    if not isinstance(frameworks, list):
        frameworks = list(DEFAULT_CONFIGURATION["integrations"]["frameworks"])
    if MPIJOB_FRAMEWORK not in frameworks:
        frameworks.append(MPIJOB_FRAMEWORK)
    integrations["frameworks"] = frameworks
    return config


@dataclass(frozen=True, kw_only=True, slots=True)
class KueueValues:
    """The Kueue release: chart and Helm values. Validated when created (one
    ``ConfigurationError`` listing every problem).

    :param system_node_selector: node labels of the nodes that run the controller. Default:
        not pinned.
    :param system_node_tolerations: tolerations the controller needs there. Default: none.
    :param configuration: Kueue ``Configuration`` fields deep-merged over the library's
        (for example ``{"waitForPodsReady": {"enable": true}}``). Default: none. The
        MPIJob integration cannot be removed.
    :param extra_values: Helm values deep-merged over the library's (``addonValues.kueue``).
        Default: none. ``managerConfig.controllerManagerConfigYaml`` is refused there: give
        ``configuration`` instead (a YAML string would replace the library's whole
        configuration, including the MPIJob integration).
    """

    system_node_selector: Mapping[str, str] | None = None
    system_node_tolerations: Sequence[Mapping[str, Any]] = ()
    configuration: Mapping[str, Any] = field(default_factory=dict)
    extra_values: Mapping[str, Any] = field(default_factory=dict)

    @staticmethod
    def configuration_problems(configuration: object, key: str = "configuration") -> list[str]:
        """The problems of a ``configuration`` (Kueue ``Configuration`` fields), named
        ``key``: not an object, ``integrations`` not an object, ``frameworks`` not a list of
        strings."""
        if configuration is None:
            return []
        if not isinstance(configuration, Mapping):
            return [f"{key}: {configuration!r} is not an object of Kueue Configuration fields"]
        out = list(values_problems(key, configuration))
        integrations = configuration.get("integrations", {})
        if not isinstance(integrations, Mapping):
            out.append(
                f"{key}.integrations: {integrations!r} is not an object such as "
                '{"frameworks": ["batch/job", "kubeflow.org/mpijob"]}'
            )
            return out
        frameworks = integrations.get("frameworks")
        if frameworks is not None and not (
            isinstance(frameworks, list) and all(isinstance(f, str) for f in frameworks)
        ):
            out.append(f"{key}.integrations.frameworks: {frameworks!r} is not a list of strings")
        return out

    def __post_init__(self) -> None:
        problems = Problems()
        problems.extend(values_problems(_VALUES_KEY, self.extra_values))
        problems.extend(self.configuration_problems(self.configuration))
        manager_config = (self.extra_values or {}).get("managerConfig")
        if isinstance(manager_config, Mapping) and "controllerManagerConfigYaml" in manager_config:
            problems.add(
                f"{_VALUES_KEY}.{_CONFIG_KEY}: a YAML string here would replace Kueue's whole "
                "configuration (and drop the MPIJob integration and the GPU-only quotas); "
                "remove it and give Configuration fields to KueueValues(configuration=...)"
            )
        problems.extend(label_selector_problems("system_node_selector", self.system_node_selector))
        problems.extend(tolerations_problems("system_node_tolerations", self.system_node_tolerations))
        problems.raise_if_any("Kueue configuration")

    @property
    def chart(self) -> ChartVersion:
        """The pinned chart (``versions.KUEUE``)."""
        return KUEUE

    def configuration_yaml(self) -> str:
        """``managerConfig.controllerManagerConfigYaml``: the configuration as YAML text."""
        return yaml.safe_dump(manager_configuration(self.configuration), sort_keys=False)

    def values(self) -> dict[str, Any]:
        """The Helm values: the library's, with ``extra_values`` deep-merged over them."""
        manager: dict[str, Any] = {
            "image": {
                "repository": KUEUE.extra["image"],
                "tag": KUEUE.app_version,
                "pullPolicy": "IfNotPresent",
            }
        }
        controller: dict[str, Any] = {"manager": manager}
        if self.system_node_selector:
            controller["nodeSelector"] = dict(self.system_node_selector)
        if self.system_node_tolerations:
            controller["tolerations"] = [dict(t) for t in self.system_node_tolerations]
        ours = {
            "controllerManager": controller,
            "managerConfig": {"controllerManagerConfigYaml": self.configuration_yaml()},
        }
        return deep_merge(ours, self.extra_values)
