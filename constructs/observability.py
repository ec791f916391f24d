"""``GpuObservability``: GPU and EFA metrics in CloudWatch, a dashboard and alarms.

What it deploys, and where each fact comes from:

- the EKS managed add-on ``amazon-cloudwatch-observability`` (Container Insights with
  enhanced observability). Its CloudWatch agent publishes the ``ContainerInsights`` metrics
  used below; its own NVIDIA DCGM exporter (the add-on's ``DcgmExporter``, whose node
  affinity lists ``p6e-gb200.36xlarge``) feeds the GPU metrics. IAM through EKS Pod
  Identity: the ``cloudwatch-agent`` service account gets a role with
  ``CloudWatchAgentServerPolicy`` (CloudWatch user guide, "Quick start with the Amazon
  CloudWatch Observability EKS add-on": Pod Identity from add-on v3.1.0). Tolerations: the
  add-on's chart tolerates every taint by default (``tolerations: [{operator: Exists}]``,
  aws-observability/helm-charts values.yaml); the configuration sets that explicitly so the
  agent, Fluent Bit and the DCGM exporter keep running on the GPU nodes
  (``nvidia.com/gpu=true:NoSchedule``) whatever a later chart default is;
- a CloudWatch dashboard. Container Insights publishes GPU metrics (``node_gpu_*``) and EFA
  metrics (``node_efa_*``) with the dimensions ``ClusterName`` and ``ClusterName,
  InstanceId, NodeName`` (and per device), never per node group (CloudWatch user guide,
  "Amazon EKS and Kubernetes Container Insights with enhanced observability metrics": only
  the Neuron metrics have an ``UltraServer`` dimension). So the GPU and EFA widgets are
  cluster-wide, and a text widget says so. What is per UltraServer comes from EC2: the
  ``AWS/EC2CapacityReservations`` metrics of its Capacity Block
  (``UsedInstanceCount``, ``AvailableInstanceCount``, dimension ``CapacityReservationId``).
  The node group's Auto Scaling group is not a CloudFormation attribute of
  ``AWS::EKS::Nodegroup`` (its return values are Arn, ClusterName, Id, NodegroupName) and
  EKS does not enable the group metrics (``GroupInServiceInstances``) of it, so those are
  not used. The time left in a Capacity Block is no CloudWatch metric: the dashboard says
  where to read it instead of showing an empty widget;
- alarms to the notification topic: one per UltraServer when instances of its Capacity Block
  are missing (``AvailableInstanceCount`` >= 1 for ``missing_nodes_minutes``), and one for
  NVIDIA XID errors: Container Insights has no XID metric, so a metric filter counts the
  kernel's ``NVRM: Xid`` lines in the host log group that the add-on's Fluent Bit writes
  (``/aws/containerinsights/<cluster>/host``, kernel messages from the journal).

The GPU Operator also runs a DCGM exporter (its own pods on port 9400; the add-on's has a
ClusterIP service, no host port). Container Insights reads only the add-on's, so that one is
kept; docs/observability.md says how to turn the GPU Operator's off when nothing scrapes it.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns

from constructs import Construct, IDependable
from eks_ultraserver.constructs.nag import suppress
from eks_ultraserver.model import Problems
from eks_ultraserver.versions import CLOUDWATCH_OBSERVABILITY_ADDON

__all__ = [
    "ADDON_NAME",
    "CAPACITY_RESERVATIONS",
    "CONTAINER_INSIGHTS",
    "DOCUMENTED_METRICS",
    "GPU_TOLERATION",
    "MAX_ULTRASERVER_WIDGETS",
    "SERVICE_ACCOUNT",
    "XID_FILTER_PATTERN",
    "GpuObservability",
    "UltraServerTarget",
]

ADDON_NAME = "amazon-cloudwatch-observability"
#: The add-on's namespace and the service account of its CloudWatch agent.
NAMESPACE = "amazon-cloudwatch"
SERVICE_ACCOUNT = "cloudwatch-agent"
#: The taint of the GPU nodes (gpu_nodegroup.py), which the add-on's pods must tolerate.
GPU_TOLERATION = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}

CONTAINER_INSIGHTS = "ContainerInsights"
CAPACITY_RESERVATIONS = "AWS/EC2CapacityReservations"
#: The metrics the dashboard and alarms may use, by namespace, as the AWS pages list them
#: (Container Insights enhanced observability metrics for EKS; EC2 user guide, Capacity
#: Reservation CloudWatch metrics). tests/test_observability.py checks every widget against it.
DOCUMENTED_METRICS: dict[str, frozenset[str]] = {
    CONTAINER_INSIGHTS: frozenset(
        {
            "cluster_node_count",
            "cluster_failed_node_count",
            "node_gpu_utilization",
            "node_gpu_memory_utilization",
            "node_gpu_temperature",
            "node_gpu_power_draw",
            "node_efa_rx_bytes",
            "node_efa_tx_bytes",
            "node_efa_rx_dropped",
        }
    ),
    CAPACITY_RESERVATIONS: frozenset(
        {"UsedInstanceCount", "AvailableInstanceCount", "TotalInstanceCount", "InstanceUtilization"}
    ),
}
#: The metric filter's own metric (namespace ``EksUltraServer/<cluster>``).
XID_METRIC = "GpuXidErrors"
#: The NVIDIA driver logs every XID error as ``NVRM: Xid (PCI:...): <code>, ...`` (NVIDIA
#: "XID Errors" guide); a quoted term matches the phrase anywhere in the log event.
XID_FILTER_PATTERN = '"NVRM: Xid"'
#: One capacity widget per UltraServer up to this many (a dashboard holds at most 500
#: widgets); the alarms cover every UltraServer regardless.
MAX_ULTRASERVER_WIDGETS = 200
#: Alarms in the dashboard's alarm status widget (CloudWatch shows at most 100 there); the
#: XID alarm first, then the missing-nodes alarms in order.
MAX_STATUS_WIDGET_ALARMS = 100

_PERIOD = cdk.Duration.minutes(5)  # EC2 sends Capacity Reservation metrics every 5 minutes


@dataclass(frozen=True, kw_only=True, slots=True)
class UltraServerTarget:
    """One UltraServer as the dashboard and its alarm see it."""

    name: str
    capacity_reservation_id: str
    #: Instances in its Capacity Block (18 for u-p6e-gb200x72, 9 for x36).
    instance_count: int
    #: Where its missing-nodes alarm is created. Default: the ``GpuObservability`` construct.
    #: The environment passes the UltraServer's node group, so the alarm lives in the same
    #: nested stack: one alarm per UltraServer in the parent stack would pass
    #: CloudFormation's 500 resources per template at a few hundred UltraServers.
    alarm_scope: Construct | None = None


class GpuObservability(Construct):
    """The CloudWatch Observability add-on, a dashboard and alarms for the UltraServers.

    All arguments after ``id`` are keyword-only.

    :param cluster: the EKS cluster (its name dimensions every Container Insights metric).
    :param ultraservers: the UltraServers: a capacity widget and a missing-nodes alarm each.
        Default: none (the cluster-wide widgets and the XID alarm only).
    :param topic: the SNS topic the alarms notify (the Capacity Block notifications topic);
        CloudWatch is granted ``sns:Publish`` on it and the use of its KMS key. Default: none;
        the alarms then have no action, and synth warns.
    :param addon_version: the add-on's version. Default:
        ``versions.CLOUDWATCH_OBSERVABILITY_ADDON`` (EKS's default version).
    :param efa_metrics: whether Container Insights can report EFA for these nodes. The AWS
        page lists the EFA device plugin as a prerequisite of the EFA metrics, so pass
        ``False`` with DRANET or without EFA: a text widget then says why instead of an empty
        graph. Default ``True``.
    :param missing_nodes_minutes: how long instances of a Capacity Block must stay unused
        before its alarm fires, a multiple of 5 from 5 to 60. Default 15: longer than nodes
        take to launch when a block starts; see docs/observability.md for the bounded false
        alarm at the end of each block.
    :param after: what the add-on is created after (the Pod Identity agent add-on and the
        system node group). Default: nothing.
    :param dashboard_name: the dashboard's name. Default: generated by CloudFormation.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: eks.ICluster,
        ultraservers: Sequence[UltraServerTarget] = (),
        topic: sns.ITopic | None = None,
        addon_version: str | None = CLOUDWATCH_OBSERVABILITY_ADDON,
        efa_metrics: bool = True,
        missing_nodes_minutes: int = 15,
        after: Sequence[IDependable] = (),
        dashboard_name: str | None = None,
    ) -> None:
        problems = Problems()
        if (
            isinstance(missing_nodes_minutes, bool)
            or not isinstance(missing_nodes_minutes, int)
            or not 5 <= missing_nodes_minutes <= 60
            or missing_nodes_minutes % 5
        ):
            problems.add(
                f"missing_nodes_minutes: {missing_nodes_minutes!r} is not a multiple of 5 from 5 "
                "to 60 (EC2 sends Capacity Reservation metrics every 5 minutes)"
            )
        names = [u.name for u in ultraservers]
        duplicates = sorted(n for n, k in Counter(names).items() if k > 1)  # linear in the fleet
        if duplicates:
            problems.add(f"ultraservers: names {duplicates!r} appear more than once")
        problems.raise_if_any(f"GpuObservability {id!r}")

        super().__init__(scope, id)
        self.cluster_name = cluster.cluster_name
        self.ultraservers = tuple(ultraservers)
        self._addon(cluster, addon_version, after)
        self._xid_metric()
        self._alarms(topic, missing_nodes_minutes)
        self._dashboard(efa_metrics, dashboard_name)

    # ------------------------------------------------------------------ add-on

    def _addon(self, cluster: eks.ICluster, version: str | None, after: Sequence[IDependable]) -> None:
        """The add-on, its agent's role through EKS Pod Identity, and the host log group."""
        self.agent_role = iam.Role(
            self,
            "AgentRole",
            assumed_by=iam.ServicePrincipal("pods.eks.amazonaws.com").with_session_tags(),
            description="CloudWatch agent of the amazon-cloudwatch-observability add-on (eks-ultraserver)",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("CloudWatchAgentServerPolicy")],
        )
        suppress(
            self.agent_role,
            "AwsSolutions-IAM4",
            "The CloudWatch Observability add-on's agent needs CloudWatchAgentServerPolicy (CloudWatch "
            "user guide, install the CloudWatch Observability EKS add-on); AWS maintains it as the "
            "agent gains metrics.",
            ["Policy::arn:<AWS::Partition>:iam::aws:policy/CloudWatchAgentServerPolicy"],
        )
        # Fluent Bit creates the host log group if missing; created here instead, so the XID
        # metric filter has a group to attach to when the stack deploys.
        self.host_log_group = logs.LogGroup(
            self,
            "HostLogs",
            log_group_name=cdk.Fn.join("", ["/aws/containerinsights/", self.cluster_name, "/host"]),
            retention=logs.RetentionDays.ONE_MONTH,
            # The cluster and its nodes go with the stack; a kept group would make a new
            # stack with the same cluster name fail ("already exists").
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.configuration = {"tolerations": [{"operator": "Exists"}]}
        self.addon = eks.CfnAddon(
            self,
            "Addon",
            cluster_name=self.cluster_name,
            addon_name=ADDON_NAME,
            addon_version=version,
            resolve_conflicts="OVERWRITE",
            configuration_values=json.dumps(self.configuration),
            pod_identity_associations=[
                eks.CfnAddon.PodIdentityAssociationProperty(
                    service_account=SERVICE_ACCOUNT, role_arn=self.agent_role.role_arn
                )
            ],
        )
        self.addon.node.add_dependency(self.host_log_group, *after)

    # ------------------------------------------------------------------ metrics

    def _xid_metric(self) -> None:
        """A metric filter counting NVIDIA XID lines in the host log group."""
        self.xid_namespace = cdk.Fn.join("/", ["EksUltraServer", self.cluster_name])
        self.xid_filter = logs.MetricFilter(
            self,
            "XidFilter",
            log_group=self.host_log_group,
            filter_pattern=logs.FilterPattern.literal(XID_FILTER_PATTERN),
            metric_namespace=self.xid_namespace,
            metric_name=XID_METRIC,
            metric_value="1",
            default_value=0,
        )
        self.xid_errors = cloudwatch.Metric(
            namespace=self.xid_namespace, metric_name=XID_METRIC, statistic="Sum", period=_PERIOD
        )

    def _ci(self, name: str, statistic: str, label: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=CONTAINER_INSIGHTS,
            metric_name=name,
            dimensions_map={"ClusterName": self.cluster_name},
            statistic=statistic,
            period=cdk.Duration.minutes(1),
            label=label,
        )

    @staticmethod
    def _block(name: str, reservation_id: str, statistic: str, label: str | None = None) -> cloudwatch.Metric:
        """An EC2 Capacity Reservation metric of one Capacity Block (no label for alarms: a
        label makes CDK write the alarm as a metric-math query)."""
        return cloudwatch.Metric(
            namespace=CAPACITY_RESERVATIONS,
            metric_name=name,
            dimensions_map={"CapacityReservationId": reservation_id},
            statistic=statistic,
            period=_PERIOD,
            label=label,
        )

    # ------------------------------------------------------------------ alarms

    def _missing_nodes_alarm_name(self, u: UltraServerTarget) -> str:
        """``<stack>-<ultraserver>-missing-nodes``: unique in the account and Region (stack
        names are, and UltraServer names are unique in an environment)."""
        return f"{self._stack_name}-{u.name}-missing-nodes"

    @functools.cached_property
    def _stack_name(self) -> str:
        """The stack's name, read once (two jsii round trips, for each of thousands of
        UltraServers otherwise)."""
        return cdk.Stack.of(self).stack_name

    def _alarms(self, topic: sns.ITopic | None, minutes: int) -> None:
        """Missing nodes per UltraServer, XID errors for the cluster; all to ``topic``."""
        if topic is None:
            cdk.Annotations.of(self).add_warning_v2(
                "eks-ultraserver:observability-no-topic",
                "The GPU alarms have no action: no notification topic (notifications=false). "
                "Subscribe to them yourself, e.g. alarm.add_alarm_action(...).",
            )
        else:
            # Alarms publish as cloudwatch.amazonaws.com; for a KMS-encrypted topic,
            # grant_publish also lets that principal use the topic's key (SNS developer
            # guide, sns-key-management).
            topic.grant_publish(iam.ServicePrincipal("cloudwatch.amazonaws.com"))
        periods = minutes // 5
        # Read once, not per UltraServer (each read is a jsii round trip).
        period_seconds = int(_PERIOD.to_seconds())
        actions = [topic.topic_arn] if topic is not None else None
        # One per UltraServer, as the typed L1 with plain values: the L2 Alarm and its Metric
        # cost about 3 ms of synth per UltraServer (measured at 1,000 UltraServers), this
        # about a tenth of it; the template is the same.
        self.missing_nodes_alarms: dict[str, cloudwatch.CfnAlarm] = {
            u.name: cloudwatch.CfnAlarm(
                u.alarm_scope or self,
                "MissingNodesAlarm" if u.alarm_scope is not None else f"MissingNodes-{u.name}",
                # A known name, so the dashboard can list the alarm without a cross-stack
                # reference (a nested stack has at most 200 outputs).
                alarm_name=self._missing_nodes_alarm_name(u),
                # Kept short: one per UltraServer in its nested stack (1 MB per template);
                # docs/observability.md explains the alarm (and its expected firing in the
                # block's last 40 minutes).
                alarm_description=(
                    f"UltraServer {u.name}: Capacity Block {u.capacity_reservation_id} has unused "
                    f"instances (of {u.instance_count}); see docs/observability.md"
                ),
                namespace=CAPACITY_RESERVATIONS,
                metric_name="AvailableInstanceCount",
                dimensions=[{"name": "CapacityReservationId", "value": u.capacity_reservation_id}],
                statistic="Minimum",
                period=period_seconds,
                threshold=1,
                comparison_operator="GreaterThanOrEqualToThreshold",
                evaluation_periods=periods,
                datapoints_to_alarm=periods,
                # No data outside the block's window (nothing to miss then).
                treat_missing_data="notBreaching",
                alarm_actions=actions,
            )
            for u in self.ultraservers
        }
        self.xid_alarm = cloudwatch.Alarm(
            self,
            "GpuXidErrors",
            alarm_description=(
                "NVIDIA XID error(s) in the GPU nodes' kernel log. Find the node and code in "
                "CloudWatch Logs Insights on the cluster's host log group: filter @message like "
                "/NVRM: Xid/; then see NVIDIA's XID catalog for the action (reset, drain, replace)."
            ),
            metric=self.xid_errors,
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        if topic is not None:
            self.xid_alarm.add_alarm_action(cw_actions.SnsAction(topic))
        #: Every alarm: the XID alarm, then one per UltraServer.
        self.alarm_count = 1 + len(self.missing_nodes_alarms)

    def _status_widget_alarms(self) -> list[cloudwatch.IAlarm]:
        """The alarms the dashboard lists (at most ``MAX_STATUS_WIDGET_ALARMS``), by name:
        the missing-nodes alarms live in the UltraServers' nested stacks."""
        listed: list[cloudwatch.IAlarm] = [self.xid_alarm]
        for u in self.ultraservers[: MAX_STATUS_WIDGET_ALARMS - 1]:
            listed.append(
                cloudwatch.Alarm.from_alarm_name(self, f"Listed-{u.name}", self._missing_nodes_alarm_name(u))
            )
        return listed

    # ------------------------------------------------------------------ dashboard

    def _dashboard(self, efa_metrics: bool, name: str | None) -> None:
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=name,
            default_interval=cdk.Duration.hours(3),
        )
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    "# UltraServers\n"
                    "Per UltraServer: instances running in its Capacity Block against its size "
                    "(EC2 Capacity Reservation metrics, every 5 minutes; none outside the block's "
                    "window). GPU and EFA below are **cluster-wide**: Container Insights publishes "
                    "them per cluster and per instance (ClusterName, InstanceId, NodeName), not per "
                    "node group or UltraServer; open an instance in CloudWatch > Container Insights "
                    "for one node. **Time left in a Capacity Block** is no CloudWatch metric: run "
                    "`eks-ultraserver status` (time left per UltraServer) or `eks-ultraserver "
                    "preflight` (end date of each block), or read the "
                    "notifications (the start message gives the end date; a warning comes 40 "
                    "minutes before the end)."
                ),
                width=24,
                height=4,
            )
        )
        shown = self.ultraservers[:MAX_ULTRASERVER_WIDGETS]
        self.dashboard.add_widgets(
            *(
                cloudwatch.GraphWidget(
                    title=f"{u.name} ({u.capacity_reservation_id}): instances running / {u.instance_count}",
                    left=[
                        self._block("UsedInstanceCount", u.capacity_reservation_id, "Maximum", "running"),
                        self._block(
                            "TotalInstanceCount", u.capacity_reservation_id, "Maximum", "in the block"
                        ),
                    ],
                    left_y_axis=cloudwatch.YAxisProps(min=0, max=u.instance_count, show_units=False),
                    left_annotations=[
                        cloudwatch.HorizontalAnnotation(value=u.instance_count, label="expected")
                    ],
                    width=8,
                    height=5,
                )
                for u in shown
            )
        )
        if len(self.ultraservers) > len(shown):
            rest = len(self.ultraservers) - len(shown)
            self.dashboard.add_widgets(
                cloudwatch.TextWidget(
                    markdown=f"{rest} more UltraServers have no widget here (a dashboard holds at "
                    "most 500); their missing-nodes alarms are in the alarm list below.",
                    width=24,
                    height=2,
                )
            )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Nodes in the cluster (Container Insights)",
                left=[
                    self._ci("cluster_node_count", "Maximum", "nodes"),
                    self._ci("cluster_failed_node_count", "Maximum", "failed nodes"),
                ],
                width=8,
                height=6,
            ),
            cloudwatch.GraphWidget(
                title="GPU utilization % (all GPU nodes)",
                left=[
                    self._ci("node_gpu_utilization", "Average", "average"),
                    self._ci("node_gpu_utilization", "Minimum", "lowest"),
                ],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=100),
                width=8,
                height=6,
            ),
            cloudwatch.GraphWidget(
                title="GPU memory utilization % (all GPU nodes)",
                left=[
                    self._ci("node_gpu_memory_utilization", "Average", "average"),
                    self._ci("node_gpu_memory_utilization", "Maximum", "highest"),
                ],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=100),
                width=8,
                height=6,
            ),
            cloudwatch.GraphWidget(
                title="GPU temperature °C and power W (all GPU nodes)",
                left=[
                    self._ci("node_gpu_temperature", "Average", "temperature, average"),
                    self._ci("node_gpu_temperature", "Maximum", "temperature, hottest"),
                ],
                right=[self._ci("node_gpu_power_draw", "Average", "power, average")],
                width=8,
                height=6,
            ),
        )
        if efa_metrics:
            self.dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title="EFA throughput, bytes/s (all nodes)",
                    left=[
                        self._ci("node_efa_rx_bytes", "Sum", "received"),
                        self._ci("node_efa_tx_bytes", "Sum", "sent"),
                    ],
                    right=[self._ci("node_efa_rx_dropped", "Sum", "received and dropped, packets/s")],
                    width=8,
                    height=6,
                )
            )
        else:
            self.dashboard.add_widgets(
                cloudwatch.TextWidget(
                    markdown=(
                        "**EFA throughput: not available here.** Container Insights collects EFA "
                        "metrics with the EFA device plugin installed (its documented "
                        "prerequisite); this environment uses DRANET or no EFA interfaces."
                    ),
                    width=8,
                    height=6,
                )
            )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="NVIDIA XID errors (kernel log lines)",
                left=[self.xid_errors.with_(label="XID lines in the host logs")],
                width=8,
                height=6,
            ),
            cloudwatch.AlarmStatusWidget(
                alarms=self._status_widget_alarms(),
                title="Alarms"
                + (
                    f" (first {MAX_STATUS_WIDGET_ALARMS} of {self.alarm_count})"
                    if self.alarm_count > MAX_STATUS_WIDGET_ALARMS
                    else ""
                ),
                width=8,
                height=6,
            ),
        )
