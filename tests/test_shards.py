"""UltraServer sharding: ``ultraServerShards``, where node groups land, the preflight check.

GIVEN fleets from one UltraServer to EKS's 100,000 nodes (5,556 u-p6e-gb200x72) WHEN
synthesized THEN every template is within CloudFormation's limits, an UltraServer's nested
stack and logical ids depend on its name and the shard count only (never on the rest of
the fleet), the default count keeps every node group where earlier releases put it, and
``eks-ultraserver preflight`` refuses a count other than the deployed one.
"""

from __future__ import annotations

import json
import zlib

import pytest

from eks_ultraserver import cli
from eks_ultraserver.aws_checks import Severity
from eks_ultraserver.aws_checks.shards import check_ultraserver_shards, deployed_shard_count
from eks_ultraserver.commands import common
from eks_ultraserver.config import EnvironmentConfig, UltraServerSpec
from eks_ultraserver.model import ConfigurationError, UltraServerType
from eks_ultraserver.sharding import (
    DEFAULT_ULTRASERVER_SHARDS,
    MAX_ULTRASERVERS_PER_SHARD,
    MAX_VALIDATION_ULTRASERVERS,
    ULTRASERVER_SHARD_COUNTS,
    fitting_shard_count,
    shard_sizes,
    ultraserver_shard,
)

import aws_stubs as s
from conftest import EXISTING_NETWORK, cfn_lint_errors, synth_environment


def _servers(names, start: int = 0) -> list[dict]:
    return [
        {"capacityReservationId": f"cr-0{i:016x}", "type": "u-p6e-gb200x72", "name": name}
        for i, name in enumerate(names, start)
    ]


# ------------------------------------------------------------------ the default count


def test_the_default_shard_is_crc32_modulo_16_as_in_every_earlier_release():
    for name in ("us-1", "us-a", "gb200-rack-07", "train-west-3", "x" * 40):
        assert ultraserver_shard(name) == zlib.crc32(name.encode()) % 16
    assert DEFAULT_ULTRASERVER_SHARDS == 16
    assert [ultraserver_shard(n) for n in ("us-1", "us-a", "gb200-rack-07", "train-west-3")] == [
        14,
        10,
        14,
        1,
    ]


#: Logical ids of the previous release (before ``ultraServerShards``), for these four
#: UltraServers with cdk.json's defaults: the parent's nested stack resources and, in each
#: nested stack, the node group, its launch template and its alarm.
PREVIOUS_NESTED_STACKS = {
    "UltraServers14": "EnvironmentUltraServers14NestedStackUltraServers14NestedStackResource6885AA18",
    "UltraServers10": "EnvironmentUltraServers10NestedStackUltraServers10NestedStackResourceE4D21D16",
    "UltraServers01": "EnvironmentUltraServers01NestedStackUltraServers01NestedStackResourceCD36A46D",
}
PREVIOUS_NESTED_RESOURCES = {
    "UltraServers14": {
        "UltraServerus1LaunchTemplate7296DB17",
        "UltraServerus18E2E418C",
        "UltraServerus1MissingNodesAlarm1EC1D5BD",
        "UltraServergb200rack07LaunchTemplate2F1E8E34",
        "UltraServergb200rack07A6E2C32B",
        "UltraServergb200rack07MissingNodesAlarm2F7E5344",
    },
    "UltraServers10": {
        "UltraServerusaLaunchTemplateC54E3FFA",
        "UltraServerusa4A902C2E",
        "UltraServerusaMissingNodesAlarm8168249A",
    },
    "UltraServers01": {
        "UltraServertrainwest3LaunchTemplateAE92A2BB",
        "UltraServertrainwest3DAC6F13E",
        "UltraServertrainwest3MissingNodesAlarm67A48A73",
    },
}
FOUR = ["us-1", "us-a", "gb200-rack-07", "train-west-3"]


