"""Preflight for reserved and burst GPU capacity: reservations and vCPU quotas (botocore Stubber).

Every stubbed response is validated by Stubber against the installed botocore service
models (ec2, service-quotas), so a wrong field or enum value fails the test.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from eks_ultraserver.aws_checks import (
    Severity,
    check_eks_quotas,
    check_reserved_capacity,
    check_vcpu_quotas,
    eks_quota_demand,
    vcpu_demand,
)
from eks_ultraserver.capacity import (
    BurstCapacitySpec,
    QuotaGroup,
    ReservationKind,
    ReservedCapacitySpec,
    ReservedProvisioner,
)

import aws_stubs as s

ODCR_ID = "cr-0aaaaaaaaaaaaaaa1"
BLOCK_ID = "cr-0bbbbbbbbbbbbbbb2"
ZONE = "us-east-1a"

ODCR = ReservedCapacitySpec(
    name="eval",
    instance_type="p5.48xlarge",
    instance_count=2,
    capacity_reservation_id=ODCR_ID,
    availability_zone=ZONE,
)
BLOCK = ReservedCapacitySpec(
    name="ft",
    instance_type="p6-b200.48xlarge",
    instance_count=4,
    kind=ReservationKind.CAPACITY_BLOCK,
    capacity_reservation_id=BLOCK_ID,
    availability_zone=ZONE,
)
GROUP = ReservedCapacitySpec(
    name="grp",
    instance_type="p5en.48xlarge",
    instance_count=1,
    resource_group_arn="arn:aws:resource-groups:us-east-1:123456789012:group/odcrs",
    availability_zone=ZONE,
)
BURST = BurstCapacitySpec(instance_families=("g6e", "p5"), max_gpus=64, spot=True)


def odcr(**overrides):
    """An active On-Demand Capacity Reservation for 2 x p5.48xlarge, shaped like the API."""
    base = {
        "CapacityReservationId": ODCR_ID,
        "InstanceType": "p5.48xlarge",
        "AvailabilityZone": ZONE,
        "AvailabilityZoneId": "use1-az1",
        "TotalInstanceCount": 2,
        "AvailableInstanceCount": 2,
        "ReservationType": "default",
        "CapacityBlockId": None,
        "EndDate": None,
        "EndDateType": "unlimited",
        "InstanceMatchCriteria": "targeted",
    }
    base.update(overrides)
    return s.reservation(**base)


def quota(code: str, value: float, name: str = "quota", service: str = "ec2") -> dict:
    return {
        "Quota": {
            "ServiceCode": service,
            "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)"
            if service == "ec2"
            else "Amazon Elastic Kubernetes Service (Amazon EKS)",
            "QuotaArn": f"arn:aws:servicequotas:{s.REGION}:{s.ACCOUNT}:{service}/{code}",
            "QuotaCode": code,
            "QuotaName": name,
            "Value": value,
            "Unit": "None",
            "Adjustable": True,
            "GlobalQuota": False,
        }
    }


def by_check(findings, subject_part, check):
    hits = [f for f in findings if subject_part in f.subject and f.check == check]
    assert len(hits) == 1, [(f.subject, f.check) for f in findings]
    return hits[0]


# --------------------------------------------------------------------------------------
# What the configuration could launch
# --------------------------------------------------------------------------------------


def test_vcpu_demand_counts_odcrs_on_demand_and_burst_on_both_quotas():
    """GIVEN 2 x p5.48xlarge in an ODCR, a Capacity Block, and a burst pool of 64 GPUs over
    g6e and p5 WHEN the demand is computed THEN the ODCR's 384 vCPUs and the pools' bounds
    count On-Demand (the plain pool: 64 GPUs x 64 vCPUs per GPU for G, x 24 for P; the
    p5.48xlarge pool with its EFA interfaces has limits of its own: 64 GPUs x 24 more);
    Spot only the pools'; the Capacity Block counts nowhere."""
    demand = {(d.group, d.spot): d for d in vcpu_demand(reserved=[ODCR, BLOCK], burst=BURST)}
    assert {k: d.vcpus for k, d in demand.items()} == {
        (QuotaGroup.G_VT, False): 64 * 64,
        (QuotaGroup.G_VT, True): 64 * 64,
        (QuotaGroup.P, False): 2 * 192 + 2 * 64 * 24,
        (QuotaGroup.P, True): 2 * 64 * 24,
    }
    assert demand[(QuotaGroup.P, False)].code == "L-417A185B"
    assert demand[(QuotaGroup.P, True)].code == "L-7212CCBC"
    assert demand[(QuotaGroup.G_VT, False)].code == "L-DB2E81BA"
    assert demand[(QuotaGroup.G_VT, True)].code == "L-3819A6DF"
    assert any("reservedCapacity eval: 2 x 192" in p for p in demand[(QuotaGroup.P, False)].parts)


