"""``KueueQueues``: Kueue, its Topology, the GPU flavors and the teams' queues.

Installed by the same deploy as the GPU platform (docs/queues.md):

1. the Kueue Helm release (``versions.KUEUE``, ``oci://registry.k8s.io/kueue/charts/kueue``,
   namespace ``kueue-system``), values from ``helm/kueue.py``: the controller on the system
   nodes, the MPIJob integration on, quotas on GPUs only. The chart installs Kueue's CRDs.
   It is installed after the MPI operator (``after``): Kueue sets up its MPIJob integration
   when it starts, and the MPIJob CRD must exist then. Helm waits (``--wait``) until the
   controller is ready, so that its webhooks answer before the objects below arrive (Kueue's
   install docs wait the same way; its webhooks validate every Kueue object);
2. the Topology, ResourceFlavors, ClusterQueues, LocalQueues and team Namespaces
   (``charts/kueue.py``), one ``KubernetesManifest`` applied after the release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aws_cdk as cdk
import cdk8s
from aws_cdk import aws_eks_v2 as eks

from constructs import Construct, IDependable
from eks_ultraserver.charts.kueue import KueueQueuesChart
from eks_ultraserver.helm.kueue import KueueValues
from eks_ultraserver.queues import Flavor, QueueSpec

__all__ = ["KueueQueues"]

#: How long Helm waits for the controller (image pull, certificate generation).
HELM_TIMEOUT = cdk.Duration.minutes(10)


class KueueQueues(Construct):
    """Kueue and the environment's queues.

    All arguments after ``id`` are keyword-only. Bad input raises one
    ``ConfigurationError`` before anything is added to the tree.

    :param cluster: the ``aws_eks_v2`` cluster (with a kubectl provider).
    :param flavors: the fleet's flavors by name (``queues.fleet_flavors``).
    :param queues: the teams' queues. Default: none, so one ``default`` queue (LocalQueue
        ``default`` in namespace ``default``) with every GPU.
    :param system_node_selector: node labels of the nodes that run the controller.
        Default: not pinned.
    :param system_node_tolerations: tolerations the controller needs there. Default: none.
    :param configuration: Kueue ``Configuration`` fields merged over the library's.
        Default: none.
    :param extra_values: Helm values merged over the library's. Default: none.
    :param after: what the release waits for: the MPI operator's release (its CRD).
        Default: nothing.

    Attributes: ``helm_chart``, ``manifest`` (the queues), ``chart`` (the cdk8s chart),
    ``values`` (the Helm values).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: eks.ICluster,
        flavors: Mapping[str, Flavor],
        queues: Sequence[QueueSpec] = (),
        system_node_selector: Mapping[str, str] | None = None,
        system_node_tolerations: Sequence[Mapping[str, Any]] = (),
        configuration: Mapping[str, Any] | None = None,
        extra_values: Mapping[str, Any] | None = None,
        after: Sequence[IDependable] = (),
    ) -> None:
        values = KueueValues(
            system_node_selector=system_node_selector,
            system_node_tolerations=system_node_tolerations,
            configuration=configuration or {},
            extra_values=extra_values or {},
        )
        chart = KueueQueuesChart(cdk8s.App(), "kueue-queues", flavors=flavors, queues=queues)
        super().__init__(scope, id)
        self.chart = chart
        self.values: dict[str, Any] = values.values()
        release = values.chart
        self.helm_chart = eks.HelmChart(
            self,
            "Chart",
            cluster=cluster,
            chart=release.chart,
            repository=release.helm_repository,
            version=release.version,
            release=release.release,
            namespace=release.namespace,
            create_namespace=True,
            wait=True,
            timeout=HELM_TIMEOUT,
            values=self.values,
        )
        for dependency in after:
            self.helm_chart.node.add_dependency(dependency)
        self.manifest = eks.KubernetesManifest(
            self,
            "Queues",
            cluster=cluster,
            manifest=chart.to_json(),
            overwrite=True,
        )
        self.manifest.node.add_dependency(self.helm_chart)
