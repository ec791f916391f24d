"""GpuObservability: the CloudWatch Observability add-on, the GPU dashboard and its alarms."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Annotations, Match

from constructs import Construct
from eks_ultraserver.config import EnvironmentConfig
from eks_ultraserver.constructs.observability import (
    ADDON_NAME,
    CAPACITY_RESERVATIONS,
    DOCUMENTED_METRICS,
    GPU_TOLERATION,
    SERVICE_ACCOUNT,
    XID_FILTER_PATTERN,
    GpuObservability,
    UltraServerTarget,
)
from eks_ultraserver.model import ConfigurationError

from conftest import ACCOUNT, REGION, REPO, cfn_lint_errors, synth_environment, template_of

TARGETS = [
    UltraServerTarget(name="us1", capacity_reservation_id="cr-0123456789abcdef0", instance_count=18),
    UltraServerTarget(name="us2", capacity_reservation_id="cr-0fedcba9876543210", instance_count=9),
]


def _build(**kwargs):
    app = cdk.App()
    stack = cdk.Stack(app, "Test", env=cdk.Environment(account=ACCOUNT, region=REGION))
    cluster = eks.Cluster.from_cluster_attributes(stack, "Cluster", cluster_name="gpu")
    if kwargs.pop("with_topic", True):
        key = kms.Key(stack, "Key")
        kwargs["topic"] = sns.Topic(stack, "Topic", master_key=key)
    construct = GpuObservability(stack, "Obs", cluster=cluster, ultraservers=TARGETS, **kwargs)
    return stack, construct, template_of(stack)


@pytest.fixture(scope="module")
def built():
    """GIVEN two UltraServers and a KMS-encrypted topic WHEN synthesized (once per module)."""
    return _build()


def _flatten(value) -> str:
    """A CloudFormation string (plain or Fn::Join) with every non-literal part as TOKEN."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(_flatten(p) if isinstance(p, (str, dict)) and _is_text(p) else "TOKEN" for p in parts)
    return "TOKEN"


def _is_text(part) -> bool:
    return isinstance(part, str) or (isinstance(part, dict) and "Fn::Join" in part)


def _dashboard(template) -> dict:
    (dashboard,) = template.find_resources("AWS::CloudWatch::Dashboard").values()
    return json.loads(_flatten(dashboard["Properties"]["DashboardBody"]))


def _metrics(widget) -> list[tuple[str, str]]:
    """(namespace, metric name) of every metric line of a graph widget (CloudWatch dashboard
    body: ``[namespace, name, dim, value, ..., {options}]``, or ``[".", name, ...]`` repeating
    the previous line's namespace)."""
    found: list[tuple[str, str]] = []
    namespace = ""
    for line in widget["properties"].get("metrics", []):
        fields = [f for f in line if isinstance(f, str)]
        namespace = namespace if fields[0] == "." else fields[0]
        found.append((namespace, fields[1]))
    return found


def _tolerates(tolerations, taint) -> bool:
    """Kubernetes toleration matching (Taints and Tolerations): Exists with no key matches
    every taint; otherwise the key, the value (for Equal) and the effect (when set) match."""
    for t in tolerations:
        if t.get("operator") == "Exists" and not t.get("key"):
            return True
        if t.get("key") != taint["key"] or t.get("effect", taint["effect"]) != taint["effect"]:
            continue
        if t.get("operator") == "Exists" or t.get("value") == taint["value"]:
            return True
    return False


# ------------------------------------------------------------------ add-on


def test_addon_runs_with_a_pod_identity_role_and_tolerates_the_gpu_taint(built):
    _stack, _construct, template = built
    # THEN the add-on is created with a Pod Identity association for the agent's service account
    template.has_resource_properties(
        "AWS::EKS::Addon",
        {
            "AddonName": ADDON_NAME,
            "ClusterName": "gpu",
            "PodIdentityAssociations": [
                {"ServiceAccount": SERVICE_ACCOUNT, "RoleArn": {"Fn::GetAtt": [Match.any_value(), "Arn"]}}
            ],
        },
    )
    # AND the role is assumable by EKS Pod Identity and has CloudWatchAgentServerPolicy
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    Match.object_like(
                        {
                            "Action": ["sts:AssumeRole", "sts:TagSession"],
                            "Principal": {"Service": "pods.eks.amazonaws.com"},
                        }
                    )
                ]
            },
            "ManagedPolicyArns": [
                {
                    "Fn::Join": [
                        "",
                        ["arn:", {"Ref": "AWS::Partition"}, ":iam::aws:policy/CloudWatchAgentServerPolicy"],
                    ]
                }
            ],
        },
    )
    # AND its configuration lets the agent, Fluent Bit and DCGM exporter onto the GPU nodes
    (addon,) = template.find_resources("AWS::EKS::Addon").values()
    config = json.loads(addon["Properties"]["ConfigurationValues"])
    assert _tolerates(config["tolerations"], GPU_TOLERATION)
    # AND it waits for the host log group the XID filter reads
    assert any("HostLogs" in d for d in addon["DependsOn"])