def test_vcpu_demand_of_a_pool_of_only_efa_types_counts_each_type_pool():
    """GIVEN only p5.48xlarge and p5en.48xlarge (each an EFA type: one NodePool each, no plain
    pool) WHEN the demand is computed THEN it is both pools' bounds."""
    burst = BurstCapacitySpec(
        instance_families=("p5", "p5en"), instance_sizes=("48xlarge",), max_gpus=16, spot=False
    )
    assert not burst.has_plain_pool()
    assert [t.name for t in burst.efa_instance_types()] == ["p5.48xlarge", "p5en.48xlarge"]
    assert [(d.group, d.spot, d.vcpus) for d in vcpu_demand(burst=burst)] == [
        (QuotaGroup.P, False, 2 * 16 * 24)
    ]


def test_vcpu_demand_on_demand_only_pool_and_explicit_cpu_limit():
    burst = BurstCapacitySpec(instance_families=("g6e",), max_gpus=8, max_vcpus=100, spot=False)
    demand = vcpu_demand(burst=burst)
    assert [(d.group, d.spot, d.vcpus) for d in demand] == [(QuotaGroup.G_VT, False, 100)]


# --------------------------------------------------------------------------------------
# Quotas
# --------------------------------------------------------------------------------------


def test_quotas_zero_blocks_low_warns_enough_passes():
    """GIVEN P On-Demand 0, P Spot 500, G On-Demand 5000, G Spot missing WHEN checked THEN
    blocking, warning, ok and a note; each warning and block says how to request more."""
    client, stub = s.stubbed("service-quotas")
    responses = [
        ("L-DB2E81BA", quota("L-DB2E81BA", 5000.0)),
        ("L-3819A6DF", None),
        ("L-417A185B", quota("L-417A185B", 0.0)),
        ("L-7212CCBC", quota("L-7212CCBC", 500.0)),
    ]
    for code, response in responses:
        params = {"ServiceCode": "ec2", "QuotaCode": code}
        if response is None:
            stub.add_client_error("get_service_quota", "NoSuchResourceException", expected_params=params)
            stub.add_client_error(
                "get_aws_default_service_quota", "NoSuchResourceException", expected_params=params
            )
        else:
            stub.add_response("get_service_quota", response, expected_params=params)
    with stub:
        findings = check_vcpu_quotas(client, reserved=[ODCR], burst=BURST, region=s.REGION)
        stub.assert_no_pending_responses()
    g_od = by_check(findings, "L-DB2E81BA", "G and VT On-Demand vCPUs")
    assert g_od.severity is Severity.OK
    assert by_check(findings, "L-3819A6DF", "G and VT Spot vCPUs").severity is Severity.NOTE
    p_od = by_check(findings, "L-417A185B", "P On-Demand vCPUs")
    assert p_od.severity is Severity.BLOCKING and "is 0" in p_od.message and "3456 vCPUs" in p_od.message
    assert "--quota-code L-417A185B --desired-value 3456" in p_od.fix
    p_spot = by_check(findings, "L-7212CCBC", "P Spot vCPUs")
    assert p_spot.severity is Severity.WARNING and "500" in p_spot.message and "3072" in p_spot.message


