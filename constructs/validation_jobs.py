"""The validation jobs an ``UltraServerEnvironment`` deploys with ``validation_jobs``: the
IMEX channel check and the nvbandwidth job of each UltraServer, the same charts
``python -m eks_ultraserver manifests`` writes (charts/manifests.py), one Kubernetes
manifest per chart.

Why they cannot block a stack update or delete:

- each manifest waits for the add-ons (the CRDs) and for the node group of the UltraServer
  it checks (in its nested stack), so it is never applied to a cluster that has no such
  nodes yet;
- the checks are a Job and an MPIJob that delete themselves a day after they finish
  (``ttlSecondsAfterFinished``), never bare pods;
- every object name, and the manifest's construct id, ends in a digest of the chart's
  content: a changed check is a new manifest resource with new objects (CloudFormation
  creates it, then deletes the old one, whose ``kubectl delete`` ignores objects already
  gone), never an in-place update of an immutable ComputeDomain or Job spec;
- ``overwrite``: creating applies, so objects already applied from the exported
  ``validation/`` directory (same names) are adopted rather than failing the create.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from aws_cdk import aws_eks_v2 as eks

from constructs import IDependable
from eks_ultraserver.config import AddonsConfig, EnvironmentConfig, UltraServerSpec
from eks_ultraserver.model import EfaLayout


@dataclass(frozen=True, kw_only=True, slots=True)
class ValidationTargets:
    """What the validation charts read of an environment: its UltraServers (an IMEX channel
    check and an nvbandwidth job each, on the nodes labelled with its name), their EFA
    layout, and the add-ons (which DRA driver line and version accepts the ComputeDomains).

    ``charts.manifests.validation_charts`` is typed for an ``EnvironmentConfig`` and reads
    exactly these three of its attributes (``UltraServerTarget.from_config``,
    ``DraDriverTarget.from_addons``). The environment passes this object rather than
    assemble a partial configuration from its arguments: a chart that began to read
    anything else would then fail at synth instead of silently seeing a default.
    """

    ultraservers: tuple[UltraServerSpec, ...]
    efa_layout: EfaLayout
    addons: AddonsConfig


def validation_manifests(
    cluster: eks.Cluster,
    targets: ValidationTargets,
    *,
    addons_ready: IDependable,
    nodegroups: Mapping[str, IDependable],
) -> list[eks.KubernetesManifest]:
    """One ``KubernetesManifest`` per validation chart (a child of ``cluster``, its
    construct id the chart's name), each after ``addons_ready`` (the ComputeDomain and
    MPIJob CRDs come with the DRA driver and the MPI operator) and after the node group,
    in ``nodegroups`` by UltraServer name, of each UltraServer it runs on."""
    import cdk8s

    from eks_ultraserver.charts.manifests import validation_charts

    manifests = []
    # (casts: ValidationTargets has what the charts read, see above; aws_eks_v2.Cluster is
    # an ICluster whose Python stub lacks ICluster's kubectl_provider_options property)
    for chart in validation_charts(cdk8s.App(), cast(EnvironmentConfig, targets)):
        manifest = eks.KubernetesManifest(
            cluster,
            chart.node.id,
            cluster=cast(eks.ICluster, cluster),
            manifest=chart.to_json(),
            overwrite=True,
        )
        manifest.node.add_dependency(addons_ready)
        for target in getattr(chart, "ultraservers", ()):
            manifest.node.add_dependency(nodegroups[target.name])
        manifests.append(manifest)
    return manifests
