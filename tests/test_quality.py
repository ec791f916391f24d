"""Trust: cfn-lint over a configuration matrix, cdk-nag, determinism, update safety,
bad-input fuzzing and scale (issue: linted, nag-clean, deterministic, update-safe)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from update_safety import create_only_properties, placements, replacements, synth_to_directory

from constructs import Construct
from eks_ultraserver.app import build_app
from eks_ultraserver.constructs.environment import MAX_ULTRASERVERS_PER_SHARD
from eks_ultraserver.constructs.nag import suppress, suppress_cluster_findings
from eks_ultraserver.model import ConfigurationError

from conftest import (
    EVERY_RESERVED_KIND,
    EXISTING_NETWORK,
    LOCAL_ZONE,
    MIXED_BURST,
    REPO,
    cfn_lint_errors,
    synth_environment,
)


def _servers(*specs):
    return json.dumps(
        [
            {"capacityReservationId": f"cr-0{i:016x}", "type": t, "name": n}
            for i, (n, t) in enumerate(specs, 1)
        ]
    )


THREE = _servers(("us-a", "u-p6e-gb200x72"), ("us-b", "u-p6e-gb200x36"), ("us-c", "u-p6e-gb200x72"))

# Every value of every dimension appears at least once (the default is covered by
# test_environment): types 36/72; 1 and 3 UltraServers; each EFA layout; oldest and newest
# Kubernetes; each DRA chart line; each EFA mode.
MATRIX = {
    "three-mixed-odd-cards-1.33-ngc": {
        "ultraServers": THREE,
        "efaLayout": "all-odd-cards",
        "kubernetesVersion": "1.33",
        "draDriverLine": "nvidia-dra-driver-gpu",
    },
    "one-36-no-efa-1.34-dranet": {
        "ultraServers": _servers(("solo", "u-p6e-gb200x36")),
        "efaLayout": "none",
        "kubernetesVersion": "1.34",
        "efaMode": "dranet",
        "validationJobs": "true",
    },
    "largest": {
        "ultraServers": THREE,
        "kubernetesVersion": "1.35",
        "draDriverLine": "nvidia-dra-driver-gpu",
        "efaMode": "dranet",
        "validationJobs": "true",
        "notificationEmail": "ops@example.com",
        "adminPrincipalArn": "arn:aws:iam::123456789012:role/Admin",
        "account": "123456789012",
        "region": "us-east-1",
        # every kind of other GPU capacity: an ODCR node group in another zone, a Capacity
        # Block node group, a Karpenter-run ODCR and the burst pool (Karpenter installed)
        "reservedCapacity": [
            dict(r, sharing={"strategy": "mps", "replicas": 2}) if r["name"] == "eval" else r
            for r in EVERY_RESERVED_KIND
        ],
        "burstCapacity": dict(MIXED_BURST, sharing={"strategy": "time-slicing", "replicas": 4}),
        # and every option of the scale, queueing and Run:ai keys
        "ultraServerShards": 32,
        "controlPlaneTier": "tier-xl",
        "vpcCni": {"prefixDelegation": True, "warmPrefixTarget": 1},
        "queues": [
            {"name": "team-a", "quotas": {"ultraserver": 72, "burst": 64}},
            {"name": "team-b", "namespace": "research", "quotas": {"ultraserver": 72, "reserved-eval": 16}},
        ],
        "runai": {
            "controlPlaneUrl": "https://acme.run.ai",
            "clusterUid": "9f55255e-11ed-47c7-acef-fc4054768dbc",
            "clientSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:runai-client-AbCdEf",
            "clusterUrl": "https://runai.example.com",
        },
    },
}


@pytest.fixture(scope="module")
def matrix():
    return {name: synth_environment(ctx) for name, ctx in MATRIX.items()}


# ------------------------------------------------------------------------- cfn-lint


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_cfn_lint_reports_no_error_across_the_matrix(matrix, name):
    synth = matrix[name]
    assert len(synth.templates()) >= 2, "parent and at least one nested template"
    for template_name, template in synth.templates().items():
        assert cfn_lint_errors(template) == [], template_name


def test_cfn_lint_catches_an_error_it_should():
    """The lint helper is not vacuous: an UltraServer type as InstanceType is an error."""
    template = {
        "Resources": {
            "Lt": {
                "Type": "AWS::EC2::LaunchTemplate",
                "Properties": {
                    "LaunchTemplateData": {
                        "InstanceType": "u-p6e-gb200x72",
                        "MetadataOptions": {"HttpTokens": "sometimes"},
                    }
                },
            }
        }
    }
    assert cfn_lint_errors(template)


# ------------------------------------------------------------------------- cdk-nag
# cdk-nag 3 is a policy-validation plugin: it runs at app.synth(), after the templates are
# written, whatever builtin_cloud_formation_validation says (that switch only drops CDK's own
# CloudFormation checks, as in conftest.synth_environment). Its findings, and the ones our
# acknowledgements hid, are in the cloud assembly's validation-report.json; synth stops with
# ValidationFailed while any error is left.

PACK = "AwsSolutions"


@dataclass(frozen=True)
class NagRun:
    app: cdk.App
    report: dict
    #: The ValidationFailed message, or None when synth passed.
    failure: str | None

    def plugin(self) -> dict:
        reports = [r for r in self.report.get("pluginReports", []) if r["pluginName"] == PACK]
        assert len(reports) == 1, (
            f"{PACK} ran once: {[r['pluginName'] for r in self.report['pluginReports']]}"
        )
        return reports[0]

    def findings(self, severity: str = "error") -> list[str]:
        """Unacknowledged findings, one line each: ``rule at construct path``."""
        return [
            f"{v['ruleName']} at {c['constructPath']}"
            for v in self.plugin().get("violations", [])
            if v["severity"] == severity
            for c in v["violatingConstructs"]
        ]

    def acknowledged(self) -> list[dict]:
        return list(self.plugin().get("suppressedViolations") or [])


def _run_nag(app: cdk.App) -> NagRun:
    """Registers the AwsSolutions pack on ``app`` as cdk-nag 3 documents, synthesizes, and
    reads the validation report."""
    import cdk_nag

    cdk.Validations.of(app).add_plugins(cdk_nag.AwsSolutionsChecks(app))
    failure = None
    try:
        app.synth()
    except RuntimeError as err:  # jsii's form of aws-cdk-lib's ValidationError
        assert "ValidationFailed" in str(err), err
        failure = str(err)
    report = json.loads((Path(app.outdir) / "validation-report.json").read_text())
    return NagRun(app, report, failure)


def _nag_environment(context: dict, outdir: Path) -> NagRun:
    base = json.loads((REPO / "cdk.json").read_text())["context"] | context
    app = cdk.App(context=base, outdir=str(outdir), builtin_cloud_formation_validation=False)
    build_app(app)
    return _run_nag(app)


@pytest.fixture(scope="module")
def nag_runs(tmp_path_factory):
    return {
        "default": _nag_environment({}, tmp_path_factory.mktemp("nag-default")),
        "largest": _nag_environment(MATRIX["largest"], tmp_path_factory.mktemp("nag-largest")),
    }


def _recorded_acknowledgements(app: cdk.App) -> list[tuple[str, str, str]]:
    """(construct path, acknowledgement id, reason) for every acknowledgement in the tree."""
    key = cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    return [
        (construct.node.path, ack_id, reason)
        for construct in app.node.find_all()
        for entry in construct.node.metadata
        if entry.type == key
        for ack_id, reason in entry.data.items()
    ]


@pytest.mark.parametrize("which", ["default", "largest"])
def test_cdk_nag_aws_solutions_leaves_no_unacknowledged_error(nag_runs, which):
    # GIVEN the app with cdk-nag's AwsSolutions pack registered
    run = nag_runs[which]
    # THEN synth passed and the report lists no error left
    assert run.findings("error") == [], "unacknowledged AwsSolutions errors:\n" + "\n".join(
        run.findings("error")
    )
    assert run.failure is None
    # AND the pack did run: our acknowledged findings are in its report
    assert run.acknowledged(), "the pack ran and found the findings we acknowledge"


def test_every_nag_acknowledgement_has_a_reason_on_the_resource_it_concerns(nag_runs):
    run = nag_runs["default"]
    acknowledged = run.acknowledged()
    assert len(acknowledged) >= 20
    for finding in acknowledged:
        # the id a user sees in the report, the pack's prefix and the exact finding
        assert finding["acknowledgedId"] == f"{PACK}::{finding['ruleName']}", finding
        assert len(finding.get("reason") or "") >= 40, finding
        # acknowledged on the CloudFormation resource itself, not on a stack or a parent
        paths = {c["constructPath"] for c in finding["violatingConstructs"]}
        assert paths == {finding["acknowledgedAt"]}, finding
        assert finding["acknowledgedAt"].endswith("/Resource"), finding


def test_every_nag_acknowledgement_matches_a_finding(nag_runs):
    """No stale acknowledgement: each one the library records hides a finding the pack made."""
    run = nag_runs["default"]
    used = {(f["acknowledgedAt"], f["acknowledgedId"]) for f in run.acknowledged()}
    recorded = [
        (path, ack_id)
        for path, ack_id, _ in _recorded_acknowledgements(run.app)
        if ack_id.startswith(f"{PACK}::")
    ]
    assert recorded, "the library records acknowledgements"
    assert [r for r in recorded if r not in used] == []


def _wildcard_stack(tmp_path: Path) -> tuple[cdk.App, iam.CfnPolicy]:
    app = cdk.App(outdir=str(tmp_path), builtin_cloud_formation_validation=False)
    stack = cdk.Stack(app, "Tiny")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["*"], resources=["*"]))
    policy = role.node.find_child("DefaultPolicy").node.default_child
    assert isinstance(policy, iam.CfnPolicy)
    return app, policy


def test_the_nag_pack_reports_a_wildcard_policy(tmp_path):
    # GIVEN a tiny stack with an IAM role allowed every action on every resource
    app, _ = _wildcard_stack(tmp_path)
    # WHEN the AwsSolutions pack runs
    run = _run_nag(app)
    # THEN synth fails and the report names both findings on the policy
    assert run.failure is not None
    assert set(run.findings("error")) == {
        "AwsSolutions-IAM5[Action::*] at Tiny/Role/DefaultPolicy/Resource",
        "AwsSolutions-IAM5[Resource::*] at Tiny/Role/DefaultPolicy/Resource",
    }


def test_suppress_acknowledges_exactly_the_findings_named(tmp_path):
    # GIVEN the wildcard policy, one finding named and one matched by a regex
    app, policy = _wildcard_stack(tmp_path)
    suppress(policy, "AwsSolutions-IAM5", "x" * 40 + " (test: the action wildcard)", ["Action::*"])
    # WHEN the pack runs
    run = _run_nag(app)
    # THEN only the other finding is left
    assert run.findings("error") == ["AwsSolutions-IAM5[Resource::*] at Tiny/Role/DefaultPolicy/Resource"]
    assert [f["acknowledgedId"] for f in run.acknowledged()] == ["AwsSolutions::AwsSolutions-IAM5[Action::*]"]


def test_suppress_expands_a_regex_over_the_resource_findings_at_synth(tmp_path):
    app, policy = _wildcard_stack(tmp_path)
    suppress(policy, "AwsSolutions-IAM5", "y" * 40 + " (test: regex)", [{"regex": "/^Resource::\\*$/"}])
    run = _run_nag(app)
    assert run.findings("error") == ["AwsSolutions-IAM5[Action::*] at Tiny/Role/DefaultPolicy/Resource"]
    assert [f["acknowledgedId"] for f in run.acknowledged()] == [
        "AwsSolutions::AwsSolutions-IAM5[Resource::*]"
    ]


def test_suppress_refuses_a_regex_for_a_rule_without_findings():
    stack = cdk.Stack(cdk.App(), "Tiny")
    topic = sns.Topic(stack, "Topic")
    with pytest.raises(ValueError, match="applies_to regex for AwsSolutions-SNS3"):
        suppress(topic, "AwsSolutions-SNS3", "z" * 40, [{"regex": "/./"}])


class _ClusterStandIn(Construct):
    """What suppress_cluster_findings reads of an aws_eks_v2 Cluster here: ``vpc``."""

    def __init__(self, scope: Construct, id: str, *, vpc: ec2.IVpc) -> None:
        super().__init__(scope, id)
        self.vpc = vpc


@pytest.mark.parametrize("own_vpc", [True, False])
def test_endpoint_security_groups_are_acknowledged_only_in_our_own_vpc(tmp_path, own_vpc):
    # GIVEN an interface endpoint in a VPC made next to the cluster, or in a user's VPC
    app = cdk.App(outdir=str(tmp_path), builtin_cloud_formation_validation=False)
    stack = cdk.Stack(app, "Tiny")
    environment = Construct(stack, "Environment")
    vpc = ec2.Vpc(environment if own_vpc else stack, "Vpc", max_azs=1, nat_gateways=0)
    vpc.add_interface_endpoint("Sts", service=ec2.InterfaceVpcEndpointAwsService.STS)
    # WHEN the cluster's findings are acknowledged
    suppress_cluster_findings(_ClusterStandIn(environment, "Cluster", vpc=vpc))
    run = _run_nag(app)
    # THEN the endpoint's EC23 finding (ingress from the VPC CIDR) is acknowledged only in ours
    sg = f"{vpc.node.path}/Sts/SecurityGroup/Resource"
    ec23 = [f for f in run.acknowledged() if f["ruleName"] == "AwsSolutions-EC23"]
    if own_vpc:
        assert [f["acknowledgedAt"] for f in ec23] == [sg]
        assert f"AwsSolutions-EC23 at {sg}" not in run.findings("error")
    else:
        assert ec23 == []
        assert f"AwsSolutions-EC23 at {sg}" in run.findings("error")


# ------------------------------------------------------------------------- determinism


def test_two_synths_are_byte_identical(tmp_path):
    outputs = []
    for run in ("a", "b"):
        base = json.loads((REPO / "cdk.json").read_text())["context"] | {"validationJobs": "true"}
        app = cdk.App(context=base, outdir=str(tmp_path / run), builtin_cloud_formation_validation=False)
        build_app(app)
        app.synth()
        files = {p.name: p.read_bytes() for p in sorted((tmp_path / run).glob("*.template.json"))}
        outputs.append(files)
    assert outputs[0] == outputs[1]
    assert any(name.endswith(".nested.template.json") for name in outputs[0])


# ------------------------------------------------------------------------- update safety

BASELINE = {"ultraServers": THREE, "kubernetesVersion": "1.34"}
CHANGES = {
    "add an UltraServer": {
        "ultraServers": _servers(
            ("us-a", "u-p6e-gb200x72"),
            ("us-b", "u-p6e-gb200x36"),
            ("us-c", "u-p6e-gb200x72"),
            ("us-d", "u-p6e-gb200x36"),
        )
    },
    "remove a different one": {
        "ultraServers": json.dumps([s for s in json.loads(THREE) if s["name"] != "us-b"])
    },
    "bump a chart version": {"addonVersions": '{"gpuOperator": "v25.3.4"}'},
    "change the EFA layout": {"efaLayout": "all-odd-cards"},
    "raise the Kubernetes version": {"kubernetesVersion": "1.35"},
    "turn validation jobs on": {"validationJobs": "true"},
}


@pytest.fixture(scope="module")
def baseline():
    return synth_environment(BASELINE)


def test_create_only_properties_come_from_the_cloudformation_schemas():
    assert ("CapacityType",) in create_only_properties("AWS::EKS::Nodegroup")
    assert ("Subnets",) in create_only_properties("AWS::EKS::Nodegroup")
    assert ("AvailabilityZone",) in create_only_properties("AWS::EC2::Subnet")


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_common_changes_replace_nothing_that_runs(baseline, change):
    new = synth_environment(BASELINE | CHANGES[change])
    found = replacements(baseline.templates(), new.templates())
    if change == "remove a different one":
        # only the removed UltraServer's node group goes (and its nested stack if emptied)
        assert {r.type for r in found} <= {"AWS::EKS::Nodegroup", "AWS::CloudFormation::Stack"}
        assert all(
            "us-b" in baseline_label(baseline, r.logical_id) or r.type == "AWS::CloudFormation::Stack"
            for r in found
        )
        assert any(r.type == "AWS::EKS::Nodegroup" for r in found)
    else:
        assert found == []


def baseline_label(synth, logical_id):
    resource = synth.all_resources.get(logical_id, {})
    return resource.get("Properties", {}).get("Labels", {}).get("eks-ultraserver.io/ultraserver", "")


def test_update_checker_sees_a_replacement():
    """Not vacuous: a new cluster name or zone is reported as a replacement."""
    old = synth_environment({})
    new = synth_environment({"clusterName": "gb200", "availabilityZone": "us-east-1-atl-2a"})
    found = {(r.type, r.reason) for r in replacements(old.templates(), new.templates())}
    assert ("AWS::EKS::Cluster", "create-only property Name changes") in found
    assert ("AWS::EC2::Subnet", "create-only property AvailabilityZone changes") in found


# ------------------------------------------------------------------------- fuzzing

_reservation = st.one_of(
    st.from_regex(r"cr-[0-9a-f]{17}", fullmatch=True),
    st.text(max_size=25),
    st.integers(),
)
_entry = st.fixed_dictionaries(
    {
        "capacityReservationId": _reservation,
        "type": st.sampled_from(["u-p6e-gb200x36", "u-p6e-gb200x72", "p6e-gb200.36xlarge", "", "x"]),
    },
    optional={
        "name": st.one_of(
            st.from_regex(r"[a-z][a-z0-9-]{0,8}[a-z0-9]", fullmatch=True), st.text(max_size=12)
        ),
        "extra": st.integers(),
    },
)
_context = st.fixed_dictionaries(
    {},
    optional={
        "ultraServers": st.one_of(st.lists(_entry, max_size=3), st.text(max_size=20), st.integers()),
        "availabilityZone": st.sampled_from(["us-east-1-dfw-2a", "us-east-1a", "moon-1a", "", 3]),
        "kubernetesVersion": st.sampled_from(["1.32", "1.33", "1.34", "1.35", "1.36", "one", 1.34]),
        "efaLayout": st.sampled_from(["per-gpu", "all-odd-cards", "none", "all", None]),
        "efaMode": st.sampled_from(["device-plugin", "dranet", "both"]),
        "draDriverLine": st.sampled_from(["dra-driver-nvidia-gpu", "nvidia-dra-driver-gpu", "nvidia"]),
        "validationJobs": st.sampled_from([True, False, "true", "false", "yes", 1]),
        "addonVersions": st.sampled_from(
            ['{"gpuOperator": "v25.3.4"}', '{"gpuOperator": "v0.19.1"}', "{", '{"x": "1"}']
        ),
        "region": st.sampled_from(["us-east-1", "eu-west-1", "nowhere"]),
        "ultraServerShards": st.sampled_from([16, 64, 256, "128", 100, 0, "x", True, None]),
    },
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_context)
def test_synth_succeeds_or_stops_with_the_clear_error(tmp_path_factory, context):
    """Any configuration either synthesizes a template or stops with ConfigurationError
    (one message listing the problems) before anything is written."""
    outdir = tmp_path_factory.mktemp("fuzz")
    app = cdk.App(
        context={k: v for k, v in context.items() if v is not None},
        outdir=str(outdir),
        builtin_cloud_formation_validation=False,
    )
    try:
        stack = build_app(app)
    except ConfigurationError as err:
        assert str(err).startswith("invalid ") and "\n  - " in str(err)
        assert list(outdir.iterdir()) == [], "nothing half-written"
        return
    assembly = app.synth()
    template = assembly.get_stack_by_name(stack.stack_name).template
    assert any(r["Type"] == "AWS::EKS::Cluster" for r in template["Resources"].values())


# ------------------------------------------------------------------------- scale


@pytest.fixture(scope="module")
def fleet():
    servers = _servers(*[(f"u{i:04d}", "u-p6e-gb200x72") for i in range(400)])
    # 7,200 nodes: more than a new VPC's UltraServer subnet can address
    return synth_environment({"ultraServers": servers, **EXISTING_NETWORK})


def test_a_large_fleet_spreads_over_nested_stacks_within_cloudformation_limits(fleet):
    assert len(fleet.template["Resources"]) < 500
    assert len(json.dumps(fleet.template)) < 1_000_000
    groups = 0
    for name, tpl in fleet.nested.items():
        assert len(tpl["Resources"]) < 500, name
        assert len(json.dumps(tpl, indent=1)) < 1_000_000, name
        groups += sum(r["Type"] == "AWS::EKS::Nodegroup" for r in tpl["Resources"].values())
    assert groups == 400 and len(fleet.nested) == 16
    assert len(fleet.template.get("Outputs", {})) < 200


def test_adding_ultraservers_moves_no_logical_id(fleet):
    servers = json.loads(_servers(*[(f"u{i:04d}", "u-p6e-gb200x72") for i in range(400)]))
    servers += [
        {"capacityReservationId": f"cr-1{i:016x}", "type": "u-p6e-gb200x36", "name": f"new{i}"}
        for i in range(5)
    ]
    grown = synth_environment({"ultraServers": json.dumps(servers), **EXISTING_NETWORK})
    assert replacements(fleet.templates(), grown.templates(), types=None) == []


def test_a_shard_too_full_is_refused_with_a_clear_message():
    from eks_ultraserver.constructs.environment import ultraserver_shard

    names = [f"x{i}" for i in range(20000) if ultraserver_shard(f"x{i}") == 3][
        : MAX_ULTRASERVERS_PER_SHARD + 1
    ]
    with pytest.raises(
        ConfigurationError,
        match=rf"ultraServerShards: 16 nested stacks are too few for {MAX_ULTRASERVERS_PER_SHARD + 1} "
        rf"UltraServers: more than {MAX_ULTRASERVERS_PER_SHARD} hash to UltraServers03",
    ):
        synth_environment({"ultraServers": _servers(*[(n, "u-p6e-gb200x36") for n in names])})


@pytest.mark.slow
def test_a_full_shard_stays_within_cloudformation_limits():
    """GIVEN as many UltraServers as one nested stack may hold, all hashing to it, with every
    per-UltraServer resource (node group with its repair settings, launch template, alarm)
    WHEN synthesized THEN that nested template is under 500 resources and 1 MB as
    CloudFormation reads it (cdk.out writes templates indented by one space), with room for
    the parameters and outputs."""
    from eks_ultraserver.constructs.environment import ultraserver_shard

    names = [f"x{i}" for i in range(20000) if ultraserver_shard(f"x{i}") == 3][:MAX_ULTRASERVERS_PER_SHARD]
    synth = synth_environment(
        {"ultraServers": _servers(*[(n, "u-p6e-gb200x72") for n in names]), **EXISTING_NETWORK}
    )
    (full,) = [tpl for name, tpl in synth.nested.items() if name.endswith("03")]
    assert sum(r["Type"] == "AWS::EKS::Nodegroup" for r in full["Resources"].values()) == len(names)
    assert len(full["Resources"]) < 500
    assert len(json.dumps(full, indent=1)) < 950_000
    assert len(full.get("Outputs", {})) < 200 and len(full.get("Parameters", {})) < 200


@pytest.mark.slow
def test_a_fleet_of_1500_grows_and_shrinks_without_moving_a_node_group(tmp_path):
    """GIVEN 1,500 UltraServers over 256 nested stacks (ultraServerShards 256) with every
    option that adds to the parent stack (other GPU capacity, Karpenter, an e-mail
    subscription; 1,500 Capacity Blocks need 19 pairs of notification rules, close to
    MAX_RULE_PAIRS): the largest parent stack WHEN one UltraServer is added and another
    removed THEN no resource that stays is removed or replaced (parent and nested, every
    type, create-only properties from the CloudFormation schemas), every node group keeps
    its logical id and nested stack, only the removed UltraServer's resources go, and every
    template is within 500 resources and 1 MB."""
    base = json.loads((REPO / "cdk.json").read_text())["context"] | {
        **EXISTING_NETWORK,
        "notificationEmail": "ops@example.com",
        "adminPrincipalArn": "arn:aws:iam::123456789012:role/Admin",
        "account": "123456789012",
        "region": "us-east-1",
        # an existing VPC (27,000 nodes are more than a new VPC's subnet can address), so
        # the reserved capacity shares the UltraServers' zone and subnets
        "reservedCapacity": [dict(r, availabilityZone=LOCAL_ZONE) for r in EVERY_RESERVED_KIND],
        "burstCapacity": MIXED_BURST,
    }
    servers = [
        {"capacityReservationId": f"cr-0{i:016x}", "type": "u-p6e-gb200x72", "name": f"us-{i}"}
        for i in range(1500)
    ]
    removed = servers[700]
    added = {"capacityReservationId": f"cr-1{0:016x}", "type": "u-p6e-gb200x36", "name": "us-new"}
    before = synth_to_directory(
        {**base, "ultraServers": servers, "ultraServerShards": 256}, tmp_path / "before", stack_name="Env"
    )
    after = synth_to_directory(
        {**base, "ultraServers": [*servers[:700], *servers[701:], added], "ultraServerShards": 256},
        tmp_path / "after",
        stack_name="Env",
    )
    assert len(before) == 1 + 256
    for name, template in before.items():
        assert len(template["Resources"]) < 500, name
        assert len(json.dumps(template, indent=1)) < 1_000_000, name
    label = "eks-ultraserver.io/ultraserver"

    def owner(template: dict, logical_id: str) -> str | None:
        resource = template["Resources"][logical_id]
        if resource["Type"] == "AWS::EKS::Nodegroup":
            return resource["Properties"].get("Labels", {}).get(label)
        return None

    gone = replacements(before, after, types=None)
    # only the removed UltraServer's launch template, node group and alarm
    assert len(gone) == 3 and all(r.reason == "removed" for r in gone), gone
    assert {r.template for r in gone} == {
        n for n, t in before.items() if any(owner(t, k) == removed["name"] for k in t["Resources"])
    }
    old, new = placements(before, "AWS::EKS::Nodegroup"), placements(after, "AWS::EKS::Nodegroup")
    assert len(new) == len(old)  # one removed, one added (plus the system node group)
    moved = {k: (v, new.get(k)) for k, v in old.items() if new.get(k) != v}
    assert len(moved) == 1 and all(after_ is None for _before, after_ in moved.values())
    assert placements(before, "AWS::CloudFormation::Stack") == placements(after, "AWS::CloudFormation::Stack")
