"""``eks-ultraserver upgrade`` against stubbed EKS, SSM and Auto Scaling.

GIVEN a Capacity Block node group (responses shaped like the EKS API), WHEN the command
runs, THEN it plans without changing anything unless --apply, and with --apply it scales
to zero, waits, updates the version only while desired size is 0, restores the size and
waits; each refusal exits 1 and says what to do.
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import timedelta

import pytest

from eks_ultraserver import cli
from eks_ultraserver.aws_checks import ami_parameter_name
from eks_ultraserver.commands import common, upgrade
from eks_ultraserver.commands.upgrade import NodegroupState, plan_nodegroup

import aws_stubs as s

CLUSTER = "gb200"
NG = "us-1"
ASG = "eks-us-1-0123abcd"
RELEASE = "1.35.6-20260728"


def nodegroup(**overrides) -> dict:
    """One ``Nodegroup`` as DescribeNodegroup returns it: an UltraServer (18 nodes) on
    Kubernetes 1.34 with an older AMI release."""
    t = s.now()
    scaling = overrides.pop("scaling", (18, 18, 18))
    item = {
        "nodegroupName": NG,
        "nodegroupArn": f"arn:aws:eks:{s.REGION}:{s.ACCOUNT}:nodegroup/{CLUSTER}/{NG}/0123",
        "clusterName": CLUSTER,
        "version": "1.34",
        "releaseVersion": "1.34.2-20251103",
        "createdAt": t - timedelta(days=20),
        "modifiedAt": t - timedelta(days=2),
        "status": "ACTIVE",
        "capacityType": "CAPACITY_BLOCK",
        "scalingConfig": {"minSize": scaling[0], "desiredSize": scaling[1], "maxSize": scaling[2]},
        "subnets": ["subnet-0123456789abcdef0"],
        "amiType": "AL2023_ARM_64_NVIDIA",
        "nodeRole": f"arn:aws:iam::{s.ACCOUNT}:role/node",
        "labels": {"eks-ultraserver.io/ultraserver": NG},
        "resources": {"autoScalingGroups": [{"name": ASG}]},
        "health": {"issues": []},
        "launchTemplate": {"id": "lt-0123456789abcdef0", "version": "3"},
        "tags": {"eks-ultraserver:capacity-reservation-id": s.RID},
    }
    item.update(overrides)
    return {"nodegroup": item}


def update(kind: str, status: str = "InProgress", update_id: str = "u-1", errors=()) -> dict:
    return {
        "update": {
            "id": update_id,
            "status": status,
            "type": kind,
            "params": [],
            "createdAt": s.now(),
            "errors": [
                {"errorCode": code, "errorMessage": message, "resourceIds": [NG]} for code, message in errors
            ],
        }
    }


def asg(instances: int) -> dict:
    return {
        "AutoScalingGroups": [
            {
                "AutoScalingGroupName": ASG,
                "MinSize": 0,
                "MaxSize": 18,
                "DesiredCapacity": 0,
                "DefaultCooldown": 300,
                "AvailabilityZones": [s.ZONE],
                "HealthCheckType": "EC2",
                "CreatedTime": s.now() - timedelta(days=20),
                "Instances": [
                    {
                        "InstanceId": f"i-0123456789abcde{i:02x}",
                        "InstanceType": "p6e-gb200.36xlarge",
                        "AvailabilityZone": s.ZONE,
                        "LifecycleState": "Terminating",
                        "HealthStatus": "Healthy",
                        "ProtectedFromScaleIn": False,
                    }
                    for i in range(instances)
                ],
            }
        ]
    }


def describe(name=NG):
    return {"clusterName": CLUSTER, "nodegroupName": name}


class Aws:
    """Stubbed eks/ssm/autoscaling clients, handed to the command through create_session."""

    def __init__(self, cluster_version="1.35"):
        self.eks, self.eks_stub = s.stubbed("eks")
        self.ssm, self.ssm_stub = s.stubbed("ssm")
        self.autoscaling, self.asg_stub = s.stubbed("autoscaling")
        self.eks_stub.add_response(
            "describe_cluster",
            {"cluster": {"name": CLUSTER, "version": cluster_version, "status": "ACTIVE"}},
            {"name": CLUSTER},
        )

    def latest_release(self, version="1.35", release=RELEASE):
        names = [ami_parameter_name(version, "image_id"), ami_parameter_name(version, "release_version")]
        self.ssm_stub.add_response("get_parameters", s.ami_parameters(version, release), {"Names": names})

    def wait(self, kind, update_id, *, polls=1, final="Successful", errors=()):
        """DescribeUpdate InProgress `polls - 1` times then `final`; then the ACTIVE waiter."""
        for _ in range(polls - 1):
            self.eks_stub.add_response("describe_update", update(kind, "InProgress", update_id))
        self.eks_stub.add_response(
            "describe_update",
            update(kind, final, update_id, errors),
            {"name": CLUSTER, "updateId": update_id, "nodegroupName": NG},
        )
        if final == "Successful":
            self.eks_stub.add_response("describe_nodegroup", nodegroup(), describe())

    def __enter__(self):
        for stub in (self.eks_stub, self.ssm_stub, self.asg_stub):
            stub.activate()
        return self

    def __exit__(self, *exc):
        for stub in (self.eks_stub, self.ssm_stub, self.asg_stub):
            stub.deactivate()

    def assert_all_used(self):
        for stub in (self.eks_stub, self.ssm_stub, self.asg_stub):
            stub.assert_no_pending_responses()


@pytest.fixture
def run(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)  # no cdk.json here: --cluster is enough
    sleeps: list[float] = []
    monkeypatch.setattr(upgrade, "sleep", sleeps.append)

    class Runner:
        """Runs `eks-ultraserver upgrade` against stubbed clients; records the sleeps."""

        def __init__(self) -> None:
            self.sleeps = sleeps

        def __call__(self, aws: Aws, *args: str) -> tuple[int, str, str]:
            clients = {"eks": aws.eks, "ssm": aws.ssm, "autoscaling": aws.autoscaling}
            monkeypatch.setattr(common, "create_session", lambda **_: s.FakeSession(clients))
            with aws:
                code = cli.main(
                    ["upgrade", "--cluster", CLUSTER, "--region", s.REGION, "--poll-seconds", "0", *args]
                )
            out, err = capsys.readouterr()
            return code, out, err

    return Runner()


def test_dry_run_plans_and_changes_nothing(run):
    # GIVEN a cluster with one Capacity Block node group and one other node group
    aws = Aws()
    aws.latest_release()
    aws.eks_stub.add_response("list_nodegroups", {"nodegroups": ["system", NG]}, {"clusterName": CLUSTER})
    aws.eks_stub.add_response(
        "describe_nodegroup", nodegroup(nodegroupName="system", capacityType="ON_DEMAND"), describe("system")
    )
    aws.eks_stub.add_response("describe_nodegroup", nodegroup(), describe())
    # WHEN the command runs without --apply
    code, out, _err = run(aws)
    # THEN it only read (no Update* call was queued, and all reads were used)
    aws.assert_all_used()
    assert code == 0
    assert "system" not in out  # only CAPACITY_BLOCK node groups by default
    assert re.search(
        rf"^{NG}\s+{s.RID}\s+1.34 1.34.2-20251103\s+1.35 {RELEASE}\s+18/18/18\s+planned$", out, re.M
    )
    assert "1. scale to zero: min 18->0, desired 18->0, max 18 kept" in out
    assert "2. update: Kubernetes 1.34 -> 1.35 / AMI release 1.35.6-20260728" in out
    assert "only once desired size is 0" in out
    assert "3. restore: min 18, desired 18, max 18" in out
    assert out.rstrip().endswith("Run again with --apply to do the steps above.")


def test_apply_scales_to_zero_waits_updates_and_restores_in_that_order(run):
    aws = Aws()
    aws.latest_release()
    aws.eks_stub.add_response("describe_nodegroup", nodegroup(), describe())  # plan
    aws.eks_stub.add_response("describe_nodegroup", nodegroup(), describe())  # apply: current state
    # 1. scale to zero, max kept
    aws.eks_stub.add_response(
        "update_nodegroup_config",
        update("ConfigUpdate", update_id="scale-down"),
        {**describe(), "scalingConfig": {"minSize": 0, "desiredSize": 0, "maxSize": 18}},
    )
    aws.wait("ConfigUpdate", "scale-down", polls=2)
    aws.asg_stub.add_response("describe_auto_scaling_groups", asg(2), {"AutoScalingGroupNames": [ASG]})
    aws.asg_stub.add_response("describe_auto_scaling_groups", asg(0), {"AutoScalingGroupNames": [ASG]})
    # 2. version, after checking desired size is 0
    aws.eks_stub.add_response("describe_nodegroup", nodegroup(scaling=(0, 0, 18)), describe())
    aws.eks_stub.add_response(
        "update_nodegroup_version",
        update("VersionUpdate", update_id="version"),
        {**describe(), "version": "1.35", "releaseVersion": RELEASE},
    )
    aws.wait("VersionUpdate", "version")
    # 3. restore
    aws.eks_stub.add_response(
        "update_nodegroup_config",
        update("ConfigUpdate", update_id="restore"),
        {**describe(), "scalingConfig": {"minSize": 18, "desiredSize": 18, "maxSize": 18}},
    )
    aws.wait("ConfigUpdate", "restore")

    code, out, err = run(aws, "--nodegroup", NG, "--apply")

    aws.assert_all_used()
    assert code == 0, out + err
    assert re.search(rf"^{NG}\s+{s.RID}\s.*\sdone$", out, re.M)
    assert "Done. no cdk.json change needed" in out
    # progress while waiting, on stderr
    assert "us-1: scaling to zero (desired 18 -> 0)" in err
    assert "ConfigUpdate scale-down InProgress" in err
    assert "2 instance(s) terminating" in err and "no instances left" in err
    assert "updating to Kubernetes 1.35 1.35.6-20260728" in err
    assert "restoring desired size 18" in err
    assert run.sleeps and set(run.sleeps) == {0.0}


def test_refuses_to_update_the_version_while_desired_size_is_above_zero(run):
    # GIVEN a node group already at 0 whose size something raised again before step 2
    aws = Aws()
    aws.latest_release()
    aws.eks_stub.add_response("describe_nodegroup", nodegroup(scaling=(0, 0, 18)), describe())
    aws.eks_stub.add_response("describe_nodegroup", nodegroup(scaling=(0, 0, 18)), describe())
    aws.asg_stub.add_response("describe_auto_scaling_groups", asg(0))
    aws.eks_stub.add_response("describe_nodegroup", nodegroup(scaling=(0, 3, 18)), describe())
    # WHEN --apply runs (no update_nodegroup_version is queued: a call would fail the test)
    code, out, _err = run(aws, "--nodegroup", NG, "--apply", "--restore-size", "18")
    # THEN it stops before updating the version
    aws.assert_all_used()
    assert code == 1
    assert "desired size is 3, not 0: refusing to update the version" in out
    assert f"to continue: eks-ultraserver upgrade --nodegroup {NG} --restore-size 18 --apply" in out


def test_failed_update_stops_with_the_error_and_how_to_continue(run):
    aws = Aws()
    aws.latest_release()
    aws.eks_stub.add_response("describe_nodegroup", nodegroup(), describe())
    aws.eks_stub.add_response("describe_nodegroup", nodegroup(), describe())
    aws.eks_stub.add_response("update_nodegroup_config", update("ConfigUpdate", update_id="scale-down"))
    aws.wait(
        "ConfigUpdate", "scale-down", final="Failed", errors=[("PodEvictionFailure", "PDB blocks eviction")]
    )
    code, out, _err = run(aws, "--nodegroup", NG, "--apply")
    aws.assert_all_used()
    assert code == 1
    assert "ConfigUpdate scale-down ended Failed: PodEvictionFailure: PDB blocks eviction" in out
    assert "--restore-size 18 --apply" in out


def test_up_to_date_node_group_is_left_alone(run):
    aws = Aws()
    aws.latest_release()
    aws.eks_stub.add_response(
        "describe_nodegroup", nodegroup(version="1.35", releaseVersion=RELEASE), describe()
    )
    code, out, _err = run(aws, "--nodegroup", NG, "--apply")
    aws.assert_all_used()
    assert code == 0 and "up-to-date" in out and "already at 1.35 / 1.35.6-20260728" in out


@pytest.mark.parametrize(
    ("overrides", "args", "message"),
    [
        ({"status": "UPDATING"}, [], "status is UPDATING, not ACTIVE"),
        (
            {"version": "1.35", "releaseVersion": "1.35.0-20251201"},
            ["--kubernetes-version", "1.34"],
            "cannot roll it back",
        ),
        ({}, ["--restore-size", "20"], "above the node group's max size 18"),
    ],
)
def test_refusals_change_nothing_and_exit_1(run, overrides, args, message):
    aws = Aws()
    version = args[1] if args[:1] == ["--kubernetes-version"] else "1.35"
    aws.latest_release(version, f"{version}.1-20260101")
    aws.eks_stub.add_response("describe_nodegroup", nodegroup(**overrides), describe())
    code, out, _err = run(aws, "--nodegroup", NG, "--apply", *args)
    aws.assert_all_used()
    assert code == 1 and "REFUSED: " in out and message in out and "Nothing changed" in out


def test_target_newer_than_the_control_plane_is_refused(run):
    aws = Aws(cluster_version="1.34")
    aws.latest_release("1.35")
    aws.eks_stub.add_response("describe_nodegroup", nodegroup(), describe())
    code, out, _err = run(aws, "--nodegroup", NG, "--kubernetes-version", "1.35")
    assert code == 1 and "newer than the control plane (1.34)" in out and "cdk deploy" in out


def test_json_plan(run):
    aws = Aws()
    aws.latest_release()
    aws.eks_stub.add_response("describe_nodegroup", nodegroup(), describe())
    code, out, _err = run(aws, "--nodegroup", NG, "--json", "--quiet")
    doc = json.loads(out)
    assert code == 0 and doc["exitCode"] == 0 and doc["apply"] is False
    (plan,) = doc["plans"]
    assert plan["action"] == "upgrade" and plan["result"] == "planned"
    assert plan["to"] == {"version": "1.35", "releaseVersion": RELEASE}
    assert plan["restore"] == {"minSize": 18, "desiredSize": 18, "maxSize": 18}
    assert len(plan["steps"]) == 3 and plan["steps"][0].startswith("scale to zero")


def test_cdk_json_version_behind_the_target_is_pointed_out(run, tmp_path):
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {"kubernetesVersion": "1.34"}}))
    aws = Aws()
    aws.latest_release()
    aws.eks_stub.add_response("describe_nodegroup", nodegroup(), describe())
    _code, out, _err = run(aws, "--nodegroup", NG, "--json")
    assert "set kubernetesVersion to 1.35" in json.loads(out)["cdkJson"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kubernetes-version", "1.20"], "--kubernetes-version: '1.20' is not supported"),
        (["--release-version", "latest"], "is not an EKS AMI release"),
        (["--release-version", "1.35.0-20250101"], "older than v20251103"),
        (["--restore-size", "-1"], "--restore-size"),
    ],
)
def test_usage_errors_exit_2_before_asking_aws(monkeypatch, capsys, tmp_path, args, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(common, "create_session", lambda **_: pytest.fail("AWS must not be asked"))
    code = cli.main(["upgrade", "--cluster", CLUSTER, *args])
    assert code == 2 and message in capsys.readouterr().err


def _stack_with_outputs(outputs: dict[str, str]) -> dict:
    return {
        "Stacks": [
            {
                "StackName": "prod",
                "CreationTime": s.now(),
                "StackStatus": "UPDATE_COMPLETE",
                "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
            }
        ]
    }


def test_without_cluster_or_clustername_the_stack_output_names_the_cluster(monkeypatch, capsys, tmp_path):
    """GIVEN cdk.json without clusterName and a deployed stack whose ClusterName output names
    the cluster WHEN `upgrade --stack-name prod` runs (dry run) THEN it plans that cluster's
    node groups, as `status` does."""
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {}}))
    monkeypatch.chdir(tmp_path)
    aws = Aws()
    aws.latest_release()
    aws.eks_stub.add_response("list_nodegroups", {"nodegroups": [NG]}, {"clusterName": CLUSTER})
    aws.eks_stub.add_response("describe_nodegroup", nodegroup(), describe())
    cfn, cfn_stub = s.stubbed("cloudformation")
    cfn_stub.add_response(
        "describe_stacks",
        _stack_with_outputs(
            {
                "EnvironmentUpdateKubeconfigCommand0A1B2C3D": "aws eks ...",
                "EnvironmentClusterName5E6F7A8B": CLUSTER,
            }
        ),
        {"StackName": "prod"},
    )
    clients = {"eks": aws.eks, "ssm": aws.ssm, "autoscaling": aws.autoscaling, "cloudformation": cfn}
    monkeypatch.setattr(common, "create_session", lambda **_: s.FakeSession(clients))
    with aws, cfn_stub:
        code = cli.main(["upgrade", "--stack-name", "prod", "--region", s.REGION, "--quiet"])
    aws.assert_all_used()
    cfn_stub.assert_no_pending_responses()
    out = capsys.readouterr().out
    assert code == 0 and re.search(rf"^{NG}\s", out, re.M)


def test_no_cluster_name_anywhere_exits_2_saying_what_to_pass(monkeypatch, capsys, tmp_path):
    """GIVEN no --cluster, no clusterName and a stack without a ClusterName output THEN exit 2
    with what to pass."""
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {}}))
    monkeypatch.chdir(tmp_path)
    cfn, cfn_stub = s.stubbed("cloudformation")
    cfn_stub.add_response("describe_stacks", _stack_with_outputs({}), {"StackName": "UltraServerEnvironment"})
    monkeypatch.setattr(common, "create_session", lambda **_: s.FakeSession({"cloudformation": cfn}))
    with cfn_stub:
        assert cli.main(["upgrade", "--region", s.REGION, "--quiet"]) == 2
    assert (
        "stack UltraServerEnvironment has no ClusterName output; pass --cluster NAME"
        in capsys.readouterr().err
    )


def test_without_credentials_exits_2_with_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    s.isolate_from_aws(monkeypatch, tmp_path)
    code = cli.main(["upgrade", "--cluster", CLUSTER, "--region", s.REGION, "--quiet"])
    err = capsys.readouterr().err
    assert (
        code == 2 and err.count("\n") == 1 and "no usable AWS credentials" in err and "Traceback" not in err
    )


def test_plan_for_a_node_group_already_at_zero_keeps_it_at_zero():
    state = NodegroupState.from_api(nodegroup(scaling=(0, 0, 18))["nodegroup"])
    plan = plan_nodegroup(
        state, cluster_version="1.35", target_version="1.35", target_release=RELEASE, restore_size=None
    )
    assert plan.action == "upgrade" and plan.restore_desired == 0
    assert plan.steps[0] == "scale to zero: already min 0 / desired 0"
    assert "--restore-size N" in plan.steps[2]


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        cli.main(["upgrade", "--help"])
    out = capsys.readouterr().out
    sub = _subcommand_parser("upgrade")
    for action in sub._actions:
        assert action.help, action.option_strings
        for option in action.option_strings:
            assert option in out
    for words in (
        "desired size",
        "scale to zero",
        "--apply",
        "exit status",
        "dry run",
        "Upgrade the control plane first",
    ):
        assert words in out


def test_unknown_node_group_exits_2_naming_the_options(run):
    aws = Aws()
    aws.latest_release()
    aws.eks_stub.add_client_error(
        "describe_nodegroup",
        service_error_code="ResourceNotFoundException",
        service_message="No node group found for name: us-9.",
        http_status_code=404,
    )
    code, out, err = run(aws, "--nodegroup", "us-9")
    assert code == 2 and out == ""
    assert "No node group found for name: us-9.: check --cluster, --nodegroup and --region" in err


def _subcommand_parser(name: str) -> argparse.ArgumentParser:
    (subparsers,) = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return subparsers.choices[name]
