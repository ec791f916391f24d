"""``eks_ultraserver.aws_checks`` and ``eks-ultraserver preflight`` against stubbed AWS.

GIVEN responses shaped like the EC2, SSM and EKS APIs (botocore Stubber validates them
against the installed service models), WHEN the checks run, THEN each problem of the
issue (wrong type or zone, payment-pending, ends soon, ended, impaired interconnect, ...)
is reported with the right severity, a fix, and the right exit status.
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from eks_ultraserver import cli
from eks_ultraserver.aws_checks import (
    RESERVATION_STATES,
    AwsSetupError,
    Finding,
    Severity,
    ami_parameter_name,
    check_ami,
    check_kubernetes_version,
    check_reservations,
    describe_reservation,
    format_duration,
)
from eks_ultraserver.commands import common
from eks_ultraserver.config import UltraServerSpec
from eks_ultraserver.model import UltraServerType

import aws_stubs as s

SPEC = UltraServerSpec(capacity_reservation_id=s.RID, type=UltraServerType.U_P6E_GB200X72, name="us-1")


def only(findings: list[Finding], check: str) -> Finding:
    matching = [f for f in findings if f.check == check]
    assert len(matching) == 1, (check, findings)
    return matching[0]


def queue_ec2(
    stubber, item: dict | None, *, block: dict | None = None, status: dict | None = None, rid: str = s.RID
):
    """Queues what the checks of one reservation ask EC2, in order."""
    params = {"CapacityReservationIds": [rid]}
    if item is None:
        stubber.add_client_error(
            "describe_capacity_reservations",
            service_error_code="InvalidCapacityReservationId.NotFound",
            service_message=f"The capacity reservation ID '{rid}' does not exist",
            http_status_code=400,
            expected_params=params,
        )
        return
    stubber.add_response("describe_capacity_reservations", {"CapacityReservations": [item]}, params)
    if item.get("InstanceType") != "p6e-gb200.36xlarge" or "CapacityBlockId" not in item:
        return
    block_params = {"CapacityBlockIds": [item["CapacityBlockId"]]}
    stubber.add_response(
        "describe_capacity_blocks", {"CapacityBlocks": [block or s.capacity_block()]}, block_params
    )
    stubber.add_response(
        "describe_capacity_block_status",
        {"CapacityBlockStatuses": [status or s.block_status()]},
        block_params,
    )


def run_checks(item, *, zone=s.ZONE, block=None, status=None, spec=SPEC, min_time_left=timedelta(hours=2)):
    ec2, stubber = s.stubbed("ec2")
    queue_ec2(stubber, item, block=block, status=status)
    with stubber:
        findings = check_reservations(
            ec2, [spec], availability_zone=zone, now=s.now(), min_time_left=min_time_left, region=s.REGION
        )
        stubber.assert_no_pending_responses()
    return findings


# --------------------------------------------------------------------------------------
# Reservation checks
# --------------------------------------------------------------------------------------


def test_every_state_of_the_ec2_service_model_is_classified():
    # GIVEN the CapacityReservationState enum of the installed botocore
    model = botocore.session.get_session().get_service_model("ec2")
    states = set(model.shape_for("CapacityReservation").members["State"].enum)
    # THEN each has a meaning and a fix (a new state shows up here first)
    assert states <= set(RESERVATION_STATES), states - set(RESERVATION_STATES)
    for state, (severity, _message, fix) in RESERVATION_STATES.items():
        assert severity is Severity.OK or fix, state


def test_a_good_block_passes_every_check():
    findings = run_checks(s.reservation())
    assert {f.severity for f in findings} == {Severity.OK}, [
        f for f in findings if f.severity is not Severity.OK
    ]
    assert {f.check for f in findings} == {
        "exists",
        "capacity block",
        "instance type",
        "zone",
        "instance count",
        "state",
        "time left",
        "ultraserver type",
        "interconnect",
    }
    assert re.match(r"ends in (5d 0h 0m|4d 23h 59m) \(", only(findings, "time left").message)


@pytest.mark.parametrize(
    ("state", "severity", "words"),
    [
        ("active", Severity.OK, "available"),
        ("scheduled", Severity.OK, "not started"),
        ("payment-pending", Severity.WARNING, "payment"),
        ("payment-failed", Severity.BLOCKING, "released"),
        ("expired", Severity.BLOCKING, "ended"),
        ("cancelled", Severity.BLOCKING, "cancelled"),
        ("failed", Severity.BLOCKING, "failed"),
        ("unavailable", Severity.BLOCKING, "unavailable"),
    ],
)
def test_each_state_has_its_severity(state, severity, words):
    # GIVEN a Capacity Block in `state` (a scheduled one starts tomorrow)
    t = s.now()
    dates = {"StartDate": t + timedelta(days=1)} if state in ("scheduled", "payment-pending") else {}
    if state == "expired":
        dates = {"StartDate": t - timedelta(days=3), "EndDate": t - timedelta(hours=1)}
    findings = run_checks(s.reservation(State=state, **dates))
    # THEN the state finding has the severity, and warnings/blocking ones say what to do
    finding = only(findings, "state")
    assert finding.severity is severity
    assert words in finding.message
    assert severity is Severity.OK or finding.fix


def test_scheduled_block_reports_when_it_starts():
    t = s.now()
    findings = run_checks(
        s.reservation(
            State="scheduled", StartDate=t + timedelta(days=2, minutes=1), EndDate=t + timedelta(days=9)
        )
    )
    time_left = only(findings, "time left")
    assert time_left.severity is Severity.OK
    assert "starts in 2d 0h" in time_left.message and "retries" in time_left.message


def test_not_found_blocks_and_names_the_key_and_the_account():
    findings = run_checks(None)
    assert len(findings) == 1
    assert findings[0].severity is Severity.BLOCKING
    assert "InvalidCapacityReservationId.NotFound" in findings[0].message
    assert "ultraServers[].capacityReservationId" in findings[0].fix and "--profile" in findings[0].fix


def test_on_demand_reservation_is_not_a_capacity_block():
    findings = run_checks(s.reservation(ReservationType="default", CapacityBlockId=None))
    finding = only(findings, "capacity block")
    assert finding.severity is Severity.BLOCKING
    assert "On-Demand" in finding.message


def test_wrong_instance_type_blocks_and_skips_the_ultraserver_checks():
    findings = run_checks(s.reservation(InstanceType="p5.48xlarge", TotalInstanceCount=2))
    finding = only(findings, "instance type")
    assert finding.severity is Severity.BLOCKING
    assert "p5.48xlarge" in finding.message and "p6e-gb200.36xlarge" in finding.message
    assert not [f for f in findings if f.check in ("ultraserver type", "interconnect")]


def test_wrong_zone_blocks_and_says_which_zone_to_set():
    findings = run_checks(s.reservation(AvailabilityZone="us-east-1-atl-2a"))
    finding = only(findings, "zone")
    assert finding.severity is Severity.BLOCKING
    assert "-c availabilityZone=us-east-1-atl-2a" in finding.fix


def test_zone_not_configured_is_reported_not_compared():
    findings = run_checks(s.reservation(), zone=None)
    finding = only(findings, "zone")
    assert finding.severity is Severity.NOTE and s.ZONE in finding.message


def test_instance_count_of_the_other_ultraserver_type_names_that_type():
    findings = run_checks(
        s.reservation(TotalInstanceCount=9), block=s.capacity_block(UltraserverType="u-p6e-gb200x36")
    )
    count = only(findings, "instance count")
    assert count.severity is Severity.BLOCKING
    assert "'u-p6e-gb200x36'" in count.fix
    us_type = only(findings, "ultraserver type")
    assert us_type.severity is Severity.BLOCKING and "u-p6e-gb200x36" in us_type.message


def test_ultraserver_type_mismatch_from_describe_capacity_blocks():
    # GIVEN an 18-instance reservation whose block EC2 reports as another UltraServer type
    findings = run_checks(s.reservation(), block=s.capacity_block(UltraserverType="u-p6e-gb200x36"))
    finding = only(findings, "ultraserver type")
    assert finding.severity is Severity.BLOCKING
    assert "set ultraServers[].type to 'u-p6e-gb200x36'" in finding.fix


def test_instance_capacity_block_without_ultraserver_type_blocks():
    findings = run_checks(s.reservation(), block=s.capacity_block(UltraserverType=None))
    assert only(findings, "ultraserver type").severity is Severity.BLOCKING


def test_block_ending_within_the_margin_warns_with_the_scale_down_time():
    t = s.now()
    findings = run_checks(s.reservation(EndDate=t + timedelta(hours=1, minutes=30)))
    finding = only(findings, "time left")
    assert finding.severity is Severity.WARNING
    assert "ends in 1h" in finding.message and "scales the node group to 0" in finding.message
    assert "extend" in finding.fix


def test_margin_is_configurable():
    t = s.now()
    findings = run_checks(s.reservation(EndDate=t + timedelta(hours=5)), min_time_left=timedelta(hours=6))
    assert only(findings, "time left").severity is Severity.WARNING


def test_block_that_already_ended_blocks_even_if_ec2_still_says_active():
    t = s.now()
    findings = run_checks(s.reservation(StartDate=t - timedelta(days=2), EndDate=t - timedelta(minutes=5)))
    finding = only(findings, "time left")
    assert finding.severity is Severity.BLOCKING and "ended" in finding.message


@pytest.mark.parametrize(
    ("interconnect", "severity"),
    [("ok", Severity.OK), ("impaired", Severity.BLOCKING), ("insufficient-data", Severity.WARNING)],
)
def test_interconnect_status(interconnect, severity):
    findings = run_checks(s.reservation(), status=s.block_status(interconnect))
    finding = only(findings, "interconnect")
    assert finding.severity is severity
    if severity is Severity.BLOCKING:
        assert "impaired" in finding.message and "AWS Support" in finding.fix


def test_insufficient_data_before_the_block_starts_is_only_a_note():
    t = s.now()
    findings = run_checks(
        s.reservation(State="scheduled", StartDate=t + timedelta(days=1), EndDate=t + timedelta(days=8)),
        status=s.block_status("insufficient-data"),
    )
    assert only(findings, "interconnect").severity is Severity.NOTE


def test_unavailable_capacity_warns():
    findings = run_checks(s.reservation(), status=s.block_status("ok", unavailable=2))
    finding = only(findings, "capacity")
    assert finding.severity is Severity.WARNING and "2 of 18" in finding.message


def test_capacity_block_apis_denied_degrade_to_notes():
    # GIVEN credentials that may describe reservations but not capacity blocks
    ec2, stubber = s.stubbed("ec2")
    stubber.add_response("describe_capacity_reservations", {"CapacityReservations": [s.reservation()]})
    for op in ("describe_capacity_blocks", "describe_capacity_block_status"):
        stubber.add_client_error(op, service_error_code="UnauthorizedOperation", http_status_code=403)
    with stubber:
        findings = check_reservations(ec2, [SPEC], availability_zone=s.ZONE, now=s.now())
    # THEN both checks are notes, and nothing blocks
    assert only(findings, "ultraserver type").severity is Severity.NOTE
    assert only(findings, "interconnect").severity is Severity.NOTE
    assert "UnauthorizedOperation" in only(findings, "interconnect").message


def test_botocore_without_the_capacity_block_apis_degrades_to_notes(monkeypatch):
    # GIVEN a botocore whose EC2 model lacks the new operations
    ec2, stubber = s.stubbed("ec2")
    names = [n for n in ec2.meta.service_model.operation_names if "CapacityBlock" not in n]
    monkeypatch.setattr(type(ec2.meta.service_model), "operation_names", property(lambda self: names))
    stubber.add_response("describe_capacity_reservations", {"CapacityReservations": [s.reservation()]})
    with stubber:
        findings = check_reservations(ec2, [SPEC], availability_zone=s.ZONE, now=s.now())
        stubber.assert_no_pending_responses()
    assert "upgrade boto3" in only(findings, "ultraserver type").message
    assert "upgrade boto3" in only(findings, "interconnect").message


def test_reservations_in_two_zones_block_when_the_zone_is_looked_up():
    ec2, stubber = s.stubbed("ec2")
    spec2 = UltraServerSpec(capacity_reservation_id=s.RID2, type=UltraServerType.U_P6E_GB200X72, name="us-2")
    queue_ec2(stubber, s.reservation())
    queue_ec2(
        stubber, s.reservation(CapacityReservationId=s.RID2, AvailabilityZone="us-east-1-atl-2a"), rid=s.RID2
    )
    with stubber:
        findings = check_reservations(ec2, [SPEC, spec2], availability_zone=None, now=s.now())
    finding = next(f for f in findings if f.subject == "ultraServers")
    assert finding.severity is Severity.BLOCKING and "2 zones" in finding.message


def test_credentials_rejected_become_a_setup_error():
    ec2, stubber = s.stubbed("ec2")
    stubber.add_client_error(
        "describe_capacity_reservations", service_error_code="AuthFailure", http_status_code=401
    )
    with stubber, pytest.raises(AwsSetupError, match="rejected the credentials"):
        describe_reservation(ec2, s.RID)


def test_permission_denied_on_reservations_names_the_action():
    ec2, stubber = s.stubbed("ec2")
    stubber.add_client_error(
        "describe_capacity_reservations", service_error_code="UnauthorizedOperation", http_status_code=403
    )
    with stubber, pytest.raises(AwsSetupError, match="ec2:DescribeCapacityReservations"):
        describe_reservation(ec2, s.RID)


def test_findings_that_need_action_must_carry_a_fix():
    with pytest.raises(ValueError, match="needs a fix"):
        Finding(subject="x", check="y", severity=Severity.WARNING, message="z")


def test_format_duration():
    assert format_duration(timedelta(minutes=5)) == "5m"
    assert format_duration(timedelta(hours=2, minutes=3)) == "2h 3m"
    assert format_duration(timedelta(days=1, minutes=3)) == "1d 0h 3m"
    assert format_duration(timedelta(minutes=-5)) == "0m"


# --------------------------------------------------------------------------------------
# AMI and Kubernetes version
# --------------------------------------------------------------------------------------


def test_ami_resolves_from_the_public_ssm_parameter():
    ssm, stubber = s.stubbed("ssm")
    names = [ami_parameter_name("1.35", "image_id"), ami_parameter_name("1.35", "release_version")]
    assert (
        names[0] == "/aws/service/eks/optimized-ami/1.35/amazon-linux-2023/arm64/nvidia/recommended/image_id"
    )
    stubber.add_response("get_parameters", s.ami_parameters(), {"Names": names})
    with stubber:
        findings = check_ami(ssm, "1.35")
    assert (
        only(findings, "ami").severity is Severity.OK
        and "ami-0123456789abcdef0" in only(findings, "ami").message
    )
    assert only(findings, "ami release").message == "1.35.6-20260728"


def test_missing_ami_blocks():
    ssm, stubber = s.stubbed("ssm")
    names = [ami_parameter_name("1.35", "image_id"), ami_parameter_name("1.35", "release_version")]
    stubber.add_response("get_parameters", {"Parameters": [], "InvalidParameters": names})
    with stubber:
        findings = check_ami(ssm, "1.35", region="eu-north-1")
    finding = only(findings, "ami")
    assert (
        finding.severity is Severity.BLOCKING
        and "eu-north-1" in finding.message
        and "kubernetesVersion" in finding.fix
    )


def test_ami_release_older_than_the_gb200_minimum_blocks():
    ssm, stubber = s.stubbed("ssm")
    stubber.add_response("get_parameters", s.ami_parameters(release="1.35.0-20251020"))
    with stubber:
        findings = check_ami(ssm, "1.35")
    assert only(findings, "ami release").severity is Severity.BLOCKING


@pytest.mark.parametrize(
    ("status", "severity"),
    [
        ("STANDARD_SUPPORT", Severity.OK),
        ("EXTENDED_SUPPORT", Severity.WARNING),
        ("UNSUPPORTED", Severity.BLOCKING),
    ],
)
def test_kubernetes_version_support_status(status, severity):
    eks, stubber = s.stubbed("eks")
    stubber.add_response(
        "describe_cluster_versions",
        {"clusterVersions": [s.cluster_version("1.35", status)]},
        {"clusterVersions": ["1.35"], "includeAll": True},
    )
    with stubber:
        findings = check_kubernetes_version(eks, "1.35")
    assert only(findings, "eks version").severity is severity


def test_kubernetes_version_eks_does_not_offer_blocks():
    eks, stubber = s.stubbed("eks")
    stubber.add_response("describe_cluster_versions", {"clusterVersions": []})
    with stubber:
        findings = check_kubernetes_version(eks, "1.35")
    assert only(findings, "eks version").severity is Severity.BLOCKING


def test_kubernetes_version_check_denied_is_a_note():
    eks, stubber = s.stubbed("eks")
    stubber.add_client_error(
        "describe_cluster_versions", service_error_code="AccessDeniedException", http_status_code=403
    )
    with stubber:
        findings = check_kubernetes_version(eks, "1.35")
    assert only(findings, "eks version").severity is Severity.NOTE


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------

CONTEXT = {
    "ultraServers": [{"capacityReservationId": s.RID, "type": "u-p6e-gb200x72", "name": "us-1"}],
    "availabilityZone": s.ZONE,
    "kubernetesVersion": "1.35",
    "region": s.REGION,
}


@pytest.fixture
def app_dir(tmp_path, monkeypatch):
    """A CDK app directory with a cdk.json like the project's, as the working directory."""
    (tmp_path / "cdk.json").write_text(json.dumps({"app": "python app.py", "context": CONTEXT}))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def stub_all(item=None, *, block=None, status=None, ami=None, version_status="STANDARD_SUPPORT", rid=s.RID):
    ec2, ec2_stub = s.stubbed("ec2")
    ssm, ssm_stub = s.stubbed("ssm")
    eks, eks_stub = s.stubbed("eks")
    queue_ec2(ec2_stub, item, block=block, status=status, rid=rid)
    ssm_stub.add_response("get_parameters", ami or s.ami_parameters())
    eks_stub.add_response(
        "describe_cluster_versions", {"clusterVersions": [s.cluster_version("1.35", version_status)]}
    )
    # the EKS node group quotas, which every run checks (test_quotas.py checks them in detail)
    from test_quotas import queue_eks_quotas

    quotas, quota_stub = s.stubbed("service-quotas")
    queue_eks_quotas(quota_stub)
    quota_stub.activate()
    # The shard count check (aws_checks/shards.py, tests/test_shards.py) runs last: here the
    # stack is not deployed yet. Activated here, so tests that stop earlier need not enter it.
    cloudformation, cf_stub = s.stubbed("cloudformation")
    cf_stub.add_client_error(
        "describe_stacks",
        service_error_code="ValidationError",
        service_message="Stack with id UltraServerEnvironment does not exist",
        http_status_code=400,
    )
    cf_stub.activate()
    clients = {"ec2": ec2, "ssm": ssm, "eks": eks, "service-quotas": quotas, "cloudformation": cloudformation}
    return clients, (
        ec2_stub,
        ssm_stub,
        eks_stub,
    )


