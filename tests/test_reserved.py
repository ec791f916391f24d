"""ReservedGpuNodeGroup: ODCRs (by id or resource group) and Capacity Blocks of other GPU types."""

from __future__ import annotations

import email
import json
from email.message import Message
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Match
from jsii._kernel.providers.process import ProcessProvider

from eks_ultraserver.capacity import (
    Architecture,
    EfaInterface,
    GpuInstanceType,
    ReservationKind,
    ReservedCapacitySpec,
)
from eks_ultraserver.constructs.reserved import ReservedGpuNodeGroup
from eks_ultraserver.model import ConfigurationError, Taint

from conftest import ACCOUNT, REGION, cluster_in_new_vpc, template_of

ZONE = "us-east-1a"
RID = "cr-0aaaaaaaaaaaaaaa1"
RID_BLOCK = "cr-0bbbbbbbbbbbbbbb2"
ARN = "arn:aws:resource-groups:us-east-1:123456789012:group/my-odcrs"
ARM_TYPE = GpuInstanceType(
    name="g5g.16xlarge",
    architecture=Architecture.ARM64,
    gpus=2,
    vcpus=64,
    network_cards=1,
)


@pytest.fixture(scope="module")
def synth():
    """GIVEN a cluster and four reservations: 2 x p5.48xlarge ODCR by id (defaults), 1 x
    p5en.48xlarge ODCR through a resource group (On-Demand fallback allowed), 2 x
    p6-b200.48xlarge Capacity Block (max_unavailable 2), and an arm64 type of the user's own
    table entry; a tag on the app, WHEN synthesized once for the module."""
    app = cdk.App(builtin_cloud_formation_validation=False)
    stack = cdk.Stack(app, "Reserved", env=cdk.Environment(account=ACCOUNT, region=REGION))
    _vpc, cluster = cluster_in_new_vpc(stack, "1.35")
    subnet = ec2.Subnet.from_subnet_attributes(
        stack, "ZoneSubnet", subnet_id="subnet-0aaaaaaaaaaaaaaaa", availability_zone=ZONE
    )
    eval_group = ReservedGpuNodeGroup(
        stack,
        "Eval",
        cluster=cluster,
        name="eval",
        instance_type="p5.48xlarge",
        instance_count=2,
        subnets=[subnet],
        capacity_reservation_id=RID,
        availability_zone=ZONE,
    )
    shared: dict[str, Any] = {
        "node_role": eval_group.node_role,
        "efa_security_group": eval_group.efa_security_group,
    }
    calls = _count_jsii_calls(
        lambda: ReservedGpuNodeGroup(
            stack,
            "Group",
            cluster=cluster,
            name="grp",
            instance_type="p5en.48xlarge",
            instance_count=1,
            subnets=[subnet],
            resource_group_arn=ARN,
            reservation_only=False,
            labels={"team": "eval"},
            **shared,
        )
    )
    ReservedGpuNodeGroup.from_spec(
        stack,
        "Block",
        cluster=cluster,
        subnets=[subnet],
        spec=ReservedCapacitySpec(
            name="ft",
            instance_type="p6-b200.48xlarge",
            instance_count=2,
            kind=ReservationKind.CAPACITY_BLOCK,
            capacity_reservation_id=RID_BLOCK,
            availability_zone=ZONE,
        ),
        scaled_to_zero=True,
        max_unavailable=2,
        **shared,
    )
    ReservedGpuNodeGroup(
        stack,
        "Arm",
        cluster=cluster,
        name="arm",
        instance_type=ARM_TYPE,
        instance_count=1,
        subnets=[subnet],
        capacity_reservation_id="cr-0ccccccccccccccc3",
        taints=[],
        instance_store="none",
        node_role=eval_group.node_role,
    )
    cdk.Tags.of(app).add("cost-center", "ml-42")
    tpl = template_of(stack).to_json()
    return stack, cluster, subnet, tpl, calls


def _count_jsii_calls(fn) -> int:
    counted = ("create", "get", "set", "invoke", "sget", "sinvoke", "sset")
    originals = {name: getattr(ProcessProvider, name) for name in counted}
    count = 0

    def wrap(original):
        def wrapper(*args, **kwargs):
            nonlocal count
            count += 1
            return original(*args, **kwargs)

        return wrapper

    try:
        for name, original in originals.items():
            setattr(ProcessProvider, name, wrap(original))
        fn()
    finally:
        for name, original in originals.items():
            setattr(ProcessProvider, name, original)
    return count