@pytest.mark.parametrize("shards", [None, 16], ids=["key-unset", "key-16"])
def test_the_default_count_keeps_the_previous_logical_ids_and_nested_stacks(shards):
    """GIVEN four UltraServers with ultraServerShards unset or 16 WHEN synthesized THEN the
    parent's nested stack resources and every node group, launch template and alarm have the
    logical ids the previous release gave them: upgrading moves nothing."""
    synth = synth_environment({"ultraServers": _servers(FOUR, 1), "ultraServerShards": shards})
    stacks = {k for k, r in synth.template["Resources"].items() if r["Type"] == "AWS::CloudFormation::Stack"}
    assert stacks == set(PREVIOUS_NESTED_STACKS.values())
    for shard, expected in PREVIOUS_NESTED_RESOURCES.items():
        kinds = ("AWS::EKS::Nodegroup", "AWS::EC2::LaunchTemplate", "AWS::CloudWatch::Alarm")
        found = {k for k, r in synth.nested[shard]["Resources"].items() if r["Type"] in kinds}
        assert found == expected, shard
    (output,) = [
        o for k, o in synth.template["Outputs"].items() if k.startswith("EnvironmentUltraServerShards")
    ]
    assert output["Value"] == "16"


# ------------------------------------------------------------------ the key


def test_a_larger_count_places_each_ultraserver_by_its_hash_and_is_recorded_in_an_output():
    names = [f"rack-{i}" for i in range(12)]
    synth = synth_environment(
        {"ultraServers": _servers(names), "ultraServerShards": "64", **EXISTING_NETWORK}
    )
    placed = {}
    for shard, template in synth.nested.items():
        for resource in template["Resources"].values():
            if resource["Type"] == "AWS::EKS::Nodegroup":
                placed[resource["Properties"]["Labels"]["eks-ultraserver.io/ultraserver"]] = shard
    assert placed == {n: f"UltraServers{zlib.crc32(n.encode()) % 64:02d}" for n in names}
    assert synth.stack.ultraserver_environment.ultraserver_shards == 64
    outputs = [o for k, o in synth.template["Outputs"].items() if "UltraServerShards" in k]
    assert [o["Value"] for o in outputs] == ["64"]


def test_shard_ids_past_99_have_three_digits():
    names = [
        next(f"n{i}" for i in range(5000) if ultraserver_shard(f"n{i}", 256) == shard) for shard in (7, 200)
    ]
    synth = synth_environment({"ultraServers": _servers(names), "ultraServerShards": 256})
    assert sorted(synth.nested) == ["UltraServers07", "UltraServers200"]


@pytest.mark.parametrize("value", [0, 8, 100, 512, -16, True, "sixteen", 16.0, [16]])
def test_a_count_not_allowed_is_refused_naming_the_key_and_the_allowed_counts(value):
    with pytest.raises(ConfigurationError) as err:
        EnvironmentConfig.from_mapping(
            {
                "ultraServers": _servers(["us-1"]),
                "availabilityZone": s.ZONE,
                "ultraServerShards": value,
            }
        )
    (problem,) = [p for p in err.value.problems if p.startswith("ultraServerShards")]
    assert f"{value!r} is not allowed" in problem
    assert "16, 32, 64, 128, 256" in problem and "fixed when the environment is created" in problem


def test_the_key_from_the_command_line_is_a_number():
    config = EnvironmentConfig.from_mapping(
        {"ultraServers": _servers(["us-1"]), "availabilityZone": s.ZONE, "ultraServerShards": "128"}
    )
    assert config.ultraserver_shards == 128


def _names_in_one_shard(count: int, shard: int = 3, shards: int = 16) -> list[str]:
    names = (f"x{i}" for i in range(100_000))
    return [n for n in names if ultraserver_shard(n, shards) == shard][:count]


def test_a_fleet_too_large_for_the_count_names_the_count_to_set_and_says_it_is_fixed():
    """GIVEN 71 UltraServers that hash to one of 16 nested stacks WHEN read from cdk.json
    THEN one error names ultraServerShards, the full nested stack, the count that fits (the
    smallest allowed) with a -c example, and that a deployed environment keeps its count."""
    names = _names_in_one_shard(MAX_ULTRASERVERS_PER_SHARD + 1)
    fits = fitting_shard_count(names)
    assert fits is not None and fits > 16
    with pytest.raises(ConfigurationError) as err:
        EnvironmentConfig.from_mapping(
            {"ultraServers": _servers(names), "availabilityZone": s.ZONE, "kubernetesVersion": "nope"}
        )
    (problem,) = [p for p in err.value.problems if p.startswith("ultraServerShards")]
    assert "16 nested stacks are too few for 71 UltraServers" in problem
    assert "UltraServers03 (71)" in problem
    assert f"set ultraServerShards to {fits}" in problem and f"-c ultraServerShards='{fits}'" in problem
    assert "fixed at creation" in problem and "second environment" in problem
    assert any(p.startswith("kubernetesVersion") for p in err.value.problems)  # one error, every key