def run_cli(monkeypatch, capsys, clients, *args):
    seen: dict[str, Any] = {}

    def fake_session(*, profile, region):
        seen.update(profile=profile, region=region)
        return s.FakeSession(clients, region_name=region or s.REGION)

    monkeypatch.setattr(common, "create_session", fake_session)
    code = cli.main(["preflight", *args])
    out, err = capsys.readouterr()
    return code, out, err, seen


def test_cli_all_good_exits_0_with_a_table(app_dir, monkeypatch, capsys):
    clients, stubs = stub_all(s.reservation())
    with stubs[0], stubs[1], stubs[2]:
        code, out, err, seen = run_cli(monkeypatch, capsys, clients, "--profile", "prod")
        for stub in stubs:
            stub.assert_no_pending_responses()
    assert code == 0
    assert seen == {"profile": "prod", "region": s.REGION}
    assert out.splitlines()[0] == f"Preflight in {s.REGION}, zone {s.ZONE}, Kubernetes 1.35"
    assert "RESULT  SUBJECT" in out and "interconnect" in out
    assert out.rstrip().endswith("OK to deploy.")
    assert "... checking us-1" in err  # progress on stderr, not stdout
    assert "..." not in out


@pytest.mark.parametrize(
    ("item_overrides", "extra", "check", "code"),
    [
        ({"InstanceType": "p5.48xlarge"}, {}, "instance type", 1),
        ({"AvailabilityZone": "us-east-1-atl-2a"}, {}, "zone", 1),
        ({"State": "payment-pending"}, {}, "state", 0),
        ({"State": "payment-failed"}, {}, "state", 1),
        (
            {"TotalInstanceCount": 9},
            {"block": s.capacity_block(UltraserverType="u-p6e-gb200x36")},
            "instance count",
            1,
        ),
        ({"EndDate": "SOON"}, {}, "time left", 0),
        ({"StartDate": "PAST", "EndDate": "ENDED"}, {}, "time left", 1),
        ({}, {"status": s.block_status("impaired")}, "interconnect", 1),
    ],
    ids=[
        "instance-type",
        "zone",
        "payment-pending",
        "payment-failed",
        "count",
        "ends-soon",
        "ended",
        "impaired",
    ],
)
def test_cli_reports_each_problem_with_its_exit_code(
    app_dir, monkeypatch, capsys, item_overrides, extra, check, code
):
    t = s.now()
    dates = {"SOON": t + timedelta(hours=1), "PAST": t - timedelta(days=3), "ENDED": t - timedelta(hours=1)}
    item = s.reservation(
        **{k: dates.get(v, v) if isinstance(v, str) else v for k, v in item_overrides.items()}
    )
    clients, stubs = stub_all(item, **extra)
    with stubs[0], stubs[1], stubs[2]:
        got, out, _err, _ = run_cli(monkeypatch, capsys, clients)
    assert got == code
    assert "What to do:" in out and f", {check}: " in out and "fix:" in out
    assert ("Do not deploy yet" in out) == (code == 1)


