"""Helm values of the NVIDIA GPU Operator on P6e-GB200 nodes (AL2023 ARM64 NVIDIA AMI).

What the values do, and why (EKS user guide, ml-eks-nvidia-ultraserver, "Install NVIDIA
GPU operator"; NVIDIA GPU Operator chart values.yaml):

- ``driver.enabled=false``, ``toolkit.enabled=false``: the EKS AMI already ships the GPU
  driver and the container toolkit; a second driver from the operator breaks the node
  (amazon-eks-ami #1817).
- ``devicePlugin``, ``nfd``, ``gfd`` enabled: GPUs as ``nvidia.com/gpu`` and the
  ``nvidia.com/gpu.clique`` label (GPU Feature Discovery, which needs NFD) that the DRA
  driver and workloads use to find an NVLink domain.
- ``migManager.enabled=false``: the AMI's driver 580 runs with CDMM, under which MIG is
  not supported.
- ``cdi.enabled=false``: the chart defaults it to true since v25.10.0, but the setup the EKS
  guide validated (chart v25.3.4, driver and toolkit from the AMI) runs with CDI off, and no
  AWS or NVIDIA page says the operator's CDI mode works with ``toolkit.enabled=false`` on
  the AL2023 NVIDIA AMI (NVIDIA's "CDI Support in the GPU Operator" describes CDI with the
  operator's own toolkit). GPUs then reach containers through the AMI's nvidia runtime.
- ``devicePlugin.env: GDRCOPY_ENABLED=true``: since device plugin v0.19.3 ``/dev/gdrdrv``
  (GDRCopy, which the AL2023 NVIDIA AMI loads and libfabric/aws-ofi-nccl use for small
  GPU-memory copies over EFA) reaches a GPU container only when the plugin runs with this
  flag (k8s-device-plugin ``--gdrcopy-enabled``: "ensure that containers that request NVIDIA
  GPU resources are started with GDRCopy support"). Without it NCCL over EFA still works,
  slower for small messages; with it, every GPU pod gets the device node.
- ``devicePlugin.config`` (only when a reserved or burst pool shares its GPUs,
  ``capacity.GpuSharingSpec``): a ConfigMap the chart creates (``create: true``, ``name``,
  ``data``) with one device plugin configuration per distinct sharing setting (key
  ``time-slicing-4``, ``mps-2``, ...), which the nodes of each pool select with the label
  ``nvidia.com/device-plugin.config=<key>`` (NVIDIA GPU Operator docs, "Time-Slicing GPUs
  in Kubernetes"). ``default`` stays unset: the operator runs the plugin's config manager
  with ``FALLBACK_STRATEGIES=empty`` (gpu-operator v26.3.3
  controllers/object_controls.go), so a node without the label (every UltraServer and
  every node of a pool that does not share) gets no config file and keeps whole GPUs. The
  configurations carry no ``flags``: the plugin's environment (``GDRCOPY_ENABLED`` below)
  takes precedence over a config file's flags (k8s-device-plugin v0.19.3
  api/config/v1/config.go, ``NewConfig``), so shared nodes keep GDRCopy.
- ``ccManager.enabled=false``: v26.3 turns the Confidential Computing manager on by default
  (``defaultMode: on``); it resets GPUs into CC mode for Kata confidential containers, which
  this platform does not run.
- ``dcgmExporter`` enabled (GPU metrics on :9400) with its ServiceMonitor off: no
  Prometheus Operator is installed by this library (v26.7.0 turns it on by default).
- Controllers (the operator, NFD master and NFD garbage collector) pinned to the system
  nodes when a selector is given; every node agent tolerates the GPU taint.

Where this corrects the EKS guide (which pins chart v25.3.4):

- the pinned chart is v26.3.3 (see ``versions.GPU_OPERATOR``), with device plugin v0.19.3;
  the guide's v25.3.4 still works and is accepted as an override;
- a chart whose device plugin is v0.19.0-v0.19.2 is refused: those releases turned on
  MOFED support by default and mount every ``/dev/infiniband/uverbs*`` device, taking the
  EFA devices away from the EFA device plugin or DRANET (NVIDIA/k8s-device-plugin #1692,
  fixed in v0.19.3);
- v26.7.0 and later ship the ComputeDomain CRD in the operator chart's ``crds/`` folder
  (deployments/gpu-operator/crds/resource.nvidia.com_computedomains.yaml, with
  ``numNodes`` required), which clashes with the DRA driver chart's own CRD. The
  v26.7.0 values.yaml has no key that turns that CRD off (``operator.upgradeCRD`` only
  drives the pre-upgrade hook; ``gpuCluster.deployCR`` only the experimental DRA stack),
  and ``aws_eks_v2.HelmChart(skip_crds=True)`` would also drop the operator's own
  ClusterPolicy CRD; so that combination is refused;
- ``addonValues`` that contradict the platform are refused (:data:`PLATFORM_CONTRADICTIONS`):
  the operator's driver or toolkit on an AMI that has both, the MIG or vGPU managers under
  CDMM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from eks_ultraserver.helm.values import (
    deep_merge,
    gpu_node_toleration,
    label_selector_problems,
    node_affinity_for,
    parse_version,
    tolerations_problems,
    values_problems,
    with_version,
)
from eks_ultraserver.model import ConfigurationError
from eks_ultraserver.versions import GPU_OPERATOR, GPU_OPERATOR_DEVICE_PLUGIN, ChartVersion

__all__ = [
    "DEVICE_PLUGIN_CONFIG_MAP",
    "GDRCOPY_ENV",
    "GPU_OPERATOR_SUBCHART_KEYS",
    "PLATFORM_CONTRADICTIONS",
    "GpuOperatorValues",
    "contradiction_problems",
    "device_plugin_config_yaml",
]

#: Keys of the bundled node-feature-discovery subchart that this library sets and that the
#: GPU Operator's own values.yaml does not show (declared in the subchart's values.yaml,
#: kubernetes-sigs/node-feature-discovery deployment/helm/node-feature-discovery, bundled
#: as deployments/gpu-operator/charts/node-feature-discovery).
GPU_OPERATOR_SUBCHART_KEYS = (
    "node-feature-discovery.master.nodeSelector",
    "node-feature-discovery.master.tolerations",
    "node-feature-discovery.gc.nodeSelector",
    "node-feature-discovery.gc.tolerations",
)

#: Oldest GPU Operator chart the EKS guide lists for P6e-GB200 ("25.3.4+").
MIN_VERSION = (25, 3, 4)
#: First chart that ships the ComputeDomain CRD (clash with the DRA driver chart).
COMPUTE_DOMAIN_CRD_SINCE = (26, 7, 0)
#: Device plugin releases that take the EFA devices (NVIDIA/k8s-device-plugin #1692).
BAD_DEVICE_PLUGINS = ((0, 19, 0), (0, 19, 1), (0, 19, 2))

#: Device plugin environment that hands ``/dev/gdrdrv`` to GPU containers (device plugin
#: v0.19.3 and later no longer do it by default).
GDRCOPY_ENV = {"name": "GDRCOPY_ENABLED", "value": "true"}

#: The ConfigMap of the device plugin configurations (``devicePlugin.config.name``), which
#: the chart creates in its namespace when a pool shares its GPUs.
DEVICE_PLUGIN_CONFIG_MAP = "eks-ultraserver-device-plugin-config"
#: Characters of a ConfigMap key that is also a label value (the config's name).
_CONFIG_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")

#: Values that contradict the EKS AL2023 NVIDIA AMI on P6e-GB200 nodes: (dotted key, the
#: value refused, why, source). Refused in ``addonValues.gpuOperator``.
PLATFORM_CONTRADICTIONS: tuple[tuple[str, bool, str, str], ...] = (
    (
        "driver.enabled",
        True,
        "the AMI already has the NVIDIA driver (580, CDMM); a second driver from the operator "
        "breaks the node",
        "EKS user guide ml-eks-nvidia-ultraserver; amazon-eks-ami #1817",
    ),
    (
        "toolkit.enabled",
        True,
        "the AMI already has the NVIDIA Container Toolkit and configures containerd with it; "
        "the operator's toolkit would rewrite that configuration",
        "EKS user guide ml-eks-nvidia-ultraserver; amazon-eks-ami #1817",
    ),
    (
        "migManager.enabled",
        True,
        "MIG is not supported with CDMM, which driver 580 on the P6e-GB200 AMI runs with",
        "EKS user guide ml-eks-nvidia-ultraserver (AMI v20251103 or later)",
    ),
    (
        "vgpuManager.enabled",
        True,
        "vGPU is not supported with CDMM, which driver 580 on the P6e-GB200 AMI runs with",
        "EKS user guide ml-eks-nvidia-ultraserver (AMI v20251103 or later)",
    ),
)

_VERSION_KEY = "addonVersions.gpuOperator"
_VALUES_KEY = "addonValues.gpuOperator"


@dataclass(frozen=True, kw_only=True, slots=True)
class GpuOperatorValues:
    """The GPU Operator release: chart, version and Helm values.

    Validated when created: a bad combination raises one ``ConfigurationError`` listing
    every problem.

    :param version: the chart version. Default: ``versions.GPU_OPERATOR.version``. A
        version this library does not know (``versions.GPU_OPERATOR_DEVICE_PLUGIN``) is
        refused unless ``extra_values`` say which device plugin to run
        (``{"devicePlugin": {"version": "v0.18.1"}}``), since that is what decides whether
        it conflicts with EFA.
    :param system_node_selector: node labels of the nodes that run controllers (the
        operator, NFD master and NFD garbage collector). Default: not pinned.
    :param system_node_tolerations: tolerations for those controllers. Default: the
        chart's.
    :param with_dra_driver_chart: whether the NVIDIA DRA driver chart is installed next to
        the operator (decides the ComputeDomain CRD check). Default: ``True``.
    :param device_plugin_configs: named NVIDIA device plugin configurations (name -> the
        config as a dict, ``capacity.GpuSharingSpec.device_plugin_config``), written to
        ``devicePlugin.config.data`` as YAML; nodes select one with the
        ``nvidia.com/device-plugin.config`` label. Default: none (``devicePlugin.config``
        left as the chart has it: every node keeps whole GPUs).
    :param extra_values: Helm values deep-merged over the library's. Default: none.
    """

    version: str = GPU_OPERATOR.version
    system_node_selector: Mapping[str, str] | None = None
    system_node_tolerations: Sequence[Mapping[str, Any]] = ()
    with_dra_driver_chart: bool = True
    device_plugin_configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    extra_values: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ConfigurationError(problems, subject="GPU Operator configuration")

    # ----------------------------------------------------------------------------------

    @property
    def chart(self) -> ChartVersion:
        """The pinned chart at ``version``."""
        return with_version(GPU_OPERATOR, self.version)

    @property
    def device_plugin_version(self) -> str:
        """The NVIDIA device plugin the operator deploys: ``devicePlugin.version`` from
        ``extra_values`` if given, else the one the chart version ships."""
        override = _device_plugin_override(self.extra_values)
        if override is not None:
            return override
        return GPU_OPERATOR_DEVICE_PLUGIN[self.version]

    def values(self) -> dict[str, Any]:
        """The Helm values: the library's, with ``extra_values`` deep-merged over them."""
        gpu = gpu_node_toleration()
        ours: dict[str, Any] = {
            # The EKS AMI ships the driver and the container toolkit.
            "driver": {"enabled": False},
            "toolkit": {"enabled": False},
            # CDI off, as in the configuration the EKS guide validated (v25.3.4, CDI off by
            # default there; on by default since v25.10.0): no AWS or NVIDIA page says the
            # operator's CDI mode works with the toolkit left to the AL2023 NVIDIA AMI.
            "cdi": {"enabled": False},
            # GDRCOPY_ENABLED: device plugin v0.19.3+ only hands /dev/gdrdrv (GDRCopy,
            # used by libfabric/aws-ofi-nccl over EFA) to GPU containers with this flag.
            "devicePlugin": {"enabled": True, "env": [dict(GDRCOPY_ENV)]},
            # (devicePlugin.config: below, only when a pool shares its GPUs)
            "nfd": {"enabled": True},
            "gfd": {"enabled": True},
            # CDMM (driver 580 on the EKS AMI) does not support MIG.
            "migManager": {"enabled": False},
            # v26.3 enables the Confidential Computing manager by default (defaultMode on):
            # it is for Kata confidential containers, which this platform does not run.
            "ccManager": {"enabled": False},
            "dcgmExporter": {"enabled": True, "serviceMonitor": {"enabled": False}},
            # Operands (device plugin, GFD, DCGM exporter, validator) run on GPU nodes.
            "daemonsets": {"tolerations": [gpu]},
            "node-feature-discovery": {"worker": {"tolerations": [gpu]}},
        }
        if self.device_plugin_configs:
            # One named config per sharing setting; no default, so nodes without the
            # nvidia.com/device-plugin.config label (UltraServers) keep whole GPUs.
            ours["devicePlugin"]["config"] = {
                "create": True,
                "name": DEVICE_PLUGIN_CONFIG_MAP,
                "data": {
                    name: device_plugin_config_yaml(config)
                    for name, config in sorted(self.device_plugin_configs.items())
                },
            }
        selector = dict(self.system_node_selector or {})
        if selector:
            # v25.x values declare operator.affinity but not operator.nodeSelector (added
            # in v26.7.0): a required node affinity pins the operator in every version.
            # null removes the chart's preference for control-plane nodes (none on EKS).
            affinity = node_affinity_for(selector)
            affinity["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] = None
            ours["operator"] = {"affinity": affinity}
            nfd = ours["node-feature-discovery"]
            nfd["master"] = {"nodeSelector": selector}
            nfd["gc"] = {"nodeSelector": selector}
        if self.system_node_tolerations:
            tolerations = [dict(t) for t in self.system_node_tolerations]
            ours.setdefault("operator", {})["tolerations"] = tolerations
            nfd = ours["node-feature-discovery"]
            nfd.setdefault("master", {})["tolerations"] = tolerations
            nfd.setdefault("gc", {})["tolerations"] = tolerations
        return deep_merge(ours, self.extra_values)

    # ----------------------------------------------------------------------------------

    def _problems(self) -> list[str]:
        problems: list[str] = []
        problems += values_problems(_VALUES_KEY, self.extra_values)
        problems += contradiction_problems(_VALUES_KEY, self.extra_values, PLATFORM_CONTRADICTIONS)
        problems += label_selector_problems("system_node_selector", self.system_node_selector)
        problems += tolerations_problems("system_node_tolerations", self.system_node_tolerations)
        problems += self._device_plugin_config_problems()
        version = parse_version(self.version)
        known = ", ".join(GPU_OPERATOR_DEVICE_PLUGIN)
        if version is None:
            problems.append(
                f"{_VERSION_KEY}: {self.version!r} is not a chart version like {GPU_OPERATOR.version!r}"
            )
            return problems
        if version < MIN_VERSION:
            problems.append(
                f"{_VERSION_KEY}: {self.version!r} is older than v25.3.4, the oldest GPU "
                f"Operator the EKS P6e-GB200 guide supports; use {GPU_OPERATOR.version!r}"
            )
        if version >= COMPUTE_DOMAIN_CRD_SINCE and self.with_dra_driver_chart:
            problems.append(
                f"{_VERSION_KEY}: {self.version!r} ships the ComputeDomain CRD "
                "(resource.nvidia.com) in its own chart, which clashes with the NVIDIA DRA "
                "driver chart's CRD, and its values have no key to leave that CRD out; use "
                f"a GPU Operator before v26.7.0 (pinned: {GPU_OPERATOR.version!r}), e.g. "
                f'-c addonVersions=\'{{"gpuOperator":"{GPU_OPERATOR.version}"}}\''
            )
        override = _device_plugin_override(self.extra_values)
        if override is None and self.version not in GPU_OPERATOR_DEVICE_PLUGIN:
            problems.append(
                f"{_VERSION_KEY}: {self.version!r} is a GPU Operator version whose NVIDIA "
                f"device plugin this library does not know (known: {known}), and device "
                "plugin v0.19.0-v0.19.2 takes the EFA devices; say which device plugin it "
                f"must run with {_VALUES_KEY}.devicePlugin.version, e.g. -c addonValues="
                '\'{"gpuOperator":{"devicePlugin":{"version":"v0.19.3"}}}\''
            )
            return problems
        plugin = override if override is not None else GPU_OPERATOR_DEVICE_PLUGIN[self.version]
        parsed = parse_version(plugin)
        where = f"{_VALUES_KEY}.devicePlugin.version" if override is not None else _VERSION_KEY
        if parsed is None:
            problems.append(f"{where}: device plugin {plugin!r} is not a version like 'v0.18.1'")
        elif parsed in BAD_DEVICE_PLUGINS:
            problems.append(
                f"{where}: GPU Operator {self.version} would run NVIDIA device plugin "
                f"{plugin}; v0.19.0-v0.19.2 mount every /dev/infiniband/uverbs device "
                "(MOFED on by default) and take the EFA devices from the EFA device plugin "
                "or DRANET (NVIDIA/k8s-device-plugin #1692); use device plugin v0.19.3 or "
                f"later, or v0.18.x (GPU Operator {GPU_OPERATOR.version} ships "
                f"{GPU_OPERATOR_DEVICE_PLUGIN[GPU_OPERATOR.version]})"
            )
        return problems

    def _device_plugin_config_problems(self) -> list[str]:
        given: object = self.device_plugin_configs
        if not isinstance(given, Mapping):
            return [f"device_plugin_configs: {given!r} is not a mapping of config names to configs"]
        configs: Mapping[object, object] = given
        out: list[str] = []
        for name, config in configs.items():
            if (
                not isinstance(name, str)
                or not 1 <= len(name) <= 63
                or not set(name) <= _CONFIG_NAME_CHARS
                or not name[0].isalnum()
                or not name[-1].isalnum()
            ):
                out.append(
                    f"device_plugin_configs: {name!r} is not a config name of at most 63 "
                    "lowercase letters, digits and '-' (a ConfigMap key and the value of the "
                    "nvidia.com/device-plugin.config node label)"
                )
            if not isinstance(config, Mapping) or config.get("version") != "v1":
                out.append(
                    f"device_plugin_configs[{name!r}]: {config!r} is not a device plugin config "
                    "with version 'v1'"
                )
        plugin = self.extra_values.get("devicePlugin") if isinstance(self.extra_values, Mapping) else None
        if configs and isinstance(plugin, Mapping) and "config" in plugin:
            out.append(
                f"{_VALUES_KEY}.devicePlugin.config: {plugin['config']!r} would replace the "
                f"device plugin configurations of the pools that share GPUs ({', '.join(sorted(map(str, configs)))}); "
                "leave it unset and set sharing on the pools (reservedCapacity[].sharing, "
                "burstCapacity.sharing)"
            )
        return out


def device_plugin_config_yaml(config: Mapping[str, Any]) -> str:
    """A device plugin configuration as the YAML text of a ConfigMap value, keys in the
    order given (``version`` first)."""
    return yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=False)


def _truthy(value: object) -> bool | None:
    """How Helm's templates read a boolean value: ``True``/``False``, or the strings
    ``"true"``/``"false"`` that ``-c`` JSON may carry; ``None`` for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def contradiction_problems(
    where: str,
    extra_values: Mapping[str, Any] | None,
    contradictions: Sequence[tuple[str, bool, str, str]],
) -> list[str]:
    """One problem per (dotted key, refused value, why, source) that ``extra_values`` sets
    to the refused value, naming ``where.<key>``, the value given, the reason and source."""
    out: list[str] = []
    if not isinstance(extra_values, Mapping):
        return out
    for key, refused, why, source in contradictions:
        node: Any = extra_values
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None and _truthy(node) is refused:
            out.append(f"{where}.{key}: {node!r} contradicts the platform: {why} ({source}); leave it unset")
    return out


def _device_plugin_override(extra_values: Mapping[str, Any] | None) -> str | None:
    """``devicePlugin.version`` from user values, if given."""
    if not isinstance(extra_values, Mapping):
        return None
    plugin = extra_values.get("devicePlugin")
    if isinstance(plugin, Mapping) and plugin.get("version") is not None:
        return str(plugin["version"])
    return None
