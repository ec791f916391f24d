"""``resolve_reservations``: the synth-time zone lookup and its cdk.context.json cache.

GIVEN a configuration without availabilityZone, WHEN the first synth resolves it, THEN
EC2 is asked once per reservation (Stubber) and the answers are written to
cdk.context.json under CDK-style keys; WHEN a later synth resolves it, THEN the cache is
read and EC2 is not asked (a Stubber with nothing queued fails on any call).
"""

from __future__ import annotations

import json
import sys

import pytest

from eks_ultraserver.config import EnvironmentConfig
from eks_ultraserver.lookups import CachedReservation, context_key, resolve_reservations
from eks_ultraserver.model import ConfigurationError

import aws_stubs as s

SERVERS = [{"capacityReservationId": s.RID, "type": "u-p6e-gb200x72", "name": "us-1"}]
KEY = f"capacity-reservation:account={s.ACCOUNT}:region={s.REGION}:reservationId={s.RID}"


def getter(context: dict):
    return context.get


def resolve(context, tmp_path, ec2=None, **kwargs):
    return resolve_reservations(
        getter(context),
        account=kwargs.pop("account", s.ACCOUNT),
        region=kwargs.pop("region", s.REGION),
        ec2_client=ec2,
        context_file=tmp_path / "cdk.context.json",
        **kwargs,
    )


def test_key_is_shaped_like_cdk_context_provider_keys():
    assert context_key(account=s.ACCOUNT, region=s.REGION, reservation_id=s.RID) == KEY


def test_first_synth_looks_up_and_caches_then_later_synths_stay_offline(tmp_path):
    context = {"ultraServers": SERVERS}
    cache = tmp_path / "cdk.context.json"
    cache.write_text(json.dumps({"availability-zones:account=123456789012:region=us-east-1": ["us-east-1a"]}))

    # WHEN the first synth resolves: one DescribeCapacityReservations call
    ec2, stubber = s.stubbed("ec2")
    stubber.add_response(
        "describe_capacity_reservations",
        {"CapacityReservations": [s.reservation()]},
        {"CapacityReservationIds": [s.RID]},
    )
    with stubber:
        first = resolve(context, tmp_path, ec2)
        stubber.assert_no_pending_responses()
    # THEN the zone comes back and is cached next to the other lookups
    assert first == {"availabilityZone": s.ZONE}
    cached = json.loads(cache.read_text())
    assert cached["availability-zones:account=123456789012:region=us-east-1"] == ["us-east-1a"]
    assert cached[KEY] == {
        "availabilityZone": s.ZONE,
        "availabilityZoneId": "use1-dfw2-az1",
        "instanceType": "p6e-gb200.36xlarge",
        "reservationType": "capacity-block",
        "totalInstanceCount": 18,
    }
    written = cache.read_text()

    # WHEN the second synth resolves with a stubbed client that has no answer queued
    ec2, stubber = s.stubbed("ec2")
    with stubber:
        second = resolve(context, tmp_path, ec2)
    # THEN it read the cache: same answer, no call, file unchanged
    assert second == first
    assert cache.read_text() == written


def test_cache_passed_in_by_the_cdk_cli_is_used_without_the_file(tmp_path):
    # GIVEN the CDK CLI's context (it merges cdk.context.json into the app's context)
    context = {
        "ultraServers": json.dumps(SERVERS),
        KEY: CachedReservation(
            availability_zone="us-east-1-atl-2a",
            availability_zone_id=None,
            instance_type="p6e-gb200.36xlarge",
            reservation_type="capacity-block",
            total_instance_count=18,
        ).to_json(),
    }
    ec2, stubber = s.stubbed("ec2")
    with stubber:
        assert resolve(context, tmp_path, ec2) == {"availabilityZone": "us-east-1-atl-2a"}
    assert not (tmp_path / "cdk.context.json").exists()


def test_no_lookup_when_the_zone_is_given(tmp_path, monkeypatch):
    # GIVEN availabilityZone in the context and boto3 unimportable
    monkeypatch.setitem(sys.modules, "boto3", None)
    context = {"ultraServers": SERVERS, "availabilityZone": s.ZONE}
    assert resolve(context, tmp_path, account=None, region=None) == {}
    assert not (tmp_path / "cdk.context.json").exists()


