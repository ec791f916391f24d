"""CapacityBlockNotifications: EventBridge rules for Capacity Block events to SNS."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match

from eks_ultraserver.constructs.notifications import (
    DELIVERED_DETAIL_TYPES,
    EXPIRATION_WARNING_DETAIL_TYPES,
    MAX_EVENT_PATTERN_CHARS,
    CapacityBlockNotifications,
)
from eks_ultraserver.model import ConfigurationError

from conftest import ACCOUNT, REGION, template_of

RIDS = ["cr-0123456789abcdef0", "cr-0fedcba9876543210"]


def _stack():
    app = cdk.App()
    return cdk.Stack(app, "Test", env=cdk.Environment(account=ACCOUNT, region=REGION))


@pytest.fixture(scope="module")
def synth():
    """GIVEN two reservations and an e-mail address WHEN synthesized (once per module)."""
    stack = _stack()
    construct = CapacityBlockNotifications(stack, "Notify", reservation_ids=RIDS, email="ops@example.com")
    return construct, template_of(stack)


@pytest.fixture(scope="module")
def synth_imported_topic():
    """GIVEN an imported topic and no reservation filter WHEN synthesized."""
    stack = _stack()
    topic = sns.Topic.from_topic_arn(stack, "Existing", f"arn:aws:sns:{REGION}:{ACCOUNT}:ops")
    construct = CapacityBlockNotifications(stack, "Notify", topic=topic)
    return construct, template_of(stack)


@pytest.mark.parametrize(
    ("detail_types", "words"),
    [
        (DELIVERED_DETAIL_TYPES, "is active"),
        (EXPIRATION_WARNING_DETAIL_TYPES, "terminating its instances in 10 minutes"),
    ],
)
def test_rule_matches_both_documented_detail_types_of_the_reservations(synth, detail_types, words):
    _construct, template = synth
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.ec2"],
                "detail-type": list(detail_types),
                "detail": {"capacity-reservation-id": RIDS},
            },
            "State": "ENABLED",
            "Targets": [
                Match.object_like(
                    {
                        "Arn": {"Ref": Match.string_like_regexp("NotifyTopic")},
                        "InputTransformer": {
                            "InputPathsMap": Match.object_like(
                                {
                                    "detail-capacity-reservation-id": "$.detail.capacity-reservation-id",
                                    "detail-end-date": "$.detail.end-date",
                                }
                            ),
                            "InputTemplate": Match.string_like_regexp(words),
                        },
                    }
                )
            ],
        },
    )


def test_detail_type_strings_are_the_documented_ones():
    assert "Capacity Block Delivered" in DELIVERED_DETAIL_TYPES
    assert "Capacity Block Reservation Delivered" in DELIVERED_DETAIL_TYPES
    assert "Capacity Block Expiration Warning" in EXPIRATION_WARNING_DETAIL_TYPES
    assert "Capacity Block Reservation Expiration Warning" in EXPIRATION_WARNING_DETAIL_TYPES


def test_topic_is_kms_encrypted_with_a_rotating_key_eventbridge_may_use(synth):
    _construct, template = synth
    template.has_resource_properties(
        "AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::GetAtt": [Match.string_like_regexp("NotifyKey"), "Arn"]}}
    )
    template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "EnableKeyRotation": True,
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                                "Effect": "Allow",
                                "Principal": {"Service": "events.amazonaws.com"},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_topic_policy_denies_plain_http_and_allows_eventbridge(synth):
    _construct, template = synth
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "sns:Publish",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        ),
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Action": "sns:Publish",
                                "Principal": {"Service": "events.amazonaws.com"},
                            }
                        ),
                    ]
                )
            }
        },
    )


def test_email_subscription(synth):
    _construct, template = synth
    template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"}
    )


def test_imported_topic_without_filter(synth_imported_topic):
    construct, template = synth_imported_topic
    template.resource_count_is("AWS::SNS::Topic", 0)
    template.resource_count_is("AWS::KMS::Key", 0)
    template.resource_count_is("AWS::SNS::Subscription", 0)
    assert construct.encryption_key is None
    rules = template.find_resources("AWS::Events::Rule")
    assert len(rules) == 2
    for rule in rules.values():
        pattern = rule["Properties"]["EventPattern"]
        assert "detail" not in pattern  # every Capacity Block of the account
        assert rule["Properties"]["Targets"][0]["Arn"] == f"arn:aws:sns:{REGION}:{ACCOUNT}:ops"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reservation_ids": ["cr-123"]}, r"reservation_ids\[0\]: 'cr-123' is not a Capacity Reservation id"),
        ({"reservation_ids": []}, "reservation_ids: the list is empty"),
        ({"email": "ops-at-example"}, "email: 'ops-at-example' is not an e-mail address"),
    ],
)
def test_bad_arguments_raise_one_configuration_error(kwargs, message):
    stack = _stack()
    with pytest.raises(ConfigurationError, match=message):
        CapacityBlockNotifications(stack, "Notify", **kwargs)
    assert stack.node.try_find_child("Notify") is None  # nothing half-built


def test_all_problems_in_one_error():
    with pytest.raises(ConfigurationError) as err:
        CapacityBlockNotifications(_stack(), "Notify", reservation_ids=["x", "y"], email="z")
    assert len(err.value.problems) == 3


def test_many_reservations_are_split_over_rules_within_the_pattern_size_quota():
    """GIVEN 200 reservations (more than one 2,048-character event pattern can list)
    WHEN synthesized THEN every id is matched by exactly one rule of each kind, no
    pattern exceeds the quota, and the first pair keeps its construct ids."""
    ids = [f"cr-0{i:016x}" for i in range(200)]
    stack = _stack()
    construct = CapacityBlockNotifications(stack, "Notify", reservation_ids=ids)
    rules = template_of(stack).find_resources("AWS::Events::Rule")
    assert len(rules) == 2 * len(construct.rules) > 2
    for detail_types in (DELIVERED_DETAIL_TYPES, EXPIRATION_WARNING_DETAIL_TYPES):
        patterns = [
            r["Properties"]["EventPattern"]
            for r in rules.values()
            if r["Properties"]["EventPattern"]["detail-type"] == list(detail_types)
        ]
        assert all(len(json.dumps(p)) <= MAX_EVENT_PATTERN_CHARS for p in patterns)
        matched = [rid for p in patterns for rid in p["detail"]["capacity-reservation-id"]]
        assert sorted(matched) == sorted(ids)
    assert construct.delivered_rule.node.id == "Delivered"
    assert construct.expiration_rule.node.id == "ExpirationWarning"


def test_snapshot(synth, snapshot_json):
    _construct, template = synth
    assert template.to_json() == snapshot_json


def test_more_reservations_than_the_rule_pairs_hold_match_every_capacity_block_with_a_warning():
    """GIVEN more reservations than MAX_RULE_PAIRS pairs of patterns can list (a fleet of
    thousands of UltraServers) WHEN synthesized THEN one pair of rules without an id filter
    (every Capacity Block of the account and Region), not a hundred pairs in the parent
    stack, and a synth warning that says so."""
    from aws_cdk.assertions import Annotations

    from eks_ultraserver.constructs.notifications import MAX_RULE_PAIRS, reservation_id_groups

    ids = [f"cr-0{i:016x}" for i in range(2000)]
    assert len(reservation_id_groups(ids)) > MAX_RULE_PAIRS
    stack = _stack()
    construct = CapacityBlockNotifications(stack, "Notify", reservation_ids=ids)
    rules = template_of(stack).find_resources("AWS::Events::Rule")
    assert len(rules) == 2 and len(construct.rules) == 1
    assert all("detail" not in r["Properties"]["EventPattern"] for r in rules.values())
    warnings = Annotations.from_stack(stack).find_warning(
        "*", Match.string_like_regexp("every Capacity Block")
    )
    assert len(warnings) == 1


def test_as_many_reservations_as_the_rule_pairs_hold_keep_their_id_filters():
    """The boundary: MAX_RULE_PAIRS full pairs still list every id, with no warning."""
    from aws_cdk.assertions import Annotations

    from eks_ultraserver.constructs.notifications import MAX_RULE_PAIRS, reservation_id_groups

    ids = [f"cr-0{i:016x}" for i in range(2000)]
    while len(reservation_id_groups(ids)) > MAX_RULE_PAIRS:
        ids.pop()
    stack = _stack()
    construct = CapacityBlockNotifications(stack, "Notify", reservation_ids=ids)
    assert len(construct.rules) == MAX_RULE_PAIRS
    rules = template_of(stack).find_resources("AWS::Events::Rule")
    listed = [
        rid
        for r in rules.values()
        for rid in r["Properties"]["EventPattern"]["detail"]["capacity-reservation-id"]
    ]
    assert sorted(listed) == sorted(ids * 2)
    assert (
        Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp("every Capacity Block"))
        == []
    )