def test_a_vcpu_quota_without_an_applied_value_is_checked_against_the_aws_default():
    """GIVEN Service Quotas has no applied value for the P On-Demand quota (only its default,
    as for some quotas) WHEN checked THEN the default is used and the message says so."""
    client, stub = s.stubbed("service-quotas")
    codes = [d.code for d in vcpu_demand(reserved=[ODCR])]
    assert codes == ["L-417A185B"]
    params = {"ServiceCode": "ec2", "QuotaCode": "L-417A185B"}
    stub.add_client_error("get_service_quota", "NoSuchResourceException", expected_params=params)
    stub.add_response("get_aws_default_service_quota", quota("L-417A185B", 0.0), expected_params=params)
    with stub:
        (finding,) = check_vcpu_quotas(client, reserved=[ODCR], region=s.REGION)
        stub.assert_no_pending_responses()
    assert finding.severity is Severity.BLOCKING
    assert "is 0 (AWS default) in us-east-1" in finding.message


def test_quota_read_denied_is_a_note_not_a_failure():
    client, stub = s.stubbed("service-quotas")
    stub.add_client_error("get_service_quota", "AccessDeniedException")
    with stub:
        findings = check_vcpu_quotas(client, reserved=[ODCR])
    assert [f.severity for f in findings] == [Severity.NOTE]
    assert "AccessDeniedException" in findings[0].message


# --------------------------------------------------------------------------------------
# Reservations
# --------------------------------------------------------------------------------------


def run_reserved(items_by_id: dict, specs):
    client, stub = s.stubbed("ec2")
    for spec in specs:
        if not spec.capacity_reservation_id:
            continue
        item = items_by_id.get(spec.capacity_reservation_id)
        params = {"CapacityReservationIds": [spec.capacity_reservation_id]}
        if item is None:
            stub.add_client_error(
                "describe_capacity_reservations",
                "InvalidCapacityReservationId.NotFound",
                expected_params=params,
            )
        else:
            stub.add_response(
                "describe_capacity_reservations", {"CapacityReservations": [item]}, expected_params=params
            )
    with stub:
        findings = check_reserved_capacity(client, specs, now=s.now(), region=s.REGION)
        stub.assert_no_pending_responses()
    return findings


def test_good_odcr_and_capacity_block_pass_and_a_group_is_a_note():
    block = s.reservation(
        CapacityReservationId=BLOCK_ID,
        InstanceType="p6-b200.48xlarge",
        AvailabilityZone=ZONE,
        TotalInstanceCount=4,
        AvailableInstanceCount=4,
    )
    findings = run_reserved({ODCR_ID: odcr(), BLOCK_ID: block}, [ODCR, BLOCK, GROUP])
    assert all(f.severity is Severity.OK for f in findings if "grp" not in f.subject), [
        (f.subject, f.check, f.message) for f in findings if f.severity is not Severity.OK
    ]
    assert by_check(findings, "grp", "exists").severity is Severity.NOTE


@pytest.mark.parametrize(
    ("overrides", "check", "severity", "words"),
    [
        ({"ReservationType": "capacity-block"}, "capacity type", Severity.BLOCKING, "'capacity-block'"),
        ({"InstanceType": "p5en.48xlarge"}, "instance type", Severity.BLOCKING, "p5en.48xlarge"),
        ({"AvailabilityZone": "us-east-1b"}, "zone", Severity.BLOCKING, "us-east-1b"),
        ({"TotalInstanceCount": 1}, "instance count", Severity.BLOCKING, "at most 1"),
        ({"State": "expired"}, "state", Severity.BLOCKING, "current reservation"),
        ({"State": "pending"}, "state", Severity.WARNING, "wait until"),
    ],
    ids=["kind", "type", "zone", "count", "expired", "pending"],
)
def test_each_reservation_problem(overrides, check, severity, words):
    findings = run_reserved({ODCR_ID: odcr(**overrides)}, [ODCR])
    finding = by_check(findings, "eval", check)
    assert finding.severity is severity
    assert words in finding.fix + finding.message


def test_unknown_reservation_blocks():
    findings = run_reserved({}, [ODCR])
    assert by_check(findings, "eval", "exists").severity is Severity.BLOCKING