def test_the_construct_refuses_the_same_fleet_naming_its_argument():
    from aws_cdk import App, Stack

    from eks_ultraserver.constructs.environment import UltraServerEnvironment

    names = _names_in_one_shard(MAX_ULTRASERVERS_PER_SHARD + 1)
    specs = [
        UltraServerSpec(
            capacity_reservation_id=d["capacityReservationId"],
            type=UltraServerType(d["type"]),
            name=d["name"],
        )
        for d in _servers(names)
    ]
    with pytest.raises(ConfigurationError, match=r"ultraserver_shards: 16 nested stacks are too few"):
        UltraServerEnvironment(Stack(App(), "S"), "Env", ultraservers=specs, availability_zone=s.ZONE)
    with pytest.raises(ConfigurationError, match=r"ultraserver_shards: 24 is not allowed"):
        UltraServerEnvironment(
            Stack(App(), "S"), "Env", ultraservers=specs[:1], availability_zone=s.ZONE, ultraserver_shards=24
        )


def test_add_ultraserver_refuses_one_its_nested_stack_has_no_room_for():
    synth = synth_environment(
        {"ultraServers": _servers(_names_in_one_shard(MAX_ULTRASERVERS_PER_SHARD)), **EXISTING_NETWORK}
    )
    env = synth.stack.ultraserver_environment
    (extra,) = [
        n for n in _names_in_one_shard(MAX_ULTRASERVERS_PER_SHARD + 1) if n not in env.ultraserver_nodegroups
    ]
    spec = UltraServerSpec(
        capacity_reservation_id="cr-0fffffffffffffff0", type=UltraServerType.U_P6E_GB200X72, name=extra
    )
    with pytest.raises(ConfigurationError, match=rf"(?s)add_ultraserver\('{extra}'\).*UltraServers03 \(71\)"):
        env.add_ultraserver(spec)
    assert extra not in env.ultraserver_nodegroups


def test_the_fitting_count_is_the_smallest_allowed_one():
    names = [f"us-{i}" for i in range(5556)]
    assert fitting_shard_count(names) == 128
    assert max(shard_sizes(names, 64).values()) > MAX_ULTRASERVERS_PER_SHARD
    assert fitting_shard_count(["a"]) == 16
    assert ULTRASERVER_SHARD_COUNTS == (16, 32, 64, 128, 256)


def test_validation_jobs_for_more_ultraservers_than_the_parent_stack_holds_are_refused():
    names = [f"us-{i}" for i in range(MAX_VALIDATION_ULTRASERVERS + 1)]
    with pytest.raises(ConfigurationError) as err:
        EnvironmentConfig.from_mapping(
            {"ultraServers": _servers(names), "availabilityZone": s.ZONE, "validationJobs": True}
        )
    (problem,) = err.value.problems
    assert problem.startswith(f"validationJobs: on for {MAX_VALIDATION_ULTRASERVERS + 1} UltraServers")
    assert "eks-ultraserver manifests" in problem
    # the construct argument, too
    from aws_cdk import App, Stack

    from eks_ultraserver.constructs.environment import UltraServerEnvironment

    specs = EnvironmentConfig.from_mapping(
        {"ultraServers": _servers(names), "availabilityZone": s.ZONE}
    ).ultraservers
    with pytest.raises(ConfigurationError, match=r"validation_jobs: on for 65 UltraServers"):
        UltraServerEnvironment(
            Stack(App(), "S"), "Env", ultraservers=specs, availability_zone=s.ZONE, validation_jobs=True
        )


