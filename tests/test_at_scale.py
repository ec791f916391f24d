"""At scale: the control plane tier, the VPC CNI settings, the UltraServer subnet sized from
the fleet (docs/at-scale.md).

GIVEN cdk.json context (or the construct arguments) WHEN synthesized THEN the tier reaches
``AWS::EKS::Cluster`` ``ControlPlaneScalingConfig``, the CNI settings the ``vpc-cni`` add-on's
configuration values, and a fleet whose nodes cannot all get addresses is refused, naming
what to change. Nothing changes for an environment that sets none of the new keys.
"""

from __future__ import annotations

import json
import re

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Annotations, Match

from eks_ultraserver.config import EndpointAccess, EnvironmentConfig, VpcCniConfig
from eks_ultraserver.constructs.environment_checks import Fleet
from eks_ultraserver.constructs.environment_warnings import environment_warnings
from eks_ultraserver.constructs.network import subnet_cidr_problems, usable_addresses
from eks_ultraserver.model import (
    CONTROL_PLANE_TIER_SEATS,
    ConfigurationError,
    ControlPlaneTier,
    Problems,
    UltraServerType,
    control_plane_tier_advice,
)
from eks_ultraserver.settings import UltraServerSpec

from conftest import ACCOUNT, LOCAL_ZONE, REGION, cfn_lint_errors, synth_environment


def _servers(count: int, kind: str = "u-p6e-gb200x72") -> str:
    return json.dumps(
        [
            {"capacityReservationId": f"cr-0{i:016x}", "type": kind, "name": f"us-{i}"}
            for i in range(1, count + 1)
        ]
    )


def _resources(synth, cfn_type: str) -> dict:
    return {k: v for k, v in synth.all_resources.items() if v["Type"] == cfn_type}


def _only(synth, cfn_type: str) -> dict:
    (resource,) = _resources(synth, cfn_type).values()
    return resource


def _addon(synth, name: str) -> dict:
    (addon,) = [
        r for r in _resources(synth, "AWS::EKS::Addon").values() if r["Properties"]["AddonName"] == name
    ]
    return addon


@pytest.fixture(scope="module")
def default_env():
    return synth_environment({})


@pytest.fixture(scope="module")
def scaled_env():
    """Ten u-p6e-gb200x72 (180 nodes: more than the default /18 holds with the CNI's
    defaults), a Provisioned tier, prefix delegation, a secondary-CIDR subnet."""
    return synth_environment(
        {
            "ultraServers": _servers(10),
            "controlPlaneTier": "tier-xl",
            "vpcCni": json.dumps({"prefixDelegation": True, "warmPrefixTarget": 1}),
            "ultraServerSubnetCidr": "10.1.0.0/16",
        }
    )


# --------------------------------------------------------------------------------------
# Nothing changes without the new keys
# --------------------------------------------------------------------------------------


def test_without_the_keys_the_template_is_as_before(default_env):
    """GIVEN the shipped cdk.json THEN no control plane tier is written (EKS's standard),
    the vpc-cni add-on has no configuration values, and the UltraServer subnet keeps
    10.0.192.0/18 (a CIDR change would replace it and every node group in it)."""
    cluster = _only(default_env, "AWS::EKS::Cluster")
    assert "ControlPlaneScalingConfig" not in cluster["Properties"]
    assert "ConfigurationValues" not in _addon(default_env, "vpc-cni")["Properties"]
    subnets = [
        r["Properties"]["CidrBlock"]
        for k, r in _resources(default_env, "AWS::EC2::Subnet").items()
        if k.startswith("EnvironmentUltraServerSubnet")
    ]
    assert subnets == ["10.0.192.0/18"]
    assert not _resources(default_env, "AWS::EC2::VPCCidrBlock")
    warnings = Annotations.from_stack(default_env.stack).find_warning(
        "*", Match.string_like_regexp("control plane")
    )
    assert warnings == []


# --------------------------------------------------------------------------------------
# Control plane tier
# --------------------------------------------------------------------------------------


def test_the_tier_reaches_the_cluster(scaled_env):
    cluster = _only(scaled_env, "AWS::EKS::Cluster")
    assert cluster["Properties"]["ControlPlaneScalingConfig"] == {"Tier": "tier-xl"}


def test_every_tier_of_the_cloudformation_schema_is_accepted_and_others_are_refused():
    assert [t.value for t in ControlPlaneTier] == [
        "standard",
        "tier-xl",
        "tier-2xl",
        "tier-4xl",
        "tier-8xl",
        "tier-ultra",
    ]
    base = {"ultraServers": json.loads(_servers(1)), "availabilityZone": LOCAL_ZONE}
    config = EnvironmentConfig.from_mapping({**base, "controlPlaneTier": "tier-ultra"})
    assert config.control_plane_tier is ControlPlaneTier.TIER_ULTRA
    with pytest.raises(ConfigurationError, match=r"controlPlaneTier: 'xl' is not allowed.*tier-xl"):
        EnvironmentConfig.from_mapping({**base, "controlPlaneTier": "xl"})