def _resource(tpl, type_, prefix):
    hits = {k: v for k, v in tpl["Resources"].items() if v["Type"] == type_ and k.startswith(prefix)}
    assert len(hits) == 1, list(hits)
    return next(iter(hits.values()))["Properties"]


def _lt(tpl, prefix):
    return _resource(tpl, "AWS::EC2::LaunchTemplate", prefix)["LaunchTemplateData"]


def _ng(tpl, prefix):
    return _resource(tpl, "AWS::EKS::Nodegroup", prefix)


def test_odcr_by_id_targets_it_with_reservations_only(synth):
    """THEN the ODCR launch template has no market type, targets the reservation with
    preference capacity-reservations-only, and the node group is ON_DEMAND of fixed size."""
    *_, tpl, _calls = synth
    data = _lt(tpl, "Eval")
    assert data["InstanceType"] == "p5.48xlarge"
    assert "InstanceMarketOptions" not in data
    assert data["CapacityReservationSpecification"] == {
        "CapacityReservationPreference": "capacity-reservations-only",
        "CapacityReservationTarget": {"CapacityReservationId": RID},
    }
    for forbidden in (
        "ImageId",
        "IamInstanceProfile",
        "InstanceInitiatedShutdownBehavior",
        "SecurityGroupIds",
    ):
        assert forbidden not in data
    assert data["MetadataOptions"] == {
        "HttpEndpoint": "enabled",
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 1,
    }
    ng = _ng(tpl, "Eval")
    assert ng["CapacityType"] == "ON_DEMAND" and ng["AmiType"] == "AL2023_x86_64_NVIDIA"
    assert "InstanceTypes" not in ng
    assert ng["ScalingConfig"] == {"MinSize": 2, "DesiredSize": 2, "MaxSize": 2}
    assert ng["Labels"] == {
        "eks-ultraserver.io/capacity": "reserved",
        "eks-ultraserver.io/reserved-capacity": "eval",
        "eks-ultraserver.io/efa-devices": "32",
        "eks-ultraserver.io/capacity-reservation": RID,
    }
    assert ng["Taints"] == [{"Key": "nvidia.com/gpu", "Value": "true", "Effect": "NO_SCHEDULE"}]


def test_p5_gets_the_documented_32_efa_interfaces(synth):
    """THEN (EC2 user guide, efa-acc-inst-types, P5 use case 1): ENA primary on card 0
    device 0, efa-only on card 0 device 1 and on cards 1-31 device 0, no SubnetId; the EFA
    security group on every interface, the cluster group on the primary only."""
    *_, tpl, _calls = synth
    interfaces = _lt(tpl, "Eval")["NetworkInterfaces"]
    assert len(interfaces) == 33
    primary, *efa = interfaces
    assert (primary["NetworkCardIndex"], primary["DeviceIndex"], primary["InterfaceType"]) == (
        0,
        0,
        "interface",
    )
    assert [(i["NetworkCardIndex"], i["DeviceIndex"]) for i in efa] == [(0, 1)] + [
        (c, 0) for c in range(1, 32)
    ]
    assert {i["InterfaceType"] for i in efa} == {"efa-only"}
    assert all("SubnetId" not in i for i in interfaces)
    efa_groups = {str(i["Groups"]) for i in efa}
    assert len(efa_groups) == 1 and len(efa[0]["Groups"]) == 1
    assert len(primary["Groups"]) == 2 and efa[0]["Groups"][0] in primary["Groups"]


def test_resource_group_target_without_preference(synth):
    *_, tpl, _calls = synth
    data = _lt(tpl, "Group")
    assert data["CapacityReservationSpecification"] == {
        "CapacityReservationTarget": {"CapacityReservationResourceGroupArn": ARN}
    }
    assert len(data["NetworkInterfaces"]) == 17  # p5en: card 0 device 1 + cards 1-15
    ng = _ng(tpl, "Group")
    assert ng["Tags"]["eks-ultraserver:capacity-reservation-group"] == ARN
    assert ng["Labels"]["team"] == "eval" and "eks-ultraserver.io/capacity-reservation" not in ng["Labels"]