def test_cli_not_found_exits_1(app_dir, monkeypatch, capsys):
    clients, stubs = stub_all(None)
    with stubs[0], stubs[1], stubs[2]:
        code, out, _err, _ = run_cli(monkeypatch, capsys, clients)
    assert code == 1 and "InvalidCapacityReservationId.NotFound" in out


def test_cli_strict_fails_on_warnings(app_dir, monkeypatch, capsys):
    clients, stubs = stub_all(s.reservation(State="payment-pending"))
    with stubs[0], stubs[1], stubs[2]:
        code, out, _err, _ = run_cli(monkeypatch, capsys, clients, "--strict")
    assert code == 1 and "--strict" in out


def test_cli_json_for_ci(app_dir, monkeypatch, capsys):
    clients, stubs = stub_all(
        s.reservation(AvailabilityZone="us-east-1-atl-2a"), ami={"Parameters": [], "InvalidParameters": ["x"]}
    )
    with stubs[0], stubs[1], stubs[2]:
        code, out, err, _ = run_cli(monkeypatch, capsys, clients, "--json", "--quiet")
    doc = json.loads(out)
    assert code == 1 and doc["exitCode"] == 1 and doc["ok"] is False
    assert doc["region"] == s.REGION and doc["availabilityZone"] == s.ZONE
    blocking = {(f["check"], f["subject"]) for f in doc["findings"] if f["severity"] == "blocking"}
    assert blocking == {("zone", f"us-1 {s.RID}"), ("ami", "AMI 1.35")}
    assert all("fix" in f for f in doc["findings"] if f["severity"] in ("warning", "blocking"))
    assert doc["summary"]["blocking"] == 2
    assert err == ""  # --quiet