def test_standard_given_explicitly_is_written_so_a_provisioned_tier_can_be_left():
    from eks_ultraserver.constructs.cluster import eks_cluster

    stack = cdk.Stack(cdk.App(), "S", env=cdk.Environment(account=ACCOUNT, region=REGION))
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk.assertions import Template

    eks_cluster(
        stack,
        kubernetes_version="1.35",
        vpc=ec2.Vpc(stack, "Vpc", max_azs=2),
        cluster_name=None,
        endpoint_access=EndpointAccess.PRIVATE,
        public_access_cidrs=None,
        admin_principal_arn=None,
        control_plane_tier=ControlPlaneTier.STANDARD,
    )
    Template.from_stack(stack).has_resource_properties(
        "AWS::EKS::Cluster", {"ControlPlaneScalingConfig": {"Tier": "standard"}}
    )


def test_the_documented_figures_are_the_guides_and_only_those():
    assert CONTROL_PLANE_TIER_SEATS == {
        ControlPlaneTier.TIER_XL: 1_700,
        ControlPlaneTier.TIER_2XL: 3_400,
        ControlPlaneTier.TIER_4XL: 6_800,
    }
    assert ControlPlaneTier.TIER_8XL.api_request_concurrency_seats is None


@pytest.mark.parametrize(
    ("tier", "nodes", "gpus", "ids"),
    [
        (None, 5_000, 20_000, []),
        (None, 5_001, 20_004, ["control-plane-tier"]),
        (ControlPlaneTier.STANDARD, 4_000, 150_001, ["control-plane-tier"]),
        (ControlPlaneTier.TIER_XL, 50_000, 200_000, []),
        (ControlPlaneTier.TIER_ULTRA, 100_001, 400_004, ["nodes-per-cluster"]),
        (None, 100_001, 400_004, ["nodes-per-cluster", "control-plane-tier"]),
    ],
)
def test_tier_advice_uses_only_documented_limits(tier, nodes, gpus, ids):
    assert [key for key, _ in control_plane_tier_advice(tier, nodes=nodes, gpus=gpus)] == ids


def test_synth_warns_on_the_standard_tier_for_a_fleet_past_5000_nodes_naming_the_tier():
    """GIVEN a fleet of 5,556 u-p6e-gb200x72 (100,008 nodes) on the standard tier THEN synth
    warns twice: past EKS's 100,000 nodes, and past upstream Kubernetes' tested size on a
    tier with no guaranteed capacity, naming tier-4xl (the tier the guide load tests on)."""
    stack = cdk.Stack(cdk.App(), "S")
    fleet = Fleet.of(
        ultraservers=[
            UltraServerSpec(
                capacity_reservation_id=f"cr-0{i:016x}", type=UltraServerType.U_P6E_GB200X72, name=f"u{i}"
            )
            for i in range(5_556)
        ],
        availability_zone=LOCAL_ZONE,
    )
    assert (fleet.nodes, fleet.gpus, fleet.subnet_nodes) == (100_008 + 4, 400_032, 100_008)
    environment_warnings(
        stack,
        kubernetes_version="1.35",
        endpoint_access=EndpointAccess.PRIVATE,
        public_access_cidrs=None,
        admin_principal_arn="arn:aws:iam::123456789012:role/Admin",
        nodegroups=2,
        control_plane_tier=None,
        fleet_nodes=fleet.nodes,
        fleet_gpus=fleet.gpus,
    )
    annotations = Annotations.from_stack(stack)
    annotations.has_warning(
        "*", Match.string_like_regexp("100,012 nodes exceed EKS's 100,000 nodes per cluster")
    )
    annotations.has_warning("*", Match.string_like_regexp("Set controlPlaneTier .* to 'tier-4xl'"))


# --------------------------------------------------------------------------------------
# VPC CNI
# --------------------------------------------------------------------------------------