def test_toleration_helper_refuses_a_toleration_of_another_taint():
    # GIVEN a toleration of another key WHEN checked against the GPU taint THEN it does not match
    assert not _tolerates([{"key": "other", "operator": "Exists"}], GPU_TOLERATION)


# ------------------------------------------------------------------ dashboard


def test_dashboard_shows_each_ultraserver_and_the_gpu_and_efa_widgets(built):
    _stack, _construct, template = built
    widgets = _dashboard(template)["widgets"]
    titles = [w["properties"].get("title", "") for w in widgets]
    # THEN each UltraServer has its Capacity Block widget against its size
    assert any(t.startswith("us1 (cr-0123456789abcdef0)") and t.endswith("/ 18") for t in titles)
    assert any(t.startswith("us2 (cr-0fedcba9876543210)") and t.endswith("/ 9") for t in titles)
    # AND the GPU, EFA, XID and alarm widgets are there
    for part in (
        "GPU utilization",
        "GPU memory utilization",
        "GPU temperature",
        "EFA throughput",
        "XID",
        "Alarms",
    ):
        assert any(part in t for t in titles), part
    # AND a text widget says where the time left in a block is, and what is not per UltraServer
    texts = " ".join(w["properties"]["markdown"] for w in widgets if w["type"] == "text")
    assert "Time left in a Capacity Block" in texts and "eks-ultraserver status" in texts
    assert "not per node group or UltraServer" in texts


def test_dashboard_uses_only_documented_metrics(built):
    _stack, _construct, template = built
    # WHEN every metric line of every graph is read
    metrics = [m for w in _dashboard(template)["widgets"] if w["type"] == "metric" for m in _metrics(w)]
    assert metrics
    for namespace, name in metrics:
        # THEN it is a documented Container Insights / EC2 metric, or the XID filter's own
        if namespace.startswith("EksUltraServer/"):
            assert name == "GpuXidErrors"
        else:
            assert name in DOCUMENTED_METRICS[namespace], (namespace, name)


def test_without_efa_metrics_the_dashboard_says_so_instead_of_an_empty_graph():
    # GIVEN efa_metrics=False (DRANET, or no EFA)
    _stack, _construct, template = _build(efa_metrics=False)
    widgets = _dashboard(template)["widgets"]
    # THEN no graph reads EFA metrics, and a text widget says why
    assert not any(
        n.startswith("node_efa") for w in widgets if w["type"] == "metric" for _ns, n in _metrics(w)
    )
    assert any("EFA throughput: not available here" in w["properties"].get("markdown", "") for w in widgets)


# ------------------------------------------------------------------ alarms


def test_each_ultraserver_has_a_missing_nodes_alarm_to_the_topic(built):
    _stack, _construct, template = built
    for target in TARGETS:
        template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "Namespace": CAPACITY_RESERVATIONS,
                "MetricName": "AvailableInstanceCount",
                "Dimensions": [{"Name": "CapacityReservationId", "Value": target.capacity_reservation_id}],
                "Statistic": "Minimum",
                "Period": 300,
                "Threshold": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "EvaluationPeriods": 3,
                "DatapointsToAlarm": 3,
                "TreatMissingData": "notBreaching",
                "AlarmActions": [{"Ref": Match.string_like_regexp("^Topic")}],
            },
        )


def test_xid_lines_are_counted_by_a_metric_filter_and_alarmed(built):
    _stack, _construct, template = built
    # THEN a metric filter on the host log group counts the driver's XID lines
    template.has_resource_properties(
        "AWS::Logs::LogGroup", {"LogGroupName": "/aws/containerinsights/gpu/host", "RetentionInDays": 30}
    )
    template.has_resource_properties(
        "AWS::Logs::MetricFilter",
        {
            "FilterPattern": XID_FILTER_PATTERN,
            "MetricTransformations": [
                {"MetricNamespace": "EksUltraServer/gpu", "MetricName": "GpuXidErrors", "MetricValue": "1"}
            ],
        },
    )
    # AND an alarm fires on the first one, to the topic
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "EksUltraServer/gpu",
            "MetricName": "GpuXidErrors",
            "Statistic": "Sum",
            "Threshold": 1,
            "EvaluationPeriods": 1,
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": Match.string_like_regexp("^Topic")}],
        },
    )


def test_cloudwatch_may_publish_to_the_encrypted_topic(built):
    _stack, _construct, template = built
    # THEN the topic policy and the key policy both let CloudWatch alarms use them
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Action": "sns:Publish", "Principal": {"Service": "cloudwatch.amazonaws.com"}}
                        )
                    ]
                )
            }
        },
    )
    template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_without_a_topic_the_alarms_have_no_action_and_synth_warns():
    # GIVEN no topic
    stack, _construct, template = _build(with_topic=False)
    # THEN no alarm has an action, and a warning says so
    for alarm in template.find_resources("AWS::CloudWatch::Alarm").values():
        assert "AlarmActions" not in alarm["Properties"]
    Annotations.from_stack(stack).has_warning("/Test/Obs", Match.string_like_regexp("no action"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"missing_nodes_minutes": 7}, "missing_nodes_minutes: 7 is not a multiple of 5"),
        ({"missing_nodes_minutes": 65}, "missing_nodes_minutes: 65"),
        ({"ultraservers": [*TARGETS, TARGETS[0]]}, r"ultraservers: names \['us1'\]"),
    ],
)
def test_bad_arguments_raise_one_configuration_error(kwargs, match):
    app = cdk.App()
    stack = cdk.Stack(app, "Test", env=cdk.Environment(account=ACCOUNT, region=REGION))
    cluster = eks.Cluster.from_cluster_attributes(stack, "Cluster", cluster_name="gpu")
    kwargs = {"ultraservers": TARGETS, **kwargs}
    with pytest.raises(ConfigurationError, match=match):
        GpuObservability(stack, "Obs", cluster=cluster, **kwargs)


