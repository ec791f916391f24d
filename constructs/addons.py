"""``GpuPlatformAddons``: the NVIDIA and AWS node components an UltraServer needs.

The EKS AMI has the GPU driver, IMEX and the EFA driver, but Kubernetes sees neither GPUs,
NVLink domains nor EFA devices until these are installed (EKS user guide,
ml-eks-nvidia-ultraserver, "Components"):

1. NVIDIA GPU Operator (device plugin, NFD, GPU Feature Discovery, DCGM exporter), without
   its driver and toolkit;
2. NVIDIA DRA driver (ComputeDomains, IMEX channels), after the GPU Operator;
3. the AWS EFA device plugin, or DRANET (the EFA DRA driver) on Kubernetes 1.34+; never
   both;
4. the Kubeflow MPI operator, from a chart generated at synth time (see
   ``eks_ultraserver/helm/mpi_operator.py`` for why).

Each is one ``aws_eks_v2.HelmChart``; the values come from the builders in ``charts/``.
Values are passed as a JSON string (a property override of the custom resource): the
jsii runtime drops ``None`` inside ``values`` in Python, and the DRA driver needs real
``null`` values to remove its control-plane scheduling defaults (aws-eks-v2 README, "Helm
Charts").
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import Annotations, CfnResource, Token
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_s3_assets as s3_assets

from constructs import Construct, DependencyGroup
from eks_ultraserver.config import AddonsConfig, DraDriverLine, EfaMode
from eks_ultraserver.helm.dra_driver import DraDriverValues
from eks_ultraserver.helm.efa import DranetValues, EfaDevicePluginValues
from eks_ultraserver.helm.gpu_operator import GpuOperatorValues
from eks_ultraserver.helm.mpi_operator import (
    MpiOperatorChart,
    MpiOperatorRelease,
    MpiOperatorValues,
    load_manifest,
    write_chart,
)
from eks_ultraserver.model import ConfigurationError, Problems
from eks_ultraserver.versions import (
    GPU_OPERATOR,
    MIN_KUBERNETES,
    MPI_OPERATOR,
    ChartVersion,
    KubernetesVersion,
)

__all__ = ["AddonsPlan", "GpuPlatformAddons"]

#: cx-api DISABLE_ASSET_STAGING_CONTEXT, set by ``cdk synth --no-staging``.
_DISABLE_ASSET_STAGING = "aws:cdk:disable-asset-staging"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class AddonsPlan:
    """What ``GpuPlatformAddons.plan`` validated and built: values per component and the
    generated MPI operator chart."""

    gpu: GpuOperatorValues
    dra: DraDriverValues
    efa: EfaDevicePluginValues | DranetValues
    efa_mode: EfaMode
    mpi_chart: MpiOperatorChart
    values: dict[str, dict[str, Any]]


class GpuPlatformAddons(Construct):
    """GPU Operator, NVIDIA DRA driver, EFA device plugin or DRANET, and MPI operator.

    All arguments after ``id`` are keyword-only. Bad input raises one
    ``ConfigurationError`` listing every problem, before anything is added to the tree.

    :param cluster: the ``aws_eks_v2`` cluster, created with a kubectl provider
        (``kubectl_provider_options``); Helm releases are installed through it.
    :param addons: chart line, EFA mode, version and value overrides
        (``config.AddonsConfig``; from cdk.json: ``draDriverLine``, ``efaMode``,
        ``addonVersions``, ``addonValues``, ``mpiOperatorManifest``). Default:
        ``AddonsConfig()`` (kubernetes-sigs DRA chart, EFA device plugin, pinned versions).
    :param kubernetes_version: the cluster's Kubernetes version (DRANET needs 1.34+).
    :param system_node_selector: node labels of the system nodes; controllers (GPU
        Operator, NFD master and GC, DRA controller, MPI operator) are pinned to them, e.g.
        ``{model.SYSTEM_NODE_LABEL: model.SYSTEM_NODE_LABEL_VALUE}``. Default: controllers
        are not pinned (the GPU nodes' taint still keeps them off UltraServers).
    :param system_node_tolerations: tolerations the controllers need to run on the system
        nodes (if those are tainted). Default: none.
    :param mpi_operator_manifest: a local copy of the MPI operator release manifest; its
        SHA-256 must match the pin. Default: ``addons.mpi_operator_manifest``, else
        ``$EKS_ULTRASERVER_MPI_OPERATOR_MANIFEST``, else the copy that ships with the
        library. The chart generated from it goes to a temporary directory (no cache).
    :param device_plugin_configs: named NVIDIA device plugin configurations for the pools
        that share GPUs (``capacity.GpuSharingSpec.config_name`` ->
        ``device_plugin_config()``), given to the GPU Operator as ``devicePlugin.config``;
        nodes select one with the ``nvidia.com/device-plugin.config`` label. Default: none
        (whole GPUs everywhere; the GPU Operator values stay as without sharing).

    Attributes: ``gpu_operator``, ``dra_driver``, ``efa`` (the EFA device plugin or
    DRANET release), ``mpi_operator`` (``aws_eks_v2.HelmChart``); ``charts`` (component key
    -> HelmChart); ``releases`` (component key -> ``ChartVersion`` installed); ``values``
    (component key -> Helm values); ``ready``, a dependable for workloads that need every
    add-on installed (``workload.node.add_dependency(addons.ready)``).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: eks.ICluster,
        addons: AddonsConfig | None = None,
        kubernetes_version: str,
        system_node_selector: Mapping[str, str] | None = None,
        system_node_tolerations: Sequence[Mapping[str, Any]] = (),
        mpi_operator_manifest: str | os.PathLike[str] | None = None,
        device_plugin_configs: Mapping[str, Mapping[str, Any]] | None = None,
        plan: AddonsPlan | None = None,
    ) -> None:
        # Validate (and build every values tree) before creating anything.
        if plan is None:
            plan = GpuPlatformAddons.plan(
                addons=addons,
                kubernetes_version=kubernetes_version,
                system_node_selector=system_node_selector,
                system_node_tolerations=system_node_tolerations,
                mpi_operator_manifest=mpi_operator_manifest,
                device_plugin_configs=device_plugin_configs,
                id=id,
            )
        gpu, dra, efa, efa_mode = plan.gpu, plan.dra, plan.efa, plan.efa_mode
        mpi_chart, built = plan.mpi_chart, plan.values

        super().__init__(scope, id)
        self._cluster = cluster
        self.values: dict[str, dict[str, Any]] = built
        self.releases: dict[str, ChartVersion] = {}
        self.charts: dict[str, eks.HelmChart] = {}
        self.dra_driver_line: DraDriverLine = dra.line
        self.efa_mode: EfaMode = efa_mode
        self.mpi_operator_chart: MpiOperatorChart = mpi_chart

        self.gpu_operator = self._helm("gpuOperator", "GpuOperator", gpu.chart)
        self.dra_driver = self._helm("draDriver", "DraDriver", dra.chart)
        # The DRA driver's kubelet plugin needs GPU Feature Discovery's clique labels;
        # install it once the GPU Operator release exists (EKS guide order).
        self.dra_driver.node.add_dependency(self.gpu_operator)
        efa_key = "efaDevicePlugin" if efa_mode is EfaMode.DEVICE_PLUGIN else "dranet"
        self.efa = self._helm(
            efa_key, "EfaDevicePlugin" if efa_key == "efaDevicePlugin" else "Dranet", efa.chart
        )
        self.mpi_operator = self._mpi_operator(mpi_chart)

        self.ready = DependencyGroup()
        for chart in self.charts.values():
            self.ready.add(chart)

    @staticmethod
    def plan(
        *,
        addons: AddonsConfig | None = None,
        kubernetes_version: str,
        system_node_selector: Mapping[str, str] | None = None,
        system_node_tolerations: Sequence[Mapping[str, Any]] = (),
        mpi_operator_manifest: str | os.PathLike[str] | None = None,
        device_plugin_configs: Mapping[str, Mapping[str, Any]] | None = None,
        id: str = "GpuPlatformAddons",
    ) -> AddonsPlan:
        """Validates the arguments and builds every values tree and the MPI operator chart,
        without creating any construct; raises one ``ConfigurationError`` listing every
        problem. ``UltraServerEnvironment`` calls it before it builds anything, then passes
        the plan to the constructor.
        """
        problems = Problems()
        # The AddonsConfig checked its own fields (line, mode, component keys, no settings
        # for the EFA component the mode leaves out) when it was built: trust it.
        addons = addons if addons is not None else AddonsConfig()
        if not isinstance(addons, AddonsConfig):
            raise ConfigurationError(
                [f"addons: {addons!r} is not a config.AddonsConfig"], subject=f"GpuPlatformAddons {id!r}"
            )
        line, efa_mode = addons.dra_driver_line, addons.efa_mode
        versions = dict(addons.versions)
        values = dict(addons.values)
        version = KubernetesVersion.of(kubernetes_version)
        if version is None:
            problems.add(
                f"kubernetes_version: {kubernetes_version!r} is not a Kubernetes version like '1.35'"
            )
        elif version < MIN_KUBERNETES:
            problems.add(
                f"kubernetes_version: {kubernetes_version!r} is too old; DRA (ComputeDomains) "
                f"needs Kubernetes {MIN_KUBERNETES} or later on EKS"
            )

        def build(factory):
            try:
                return factory()
            except ConfigurationError as err:
                problems.extend(err.problems)
                return None

        gpu = build(
            lambda: GpuOperatorValues(
                version=versions.get("gpuOperator", GPU_OPERATOR.version),
                with_dra_driver_chart=True,
                device_plugin_configs=dict(device_plugin_configs or {}),
                extra_values=values.get("gpuOperator", {}),
                system_node_selector=system_node_selector,
                system_node_tolerations=system_node_tolerations,
            )
        )
        dra = build(
            lambda: DraDriverValues(
                line=line,
                version=versions.get("draDriver"),
                extra_values=values.get("draDriver", {}),
                system_node_selector=system_node_selector,
                system_node_tolerations=system_node_tolerations,
            )
        )
        efa: EfaDevicePluginValues | DranetValues | None = None
        if efa_mode is EfaMode.DEVICE_PLUGIN:
            efa = build(
                lambda: EfaDevicePluginValues(
                    extra_values=values.get("efaDevicePlugin", {}),
                    **({"version": versions["efaDevicePlugin"]} if "efaDevicePlugin" in versions else {}),
                )
            )
        else:
            efa = build(
                lambda: DranetValues(
                    kubernetes_version=kubernetes_version,
                    extra_values=values.get("dranet", {}),
                    **({"version": versions["dranet"]} if "dranet" in versions else {}),
                )
            )
        mpi_values = build(
            lambda: MpiOperatorValues(
                extra_values=values.get("mpiOperator", {}),
                system_node_selector=system_node_selector,
                system_node_tolerations=system_node_tolerations,
            )
        )
        mpi_chart: MpiOperatorChart | None = None
        release = build(lambda: MpiOperatorRelease.resolve(versions.get("mpiOperator")))
        if release is not None:
            manifest = build(
                lambda: load_manifest(
                    release, local_path=mpi_operator_manifest or addons.mpi_operator_manifest
                )
            )
            if manifest is not None:
                mpi_chart = build(lambda: write_chart(manifest, release))

        built: dict[str, dict[str, Any]] = {}
        if gpu is not None:
            built["gpuOperator"] = gpu.values()
        if dra is not None:
            built["draDriver"] = dra.values()
        if efa is not None:
            built["efaDevicePlugin" if isinstance(efa, EfaDevicePluginValues) else "dranet"] = efa.values()
        if mpi_values is not None:
            built["mpiOperator"] = mpi_values.values()
        for component, tree in built.items():
            for path in _tokens_in(tree, f"addonValues.{component}"):
                problems.add(
                    f"{path}: CDK tokens are not supported in add-on values (they are passed to "
                    "Helm as JSON text); give plain values"
                )
        if problems:
            # Several builders check the same argument (the selector): report it once.
            raise ConfigurationError(dict.fromkeys(problems), subject=f"GpuPlatformAddons {id!r}")
        assert gpu and dra and efa and mpi_chart and release and efa_mode  # for type checkers
        return AddonsPlan(gpu=gpu, dra=dra, efa=efa, efa_mode=efa_mode, mpi_chart=mpi_chart, values=built)

    # ----------------------------------------------------------------------------------

    def _set_values(self, chart: eks.HelmChart, values: dict[str, Any]) -> None:
        resource = chart.node.find_child("Resource").node.default_child
        assert isinstance(resource, CfnResource)
        resource.add_property_override("Values", json.dumps(values, sort_keys=True, separators=(",", ":")))

    def _helm(self, key: str, id: str, chart: ChartVersion) -> eks.HelmChart:
        helm = eks.HelmChart(
            self,
            id,
            cluster=self._cluster,
            chart=chart.chart,
            repository=chart.helm_repository,
            version=chart.version,
            release=chart.release,
            namespace=chart.namespace,
            create_namespace=True,
        )
        self._set_values(helm, self.values[key])
        self.releases[key] = chart
        self.charts[key] = helm
        return helm

    def _mpi_operator(self, chart: MpiOperatorChart) -> eks.HelmChart:
        if self.node.try_get_context(_DISABLE_ASSET_STAGING):
            # The chart lives in a temporary directory removed when synth's process exits;
            # without staging the cloud assembly points there instead of at a copy.
            Annotations.of(self).add_warning_v2(
                "eks-ultraserver:mpi-operator-chart-not-staged",
                "Asset staging is disabled (cdk synth --no-staging): the MPI operator chart "
                f"asset refers to {chart.path}, a temporary directory deleted when synth "
                "ends, so this cloud assembly cannot be deployed; synthesize with staging "
                "to deploy.",
            )
        asset = s3_assets.Asset(self, "MpiOperatorChart", path=str(chart.path))
        helm = eks.HelmChart(
            self,
            "MpiOperator",
            cluster=self._cluster,
            chart_asset=asset,
            release="mpi-operator",
            namespace=chart.namespace,
            create_namespace=True,
        )
        self._set_values(helm, self.values["mpiOperator"])
        self.releases["mpiOperator"] = (
            MPI_OPERATOR
            if chart.release.version == MPI_OPERATOR.version
            else dataclasses.replace(
                MPI_OPERATOR,
                version=chart.release.version,
                app_version=chart.release.version,
                repository=chart.release.url,
                sha256=chart.release.sha256,
            )
        )
        self.charts["mpiOperator"] = helm
        return helm


def _tokens_in(value: Any, path: str) -> list[str]:
    """Paths of unresolved CDK tokens in a values tree."""
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if Token.is_unresolved(k):
                out.append(f"{path}.<key>")
            out += _tokens_in(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _tokens_in(v, f"{path}[{i}]")
    elif isinstance(value, (str, int, float)) and not isinstance(value, bool) and Token.is_unresolved(value):
        out.append(path)
    return out
