"""UltraServerNodeGroup: every documented requirement of the synthesized template."""

from __future__ import annotations

import copy
import email
import json
from email.message import Message

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk.assertions import Match

from eks_ultraserver import (
    ConfigurationError,
    EfaLayout,
    Taint,
    UltraServerNodeGroup,
)

from conftest import ACCOUNT, LOCAL_ZONE, REGION, cfn_lint_errors, template_of

RID_72 = "cr-0123456789abcdef0"
RID_36 = "cr-0fedcba9876543210"


def _stack(version=eks.KubernetesVersion.V1_34):
    app = cdk.App()
    stack = cdk.Stack(app, "Test", env=cdk.Environment(account=ACCOUNT, region=REGION))
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=1)
    cluster = eks.Cluster(
        stack,
        "Cluster",
        version=version,
        vpc=vpc,
        default_capacity=0,
        default_capacity_type=eks.DefaultCapacityType.NODEGROUP,
    )
    subnet = ec2.Subnet.from_subnet_attributes(
        stack, "LzSubnet", subnet_id="subnet-0aaaaaaaaaaaaaaaa", availability_zone=LOCAL_ZONE
    )
    return stack, cluster, subnet


@pytest.fixture(scope="module")
def synth():
    """GIVEN a cluster with two UltraServers (72 and 36 GPUs, the second with
    all-odd-cards EFA, a shared EFA group and max_unavailable=9) WHEN synthesized (once for
    the module)."""
    stack, cluster, subnet = _stack()
    shared = UltraServerNodeGroup(
        stack,
        "UsA",
        cluster=cluster,
        capacity_reservation_id=RID_72,
        ultraserver_type="u-p6e-gb200x72",
        subnets=[subnet],
        name="us-a",
        availability_zone=LOCAL_ZONE,
        labels={"team": "research"},
    )
    UltraServerNodeGroup(
        stack,
        "UsB",
        cluster=cluster,
        capacity_reservation_id=RID_36,
        ultraserver_type="u-p6e-gb200x36",
        subnets=[subnet],
        name="us-b",
        efa_layout=EfaLayout.ALL_ODD_CARDS,
        efa_security_group=shared.efa_security_group,
        node_role=shared.node_role,
        scaled_to_zero=True,
        max_unavailable=9,
    )
    template = template_of(stack)
    return stack, template, template.to_json()


def _launch_templates(tpl_json):
    return {
        k: v["Properties"]["LaunchTemplateData"]
        for k, v in tpl_json["Resources"].items()
        if v["Type"] == "AWS::EC2::LaunchTemplate"
    }


def _lt_for(tpl_json, construct_id):
    (data,) = [v for k, v in _launch_templates(tpl_json).items() if k.startswith(construct_id)]
    return data


def test_launch_template_targets_the_capacity_block(synth):
    _, template, _ = synth
    template.has_resource_properties(
        "AWS::EC2::LaunchTemplate",
        {
            "LaunchTemplateData": Match.object_like(
                {
                    "InstanceType": "p6e-gb200.36xlarge",
                    "InstanceMarketOptions": {"MarketType": "capacity-block"},
                    "CapacityReservationSpecification": {
                        "CapacityReservationTarget": {"CapacityReservationId": RID_72}
                    },
                    "MetadataOptions": Match.object_like({"HttpTokens": "required"}),
                }
            )
        },
    )


def test_launch_template_has_no_fields_eks_rejects(synth):
    _, _, tpl = synth
    for data in _launch_templates(tpl).values():
        for forbidden in (
            "ImageId",
            "SubnetId",
            "IamInstanceProfile",
            "InstanceInitiatedShutdownBehavior",
            "SecurityGroupIds",
        ):
            assert forbidden not in data
        for nic in data["NetworkInterfaces"]:
            assert "SubnetId" not in nic


def test_per_gpu_layout_is_primary_ena_plus_efa_only_on_cards_1_5_9_13(synth):
    _, _, tpl = synth
    nics = _lt_for(tpl, "UsA")["NetworkInterfaces"]
    layout = [(n["NetworkCardIndex"], n["DeviceIndex"], n["InterfaceType"]) for n in nics]
    assert layout == [
        (0, 0, "interface"),
        (1, 0, "efa-only"),
        (5, 0, "efa-only"),
        (9, 0, "efa-only"),
        (13, 0, "efa-only"),
    ]