def test_capacity_block_uses_the_capacity_block_market(synth):
    *_, tpl, _calls = synth
    data = _lt(tpl, "Block")
    assert data["InstanceMarketOptions"] == {"MarketType": "capacity-block"}
    assert data["CapacityReservationSpecification"] == {
        "CapacityReservationTarget": {"CapacityReservationId": RID_BLOCK}
    }
    assert [(i["NetworkCardIndex"], i["DeviceIndex"]) for i in data["NetworkInterfaces"][1:]] == [(0, 1)] + [
        (c, 0) for c in range(1, 8)
    ]
    ng = _ng(tpl, "Block")
    assert ng["CapacityType"] == "CAPACITY_BLOCK"
    assert ng["ScalingConfig"] == {"MinSize": 0, "DesiredSize": 0, "MaxSize": 2}


def test_user_data_stripes_the_instance_store(synth):
    *_, tpl, _calls = synth
    text = _lt(tpl, "Eval")["UserData"]["Fn::Base64"]  # CloudFormation encodes it
    message = email.message_from_string(text)
    assert message.get_content_type() == "multipart/mixed"
    parts = message.get_payload()
    assert isinstance(parts, list)  # a multipart message's payload is its list of parts
    (part,) = parts
    assert isinstance(part, Message) and part.get_content_type() == "application/node.eks.aws"
    payload = part.get_payload()
    assert isinstance(payload, str)  # a leaf part's payload is its text
    assert json.loads(payload)["spec"] == {"instance": {"localStorage": {"strategy": "RAID0"}}}
    assert "UserData" not in _lt(tpl, "Arm")  # instance_store none: EKS's bootstrap only


def test_arm64_type_of_your_own_table_entry(synth):
    *_, tpl, _calls = synth
    ng = _ng(tpl, "Arm")
    assert ng["AmiType"] == "AL2023_ARM_64_NVIDIA" and "Taints" not in ng
    assert ng["Labels"]["eks-ultraserver.io/efa-devices"] == "0"
    assert len(_lt(tpl, "Arm")["NetworkInterfaces"]) == 1


def test_one_shared_efa_group_and_role(synth):
    *_, tpl, _calls = synth
    groups = [k for k, v in tpl["Resources"].items() if v["Type"] == "AWS::EC2::SecurityGroup" and "Efa" in k]
    roles = [k for k, v in tpl["Resources"].items() if v["Type"] == "AWS::IAM::Role" and "NodeRole" in k]
    assert len(groups) == 1 and len(roles) == 1


def test_every_node_group_updates_terminate_first(synth):
    """THEN ODCR and Capacity Block node groups alike run with UpdateStrategy MINIMAL: a
    fully used reservation has no room for a replacement launched before the old node
    goes (EKS API reference, NodegroupUpdateConfig); one node at a time by default."""
    *_, tpl, _calls = synth
    for prefix, expected in (("Eval", 1), ("Group", 1), ("Block", 2), ("Arm", 1)):
        assert _ng(tpl, prefix)["UpdateConfig"] == {"UpdateStrategy": "MINIMAL", "MaxUnavailable": expected}


def test_tags_of_the_app_reach_node_group_launch_template_and_instances(synth):
    """THEN Tags.of(app) lands on every node group (Tags map), on its launch template
    (TagSpecifications) and on the instances, volumes and network interfaces it launches
    (LaunchTemplateData.TagSpecifications), next to the construct's own tags."""
    stack, *_ = synth
    template = template_of(stack)
    cost = {"Key": "cost-center", "Value": "ml-42"}
    for name in ("eval", "grp", "ft", "arm"):
        own = {"Key": "eks-ultraserver:reserved-capacity", "Value": name}
        template.has_resource_properties(
            "AWS::EKS::Nodegroup",
            {
                "Labels": Match.object_like({"eks-ultraserver.io/reserved-capacity": name}),
                "Tags": Match.object_like(
                    {"cost-center": "ml-42", "eks-ultraserver:reserved-capacity": name}
                ),
            },
        )
        tags = Match.array_with([cost, own])
        template.has_resource_properties(
            "AWS::EC2::LaunchTemplate",
            {
                "TagSpecifications": [{"ResourceType": "launch-template", "Tags": tags}],
                "LaunchTemplateData": Match.object_like(
                    {
                        "TagSpecifications": [
                            {"ResourceType": "instance", "Tags": tags},
                            {"ResourceType": "volume", "Tags": tags},
                            {"ResourceType": "network-interface", "Tags": tags},
                        ]
                    }
                ),
            },
        )