def test_cli_context_overrides_like_cdk(app_dir, monkeypatch, capsys):
    # GIVEN cdk.json with one zone and -c with the reservation's real zone
    clients, stubs = stub_all(s.reservation(AvailabilityZone="us-east-1-atl-2a"))
    with stubs[0], stubs[1], stubs[2]:
        code, out, _err, _seen = run_cli(
            monkeypatch, capsys, clients, "-c", "availabilityZone=us-east-1-atl-2a", "--region", "us-east-1"
        )
    assert code == 0 and "zone us-east-1-atl-2a" in out


def test_cli_zone_not_configured_is_looked_up_from_the_reservation(tmp_path, monkeypatch, capsys):
    context = {k: v for k, v in CONTEXT.items() if k != "availabilityZone"}
    path = tmp_path / "env.json"
    path.write_text(json.dumps(context))  # a plain context file (no "app"/"context" keys)
    clients, stubs = stub_all(s.reservation())
    with stubs[0], stubs[1], stubs[2]:
        code, out, _err, _ = run_cli(monkeypatch, capsys, clients, "--context-file", str(path))
    assert code == 0
    assert "zone (from the reservations)" in out and f"reservation zone {s.ZONE}" in out


def test_cli_example_reservation_id_blocks_with_a_fix(tmp_path, monkeypatch, capsys):
    context = {
        **CONTEXT,
        "ultraServers": [{"capacityReservationId": "cr-0123456789abcdef0", "type": "u-p6e-gb200x72"}],
    }
    (tmp_path / "cdk.json").write_text(json.dumps({"context": context}))
    monkeypatch.chdir(tmp_path)
    clients, stubs = stub_all(None, rid="cr-0123456789abcdef0")
    with stubs[0], stubs[1], stubs[2]:
        code, out, _err, _ = run_cli(monkeypatch, capsys, clients)
    assert code == 1 and "example reservation" in out