def test_validation_jobs_at_their_limit_fit_the_parent_stack():
    """GIVEN MAX_VALIDATION_ULTRASERVERS UltraServers with validation jobs and every other
    option that adds to the parent stack WHEN synthesized THEN the parent is within 500
    resources and 1 MB as cdk.out writes it."""
    from conftest import EVERY_RESERVED_KIND, MIXED_BURST

    names = [f"us-{i}" for i in range(MAX_VALIDATION_ULTRASERVERS)]
    synth = synth_environment(
        {
            "ultraServers": _servers(names),
            "validationJobs": True,
            "notificationEmail": "ops@example.com",
            "account": s.ACCOUNT,
            "region": s.REGION,
            "reservedCapacity": EVERY_RESERVED_KIND,
            "burstCapacity": MIXED_BURST,
            # 1,152 nodes: a /16 secondary CIDR and lean warm targets give them their addresses
            "ultraServerSubnetCidr": "10.1.0.0/16",
            "vpcCni": {"warmIpTarget": 2, "minimumIpTarget": 16},
        }
    )
    assert len(synth.template["Resources"]) < 500
    assert len(json.dumps(synth.template, indent=1)) < 1_000_000


# ------------------------------------------------------------------ preflight


def _stack(outputs=None, status="UPDATE_COMPLETE") -> dict:
    stack = {"StackName": "UltraServerEnvironment", "CreationTime": s.now(), "StackStatus": status}
    if outputs is not None:
        stack["Outputs"] = [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]
    return {"Stacks": [stack]}


def _check(response=None, *, error=None, configured=16):
    cloudformation, stub = s.stubbed("cloudformation")
    if error:
        stub.add_client_error("describe_stacks", service_error_code=error[0], service_message=error[1])
    else:
        stub.add_response("describe_stacks", response, {"StackName": "UltraServerEnvironment"})
    with stub:
        findings = check_ultraserver_shards(
            cloudformation, stack_name="UltraServerEnvironment", configured=configured
        )
        stub.assert_no_pending_responses()
    (finding,) = findings
    return finding


def test_preflight_passes_the_count_the_stack_was_deployed_with():
    finding = _check(
        _stack({"EnvironmentUltraServerShards5B705F6B": "64", "EnvironmentClusterName": "c"}), configured=64
    )
    assert finding.severity is Severity.OK and "64, as deployed" in finding.message


def test_preflight_refuses_another_count_and_says_which_to_keep():
    finding = _check(_stack({"EnvironmentUltraServerShards5B705F6B": "64"}), configured=128)
    assert finding.severity is Severity.BLOCKING
    assert "deployed with 64" in finding.message and "asks for 128" in finding.message
    assert "-c ultraServerShards=64" in finding.fix and "second environment" in finding.fix


def test_a_stack_deployed_before_the_output_existed_has_16_shards():
    assert (
        deployed_shard_count(
            {"Outputs": [{"OutputKey": "EnvironmentClusterName1A2B3C4D", "OutputValue": "c"}]}
        )
        == 16
    )
    finding = _check(_stack({"EnvironmentClusterName1A2B3C4D": "c"}), configured=64)
    assert finding.severity is Severity.BLOCKING
    assert "remove ultraServerShards" in finding.fix
    assert _check(_stack({}), configured=16).severity is Severity.OK


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (None, ("ValidationError", "Stack with id UltraServerEnvironment does not exist")),
        (_stack(status="REVIEW_IN_PROGRESS"), None),
        (_stack(status="ROLLBACK_COMPLETE"), None),
    ],
    ids=["no-stack", "change-set-only", "first-create-rolled-back"],
)
def test_a_stack_not_deployed_is_a_new_environment_choosing_its_count(response, error):
    finding = _check(response, error=error, configured=128)
    assert finding.severity is Severity.NOTE and "new environment with 128" in finding.message


def test_preflight_without_permission_notes_the_check_was_skipped():
    finding = _check(error=("AccessDenied", "not authorized to perform: cloudformation:DescribeStacks"))
    assert finding.severity is Severity.NOTE and "not checked" in finding.message