def test_cni_settings_reach_the_vpc_cni_addon(scaled_env):
    values = json.loads(_addon(scaled_env, "vpc-cni")["Properties"]["ConfigurationValues"])
    assert values == {"env": {"ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "1"}}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"prefixDelegation": "yes"}, r"vpcCni.prefixDelegation: 'yes' is not a boolean"),
        ({"warmIpTarget": -1}, r"vpcCni.warmIpTarget: -1 is not a whole number of 0 or more"),
        (
            {"warmPrefixTarget": 1},
            r"vpcCni.warmPrefixTarget: 1 applies only with vpcCni.prefixDelegation true",
        ),
        (
            {"prefixDelegation": True, "warmPrefixTarget": 1, "warmIpTarget": 5},
            r"vpcCni.warmPrefixTarget: given with vpcCni.warmIpTarget, which override it",
        ),
        ({"prefixDelegation": True, "warmPrefixTarget": 0}, r"0 is not supported with prefix delegation"),
        (
            {"prefixDelegation": True, "warmIpTarget": 0, "minimumIpTarget": 0},
            r"both 0 are not supported with prefix delegation",
        ),
        ({"warmEniTarget": 1}, r"vpcCni: unknown key\(s\) 'warmEniTarget'"),
    ],
)
def test_cni_settings_are_checked(given, message):
    context = {"ultraServers": json.loads(_servers(1)), "availabilityZone": LOCAL_ZONE, "vpcCni": given}
    with pytest.raises(ConfigurationError, match=message):
        EnvironmentConfig.from_mapping(context)


def test_cni_env_is_written_as_strings_only_for_what_is_given():
    assert VpcCniConfig().env == {}
    assert VpcCniConfig(prefix_delegation=False, warm_ip_target=2, minimum_ip_target=16).env == {
        "ENABLE_PREFIX_DELEGATION": "false",
        "WARM_IP_TARGET": "2",
        "MINIMUM_IP_TARGET": "16",
    }


@pytest.mark.parametrize(
    ("config", "pods", "addresses"),
    [
        (VpcCniConfig(), 16, 100),  # two whole interfaces of 50 (WARM_ENI_TARGET 1)
        (VpcCniConfig(), 60, 150),
        (VpcCniConfig(prefix_delegation=True), 16, 33),  # one /28 used, one warm, the node's own
        (VpcCniConfig(prefix_delegation=True, warm_prefix_target=2), 20, 65),
        (VpcCniConfig(prefix_delegation=True, warm_ip_target=2, minimum_ip_target=16), 16, 33),
        (VpcCniConfig(warm_ip_target=2, minimum_ip_target=16), 16, 19),
        (VpcCniConfig(minimum_ip_target=120), 4, 123),  # 120 addresses over three interfaces
    ],
)
def test_addresses_per_node_follow_the_cni_settings(config, pods, addresses):
    assert config.addresses_per_node(pods) == addresses


# --------------------------------------------------------------------------------------
# UltraServer subnet
# --------------------------------------------------------------------------------------


def test_a_cidr_outside_the_vpc_becomes_a_secondary_block_of_it(scaled_env):
    block = _only(scaled_env, "AWS::EC2::VPCCidrBlock")
    assert block["Properties"]["CidrBlock"] == "10.1.0.0/16"
    (_subnet_id, subnet) = next(
        (k, r)
        for k, r in _resources(scaled_env, "AWS::EC2::Subnet").items()
        if k.startswith("EnvironmentUltraServerSubnet")
    )
    assert subnet["Properties"]["CidrBlock"] == "10.1.0.0/16"
    (block_id,) = _resources(scaled_env, "AWS::EC2::VPCCidrBlock")
    assert block_id in subnet["DependsOn"]


def test_a_fleet_the_subnet_cannot_address_is_refused_with_what_to_change():
    """GIVEN ten u-p6e-gb200x72 (180 nodes) in the default /18 with the CNI's defaults (100
    addresses a node: 18,000 > 16,379) THEN synth refuses, naming the numbers and the fixes;
    WHEN the CNI keeps fewer addresses THEN the same fleet fits the same subnet."""
    with pytest.raises(ConfigurationError) as err:
        synth_environment({"ultraServers": _servers(10)})
    text = str(err.value)
    assert "180 nodes need about 18,000 addresses (100 per node" in text
    assert "16,379 usable addresses of 10.0.192.0/18" in text
    assert 'vpcCni (vpc_cni) {"warmIpTarget":2,"minimumIpTarget":16}: 19 each, room for 862 nodes' in text
    assert "10.1.0.0/16" in text and "vpcId + ultraServerSubnetIds" in text


def test_nine_ultraservers_fit_the_default_subnet_with_the_cni_defaults():
    """162 nodes x 100 = 16,200 <= 16,379: an environment that fits is not refused."""
    from eks_ultraserver.constructs.environment_checks import subnet_problems

    problems = Problems()
    fleet = Fleet.of(
        ultraservers=[
            UltraServerSpec(
                capacity_reservation_id=f"cr-0{i:016x}", type=UltraServerType.U_P6E_GB200X72, name=f"u{i}"
            )
            for i in range(9)
        ],
        availability_zone=LOCAL_ZONE,
    )
    subnet_problems(
        fleet=fleet, vpc=None, ultraserver_subnet_cidr="10.0.192.0/18", vpc_cni=None, problems=problems
    )
    assert list(problems) == []
    assert usable_addresses("10.0.192.0/18") == 16_379