def test_result_feeds_the_configuration_reader(tmp_path):
    ec2, stubber = s.stubbed("ec2")
    stubber.add_response("describe_capacity_reservations", {"CapacityReservations": [s.reservation()]})
    context = {"ultraServers": SERVERS}
    with stubber:
        found = resolve(context, tmp_path, ec2)
    config = EnvironmentConfig.from_context(lambda key: found.get(key, context.get(key)))
    assert config.availability_zone == s.ZONE


def test_without_credentials_one_message_names_availability_zone(tmp_path, monkeypatch):
    # GIVEN no credentials anywhere: the default boto3 client fails before the network
    s.isolate_from_aws(monkeypatch, tmp_path)
    with pytest.raises(ConfigurationError) as err:
        resolve({"ultraServers": SERVERS}, tmp_path)
    message = str(err.value)
    assert "1 problem" in message
    assert "availabilityZone: not set, and looking up the zone of cr-0123456789abcdef1 failed" in message
    assert "no usable AWS credentials" in message and "-c availabilityZone=" in message
    assert not (tmp_path / "cdk.context.json").exists()


def test_environment_agnostic_stack_cannot_look_up(tmp_path):
    with pytest.raises(
        ConfigurationError, match=r"availabilityZone: not set.*account and Region.*-c availabilityZone="
    ):
        resolve({"ultraServers": SERVERS}, tmp_path, account="${Token[AWS.AccountId.0]}")


def test_unknown_reservation_names_the_entry_and_the_alternative(tmp_path):
    ec2, stubber = s.stubbed("ec2")
    stubber.add_client_error(
        "describe_capacity_reservations",
        service_error_code="InvalidCapacityReservationId.NotFound",
        http_status_code=400,
    )
    with (
        stubber,
        pytest.raises(
            ConfigurationError,
            match=r"ultraServers\[0\].capacityReservationId: .* was not found .*availabilityZone",
        ),
    ):
        resolve({"ultraServers": SERVERS}, tmp_path, ec2)


def test_lookup_checks_type_kind_and_count_and_lists_every_problem(tmp_path):
    ec2, stubber = s.stubbed("ec2")
    stubber.add_response(
        "describe_capacity_reservations",
        {
            "CapacityReservations": [
                s.reservation(InstanceType="p5.48xlarge", ReservationType="default", TotalInstanceCount=9)
            ]
        },
    )
    with stubber, pytest.raises(ConfigurationError) as err:
        resolve({"ultraServers": SERVERS}, tmp_path, ec2)
    problems = err.value.problems
    assert len(problems) == 3
    assert "reserves p5.48xlarge, not p6e-gb200.36xlarge" in problems[0]
    assert "not a Capacity Block" in problems[1]
    assert "ultraServers[0].type: u-p6e-gb200x72 has 18 instances, but" in problems[2]
    # what was learned is cached all the same: fixing the id triggers a new lookup anyway
    assert KEY in json.loads((tmp_path / "cdk.context.json").read_text())


def test_reservations_in_two_zones_are_refused(tmp_path):
    servers = [*SERVERS, {"capacityReservationId": s.RID2, "type": "u-p6e-gb200x72", "name": "us-2"}]
    ec2, stubber = s.stubbed("ec2")
    stubber.add_response("describe_capacity_reservations", {"CapacityReservations": [s.reservation()]})
    stubber.add_response(
        "describe_capacity_reservations",
        {
            "CapacityReservations": [
                s.reservation(CapacityReservationId=s.RID2, AvailabilityZone="us-east-1-atl-2a")
            ]
        },
        {"CapacityReservationIds": [s.RID2]},
    )
    with stubber, pytest.raises(ConfigurationError, match="reservations are in 2 zones"):
        resolve({"ultraServers": servers}, tmp_path, ec2)


def test_malformed_entries_are_left_to_the_configuration_reader(tmp_path):
    assert resolve({"ultraServers": [{"capacityReservationId": "nope"}]}, tmp_path) == {}
    assert resolve({"ultraServers": "[not json"}, tmp_path) == {}
    assert resolve({}, tmp_path) == {}


def test_broken_cache_file_is_reported(tmp_path):
    (tmp_path / "cdk.context.json").write_text("{broken")
    with pytest.raises(ConfigurationError, match=r"cdk\.context\.json: not valid JSON"):
        resolve({"ultraServers": SERVERS}, tmp_path, s.stubbed("ec2")[0])


def test_importing_the_lookup_module_does_not_import_boto3():
    import subprocess

    code = (
        "import sys, eks_ultraserver.lookups; "
        "assert not {'boto3', 'botocore'} & set(sys.modules), sorted(m for m in sys.modules if 'boto' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
