"""KueueQueuesChart: the Topology, ResourceFlavors, ClusterQueues and LocalQueues of an
environment (Kueue ``kueue.x-k8s.io/v1beta2``, the stored version of Kueue 0.19's CRDs).

What it holds, from the fleet's flavors and the teams' queues (``eks_ultraserver.queues``):

- one ``Topology`` (``ultraserver``) whose levels go from the coarsest EC2 network-node
  layer down to the NVLink domain and the node (``queues.TOPOLOGY_LEVELS``:
  ``topology.k8s.aws/network-node-layer-1``, ``-2``, ``-3``, ``nvidia.com/gpu.clique``,
  ``kubernetes.io/hostname``). Kueue's topology-aware scheduling (TAS) builds its domains
  from these node labels: a node that lacks one of them is not part of any domain, so TAS
  places no pod there (a node GPU Feature Discovery has not labelled with its clique yet is
  left out until it is). A domain is the path of label values from the top: an NVLink
  domain is assumed to sit under one network node of each layer;
- one ``ResourceFlavor`` per flavor: ``nodeLabels`` that select its nodes, the GPU taint's
  toleration (Kueue adds it to the pods it admits there), and ``topologyName`` for the
  UltraServer flavor only (reserved and burst nodes have no NVLink domain across nodes);
- per team: a ``ClusterQueue`` (cohort ``eks-ultraserver``, quotas on ``nvidia.com/gpu``
  per flavor, reclaiming lent GPUs from any workload of the cohort, preempting lower
  priority workloads within the queue; LocalQueues of the team's namespace only) and a
  ``LocalQueue`` of the same name in its namespace, plus that ``Namespace`` unless it is
  ``default``. Without teams: one ``default`` ClusterQueue with every GPU and a LocalQueue
  ``default`` in namespace ``default``.

Only ``nvidia.com/gpu`` is covered: Kueue is configured to leave every other resource to the
kube-scheduler (``helm/kueue.py``). Sources: Kueue docs "Topology Aware Scheduling",
"Cluster Queue", "Resource Flavor"; the v0.19.2 CRDs in ``tests/third_party``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cdk8s

from constructs import Construct
from eks_ultraserver.model import ConfigurationError
from eks_ultraserver.queues import (
    COHORT,
    GPU_RESOURCE,
    TOPOLOGY_LEVELS,
    TOPOLOGY_NAME,
    Flavor,
    QueueSpec,
    default_queue,
    queue_problems,
)
from eks_ultraserver.versions import KUEUE_API_VERSION

__all__ = ["KueueQueuesChart"]

#: The namespace label every namespace carries (Kubernetes sets it).
_NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


class KueueQueuesChart(cdk8s.Chart):
    """Kueue's Topology, flavors and queues for an environment.

    :param flavors: the fleet's flavors by name (``queues.fleet_flavors``).
    :param queues: the teams' queues. Default: none, so one ``default`` queue with every
        GPU of each flavor whose GPUs are known.
    :param create_namespaces: add a ``Namespace`` for each team namespace other than
        ``default``. Default ``True`` (a LocalQueue cannot be created in a missing
        namespace). Deleting the stack, or a team, then deletes that namespace and
        everything in it.
    :raises ConfigurationError: a flavor that does not exist, or quotas over a flavor's GPUs.

    Attributes: ``topology``, ``flavors`` / ``cluster_queues`` / ``local_queues`` (name ->
    ``cdk8s.ApiObject``), ``namespaces``, ``queues`` (the ``QueueSpec`` objects used).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        flavors: Mapping[str, Flavor],
        queues: Sequence[QueueSpec] = (),
        create_namespaces: bool = True,
    ) -> None:
        # only the generated queue (no teams configured) takes LocalQueues of every namespace
        open_to_all = not queues
        queues = tuple(queues) or (default_queue(flavors),)
        problems = queue_problems(queues, flavors)
        if problems:
            raise ConfigurationError(problems, subject=f"KueueQueuesChart {id!r}")
        super().__init__(scope, id)
        self.queues: tuple[QueueSpec, ...] = queues
        self.namespaces: dict[str, cdk8s.ApiObject] = {}
        if create_namespaces:
            for ns in sorted({q.namespace for q in queues} - {"default"}):
                self.namespaces[ns] = cdk8s.ApiObject(
                    self, f"Namespace-{ns}", api_version="v1", kind="Namespace", metadata={"name": ns}
                )
        self.topology: cdk8s.ApiObject | None = None
        if any(f.topology for f in flavors.values()):
            self.topology = self._object(
                "Topology",
                "Topology",
                TOPOLOGY_NAME,
                {"levels": [{"nodeLabel": level} for level in TOPOLOGY_LEVELS]},
            )
        self.flavors = {
            name: self._object(f"Flavor-{name}", "ResourceFlavor", name, self.flavor_spec(flavor))
            for name, flavor in flavors.items()
        }
        self.cluster_queues: dict[str, cdk8s.ApiObject] = {}
        self.local_queues: dict[str, cdk8s.ApiObject] = {}
        for q in queues:
            self.cluster_queues[q.name] = self._object(
                f"ClusterQueue-{q.name}",
                "ClusterQueue",
                q.cluster_queue,
                self.cluster_queue_spec(q, flavors, open_to_all=open_to_all),
            )
            self.local_queues[q.name] = self._object(
                f"LocalQueue-{q.name}",
                "LocalQueue",
                q.local_queue,
                {"clusterQueue": q.cluster_queue},
                namespace=q.namespace,
            )

    @staticmethod
    def flavor_spec(flavor: Flavor) -> dict[str, Any]:
        """A ResourceFlavor's ``spec``."""
        spec: dict[str, Any] = {"nodeLabels": dict(flavor.node_labels), "tolerations": flavor.tolerations}
        if flavor.topology:
            spec["topologyName"] = TOPOLOGY_NAME
        return spec

    @staticmethod
    def cluster_queue_spec(
        queue: QueueSpec, flavors: Mapping[str, Flavor], *, open_to_all: bool = False
    ) -> dict[str, Any]:
        """A ClusterQueue's ``spec``: the team's quotas in the fleet's flavor order (Kueue
        tries flavors in order: UltraServers first); LocalQueues of the team's namespace
        only, or of every namespace with ``open_to_all`` (the generated default queue)."""
        resources = []
        for name in flavors:
            if name not in queue.quotas:
                continue
            quota: dict[str, Any] = {"name": GPU_RESOURCE, "nominalQuota": queue.quotas[name]}
            if name in queue.borrowing_limit:
                quota["borrowingLimit"] = queue.borrowing_limit[name]
            if name in queue.lending_limit:
                quota["lendingLimit"] = queue.lending_limit[name]
            resources.append({"name": name, "resources": [quota]})
        selector: dict[str, Any] = (
            {} if open_to_all else {"matchLabels": {_NAMESPACE_NAME_LABEL: queue.namespace}}
        )
        return {
            "cohortName": COHORT,
            "namespaceSelector": selector,
            "queueingStrategy": "BestEffortFIFO",
            "preemption": {"reclaimWithinCohort": "Any", "withinClusterQueue": "LowerPriority"},
            "resourceGroups": [{"coveredResources": [GPU_RESOURCE], "flavors": resources}],
        }

    def _object(
        self, id: str, kind: str, name: str, spec: dict[str, Any], *, namespace: str | None = None
    ) -> cdk8s.ApiObject:
        metadata = cdk8s.ApiObjectMetadata(name=name, namespace=namespace)
        api_object = cdk8s.ApiObject(self, id, api_version=KUEUE_API_VERSION, kind=kind, metadata=metadata)
        api_object.add_json_patch(cdk8s.JsonPatch.add("/spec", spec))
        return api_object