def test_preflight_command_exits_1_on_a_changed_count(tmp_path, monkeypatch, capsys):
    """GIVEN cdk.json asking for 128 shards and a deployed stack created with 16 WHEN
    ``eks-ultraserver preflight --stack-name prod`` runs THEN it exits 1 and says what to set."""
    from test_preflight import CONTEXT, queue_ec2

    (tmp_path / "cdk.json").write_text(json.dumps({"context": {**CONTEXT, "ultraServerShards": 128}}))
    monkeypatch.chdir(tmp_path)
    ec2, ec2_stub = s.stubbed("ec2")
    ssm, ssm_stub = s.stubbed("ssm")
    eks, eks_stub = s.stubbed("eks")
    cloudformation, cf_stub = s.stubbed("cloudformation")
    queue_ec2(ec2_stub, s.reservation())
    ssm_stub.add_response("get_parameters", s.ami_parameters())
    eks_stub.add_response(
        "describe_cluster_versions", {"clusterVersions": [s.cluster_version("1.35", "STANDARD_SUPPORT")]}
    )
    cf_stub.add_response(
        "describe_stacks", _stack({"EnvironmentClusterName1A2B3C4D": "c"}), {"StackName": "prod"}
    )
    from test_quotas import queue_eks_quotas

    quotas, quota_stub = s.stubbed("service-quotas")
    queue_eks_quotas(quota_stub)
    clients = {"ec2": ec2, "ssm": ssm, "eks": eks, "cloudformation": cloudformation, "service-quotas": quotas}
    monkeypatch.setattr(common, "create_session", lambda **_: s.FakeSession(clients))
    with ec2_stub, ssm_stub, eks_stub, cf_stub, quota_stub:
        code = cli.main(["preflight", "--quiet", "--stack-name", "prod"])
        cf_stub.assert_no_pending_responses()
    out = capsys.readouterr().out
    assert code == 1
    assert "BLOCKING: stack prod, ultraServerShards" in out
    assert "remove ultraServerShards from the context" in out


# ------------------------------------------------------------------ EKS's 100,000 nodes


@pytest.mark.slow
def test_5556_ultraservers_fit_cloudformation_with_128_shards(tmp_path):
    """GIVEN 5,556 u-p6e-gb200x72 (EKS's 100,000 nodes in UltraServers of 18) with
    ultraServerShards 128, everything else as cdk.json has it WHEN synthesized into cdk.out
    THEN every template file (parent and each of the 128 nested stacks) has fewer than 500
    resources, at most 200 outputs and parameters, and is under 1 MB as written; cfn-lint
    finds no error in the parent or in the fullest nested stack. (Read from the files, not
    through aws_cdk.assertions: 128 Template objects would add half a minute.)"""
    import aws_cdk as cdk

    from eks_ultraserver.app import build_app

    from conftest import REPO

    context = json.loads((REPO / "cdk.json").read_text())["context"]
    context.update(
        ultraServers=_servers(f"us-{i}" for i in range(5556)), ultraServerShards=128, **EXISTING_NETWORK
    )
    app = cdk.App(context=context, outdir=str(tmp_path), builtin_cloud_formation_validation=False)
    build_app(app)
    app.synth()
    files = sorted(tmp_path.glob("*.template.json"))
    nested = [f for f in files if f.name.endswith(".nested.template.json")]
    assert len(files) == 1 + len(nested) and len(nested) == 128
    templates = {f.name: json.loads(f.read_text()) for f in files}
    groups = 0
    for f in files:
        template = templates[f.name]
        assert len(template["Resources"]) < 500, f.name
        assert f.stat().st_size < 1_000_000, f.name
        assert len(template.get("Outputs", {})) <= 200 and len(template.get("Parameters", {})) <= 200, f.name
        if f in nested:
            groups += sum(r["Type"] == "AWS::EKS::Nodegroup" for r in template["Resources"].values())
    assert groups == 5556
    (parent,) = [templates[f.name] for f in files if f not in nested]
    # AND the dashboard within CloudWatch's limits (at most 500 widgets, 2,500 metrics), the
    # notifications one pair of rules (every Capacity Block of the account: 5,556 ids would
    # need 70 pairs), no per-UltraServer output
    from test_observability import _flatten, _metrics

    (dashboard,) = [r for r in parent["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    widgets = json.loads(_flatten(dashboard["Properties"]["DashboardBody"]))["widgets"]
    assert len(widgets) <= 500 and sum(len(_metrics(w)) for w in widgets if w["type"] == "metric") <= 2500
    rules = [
        r
        for r in parent["Resources"].values()
        if r["Type"] == "AWS::Events::Rule" and "EventPattern" in r["Properties"]  # not the schedule
    ]
    assert len(rules) == 2 and all("detail" not in r["Properties"]["EventPattern"] for r in rules)
    assert len(parent["Outputs"]) == 3
    fullest = max((templates[f.name] for f in nested), key=lambda t: len(t["Resources"]))
    assert cfn_lint_errors(parent) == []
    assert cfn_lint_errors(fullest) == []
