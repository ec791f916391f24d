"""Helm values of the optional NVIDIA Run:ai cluster component and its Prometheus stack.

``runai-cluster`` (NGC ``runai-oss``): the values the Run:ai install command sets
(``controlPlane.url``, ``controlPlane.clientSecret``, ``cluster.uid``, ``cluster.url``;
Run:ai docs "Install the Cluster", and the v2.20 page in the run-ai/docs repository, file
admin/runai-setup/cluster-setup/cluster-install.md of its docs folder), plus
``global.affinity``: Run:ai's system services by default only *prefer* nodes labelled
``node-role.kubernetes.io/runai-system`` (Run:ai docs "Node Roles", "System Nodes";
``global.affinity`` is a Helm-only setting, "Advanced Cluster Configurations"), so the
library makes them *require* the environment's system nodes instead.

``controlPlane.clientSecret`` is a CloudFormation dynamic reference
(``RunAiConfig.client_secret_reference``), never the secret: CloudFormation resolves it at
deploy time (docs/runai.md, "The client secret").

``kube-prometheus-stack``: the Prometheus Operator Run:ai requires on every cluster (Run:ai
docs "Prerequisites and Features"), installed as NVIDIA's reference architecture does it
(release ``prometheus`` in ``monitoring``, Grafana off), with its controllers on the system
nodes. The node exporter DaemonSet keeps the chart's defaults (it runs on every node).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eks_ultraserver.helm.values import node_affinity_for
from eks_ultraserver.runai_config import RunAiConfig

__all__ = ["kube_prometheus_stack_values", "runai_cluster_values"]


def runai_cluster_values(
    config: RunAiConfig, *, system_node_selector: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The ``runai-cluster`` release values: the control plane connection (the client
    secret by dynamic reference only) and, with a selector, the system-node affinity."""
    values: dict[str, Any] = {
        "controlPlane": {
            "url": config.control_plane_url,
            "clientSecret": config.client_secret_reference,
        },
        "cluster": {"uid": config.cluster_uid, "url": config.cluster_url},
    }
    if system_node_selector:
        values["global"] = {"affinity": node_affinity_for(system_node_selector)}
    return values


def kube_prometheus_stack_values(*, system_node_selector: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``kube-prometheus-stack`` release values: Grafana off (Run:ai's dashboards live
    in its control plane), operator, Prometheus, Alertmanager and kube-state-metrics on the
    system nodes."""
    values: dict[str, Any] = {"grafana": {"enabled": False}}
    if system_node_selector:
        selector = dict(sorted(system_node_selector.items()))
        values |= {
            "prometheusOperator": {
                "nodeSelector": selector,
                "admissionWebhooks": {"patch": {"nodeSelector": selector}},
            },
            "prometheus": {"prometheusSpec": {"nodeSelector": selector}},
            "alertmanager": {"alertmanagerSpec": {"nodeSelector": selector}},
            "kube-state-metrics": {"nodeSelector": selector},
        }
    return values