def test_all_odd_cards_layout(synth):
    _, _, tpl = synth
    nics = _lt_for(tpl, "UsB")["NetworkInterfaces"]
    assert [n["NetworkCardIndex"] for n in nics if n["InterfaceType"] == "efa-only"] == [
        1,
        3,
        5,
        7,
        9,
        11,
        13,
        15,
    ]
    assert nics[0]["NetworkCardIndex"] == 0 and nics[0]["InterfaceType"] == "interface"


def test_every_interface_carries_the_efa_group_and_primary_the_cluster_group(synth):
    _, _, tpl = synth
    nics = _lt_for(tpl, "UsA")["NetworkInterfaces"]
    efa_refs = nics[1]["Groups"]
    assert len(efa_refs) == 1
    efa_sg = efa_refs[0]["Fn::GetAtt"][0]
    for nic in nics:
        assert {"Fn::GetAtt": [efa_sg, "GroupId"]} in nic["Groups"]
    primary = json.dumps(nics[0]["Groups"])
    assert "ClusterSecurityGroupId" in primary
    # the second UltraServer shares the first one's EFA group
    assert {"Fn::GetAtt": [efa_sg, "GroupId"]} in _lt_for(tpl, "UsB")["NetworkInterfaces"][3]["Groups"]


def test_efa_security_group_allows_only_itself(synth):
    _, template, tpl = synth
    sgs = {k: v for k, v in tpl["Resources"].items() if v["Type"] == "AWS::EC2::SecurityGroup" and "Efa" in k}
    assert len(sgs) == 1, "one EFA group, shared by both node groups"
    ((sg_id, sg),) = sgs.items()
    # no inline rule opens it to a CIDR
    assert "SecurityGroupIngress" not in sg["Properties"]
    for egress in sg["Properties"].get("SecurityGroupEgress", []):
        raise AssertionError(f"unexpected inline egress {egress}")
    self_ref = {"Fn::GetAtt": [sg_id, "GroupId"]}
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {"IpProtocol": "-1", "GroupId": self_ref, "SourceSecurityGroupId": self_ref},
    )
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupEgress",
        {"IpProtocol": "-1", "GroupId": self_ref, "DestinationSecurityGroupId": self_ref},
    )


def test_user_data_is_mime_multipart_with_raid0_nodeconfig(synth):
    _, _, tpl = synth
    user_data = _lt_for(tpl, "UsA")["UserData"]["Fn::Base64"]
    message = email.message_from_string(user_data)
    assert message.is_multipart() and message.get_content_type() == "multipart/mixed"
    parts = message.get_payload()
    assert isinstance(parts, list)  # a multipart message's payload is its list of parts
    (part,) = parts
    assert isinstance(part, Message) and part.get_content_type() == "application/node.eks.aws"
    payload = part.get_payload()
    assert isinstance(payload, str)  # a leaf part's payload is its text
    config = json.loads(payload)
    assert config["apiVersion"] == "node.eks.aws/v1alpha1"
    assert config["kind"] == "NodeConfig"
    assert config["spec"]["instance"]["localStorage"]["strategy"] == "RAID0"


def test_nodegroup_is_a_capacity_block_group_with_the_whole_ultraserver(synth):
    _, template, _ = synth
    template.has_resource_properties(
        "AWS::EKS::Nodegroup",
        {
            "CapacityType": "CAPACITY_BLOCK",
            "AmiType": "AL2023_ARM_64_NVIDIA",
            "InstanceTypes": Match.absent(),
            "ScalingConfig": {"MinSize": 18, "MaxSize": 18, "DesiredSize": 18},
            "Labels": Match.object_like(
                {
                    "eks-ultraserver.io/ultraserver": "us-a",
                    "eks-ultraserver.io/ultraserver-type": "u-p6e-gb200x72",
                    "eks-ultraserver.io/capacity-reservation": RID_72,
                    "team": "research",
                }
            ),
            "Taints": [{"Key": "nvidia.com/gpu", "Value": "true", "Effect": "NO_SCHEDULE"}],
            "LaunchTemplate": {
                "Id": Match.any_value(),
                "Version": {"Fn::GetAtt": [Match.any_value(), "LatestVersionNumber"]},
            },
            "Subnets": ["subnet-0aaaaaaaaaaaaaaaa"],
        },
    )