def test_karpenter_reservations_are_checked_too():
    spec = ReservedCapacitySpec(
        name="kp",
        instance_type="p5.48xlarge",
        instance_count=2,
        capacity_reservation_id=ODCR_ID,
        provisioner=ReservedProvisioner.KARPENTER,
    )
    findings = run_reserved({ODCR_ID: odcr()}, [spec])
    assert by_check(findings, "kp", "zone").severity is Severity.NOTE


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------


def test_preflight_command_runs_the_capacity_checks(tmp_path, monkeypatch, capsys):
    """GIVEN cdk.json with reservedCapacity and burstCapacity WHEN `eks-ultraserver
    preflight` runs THEN it asks EC2 about the ODCR and its type's offering in its zone and
    Service Quotas about each quota,
    and a 0 quota fails the run (exit 1) with the request command."""
    from test_preflight import CONTEXT, run_cli, stub_all

    context: dict[str, Any] = dict(CONTEXT)
    context["reservedCapacity"] = [
        {
            "name": "eval",
            "instanceType": "p5.48xlarge",
            "instanceCount": 2,
            "capacityReservationId": ODCR_ID,
            "availabilityZone": ZONE,
        }
    ]
    context["burstCapacity"] = {"instanceFamilies": ["p5"], "maxGpus": 16, "spot": False}
    (tmp_path / "cdk.json").write_text(json.dumps({"app": "python app.py", "context": context}))
    monkeypatch.chdir(tmp_path)
    clients, stubs = stub_all(s.reservation())
    stubs[0].add_response(
        "describe_capacity_reservations",
        {"CapacityReservations": [odcr()]},
        expected_params={"CapacityReservationIds": [ODCR_ID]},
    )
    stubs[0].add_response(
        "describe_instance_type_offerings",
        {"InstanceTypeOfferings": [{"InstanceType": "p5.48xlarge", "LocationType": "availability-zone"}]},
        expected_params={
            "LocationType": "availability-zone",
            "Filters": [
                {"Name": "location", "Values": [ZONE]},
                {"Name": "instance-type", "Values": ["p5.48xlarge"]},
            ],
        },
    )
    quotas, quota_stub = s.stubbed("service-quotas")
    quota_stub.add_response(
        "get_service_quota",
        quota("L-417A185B", 0.0),
        expected_params={"ServiceCode": "ec2", "QuotaCode": "L-417A185B"},
    )
    queue_eks_quotas(quota_stub)
    clients["service-quotas"] = quotas
    with stubs[0], stubs[1], stubs[2], quota_stub:
        code, out, err, _ = run_cli(monkeypatch, capsys, clients)
        quota_stub.assert_no_pending_responses()
        stubs[0].assert_no_pending_responses()
    assert code == 1
    assert "reservedCapacity eval" in out and "p5.48xlarge offered in us-east-1a" in out
    assert "quota L-417A185B" in out and "1152 vCPUs" in out
    assert "GPU vCPU quotas" in err


def test_findings_needing_action_carry_a_fix():
    findings = run_reserved({ODCR_ID: odcr(State="expired", InstanceType="p5e.48xlarge")}, [ODCR])
    assert all(f.fix for f in findings if f.severity in (Severity.WARNING, Severity.BLOCKING))


# --------------------------------------------------------------------------------------
# EKS quotas
# --------------------------------------------------------------------------------------


def queue_eks_quotas(stub, nodegroups: float = 30.0, nodes: float = 450.0) -> None:
    """The applied EKS quotas, in the order preflight asks for them."""
    for code, value in (("L-6D54EA21", nodegroups), ("L-BD136A63", nodes)):
        stub.add_response(
            "get_service_quota",
            quota(code, value, service="eks"),
            expected_params={"ServiceCode": "eks", "QuotaCode": code},
        )


def _ultraservers(count: int, kind: str = "u-p6e-gb200x72"):
    from eks_ultraserver.config import UltraServerSpec
    from eks_ultraserver.model import UltraServerType

    return [
        UltraServerSpec(capacity_reservation_id=f"cr-0{i:016x}", type=UltraServerType(kind), name=f"us-{i}")
        for i in range(count)
    ]


