"""``CapacityBlockNotifications``: Capacity Block events from EventBridge to an SNS topic.

EC2 sends two events for every Capacity Block (EC2 user guide, capacity-blocks-monitor;
EventBridge events reference, events-ref-ec2), both with ``source: aws.ec2`` and
``detail: {"capacity-reservation-id": ..., "end-date": ...}``:

- when the block starts: the capacity is ready to use;
- 40 minutes before it ends: instances in it begin to terminate in 10 minutes (EKS has
  then already scheduled the node group's scale-down).

The two AWS pages disagree on the ``detail-type`` strings: the EventBridge events
reference (newer) lists ``Capacity Block Delivered`` and ``Capacity Block Expiration
Warning``; the EC2 user guide's examples show ``Capacity Block Reservation Delivered`` and
``Capacity Block Reservation Expiration Warning``. The rules match both spellings, so a
notification arrives whichever EC2 sends.

EventBridge rules only see events of their own Region: deploy this in the Region of the
Capacity Blocks (the environment stack is).

An event pattern may hold at most 2,048 characters (EventBridge quotas, "Event pattern
size", adjustable): about 80 reservation ids. Longer lists are split over several pairs of
rules, each pattern within that size, up to :data:`MAX_RULE_PAIRS` pairs (about 1,600
reservations). Past that, one pair matches every Capacity Block of the account in the
Region instead, and synth warns: the rules live in the parent stack, whose 500 resources and
1 MB must also hold up to 256 UltraServer nested stacks (docs/sharding.md), and an event
bus holds 300 rules by default (EventBridge quotas, "Rules", adjustable).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import Token
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions

from constructs import Construct
from eks_ultraserver.model import Problems, describe_reservation_id_problem, is_reservation_id
from eks_ultraserver.patterns import EMAIL_RE

#: ``detail-type`` of the event sent when a Capacity Block starts (both documented spellings).
DELIVERED_DETAIL_TYPES: tuple[str, ...] = (
    "Capacity Block Delivered",
    "Capacity Block Reservation Delivered",
)
#: ``detail-type`` of the event sent 40 minutes before a Capacity Block ends.
EXPIRATION_WARNING_DETAIL_TYPES: tuple[str, ...] = (
    "Capacity Block Expiration Warning",
    "Capacity Block Reservation Expiration Warning",
)


#: EventBridge's default quota on the size of an event pattern, in characters (Amazon
#: EventBridge quotas, "Event pattern size").
MAX_EVENT_PATTERN_CHARS = 2048
#: At most this many (delivered, expiration warning) pairs of rules list reservation ids:
#: 40 rules, about 130 KB of the parent template. More reservations than fit get one pair
#: for every Capacity Block of the account and Region.
MAX_RULE_PAIRS = 20


def _pattern(detail_types: Sequence[str], ids: Sequence[str] | None) -> dict:
    """The event pattern as CloudFormation passes it to EventBridge."""
    pattern: dict = {"source": ["aws.ec2"], "detail-type": list(detail_types)}
    if ids is not None:
        pattern["detail"] = {"capacity-reservation-id": list(ids)}
    return pattern


def reservation_id_groups(ids: Sequence[str]) -> list[list[str]]:
    """``ids`` in order, cut into the fewest consecutive groups whose event patterns (with
    the longer detail-type pair, serialized with spaces to stay on the safe side) fit in
    :data:`MAX_EVENT_PATTERN_CHARS`."""
    detail_types = max(DELIVERED_DETAIL_TYPES, EXPIRATION_WARNING_DETAIL_TYPES, key=json.dumps)
    groups: list[list[str]] = [[]]
    for rid in ids:
        if (
            groups[-1]
            and len(json.dumps(_pattern(detail_types, [*groups[-1], rid]))) > MAX_EVENT_PATTERN_CHARS
        ):
            groups.append([])
        groups[-1].append(rid)
    return groups


class CapacityBlockNotifications(Construct):
    """Notifies an SNS topic when a Capacity Block starts and 40 minutes before it ends.

    All arguments after ``id`` are keyword-only.

    :param reservation_ids: only events of these reservations (``cr-`` + 17 hex digits).
        More than fit in one event pattern (about 80) get more pairs of rules; more than fit
        in :data:`MAX_RULE_PAIRS` pairs (about 1,600) get one pair for every Capacity Block
        of the account in this Region, and synth warns.
        Default: every Capacity Block of the account in this Region.
    :param email: an address to subscribe to the topic (the recipient must confirm the
        subscription e-mail AWS sends). Default: no subscription; subscribe to ``topic``
        yourself (e-mail, chat, a Lambda function).
    :param topic: the topic to publish to. Default: a new topic encrypted with a new
        customer-managed KMS key (rotation on; about USD 1 a month) whose key policy lets
        EventBridge use it, with a policy that denies publishing without TLS. An imported
        topic must itself allow ``events.amazonaws.com`` to ``sns:Publish`` (and to use
        its KMS key, if encrypted): CDK cannot change the policy of a topic it does not own.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        reservation_ids: Sequence[str] | None = None,
        email: str | None = None,
        topic: sns.ITopic | None = None,
    ) -> None:
        problems = Problems()
        ids = list(reservation_ids) if reservation_ids is not None else None
        if ids is not None:
            if not ids:
                problems.add(
                    "reservation_ids: the list is empty, so no event would ever match; pass "
                    "None (default) to notify for every Capacity Block"
                )
            for i, rid in enumerate(ids):
                # an id first (plain Python), a token only then (a jsii round trip)
                if not is_reservation_id(rid) and not Token.is_unresolved(rid):
                    problems.add(describe_reservation_id_problem(f"reservation_ids[{i}]", rid))
        if email is not None and not Token.is_unresolved(email) and not EMAIL_RE.match(email):
            problems.add(f"email: {email!r} is not an e-mail address, e.g. 'ops@example.com'")
        problems.raise_if_any(f"CapacityBlockNotifications {id!r}")

        super().__init__(scope, id)
        self.encryption_key: kms.IKey | None = None
        if topic is None:
            key = kms.Key(
                self,
                "Key",
                description="Encrypts the Capacity Block notification topic",
                enable_key_rotation=True,
                # Nothing but in-flight notifications is encrypted with it: delete it with
                # the stack rather than keep paying for an orphaned key.
                removal_policy=cdk.RemovalPolicy.DESTROY,
                pending_window=cdk.Duration.days(7),
            )
            # EventBridge publishes to an encrypted topic only if its key policy lets
            # events.amazonaws.com use the key (SNS developer guide, sns-key-management,
            # "compatibility with AWS services"): targets.SnsTopic grants that through
            # topic.grant_publish, on the topic policy and on this key's policy.
            topic = sns.Topic(
                self,
                "Topic",
                display_name="Capacity Block notifications",
                master_key=key,
                enforce_ssl=True,
            )
            self.encryption_key = key
        self.topic: sns.ITopic = topic

        reservation = events.EventField.from_path("$.detail.capacity-reservation-id")
        end_date = events.EventField.from_path("$.detail.end-date")
        region = events.EventField.from_path("$.region")
        account = events.EventField.from_path("$.account")
        delivered_message = events.RuleTargetInput.from_text(
            f"Capacity Block {reservation} is active in account {account}, {region}, "
            f"until {end_date}. The nodes that run on it launch now; check with: kubectl get "
            "nodes -l eks.amazonaws.com/capacityType=CAPACITY_BLOCK"
        )
        expiration_message = events.RuleTargetInput.from_text(
            f"Capacity Block {reservation} in account {account}, {region} ends at "
            f"{end_date}: EC2 starts terminating its instances in 10 minutes and EKS is "
            "scaling its node group to 0. Save checkpoints now; running jobs will stop."
        )

        #: One (delivered, expiration warning) pair of rules per group of reservations; the
        #: first pair keeps the ids ``Delivered`` and ``ExpirationWarning``.
        self.rules: list[tuple[events.Rule, events.Rule]] = []
        groups: list[list[str] | None] = list(reservation_id_groups(ids)) if ids is not None else [None]
        if len(groups) > MAX_RULE_PAIRS:
            cdk.Annotations.of(self).add_warning_v2(
                "eks-ultraserver:notifications-every-capacity-block",
                f"{len(ids or ())} Capacity Blocks need {len(groups)} pairs of EventBridge rules "
                f"(about 80 ids per event pattern), more than {MAX_RULE_PAIRS}: the topic receives "
                "the events of every Capacity Block of the account in this Region instead (each "
                "message names its reservation). See docs/sharding.md.",
            )
            groups = [None]
        for n, group in enumerate(groups):
            suffix = "" if n == 0 else str(n + 1)
            delivered = events.Rule(
                self,
                f"Delivered{suffix}",
                description="Capacity Block started: its capacity is ready",
                event_pattern=events.EventPattern(**_event_pattern_args(DELIVERED_DETAIL_TYPES, group)),
            )
            delivered.add_target(targets.SnsTopic(topic, message=delivered_message))
            expiration = events.Rule(
                self,
                f"ExpirationWarning{suffix}",
                description="Capacity Block ends in 40 minutes: instances terminate in 10 minutes",
                event_pattern=events.EventPattern(
                    **_event_pattern_args(EXPIRATION_WARNING_DETAIL_TYPES, group)
                ),
            )
            expiration.add_target(targets.SnsTopic(topic, message=expiration_message))
            self.rules.append((delivered, expiration))
        self.delivered_rule, self.expiration_rule = self.rules[0]
        if email is not None:
            topic.add_subscription(subscriptions.EmailSubscription(email))


def _event_pattern_args(detail_types: Sequence[str], ids: Sequence[str] | None) -> dict:
    pattern = _pattern(detail_types, ids)
    return {
        "source": pattern["source"],
        "detail_type": pattern["detail-type"],
        "detail": pattern.get("detail"),
    }


__all__ = [
    "DELIVERED_DETAIL_TYPES",
    "EXPIRATION_WARNING_DETAIL_TYPES",
    "MAX_EVENT_PATTERN_CHARS",
    "MAX_RULE_PAIRS",
    "CapacityBlockNotifications",
    "reservation_id_groups",
]