def test_scaled_to_zero_keeps_max_size(synth):
    _, template, _ = synth
    template.has_resource_properties(
        "AWS::EKS::Nodegroup",
        {
            "Labels": Match.object_like({"eks-ultraserver.io/ultraserver": "us-b"}),
            "ScalingConfig": {"MinSize": 0, "MaxSize": 9, "DesiredSize": 0},
        },
    )


def test_updates_terminate_first_one_node_at_a_time_by_default(synth):
    """THEN a launch-template change can roll a full Capacity Block: MINIMAL terminates
    before it launches (EKS API reference, NodegroupUpdateConfig), one node by default."""
    _, template, _ = synth
    template.has_resource_properties(
        "AWS::EKS::Nodegroup",
        {
            "Labels": Match.object_like({"eks-ultraserver.io/ultraserver": "us-a"}),
            "UpdateConfig": {"UpdateStrategy": "MINIMAL", "MaxUnavailable": 1},
        },
    )


def test_max_unavailable_can_be_the_whole_ultraserver(synth):
    _, template, _ = synth
    template.has_resource_properties(
        "AWS::EKS::Nodegroup",
        {
            "Labels": Match.object_like({"eks-ultraserver.io/ultraserver": "us-b"}),
            "UpdateConfig": {"UpdateStrategy": "MINIMAL", "MaxUnavailable": 9},
        },
    )


def test_cfn_lint_accepts_the_template_and_checks_update_config(synth):
    """THEN cfn-lint (its AWS::EKS::Nodegroup schema knows UpdateStrategy) finds no error,
    and would find one in a strategy EKS does not have."""
    _, _, tpl = synth
    assert cfn_lint_errors(tpl) == []
    broken = copy.deepcopy(tpl)
    for resource in broken["Resources"].values():
        if resource["Type"] == "AWS::EKS::Nodegroup":
            resource["Properties"]["UpdateConfig"]["UpdateStrategy"] = "TERMINATE_FIRST"
    assert any("TERMINATE_FIRST" in e for e in cfn_lint_errors(broken))


@pytest.fixture(scope="module")
def tagged():
    """GIVEN an UltraServer node group and tags applied with Tags.of: one on the app, one
    only for launch templates, one excluded from them WHEN synthesized."""
    stack, cluster, subnet = _stack()
    UltraServerNodeGroup(
        stack,
        "Us",
        cluster=cluster,
        capacity_reservation_id=RID_72,
        ultraserver_type="u-p6e-gb200x72",
        subnets=[subnet],
        name="us-a",
    )
    app = stack.node.root
    cdk.Tags.of(app).add("cost-center", "ml-42")
    cdk.Tags.of(app).add("lt-only", "yes", include_resource_types=["AWS::EC2::LaunchTemplate"])
    cdk.Tags.of(app).add("not-on-lt", "yes", exclude_resource_types=["AWS::EC2::LaunchTemplate"])
    return template_of(stack)


def test_tags_of_the_app_reach_the_node_group(tagged):
    tagged.has_resource_properties(
        "AWS::EKS::Nodegroup",
        {
            "Tags": {
                "cost-center": "ml-42",
                "not-on-lt": "yes",
                "eks-ultraserver:ultraserver": "us-a",
                "eks-ultraserver:ultraserver-type": "u-p6e-gb200x72",
                "eks-ultraserver:capacity-reservation-id": RID_72,
            }
        },
    )