def test_cli_without_credentials_exits_2_with_one_line(app_dir, monkeypatch, capsys, tmp_path):
    # GIVEN no credentials anywhere (and no instance metadata): the real boto3 session
    s.isolate_from_aws(monkeypatch, tmp_path)
    code = cli.main(["preflight", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("eks-ultraserver: error: no usable AWS credentials") and "--profile" in err


def test_cli_without_region_exits_2(tmp_path, monkeypatch, capsys):
    context = {k: v for k, v in CONTEXT.items() if k != "region"}
    (tmp_path / "cdk.json").write_text(json.dumps({"context": context}))
    monkeypatch.chdir(tmp_path)
    s.isolate_from_aws(monkeypatch, tmp_path)
    code = cli.main(["preflight"])
    err = capsys.readouterr().err
    assert code == 2 and "no AWS Region: pass --region" in err and "Traceback" not in err


def test_cli_unknown_profile_exits_2(app_dir, monkeypatch, capsys, tmp_path):
    s.isolate_from_aws(monkeypatch, tmp_path)
    code = cli.main(["preflight", "--profile", "nope"])
    assert code == 2 and "(nope) could not be found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--context-file", "missing.json"], "missing.json: not found (no such file)"),
        (["-c", "availabilityZone"], "expected KEY=VALUE"),
        (["-c", "ultraServers=[1]"], "ultraServers[0]: 1 is not an object"),
        (["-c", "kubernetesVersion=1.20"], "kubernetesVersion: '1.20' is not supported"),
        (["--min-hours-left", "-1"], "--min-hours-left"),
    ],
)
def test_cli_usage_and_configuration_errors_exit_2(app_dir, monkeypatch, capsys, args, message):
    monkeypatch.setattr(common, "create_session", lambda **_: pytest.fail("AWS must not be asked"))
    code = cli.main(["preflight", *args])
    assert code == 2 and message in capsys.readouterr().err


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["preflight", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    (subparsers,) = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    sub = subparsers.choices["preflight"]
    for action in sub._actions:
        assert action.help, action.option_strings
        for option in action.option_strings:
            assert option in out
    for words in (
        "exit status",
        "0 all good",
        "1 a blocking",
        "2 usage",
        "payment-pending",
        "interconnect",
        "Needs read-only",
    ):
        assert words in out


def test_console_script_is_declared_and_installed():
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["eks-ultraserver"] == "eks_ultraserver.cli:main"
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="console_scripts") if e.name == "eks-ultraserver"]
    assert entry.load() is cli.main
    assert {"preflight", "upgrade"} <= set(cli.COMMANDS)