def test_few_jsii_calls_per_node_group(synth):
    """The speed technique of the UltraServer node group (plain dicts for struct
    properties, cached attribute reads): a node group sharing role and EFA group costs a
    handful of calls into Node.js, not the hundreds of typed constructs."""
    *_, calls = synth
    assert calls <= 11, calls  # measured: 9 (7 before the typed node group and tagged launch template)


def test_snapshot(synth, snapshot_json):
    *_, tpl, _calls = synth
    resources = {
        k: v
        for k, v in tpl["Resources"].items()
        if v["Type"] in ("AWS::EC2::LaunchTemplate", "AWS::EKS::Nodegroup")
    }
    assert snapshot_json == resources


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "Eval"}, r"name: 'Eval' is not a DNS-1123 label"),
        ({"instance_type": "p6e-gb200.36xlarge"}, r"runs only inside UltraServers"),
        ({"instance_type": "g6e.12xlarge"}, r"'g6e.12xlarge' has no EFA layout"),
        ({"instance_count": 0}, r"instance_count: 0 is not an integer from 1 to 1000"),
        ({"capacity_reservation_id": None}, r"give one: the reservation's id"),
        ({"resource_group_arn": ARN}, r"both given"),
        ({"capacity_reservation_id": "cr-1"}, r"'cr-1' is not a Capacity Reservation id"),
        (
            {"capacity_reservation_id": None, "resource_group_arn": ARN, "kind": "capacity-block"},
            r"a Capacity Block is targeted by its reservation id",
        ),
        ({"kind": "capacity-block", "reservation_only": False}, r"reservation_only: applies to ODCRs only"),
        ({"kind": "spot"}, r"kind: 'spot' is not allowed"),
        ({"availability_zone": "us-east-1b"}, r"differ from availability_zone 'us-east-1b'"),
        ({"subnets": []}, r"subnets: no subnet given"),
        ({"release_version": "1.34.2-20260101"}, r"is for Kubernetes 1.34, but the node group runs 1.35"),
        ({"taints": [Taint(key="nvidia.com/gpu", effect="Sometimes")]}, r"taints\[0\]\.effect"),
        ({"root_volume_size_gib": 5}, r"root_volume_size_gib: 5 is out of range"),
        ({"max_unavailable": 0}, r"max_unavailable: 0 is out of range; use an integer from 1 to 1 "),
        (
            {"instance_count": 2, "max_unavailable": 3},
            r"max_unavailable: 3 is out of range; use an integer from 1 to 2 .*has 2 nodes",
        ),
        (
            {"instance_count": 200, "max_unavailable": 101},
            r"max_unavailable: 101 is out of range; use an integer from 1 to 100 \(EKS allows 1 to 100",
        ),
        ({"max_unavailable": None}, r"max_unavailable: None is out of range"),
    ],
)
def test_each_validation(synth, kwargs, match):
    stack, cluster, subnet, *_ = synth
    args: dict[str, Any] = {
        "name": "bad",
        "instance_type": "p5.48xlarge",
        "instance_count": 1,
        "subnets": [subnet],
        "capacity_reservation_id": RID,
    }
    args.update(kwargs)
    with pytest.raises(ConfigurationError, match=match):
        ReservedGpuNodeGroup(stack, "Bad", cluster=cluster, **args)


def test_all_problems_at_once(synth):
    stack, cluster, subnet, *_ = synth
    with pytest.raises(ConfigurationError) as err:
        ReservedGpuNodeGroup(
            stack, "Bad", cluster=cluster, name="X", instance_type="x", instance_count=0, subnets=[subnet]
        )
    assert len(err.value.problems) == 4
    assert not stack.node.try_find_child("Bad")


def test_custom_layouts_follow_the_table():
    custom = GpuInstanceType(
        name="p9.big",
        architecture=Architecture.X86_64,
        gpus=8,
        vcpus=96,
        network_cards=4,
        efa=(EfaInterface(card=1), EfaInterface(card=3)),
    )
    assert [(i.card, i.device_index) for i in custom.efa] == [(1, 0), (3, 0)]