def test_eks_quota_demand_counts_every_node_group_and_the_largest():
    """GIVEN 40 UltraServers, a reserved node group of 500 and a Karpenter reservation THEN
    42 managed node groups (system, 40, one reserved; Karpenter's is no node group) and a
    largest node group of 500 nodes."""
    big = ReservedCapacitySpec(
        name="big", instance_type="p5.48xlarge", instance_count=500, capacity_reservation_id=ODCR_ID
    )
    karpenter = ReservedCapacitySpec(
        name="kp",
        instance_type="p5.48xlarge",
        instance_count=2,
        capacity_reservation_id=BLOCK_ID,
        provisioner=ReservedProvisioner.KARPENTER,
    )
    groups, nodes = eks_quota_demand(_ultraservers(40), [big, karpenter])
    assert (groups.quota.code, groups.needed) == ("L-6D54EA21", 42)
    assert (nodes.quota.code, nodes.needed) == ("L-BD136A63", 500)
    assert nodes.parts == ("reservedCapacity big: 500",)
    (_, ultraserver_nodes) = eks_quota_demand(_ultraservers(1, "u-p6e-gb200x36"))
    assert ultraserver_nodes.needed == 9


def test_eks_quotas_below_the_need_block_with_the_increase_to_request():
    """GIVEN 40 UltraServers (41 node groups) and the default quota of 30 THEN preflight
    blocks, naming the quota code, its value and the value to request; 450 nodes per node
    group is enough for 18."""
    client, stub = s.stubbed("service-quotas")
    queue_eks_quotas(stub, nodegroups=30.0, nodes=450.0)
    with stub:
        findings = check_eks_quotas(client, ultraservers=_ultraservers(40), region=s.REGION)
        stub.assert_no_pending_responses()
    groups = by_check(findings, "L-6D54EA21", "EKS managed node groups per cluster")
    assert groups.severity is Severity.BLOCKING
    assert "is 30 in us-east-1, below the 41 (system: 1; ultraServers: 40)" in groups.message
    assert groups.fix.endswith("--service-code eks --quota-code L-6D54EA21 --desired-value 41")
    nodes = by_check(findings, "L-BD136A63", "EKS nodes per managed node group")
    assert nodes.severity is Severity.OK and "enough for 18" in nodes.message


def test_eks_quota_without_an_applied_value_falls_back_to_the_aws_default():
    """GIVEN Service Quotas has no applied value (NoSuchResourceException) THEN the AWS
    default is asked and reported as such; a quota neither knows is a note."""
    client, stub = s.stubbed("service-quotas")
    groups = {"ServiceCode": "eks", "QuotaCode": "L-6D54EA21"}
    nodes = {"ServiceCode": "eks", "QuotaCode": "L-BD136A63"}
    stub.add_client_error("get_service_quota", "NoSuchResourceException", expected_params=groups)
    stub.add_response(
        "get_aws_default_service_quota", quota("L-6D54EA21", 30.0, service="eks"), expected_params=groups
    )
    stub.add_client_error("get_service_quota", "NoSuchResourceException", expected_params=nodes)
    stub.add_client_error("get_aws_default_service_quota", "NoSuchResourceException", expected_params=nodes)
    with stub:
        findings = check_eks_quotas(client, ultraservers=_ultraservers(3))
        stub.assert_no_pending_responses()
    ok = by_check(findings, "L-6D54EA21", "EKS managed node groups per cluster")
    assert ok.severity is Severity.OK and "is 30 (AWS default), enough for 4" in ok.message
    note = by_check(findings, "L-BD136A63", "EKS nodes per managed node group")
    assert note.severity is Severity.NOTE and "not found" in note.message


def test_eks_quota_read_denied_is_a_note_with_the_default_and_the_need():
    client, stub = s.stubbed("service-quotas")
    stub.add_client_error("get_service_quota", "AccessDeniedException")
    stub.add_client_error("get_service_quota", "AccessDeniedException")
    with stub:
        findings = check_eks_quotas(client, ultraservers=_ultraservers(31))
    assert [f.severity for f in findings] == [Severity.NOTE, Severity.NOTE]
    assert "EKS's default is 30, the configuration needs 32" in findings[0].message