def test_tags_of_the_app_reach_the_launch_template_and_what_it_launches(tagged):
    """THEN the launch template carries them (TagSpecifications, launch-template) and tags
    the instances, volumes and network interfaces it launches (LaunchTemplateData.
    TagSpecifications): EKS copies no node group tag there, and cost allocation needs them
    on the instances. Include/exclude by resource type work as for any CDK resource."""
    tags = [
        {"Key": "cost-center", "Value": "ml-42"},
        {"Key": "eks-ultraserver:capacity-reservation-id", "Value": RID_72},
        {"Key": "eks-ultraserver:ultraserver", "Value": "us-a"},
        {"Key": "eks-ultraserver:ultraserver-type", "Value": "u-p6e-gb200x72"},
        {"Key": "lt-only", "Value": "yes"},
    ]
    tagged.has_resource_properties(
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


def test_snapshot(synth, snapshot_json):
    _, _, tpl = synth
    assert tpl == snapshot_json


# ---------------------------------------------------------------------------- validation


def _bad(**overrides):
    stack, cluster, subnet = _stack()
    kwargs = {
        "cluster": cluster,
        "capacity_reservation_id": RID_72,
        "ultraserver_type": "u-p6e-gb200x72",
        "subnets": [subnet],
    }
    kwargs.update(overrides)
    with pytest.raises(ConfigurationError) as err:
        UltraServerNodeGroup(stack, "Us", **kwargs)
    assert stack.node.try_find_child("Us") is None, "nothing half-built"
    return str(err.value)


def test_rejects_malformed_reservation_id():
    msg = _bad(capacity_reservation_id="cr-123")
    assert "capacity_reservation_id: 'cr-123'" in msg and "17" in msg


def test_rejects_instance_type_given_as_ultraserver_type():
    msg = _bad(ultraserver_type="p6e-gb200.36xlarge")
    assert "ultraserver_type: 'p6e-gb200.36xlarge' is not an UltraServer type" in msg
    assert "'u-p6e-gb200x36', 'u-p6e-gb200x72'" in msg


def test_rejects_unknown_ultraserver_type():
    assert "ultraserver_type: 'u-p6e-gb200x144'" in _bad(ultraserver_type="u-p6e-gb200x144")


def test_rejects_subnets_in_several_zones():
    stack, cluster, subnet = _stack()
    other = ec2.Subnet.from_subnet_attributes(
        stack, "Other", subnet_id="subnet-0bbbbbbbbbbbbbbbb", availability_zone="us-east-1a"
    )
    with pytest.raises(ConfigurationError, match=r"subnets: the subnets are in 2 zones"):
        UltraServerNodeGroup(
            stack,
            "Us",
            cluster=cluster,
            capacity_reservation_id=RID_72,
            ultraserver_type="u-p6e-gb200x72",
            subnets=[subnet, other],
        )


def test_rejects_subnet_outside_the_given_zone():
    msg = _bad(availability_zone="us-east-1a")
    assert "differ from availability_zone 'us-east-1a'" in msg


def test_rejects_cluster_older_than_1_33():
    stack, cluster, subnet = _stack(version=eks.KubernetesVersion.V1_32)
    with pytest.raises(ConfigurationError, match=r"cluster: Kubernetes 1.32 is too old; DRA"):
        UltraServerNodeGroup(
            stack,
            "Us",
            cluster=cluster,
            capacity_reservation_id=RID_72,
            ultraserver_type="u-p6e-gb200x72",
            subnets=[subnet],
        )


def test_rejects_unsupported_efa_layout():
    msg = _bad(efa_layout="all-cards")
    assert "efa_layout: 'all-cards' is not allowed; use one of 'per-gpu', 'all-odd-cards', 'none'" in msg


def test_rejects_old_ami_release():
    msg = _bad(release_version="1.34.1-20250901")
    assert "older than v20251103" in msg


def test_rejects_bad_taint_and_label():
    msg = _bad(taints=[Taint(key="nvidia.com/gpu", effect="Sometimes")], labels={"bad key!": "x"})
    assert "taints[0].effect: 'Sometimes'" in msg
    assert "labels: key 'bad key!'" in msg


@pytest.mark.parametrize(
    ("value", "allowed"),
    [(0, "1 to 18"), (19, "1 to 18"), (-1, "1 to 18"), (True, "1 to 18"), ("2", "1 to 18"), (2.5, "1 to 18")],
)
def test_rejects_max_unavailable_outside_1_to_the_node_count(value, allowed):
    msg = _bad(max_unavailable=value)
    assert f"max_unavailable: {value!r} is out of range; use an integer from {allowed}" in msg
    assert "the node group has 18 nodes" in msg


def test_max_unavailable_is_bounded_by_the_smaller_ultraserver():
    assert "use an integer from 1 to 9" in _bad(ultraserver_type="u-p6e-gb200x36", max_unavailable=10)


def test_lists_every_problem_in_one_error():
    msg = _bad(capacity_reservation_id="nope", ultraserver_type="x", efa_layout="y")
    assert msg.startswith("invalid UltraServerNodeGroup 'Us' (3 problems):")
    assert isinstance(ConfigurationError([]), ValueError)