# ------------------------------------------------------------------ environment


@pytest.fixture(scope="module")
def environment():
    """GIVEN cdk.json's context (observability not set) WHEN the app is synthesized."""
    return synth_environment({})


def test_environment_has_the_addon_dashboard_and_alarms_by_default(environment):
    resources = environment.template["Resources"]
    addons = [r for r in resources.values() if r["Type"] == "AWS::EKS::Addon"]
    assert ADDON_NAME in [a["Properties"]["AddonName"] for a in addons]
    assert any(r["Type"] == "AWS::CloudWatch::Dashboard" for r in resources.values())
    # AND each UltraServer's alarm lives in its nested stack, beside its node group (so the
    # parent template does not grow with the fleet), and every alarm notifies the Capacity
    # Block events topic (in a nested stack through the parameter CDK passes it in)
    parent_alarms = [r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert [a["Properties"].get("MetricName") for a in parent_alarms] == ["GpuXidErrors"]  # the XID alarm
    for alarm in parent_alarms:
        (action,) = alarm["Properties"]["AlarmActions"]
        assert action["Ref"].startswith("EnvironmentCapacityBlockEventsTopic")
    for nested in environment.nested.values():
        (alarm,) = [r for r in nested["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
        assert alarm["Properties"]["MetricName"] == "AvailableInstanceCount"
        (action,) = alarm["Properties"]["AlarmActions"]
        assert "CapacityBlockEventsTopic" in action["Ref"] and action["Ref"] in nested["Parameters"]


def test_environment_with_observability_is_cfn_lint_clean(environment):
    assert cfn_lint_errors(environment.template) == []


def test_observability_false_leaves_it_out():
    # GIVEN -c observability=false WHEN synthesized
    synth = synth_environment({"observability": False})
    resources = synth.template["Resources"].values()
    # THEN no add-on of that name, no dashboard, no alarm
    assert ADDON_NAME not in [
        r["Properties"].get("AddonName") for r in resources if r["Type"] == "AWS::EKS::Addon"
    ]
    assert not [r for r in resources if r["Type"] in ("AWS::CloudWatch::Dashboard", "AWS::CloudWatch::Alarm")]


@pytest.mark.parametrize(
    ("value", "expected"), [(None, True), ("false", False), (False, False), (True, True)]
)
def test_observability_context_key_is_read(value, expected):
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    context["observability"] = value
    assert EnvironmentConfig.from_context(context.get).observability is expected


def test_observability_context_key_refuses_a_non_boolean():
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    context["observability"] = 3
    with pytest.raises(ConfigurationError, match="observability: 3 is not a boolean"):
        EnvironmentConfig.from_context(context.get)


def test_a_large_fleet_keeps_alarms_beside_their_node_groups_and_the_status_widget_bounded():
    """GIVEN 150 UltraServers whose alarms live in other scopes (as the environment places
    them, in the UltraServers' nested stacks) WHEN synthesized THEN the dashboard's alarm
    status widget lists at most 100 alarms, by ARN built from the alarms' known names (no
    cross-stack reference, so no nested-stack output per alarm)."""
    app = cdk.App()
    stack = cdk.Stack(app, "Big", env=cdk.Environment(account=ACCOUNT, region=REGION))
    cluster = eks.Cluster.from_cluster_attributes(stack, "Cluster", cluster_name="gpu")
    shard = cdk.NestedStack(stack, "Shard")
    targets = [
        UltraServerTarget(
            name=f"us-{i}",
            capacity_reservation_id=f"cr-{i:017x}",
            instance_count=18,
            alarm_scope=Construct(shard, f"Us{i}"),
        )
        for i in range(150)
    ]
    obs = GpuObservability(stack, "Obs", cluster=cluster, ultraservers=targets, topic=sns.Topic(stack, "T"))
    parent = template_of(stack)
    nested = template_of(shard).to_json()
    assert len(nested["Resources"]) == 150 and "Outputs" not in nested
    names = {r["Properties"]["AlarmName"] for r in nested["Resources"].values()}
    assert "Big-us-7-missing-nodes" in names and len(names) == 150
    assert set(obs.missing_nodes_alarms) == {t.name for t in targets}
    (widget,) = [w for w in _dashboard(parent)["widgets"] if w["type"] == "alarm"]
    assert len(widget["properties"]["alarms"]) == 100