@pytest.mark.parametrize(
    ("cidr", "message"),
    [
        ("10.0.192.0/18", None),
        ("10.0.64.0/18", None),
        ("10.1.0.0/16", None),
        ("100.64.0.0/16", None),
        ("10.0.0.0/17", r"overlaps the VPC's own subnets"),
        ("10.0.128.0/20", r"reserved-capacity subnets"),
        ("192.168.0.0/16", r"cannot be a secondary CIDR block"),
        ("10.2.0.0/15", r"a /15; a subnet is /16 to /28"),
        ("10.0.192.1/18", r"not an IPv4 CIDR block"),
    ],
)
def test_where_the_subnet_may_go(cidr, message):
    problems = Problems()
    subnet_cidr_problems(cidr, problems)
    if message is None:
        assert list(problems) == []
    else:
        (problem,) = problems
        assert re.search(message, problem), problem


def test_subnet_cidr_key_is_checked_and_refused_with_an_existing_vpc():
    base = {"ultraServers": json.loads(_servers(1)), "availabilityZone": LOCAL_ZONE}
    with pytest.raises(
        ConfigurationError, match=r"ultraServerSubnetCidr: '10.1.0.0' is not an IPv4 CIDR block"
    ):
        EnvironmentConfig.from_mapping({**base, "ultraServerSubnetCidr": "10.1.0.0"})
    with pytest.raises(ConfigurationError, match=r"ultraServerSubnetCidr: '10.1.0.0/16' given with vpcId"):
        EnvironmentConfig.from_mapping(
            {
                **base,
                "ultraServerSubnetCidr": "10.1.0.0/16",
                "vpcId": "vpc-0123456789abcdef0",
                "ultraServerSubnetIds": ["subnet-0123456789abcdef0"],
            }
        )


def test_the_scaled_templates_are_cfn_lint_clean(scaled_env):
    """The tier, the add-on's configuration values and the secondary CIDR block pass
    cfn-lint's schemas (tier-ultra too, which aws-cdk-lib 2.275 has no member for)."""
    for name, template in scaled_env.templates().items():
        assert cfn_lint_errors(template) == [], name
    ultra = json.loads(json.dumps(scaled_env.template).replace('"tier-xl"', '"tier-ultra"'))
    assert cfn_lint_errors(ultra) == []


def test_a_misplaced_subnet_cidr_is_refused_before_anything_is_built():
    with pytest.raises(ConfigurationError, match=r"ultraserver_subnet_cidr: '10.0.0.0/17' overlaps"):
        synth_environment({"ultraServerSubnetCidr": "10.0.0.0/17"})


def test_reserved_capacity_in_another_zone_must_fit_its_subnet_too():
    """GIVEN an ODCR of 30 p5.48xlarge in us-east-1a (its own /21: 2,043 addresses; 3,000
    needed with the CNI's defaults) THEN synth refuses, naming that zone and the fixes."""
    reserved = [
        {
            "name": "eval",
            "instanceType": "p5.48xlarge",
            "instanceCount": 30,
            "capacityType": "odcr",
            "capacityReservationId": "cr-0bbbbbbbbbbbbbbb1",
            "availabilityZone": "us-east-1a",
        }
    ]
    with pytest.raises(
        ConfigurationError,
        match=r"reservedCapacity in us-east-1a: 30 nodes need about 3,000 addresses .* 2,043 usable "
        r"addresses of 10.0.128.0/21; .*your own ReservedGpuNodeGroup",
    ):
        synth_environment({"reservedCapacity": json.dumps(reserved)})


def test_a_full_16_is_not_told_to_grow():
    """GIVEN 5,556 u-p6e-gb200x72 in a /16 already THEN the refusal suggests no larger
    subnet (a /16 is the largest), only your own VPC and subnets."""
    from eks_ultraserver.constructs.environment_checks import subnet_problems

    fleet = Fleet.of(
        ultraservers=[
            UltraServerSpec(
                capacity_reservation_id=f"cr-0{i:016x}", type=UltraServerType.U_P6E_GB200X72, name=f"u{i}"
            )
            for i in range(5_556)
        ],
        availability_zone=LOCAL_ZONE,
    )
    problems = Problems()
    subnet_problems(
        fleet=fleet,
        vpc=None,
        ultraserver_subnet_cidr="10.1.0.0/16",
        vpc_cni=VpcCniConfig(warm_ip_target=2, minimum_ip_target=16),
        problems=problems,
    )
    (problem,) = problems
    assert "100,008 nodes need about 1,900,152 addresses" in problem
    assert "larger ultraServerSubnetCidr" not in problem and "vpcId + ultraServerSubnetIds" in problem
