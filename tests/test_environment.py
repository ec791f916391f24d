"""UltraServerEnvironment and the app's stack: what the environment promises
(docs/constructs/environment.md), asserted rule by rule on the synthesized templates, and two
small inventories (the parent stack's resources, the shards' resources) as snapshots a
reviewer can read. Node groups, reserved capacity, Karpenter, notifications, tags and
cdk-nag have test files of their own."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match, Template

from conftest import EVERY_RESERVED_KIND, MIXED_BURST, REPO, cfn_lint_errors, synth_environment

THREE = json.dumps(
    [
        {"capacityReservationId": "cr-0aaaaaaaaaaaaaaa1", "type": "u-p6e-gb200x72", "name": "us-a"},
        {"capacityReservationId": "cr-0aaaaaaaaaaaaaaa2", "type": "u-p6e-gb200x36", "name": "us-b"},
        {"capacityReservationId": "cr-0aaaaaaaaaaaaaaa3", "type": "u-p6e-gb200x72", "name": "us-c"},
    ]
)

CLUSTER_ADMIN_POLICY = {
    "Fn::Join": [
        "",
        ["arn:", {"Ref": "AWS::Partition"}, ":eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"],
    ]
}


@pytest.fixture(scope="module")
def default_env():
    """GIVEN the shipped cdk.json WHEN synthesized (once for this module)."""
    return synth_environment({})


@pytest.fixture(scope="module")
def three_env():
    """GIVEN three UltraServers of mixed types, passed as -c JSON text."""
    return synth_environment(
        {
            "ultraServers": THREE,
            "account": "123456789012",
            "region": "us-east-1",
            "adminPrincipalArn": "arn:aws:iam::123456789012:role/Admin",
        }
    )


@pytest.fixture(scope="module")
def default_parent(default_env) -> Template:
    """The default environment's parent template, for ``Template`` assertions."""
    return Template.from_json(default_env.template, skip_cyclical_dependencies_check=True)


@pytest.fixture(scope="module")
def three_parent(three_env) -> Template:
    return Template.from_json(three_env.template, skip_cyclical_dependencies_check=True)


def _of_type(synth, cfn_type):
    return {k: v for k, v in synth.all_resources.items() if v["Type"] == cfn_type}


def _ref(prefix: str) -> dict:
    """A ``Ref`` to the resource whose logical id starts with ``prefix`` (CDK adds a hash)."""
    return {"Ref": Match.string_like_regexp(f"^{prefix}[0-9A-F]{{8}}$")}


def _arn_of(prefix: str) -> dict:
    return {"Fn::GetAtt": [Match.string_like_regexp(f"^{prefix}[0-9A-F]{{8}}$"), "Arn"]}


def _inventory(template: dict) -> dict[str, list[str]]:
    """What a template holds, without the properties: ``LogicalId: Type`` of each resource,
    sorted, and the names of its parameters and outputs."""
    return {
        "Resources": sorted(f"{k}: {v['Type']}" for k, v in template["Resources"].items()),
        "Parameters": sorted(template.get("Parameters", {})),
        "Outputs": sorted(template.get("Outputs", {})),
    }


def test_default_is_environment_agnostic_with_one_ultraserver(default_env):
    stack, tpl = default_env.stack, default_env
    assert stack.environment == "aws://unknown-account/unknown-region"
    groups = _of_type(tpl, "AWS::EKS::Nodegroup")
    capacity_block = [g for g in groups.values() if g["Properties"].get("CapacityType") == "CAPACITY_BLOCK"]
    assert len(capacity_block) == 1
    assert capacity_block[0]["Properties"]["Labels"]["eks-ultraserver.io/ultraserver"] == "us-1"


# ---------------------------------------------------------------- inventories (snapshots)


def test_default_parent_inventory(default_env, snapshot_json):
    """GIVEN the shipped cdk.json THEN the parent stack holds these resources, parameters and
    outputs (logical ids only: a changed id is a replaced resource, worth a reviewer's look;
    the properties are asserted rule by rule in the tests of this file)."""
    assert _inventory(default_env.template) == snapshot_json


def test_three_mixed_shard_inventory(three_env, snapshot_json):
    """GIVEN three UltraServers THEN each nested stack (shard) holds one UltraServer's node
    group and launch template, receives the cluster, subnet, node role and security groups
    as parameters and outputs its node group's name."""
    assert {shard: _inventory(tpl) for shard, tpl in sorted(three_env.nested.items())} == snapshot_json


# ---------------------------------------------------------------- network


def test_vpc_spans_two_zones_with_one_nat_gateway_and_logs_rejected_traffic(default_parent):
    """GIVEN no vpc THEN a 10.0.0.0/16 VPC: a public and a private subnet in each of two
    zones, one NAT gateway that every private subnet (the UltraServer subnet too) routes to,
    and a flow log of rejected traffic to CloudWatch Logs."""
    default_parent.resource_count_is("AWS::EC2::VPC", 1)
    default_parent.has_resource_properties("AWS::EC2::VPC", {"CidrBlock": "10.0.0.0/16"})
    public = default_parent.find_resources("AWS::EC2::Subnet", {"Properties": {"MapPublicIpOnLaunch": True}})
    private = default_parent.find_resources(
        "AWS::EC2::Subnet", {"Properties": {"MapPublicIpOnLaunch": False}}
    )
    assert len(public) == 2 and len(private) == 3, "two public, two private, the UltraServer subnet"
    for subnets in (public, {k: v for k, v in private.items() if "UltraServerSubnet" not in k}):
        zones = {json.dumps(s["Properties"]["AvailabilityZone"]) for s in subnets.values()}
        assert len(zones) == 2, subnets
    default_parent.resource_count_is("AWS::EC2::NatGateway", 1)
    to_nat = default_parent.find_resources(
        "AWS::EC2::Route", {"Properties": {"NatGatewayId": _ref("EnvironmentVpcPublicSubnet1NATGateway")}}
    )
    assert len(to_nat) == 3
    default_parent.resource_count_is("AWS::EC2::FlowLog", 1)
    default_parent.has_resource_properties(
        "AWS::EC2::FlowLog",
        {
            "ResourceType": "VPC",
            "ResourceId": _ref("EnvironmentVpc"),
            "TrafficType": "REJECT",
            "LogDestinationType": "cloud-watch-logs",
            "LogGroupName": _ref("EnvironmentFlowLogGroup"),
        },
    )


def test_vpc_endpoints_for_s3_ecr_and_sts(default_parent):
    """THEN a gateway endpoint for S3 on the private route tables and the UltraServer
    subnet's, and interface endpoints (private DNS, private subnets) for ECR's API, ECR's
    Docker registry and STS: image pulls do not depend on the NAT gateway alone."""
    default_parent.resource_count_is("AWS::EC2::VPCEndpoint", 4)

    def service(suffix: str) -> dict:
        return {"Fn::Join": ["", ["com.amazonaws.", {"Ref": "AWS::Region"}, suffix]]}

    default_parent.has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {
            "ServiceName": service(".s3"),
            "VpcEndpointType": "Gateway",
            "RouteTableIds": [
                _ref("EnvironmentVpcPrivateSubnet1RouteTable"),
                _ref("EnvironmentVpcPrivateSubnet2RouteTable"),
                _ref("EnvironmentUltraServerSubnetRouteTable"),
            ],
        },
    )
    for suffix in (".ecr.api", ".ecr.dkr", ".sts"):
        default_parent.has_resource_properties(
            "AWS::EC2::VPCEndpoint",
            {
                "ServiceName": service(suffix),
                "VpcEndpointType": "Interface",
                "PrivateDnsEnabled": True,
                "SubnetIds": [
                    _ref("EnvironmentVpcPrivateSubnet1Subnet"),
                    _ref("EnvironmentVpcPrivateSubnet2Subnet"),
                ],
            },
        )


def test_ultraserver_subnet_is_in_the_local_zone_with_a_nat_route(default_env, default_parent):
    """THEN the UltraServer subnet is a private 10.0.192.0/18 in the reservation's zone,
    its only route is the default route to the NAT gateway, and its nested stack receives it
    as the node group's subnet."""
    default_parent.has_resource_properties(
        "AWS::EC2::Subnet",
        {
            "AvailabilityZone": "us-east-1-dfw-2a",
            "CidrBlock": "10.0.192.0/18",
            "MapPublicIpOnLaunch": False,
            "VpcId": _ref("EnvironmentVpc"),
        },
    )
    tpl = default_env
    subnets = {
        k: v
        for k, v in _of_type(tpl, "AWS::EC2::Subnet").items()
        if v["Properties"].get("AvailabilityZone") == "us-east-1-dfw-2a"
    }
    assert len(subnets) == 1
    ((subnet_id, _),) = subnets.items()
    (table,) = [
        a["Properties"]["RouteTableId"]
        for a in _of_type(tpl, "AWS::EC2::SubnetRouteTableAssociation").values()
        if a["Properties"]["SubnetId"] == {"Ref": subnet_id}
    ]
    routes = [
        r["Properties"]
        for r in _of_type(tpl, "AWS::EC2::Route").values()
        if r["Properties"]["RouteTableId"] == table
    ]
    assert [(r["DestinationCidrBlock"], "NatGatewayId" in r) for r in routes] == [("0.0.0.0/0", True)]
    (group,) = [
        g
        for g in _of_type(tpl, "AWS::EKS::Nodegroup").values()
        if g["Properties"].get("CapacityType") == "CAPACITY_BLOCK"
    ]
    # the nested stack receives the subnet as a parameter
    (param,) = list(group["Properties"]["Subnets"])
    nested = [r for r in tpl.template["Resources"].values() if r["Type"] == "AWS::CloudFormation::Stack"]
    assert nested[0]["Properties"]["Parameters"][param["Ref"]] == {"Ref": subnet_id}


# ---------------------------------------------------------------- cluster


def test_cluster_is_1_36_with_logging_encryption_and_endpoint_access(default_parent):
    """GIVEN the shipped cdk.json THEN one EKS cluster: Kubernetes 1.36, access entries only
    (authentication mode API), the five control-plane log types, secrets encrypted with the
    environment's KMS key (rotating), public and private endpoint access, the control plane
    in the private subnets, and no Auto Mode (DRA does not run on it)."""
    default_parent.resource_count_is("AWS::EKS::Cluster", 1)
    default_parent.has_resource_properties(
        "AWS::EKS::Cluster",
        {
            "Version": "1.36",
            "AccessConfig": {"AuthenticationMode": "API"},
            "Logging": {
                "ClusterLogging": {
                    "EnabledTypes": [
                        {"Type": "api"},
                        {"Type": "audit"},
                        {"Type": "authenticator"},
                        {"Type": "controllerManager"},
                        {"Type": "scheduler"},
                    ]
                }
            },
            "EncryptionConfig": [
                {"Provider": {"KeyArn": _arn_of("EnvironmentSecretsKey")}, "Resources": ["secrets"]}
            ],
            "ResourcesVpcConfig": Match.object_like(
                {
                    "EndpointPublicAccess": True,
                    "EndpointPrivateAccess": True,
                    "SubnetIds": [
                        _ref("EnvironmentVpcPrivateSubnet1Subnet"),
                        _ref("EnvironmentVpcPrivateSubnet2Subnet"),
                    ],
                }
            ),
            "ComputeConfig": {"Enabled": False},
        },
    )
    rotating = default_parent.find_resources("AWS::KMS::Key", {"Properties": {"EnableKeyRotation": True}})
    assert [k for k in rotating if k.startswith("EnvironmentSecretsKey")]


def test_without_admin_only_the_kubectl_handler_has_an_access_entry(default_parent):
    """GIVEN no adminPrincipalArn THEN the one access entry is CDK's kubectl handler's
    (cluster admin); the deploy role is admin through EKS's cluster-creator permission.
    (The Capacity Block end handler's entry, no admin, aside: test_capacity_block_end.py.)"""
    assert len(_access_entries_but_capacity_block_end(default_parent)) == 1
    default_parent.has_resource_properties(
        "AWS::EKS::AccessEntry",
        {
            "ClusterName": _ref("EnvironmentCluster"),
            "PrincipalArn": _arn_of("EnvironmentClusterKubectlProviderHandlerServiceRole"),
            "AccessPolicies": [
                {
                    "AccessScope": {"Type": "cluster"},
                    "PolicyArn": CLUSTER_ADMIN_POLICY,
                }
            ],
        },
    )


def _access_entries_but_capacity_block_end(template) -> list[str]:
    return [k for k in template.find_resources("AWS::EKS::AccessEntry") if "CapacityBlockEnd" not in k]


def test_admin_access_entry(three_parent):
    """GIVEN adminPrincipalArn THEN a second access entry makes that principal cluster admin."""
    assert len(_access_entries_but_capacity_block_end(three_parent)) == 2
    three_parent.has_resource_properties(
        "AWS::EKS::AccessEntry",
        {
            "ClusterName": _ref("EnvironmentCluster"),
            "PrincipalArn": "arn:aws:iam::123456789012:role/Admin",
            "AccessPolicies": [
                {
                    "AccessScope": {"Type": "cluster"},
                    "PolicyArn": CLUSTER_ADMIN_POLICY,
                }
            ],
        },
    )


def test_system_node_group_is_graviton_on_demand(default_parent):
    """THEN two on-demand Graviton m7g.xlarge nodes (AL2023 ARM64, at most four during an
    update), labelled node-role=system, in the private subnets."""
    system = default_parent.find_resources(
        "AWS::EKS::Nodegroup", {"Properties": {"CapacityType": "ON_DEMAND"}}
    )
    assert len(system) == 1
    default_parent.has_resource_properties(
        "AWS::EKS::Nodegroup",
        {
            "CapacityType": "ON_DEMAND",
            "AmiType": "AL2023_ARM_64_STANDARD",
            "InstanceTypes": ["m7g.xlarge"],
            "Labels": {"eks-ultraserver.io/node-role": "system"},
            "ScalingConfig": {"MinSize": 2, "DesiredSize": 2, "MaxSize": 4},
            "ClusterName": _ref("EnvironmentCluster"),
            "Subnets": [
                _ref("EnvironmentVpcPrivateSubnet1Subnet"),
                _ref("EnvironmentVpcPrivateSubnet2Subnet"),
            ],
        },
    )


def test_managed_addons(default_parent):
    """THEN the five EKS managed add-ons, each at EKS's default version for the cluster
    (none pinned in versions.EKS_MANAGED_ADDONS), created once the system nodes exist."""
    from eks_ultraserver.versions import EKS_MANAGED_ADDONS

    addons = default_parent.find_resources("AWS::EKS::Addon")
    # amazon-cloudwatch-observability aside (test_observability.py): it is no base add-on
    names = sorted(n for a in addons.values() if (n := a["Properties"]["AddonName"]) in EKS_MANAGED_ADDONS)
    assert names == [
        "coredns",
        "eks-node-monitoring-agent",
        "eks-pod-identity-agent",
        "kube-proxy",
        "vpc-cni",
    ]
    for name, version in EKS_MANAGED_ADDONS.items():
        default_parent.has_resource(
            "AWS::EKS::Addon",
            {
                "Properties": {
                    "AddonName": name,
                    "ClusterName": _ref("EnvironmentCluster"),
                    "AddonVersion": version if version else Match.absent(),
                },
                "DependsOn": Match.array_with(
                    [Match.string_like_regexp("^EnvironmentClusterNodegroupSystemNodes")]
                ),
            },
        )


def test_example_reservation_warns(default_env):
    stack = default_env.stack
    Annotations.from_stack(stack).has_warning(
        "*", Match.string_like_regexp("example reservation id cr-0123456789abcdef0")
    )


def test_the_default_configuration_warns_three_times(default_env):
    """GIVEN the shipped cdk.json THEN exactly three warnings, each with its
    acknowledgement id: the example reservation id, the open endpoint and no admin."""
    warnings = Annotations.from_stack(default_env.stack).find_warning("*", Match.any_value())
    acks = sorted(str(w.entry.data).rsplit("[ack: ", 1)[-1].rstrip("]") for w in warnings)
    assert acks == [
        "eks-ultraserver:endpoint-open-to-the-world",
        "eks-ultraserver:example-reservation",
        "eks-ultraserver:no-admin-principal",
    ]


# ---------------------------------------------------------------- UltraServers and shards


def test_three_ultraservers_of_mixed_types(three_env, three_parent):
    stack, tpl = three_env.stack, three_env
    assert stack.region == "us-east-1" and stack.account == "123456789012"
    groups = {
        g["Properties"]["Labels"]["eks-ultraserver.io/ultraserver"]: g["Properties"]
        for g in _of_type(tpl, "AWS::EKS::Nodegroup").values()
        if g["Properties"].get("CapacityType") == "CAPACITY_BLOCK"
    }
    assert {k: v["ScalingConfig"]["DesiredSize"] for k, v in groups.items()} == {
        "us-a": 18,
        "us-b": 9,
        "us-c": 18,
    }
    # one EFA security group (all traffic with itself) and one node role, shared by all three
    assert len({json.dumps(g["NodeRole"]) for g in groups.values()}) == 1
    efa = [k for k in _of_type(tpl, "AWS::EC2::SecurityGroup") if "EfaSecurityGroup" in k]
    assert len(efa) == 1
    itself = {"Fn::GetAtt": [efa[0], "GroupId"]}
    three_parent.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {"GroupId": itself, "SourceSecurityGroupId": itself, "IpProtocol": "-1"},
    )
    three_parent.has_resource_properties(
        "AWS::EC2::SecurityGroupEgress",
        {"GroupId": itself, "DestinationSecurityGroupId": itself, "IpProtocol": "-1"},
    )


def test_cfn_lint_reports_no_error(default_env, three_env):
    for synth in (default_env, three_env):
        for name, tpl in synth.templates().items():
            assert cfn_lint_errors(tpl) == [], name


def test_ultraservers_live_in_nested_stacks_chosen_by_name(three_env):
    from eks_ultraserver.constructs.environment import ultraserver_shard

    placed = {}
    for shard_id, tpl in three_env.nested.items():
        for res in tpl["Resources"].values():
            if res["Type"] == "AWS::EKS::Nodegroup":
                placed[res["Properties"]["Labels"]["eks-ultraserver.io/ultraserver"]] = shard_id
    assert placed == {name: f"UltraServers{ultraserver_shard(name):02d}" for name in ("us-a", "us-b", "us-c")}
    assert not [
        r
        for r in three_env.template["Resources"].values()
        if r["Type"] == "AWS::EKS::Nodegroup" and r["Properties"].get("CapacityType") == "CAPACITY_BLOCK"
    ]


def test_each_shard_gets_the_shared_resources_and_waits_for_the_managed_addons(three_env, three_parent):
    """GIVEN three UltraServers in three shards THEN three nested stacks, each given the
    cluster, the UltraServer subnet, the GPU node role, the EFA security group and the events
    topic (its missing-nodes alarm), and each
    created after (deleted before) the four managed add-ons, VPC CNI among them."""
    resources = three_env.template["Resources"]

    def one(cfn_type: str, prefix: str = "Environment") -> str:
        (logical_id,) = [k for k, v in resources.items() if v["Type"] == cfn_type and k.startswith(prefix)]
        return logical_id

    cluster = one("AWS::EKS::Cluster")
    expected = [
        {"Ref": cluster},
        {"Fn::GetAtt": [cluster, "ClusterSecurityGroupId"]},
        {"Ref": one("AWS::EC2::Subnet", "EnvironmentUltraServerSubnet")},
        {"Fn::GetAtt": [one("AWS::IAM::Role", "EnvironmentGpuNodeRole"), "Arn"]},
        {"Fn::GetAtt": [one("AWS::EC2::SecurityGroup", "EnvironmentEfaSecurityGroup"), "GroupId"]},
        # the events topic, for the UltraServer's missing-nodes alarm (observability)
        {"Ref": one("AWS::SNS::Topic", "EnvironmentCapacityBlockEventsTopic")},
    ]
    addons = sorted(k for k in three_parent.find_resources("AWS::EKS::Addon") if "Observability" not in k)
    shards = three_parent.find_resources("AWS::CloudFormation::Stack")
    assert len(shards) == len(three_env.nested) == 3
    for shard in shards.values():
        assert sorted(shard["DependsOn"]) == addons
        given = shard["Properties"]["Parameters"].values()
        assert sorted(map(json.dumps, given)) == sorted(map(json.dumps, expected))


def test_outputs(three_parent):
    """THEN the outputs give the cluster name, the kubeconfig command and, for each
    UltraServer, its node group's name (an output of its nested stack)."""
    outputs = three_parent.find_outputs("*")
    three_parent.has_output("*", {"Value": _ref("EnvironmentCluster")})
    three_parent.has_output(
        "*",
        {
            "Value": {
                "Fn::Join": [
                    "",
                    ["aws eks update-kubeconfig --name ", _ref("EnvironmentCluster"), " --region us-east-1"],
                ]
            }
        },
    )
    nodegroups = {k: v for k, v in outputs.items() if k.startswith("EnvironmentNodegroup")}
    assert sorted(k[:-8] for k in nodegroups) == [
        "EnvironmentNodegroupusa",
        "EnvironmentNodegroupusb",
        "EnvironmentNodegroupusc",
    ]
    for output in nodegroups.values():
        (stack, attribute) = output["Value"]["Fn::GetAtt"]
        assert stack.startswith("EnvironmentUltraServers") and attribute.endswith("NodegroupName")
    # the shard count, which `eks-ultraserver preflight` compares (docs/sharding.md)
    (shards,) = [v for k, v in outputs.items() if k.startswith("EnvironmentUltraServerShards")]
    assert shards["Value"] == "16"
    assert len(outputs) == 6


def test_more_than_30_nodegroups_warns_about_the_quota():
    servers = [
        {"capacityReservationId": f"cr-0{i:016x}", "type": "u-p6e-gb200x36", "name": f"u{i}"}
        for i in range(30)
    ]
    # 270 nodes: the UltraServer subnet holds them with few warm addresses per node
    stack = synth_environment(
        {"ultraServers": json.dumps(servers), "vpcCni": {"warmIpTarget": 2, "minimumIpTarget": 16}}
    ).stack
    Annotations.from_stack(stack).has_warning(
        "*", Match.string_like_regexp("exceed EKS's default quota of 30")
    )


# ---------------------------------------------------------------- add-ons, jobs, events


def _helm(synth):
    return {r["Properties"]["Release"]: r for r in _of_type(synth, "Custom::AWSCDK-EKS-HelmChart").values()}


def test_gpu_platform_addons_installed_in_order_after_system_nodes(default_env):
    releases = _helm(default_env)
    assert set(releases) == {
        "gpu-operator",
        "nvidia-dra-driver-gpu",
        "aws-efa-k8s-device-plugin",
        "mpi-operator",
        "kueue",  # on by default (kueue: true), after the MPI operator
    }
    assert releases["gpu-operator"]["Properties"]["Namespace"] == "gpu-operator"
    assert releases["aws-efa-k8s-device-plugin"]["Properties"]["Namespace"] == "kube-system"
    by_id = {
        r["Properties"]["Release"]: k
        for k, r in _of_type(default_env, "Custom::AWSCDK-EKS-HelmChart").items()
    }
    assert by_id["gpu-operator"] in releases["nvidia-dra-driver-gpu"]["DependsOn"]
    system = [
        k
        for k, g in _of_type(default_env, "AWS::EKS::Nodegroup").items()
        if g["Properties"].get("CapacityType") == "ON_DEMAND"
    ]
    for release in releases.values():
        assert any(s in release.get("DependsOn", []) for s in system), release["Properties"]["Release"]


def _validation_objects(synth) -> list[dict]:
    """Every object of the stack's Kubernetes manifests that belongs to a validation check:
    labelled eks-ultraserver.io/check, or of a kind only the checks use."""
    found = []
    for resource in _of_type(synth, "Custom::AWSCDK-EKS-KubernetesResource").values():
        manifest = resource["Properties"]["Manifest"]
        if not isinstance(manifest, str):  # Fn::Join around tokens: only literal parts matter
            manifest = "".join(p for p in manifest["Fn::Join"][1] if isinstance(p, str))
            if "eks-ultraserver.io/check" in manifest or '"kind":"ComputeDomain"' in manifest:
                found.append({"kind": "unparsed", "manifest": manifest})
            continue
        for obj in json.loads(manifest):
            labels = obj.get("metadata", {}).get("labels", {})
            if "eks-ultraserver.io/check" in labels or obj["kind"] in (
                "ComputeDomain",
                "MPIJob",
                "Job",
                "Pod",
            ):
                found.append(obj)
    return found


def test_validation_jobs_off_by_default(default_env):
    """GIVEN cdk.json, which leaves validationJobs off THEN no manifest of the stack holds a
    validation object (the same search finds them when it is on: see the next test)."""
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    assert str(context.get("validationJobs", False)).lower() == "false"
    assert _validation_objects(default_env) == []


def test_validation_jobs_deploy_the_same_objects_as_the_manifests_command():
    import cdk8s

    from eks_ultraserver.charts.manifests import validation_charts
    from eks_ultraserver.config import EnvironmentConfig

    synth = synth_environment({"validationJobs": "true"})
    deployed = []
    manifests = _of_type(synth, "Custom::AWSCDK-EKS-KubernetesResource")
    helm_ids = list(_of_type(synth, "Custom::AWSCDK-EKS-HelmChart"))
    for logical_id, resource in manifests.items():
        if "CapacityBlockEndRbac" in logical_id or "Kueue" in logical_id:  # not a validation job
            continue
        for obj in json.loads(resource["Properties"]["Manifest"]):
            # CDK's kubectl provider adds its prune label; nothing else differs.
            labels = obj["metadata"].get("labels", {})
            for label in [k for k in labels if k.startswith("aws.cdk.eks/prune-")]:
                del labels[label]
            if "labels" in obj["metadata"] and not labels:
                del obj["metadata"]["labels"]
            deployed.append(obj)
        assert set(helm_ids) <= set(resource["DependsOn"]), "jobs wait for every add-on"
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    config = EnvironmentConfig.from_mapping(context | {"validationJobs": True})
    expected = [obj for chart in validation_charts(cdk8s.App(), config) for obj in chart.to_json()]

    def key(o):
        return (o["kind"], o["metadata"]["name"])

    assert sorted(deployed, key=key) == sorted(expected, key=key)
    assert {o["kind"] for o in deployed} == {"ComputeDomain", "MPIJob", "Job"}, "no bare Pod"
    assert sorted(map(key, _validation_objects(synth))) == sorted(map(key, deployed))
    # and, like every release, they are deleted before the add-ons and the system nodes
    _assert_kubernetes_objects_deleted_before_the_base(synth)


def test_capacity_block_events_topic(default_env):
    rules = [
        r["Properties"]
        for r in _of_type(default_env, "AWS::Events::Rule").values()
        if "EventPattern" in r["Properties"]  # the Capacity Block end handler's schedule aside
    ]
    assert rules and all("cr-0123456789abcdef0" in json.dumps(r["EventPattern"]) for r in rules)
    assert _of_type(default_env, "AWS::SNS::Topic")


def test_zone_from_the_cached_reservation_lookup_without_aws():
    """GIVEN no availabilityZone but a cached lookup (as cdk.context.json holds it)
    WHEN the app is built THEN the zone comes from the cache and no AWS call is made."""
    from eks_ultraserver.lookups import context_key

    key = context_key(account="123456789012", region="us-east-1", reservation_id="cr-0123456789abcdef0")
    cached = {
        "availabilityZone": "us-east-1-dfw-2a",
        "availabilityZoneId": "use1-dfw2-az1",
        "instanceType": "p6e-gb200.36xlarge",
        "reservationType": "capacity-block",
        "totalInstanceCount": 18,
    }
    synth = synth_environment(
        {"availabilityZone": None, "account": "123456789012", "region": "us-east-1", key: cached}
    )
    zones = {s["Properties"].get("AvailabilityZone") for s in _of_type(synth, "AWS::EC2::Subnet").values()}
    assert "us-east-1-dfw-2a" in zones


def test_bad_addon_configuration_stops_before_anything_is_built():
    """GIVEN a GPU Operator version that conflicts with the EFA plugin WHEN the app is
    built THEN one error names it and the stack holds no environment at all."""
    import aws_cdk as cdk

    from eks_ultraserver.app import build_app
    from eks_ultraserver.model import ConfigurationError

    base = json.loads((REPO / "cdk.json").read_text())["context"]
    app = cdk.App(
        context=base | {"addonVersions": '{"gpuOperator": "v26.7.0"}', "efaLayout": "sideways"},
        builtin_cloud_formation_validation=False,
    )
    with pytest.raises(ConfigurationError) as err:
        build_app(app)
    assert "efaLayout: 'sideways'" in str(err.value)
    stacks = [c for c in app.node.children if isinstance(c, cdk.Stack)]
    assert all(s.node.try_find_child("Environment") is None for s in stacks)


def test_environment_refuses_bad_addons_before_building_anything():
    import aws_cdk as cdk

    from eks_ultraserver.config import AddonsConfig, UltraServerSpec
    from eks_ultraserver.constructs.environment import UltraServerEnvironment
    from eks_ultraserver.model import ConfigurationError, UltraServerType

    stack = cdk.Stack(cdk.App(builtin_cloud_formation_validation=False), "S")
    with pytest.raises(ConfigurationError, match=r"GpuPlatform|gpuOperator|v26.7.0"):
        UltraServerEnvironment(
            stack,
            "Env",
            ultraservers=[
                UltraServerSpec(
                    capacity_reservation_id="cr-0123456789abcdef0",
                    type=UltraServerType.U_P6E_GB200X36,
                    name="a",
                )
            ],
            availability_zone="us-east-1-dfw-2a",
            addons=AddonsConfig(versions={"gpuOperator": "v26.7.0"}),
        )
    assert stack.node.try_find_child("Env") is None


# ---------------------------------------------------------------- reserved and burst


@pytest.fixture(scope="module")
def capacity_env():
    """GIVEN an ODCR node group in another AZ, a Capacity Block node group in the
    UltraServers' zone, a Karpenter-run ODCR and a burst pool."""
    reserved = json.dumps(EVERY_RESERVED_KIND)
    burst = json.dumps(MIXED_BURST)
    return synth_environment({"reservedCapacity": reserved, "burstCapacity": burst})


def test_reserved_node_groups_run_on_their_reservations(capacity_env):
    groups = {
        g["Properties"]["Labels"].get("eks-ultraserver.io/reserved-capacity"): g["Properties"]
        for g in _of_type(capacity_env, "AWS::EKS::Nodegroup").values()
    }
    assert groups["eval"]["CapacityType"] == "ON_DEMAND"
    assert groups["eval"]["AmiType"] == "AL2023_x86_64_NVIDIA"  # the EKS API spells it so
    assert groups["ft"]["CapacityType"] == "CAPACITY_BLOCK"
    assert "kp" not in groups, "Karpenter runs that one"


def test_reserved_capacity_in_another_zone_gets_its_own_subnet(capacity_env):
    subnets = {
        s["Properties"]["AvailabilityZone"]: (k, s["Properties"]["CidrBlock"])
        for k, s in _of_type(capacity_env, "AWS::EC2::Subnet").items()
        if isinstance(s["Properties"].get("AvailabilityZone"), str)
    }
    assert subnets["us-east-1a"][1] == "10.0.128.0/21"
    assert subnets["us-east-1-dfw-2a"][1] == "10.0.192.0/18"
    (s3,) = [
        e
        for e in _of_type(capacity_env, "AWS::EC2::VPCEndpoint").values()
        if e["Properties"].get("VpcEndpointType") == "Gateway"
    ]
    tables = json.dumps(s3["Properties"]["RouteTableIds"])
    assert "UltraServerSubnet" in tables and "ReservedSubnet" in tables


def test_karpenter_with_burst_and_reserved_pools(capacity_env):
    releases = _helm(capacity_env)
    assert "karpenter" in releases
    manifests = json.dumps(
        [
            r["Properties"].get("Manifest")
            for r in _of_type(capacity_env, "Custom::AWSCDK-EKS-KubernetesResource").values()
        ]
    )
    assert "gpu-burst" in manifests and "gpu-reserved" in manifests
    assert "p6e-gb200.36xlarge" in manifests, "the pools exclude UltraServer instances"


def test_capacity_environment_lints_clean(capacity_env):
    for name, tpl in capacity_env.templates().items():
        assert cfn_lint_errors(tpl) == [], name


def test_reserved_capacity_outside_the_zone_with_an_existing_vpc_is_refused():
    import aws_cdk as cdk
    from aws_cdk import aws_ec2 as ec2

    from eks_ultraserver.capacity import ReservedCapacitySpec
    from eks_ultraserver.config import UltraServerSpec
    from eks_ultraserver.constructs.environment import UltraServerEnvironment
    from eks_ultraserver.model import ConfigurationError, UltraServerType

    stack = cdk.Stack(cdk.App(builtin_cloud_formation_validation=False), "S")
    vpc = ec2.Vpc(stack, "Mine", max_azs=2)
    subnet = ec2.Subnet.from_subnet_attributes(
        stack, "Lz", subnet_id="subnet-0abc", availability_zone="us-east-1-dfw-2a"
    )
    with pytest.raises(
        ConfigurationError, match=r"reservedCapacity\[0\].availabilityZone: 'us-east-1a' differs"
    ):
        UltraServerEnvironment(
            stack,
            "Env",
            vpc=vpc,
            ultraserver_subnets=[subnet],
            ultraservers=[
                UltraServerSpec(
                    capacity_reservation_id="cr-0123456789abcdef0",
                    type=UltraServerType.U_P6E_GB200X36,
                    name="a",
                )
            ],
            availability_zone="us-east-1-dfw-2a",
            reserved_capacity=[
                ReservedCapacitySpec(
                    name="eval",
                    instance_type="p5.48xlarge",
                    instance_count=1,
                    capacity_reservation_id="cr-0bbbbbbbbbbbbbbb1",
                    availability_zone="us-east-1a",
                )
            ],
        )
    assert stack.node.try_find_child("Env") is None


def test_a_bad_ultraserver_entry_is_refused_by_the_spec_itself():
    """GIVEN an UltraServer entry with a bad reservation id, an instance type instead of an
    UltraServer type and a name that is no DNS-1123 label WHEN the spec is built THEN one
    ConfigurationError names each field, the value given and what is allowed (so no
    environment can receive it)."""
    from eks_ultraserver.config import UltraServerSpec
    from eks_ultraserver.model import ConfigurationError

    entry: dict[str, Any] = {
        "capacity_reservation_id": "cr-nope",
        "type": "p6e-gb200.36xlarge",
        "name": "B_",
    }
    with pytest.raises(ConfigurationError) as err:
        UltraServerSpec(**entry)
    message = str(err.value)
    assert "capacity_reservation_id: 'cr-nope' is not a Capacity Reservation id" in message
    assert "type: 'p6e-gb200.36xlarge' is not an UltraServer type" in message
    assert "name: 'B_' is not a DNS-1123 label" in message


def test_duplicate_ultraservers_stop_the_environment_before_any_node_group():
    """GIVEN three specs, each valid, where two share a name and two a reservation id WHEN
    the environment is built THEN one ConfigurationError names both duplicates and nothing
    is added to the stack (no node group, no cluster)."""
    import aws_cdk as cdk

    from eks_ultraserver.config import UltraServerSpec
    from eks_ultraserver.constructs.environment import UltraServerEnvironment
    from eks_ultraserver.model import ConfigurationError, UltraServerType

    def spec(reservation: str, name: str) -> UltraServerSpec:
        return UltraServerSpec(
            capacity_reservation_id=reservation, type=UltraServerType.U_P6E_GB200X36, name=name
        )

    stack = cdk.Stack(cdk.App(builtin_cloud_formation_validation=False), "S")
    ultraservers = [
        spec("cr-0123456789abcdef0", "a"),
        spec("cr-0123456789abcdef1", "a"),
        spec("cr-0123456789abcdef0", "b"),
    ]
    with pytest.raises(ConfigurationError) as err:
        UltraServerEnvironment(stack, "Env", ultraservers=ultraservers, availability_zone="us-east-1-dfw-2a")
    message = str(err.value)
    assert "ultraservers: duplicate capacity_reservation_id 'cr-0123456789abcdef0'" in message
    assert "ultraservers: duplicate name 'a'" in message
    assert stack.node.try_find_child("Env") is None


def test_only_the_zone_subnets_suppress_cfn_lint_w3010(default_env):
    from cfnlint.api import ManualArgs, lint

    suppressed = [
        k
        for k, r in default_env.all_resources.items()
        if "W3010" in json.dumps(r.get("Metadata", {}).get("cfn-lint", {}))
    ]
    assert len(suppressed) == 1 and "UltraServerSubnet" in suppressed[0]
    findings = lint(json.dumps(default_env.template), config=ManualArgs(regions=["us-east-1"]))
    assert not [m for m in findings if m.rule.id == "W3010"]


# ---------------------------------------------------------------- deletion order


def _depends_on_closure(template: dict, logical_id: str) -> set[str]:
    """Every resource ``logical_id`` depends on through DependsOn, directly or not."""
    resources = template["Resources"]
    seen: set[str] = set()
    todo = [logical_id]
    while todo:
        deps = resources[todo.pop()].get("DependsOn", [])
        for dep in [deps] if isinstance(deps, str) else deps:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def _assert_kubernetes_objects_deleted_before_the_base(synth):
    from eks_ultraserver.versions import EKS_MANAGED_ADDONS

    resources = synth.template["Resources"]
    addons = [k for k, r in resources.items() if r["Type"] == "AWS::EKS::Addon" and "Observability" not in k]
    (system,) = [
        k
        for k, r in resources.items()
        if r["Type"] == "AWS::EKS::Nodegroup"
        and r["Properties"].get("Labels", {}).get("eks-ultraserver.io/node-role") == "system"
    ]
    objects = [
        k
        for k, r in resources.items()
        if r["Type"] in ("Custom::AWSCDK-EKS-HelmChart", "Custom::AWSCDK-EKS-KubernetesResource")
    ]
    assert len(addons) == len(EKS_MANAGED_ADDONS) and objects
    for obj in objects:
        missing = {*addons, system} - _depends_on_closure(synth.template, obj)
        assert not missing, f"{obj} does not depend on {sorted(missing)}"
    return objects


def test_kubernetes_objects_are_deleted_before_addons_and_system_nodes(default_env):
    """GIVEN the default environment WHEN the stack is deleted THEN CloudFormation removes
    every Helm release (helm uninstall runs its hooks on the system nodes, with CoreDNS and
    pod networking) before the managed add-ons and the system node group: each release
    depends on each of them."""
    objects = _assert_kubernetes_objects_deleted_before_the_base(default_env)
    # the GPU platform's 4 releases, Kueue's release and its queues (and the Capacity Block
    # end handler's RBAC)
    assert len([o for o in objects if "CapacityBlockEndRbac" not in o]) == 6


def test_karpenter_and_nodepools_are_deleted_before_addons_and_system_nodes(capacity_env):
    """GIVEN burst and reserved capacity (Karpenter's chart and its cdk8s NodePools too)."""
    objects = _assert_kubernetes_objects_deleted_before_the_base(capacity_env)
    types = {capacity_env.template["Resources"][k]["Type"] for k in objects}
    assert types == {"Custom::AWSCDK-EKS-HelmChart", "Custom::AWSCDK-EKS-KubernetesResource"}


# ---------------------------------------------------------------- notifications


def test_notifications_cover_the_reserved_capacity_blocks_too(capacity_env):
    """GIVEN an UltraServer and reservedCapacity holding one Capacity Block and two ODCRs
    WHEN synthesized THEN both rules match the UltraServer's and the reserved Capacity
    Block's events, and not the ODCRs' (EC2 sends Capacity Block events only)."""
    rules = [
        r["Properties"]["EventPattern"]
        for r in _of_type(capacity_env, "AWS::Events::Rule").values()
        if "Capacity Block" in json.dumps(r["Properties"].get("EventPattern", {}).get("detail-type"))
    ]
    assert len(rules) == 2  # Karpenter's interruption rules aside
    for pattern in rules:
        assert pattern["detail"]["capacity-reservation-id"] == [
            "cr-0123456789abcdef0",
            "cr-0bbbbbbbbbbbbbbb2",
        ]


# ---------------------------------------------------------------- endpoint and admin access


@pytest.fixture(scope="module")
def restricted_env():
    """GIVEN the public endpoint restricted to one CIDR, an admin principal, a misspelt
    key, a far-off unknown key and a context-provider cache entry in the context."""
    return synth_environment(
        {
            "publicAccessCidrs": '["203.0.113.0/24", "198.51.100.7/32"]',
            "adminPrincipalArn": "arn:aws:iam::123456789012:role/Admin",
            "kubernetesVerison": "1.35",
            "costCenter": "ml-research",
            "availability-zones:account=123456789012:region=us-east-1": ["us-east-1a"],
        }
    )


def _warnings(synth) -> list[str]:
    return [
        str(m.entry.data) for m in Annotations.from_stack(synth.stack).find_warning("*", Match.any_value())
    ]


def test_public_access_cidrs_restrict_the_public_endpoint(restricted_env):
    (cluster,) = _of_type(restricted_env, "AWS::EKS::Cluster").values()
    vpc_config = cluster["Properties"]["ResourcesVpcConfig"]
    assert vpc_config["EndpointPublicAccess"] is True and vpc_config["EndpointPrivateAccess"] is True
    assert vpc_config["PublicAccessCidrs"] == ["203.0.113.0/24", "198.51.100.7/32"]
    assert not [w for w in _warnings(restricted_env) if "every address" in w]


def test_an_endpoint_open_to_the_world_and_no_admin_warn(default_env):
    """GIVEN the shipped cdk.json (public endpoint, no publicAccessCidrs, no
    adminPrincipalArn) THEN synth warns about both and names the keys to set."""
    (cluster,) = _of_type(default_env, "AWS::EKS::Cluster").values()
    assert "PublicAccessCidrs" not in cluster["Properties"]["ResourcesVpcConfig"]
    warnings = _warnings(default_env)
    (open_endpoint,) = [w for w in warnings if "every address" in w]
    assert "0.0.0.0/0" in open_endpoint and "publicAccessCidrs" in open_endpoint
    (no_admin,) = [w for w in warnings if "No adminPrincipalArn" in w]
    assert "Set adminPrincipalArn" in no_admin and "admin_principal_arn" in no_admin


def test_an_admin_principal_silences_the_admin_warning(restricted_env, three_env):
    for synth in (restricted_env, three_env):
        assert not [w for w in _warnings(synth) if "adminPrincipalArn" in w]


def _one_ultraserver():
    from eks_ultraserver.config import UltraServerSpec
    from eks_ultraserver.model import UltraServerType

    return [
        UltraServerSpec(
            capacity_reservation_id="cr-0123456789abcdef0", type=UltraServerType.U_P6E_GB200X36, name="a"
        )
    ]


def test_an_explicit_world_cidr_and_a_private_endpoint():
    """GIVEN the construct with public_access_cidrs ['0.0.0.0/0'] THEN it still warns; GIVEN
    a private endpoint THEN no open-endpoint warning."""
    import aws_cdk as cdk

    from eks_ultraserver.constructs.environment import UltraServerEnvironment

    for kwargs, open_warnings in (
        ({"public_access_cidrs": ["0.0.0.0/0"]}, 1),
        ({"endpoint_access": "private"}, 0),
    ):
        stack = cdk.Stack(cdk.App(builtin_cloud_formation_validation=False), "S")
        UltraServerEnvironment(
            stack, "Env", ultraservers=_one_ultraserver(), availability_zone="us-east-1-dfw-2a", **kwargs
        )
        found = Annotations.from_stack(stack).find_warning(
            "*", Match.string_like_regexp("accepts connections from every address")
        )
        assert len(found) == open_warnings, kwargs


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"public_access_cidrs": ["203.0.113.0/24"], "endpoint_access": "public"},
            "public_access_cidrs: restricting the public endpoint needs private access too",
        ),
        (
            {"public_access_cidrs": ["203.0.113.0/24"], "endpoint_access": "private"},
            "public_access_cidrs: given, but endpoint_access is 'private'",
        ),
        ({"public_access_cidrs": []}, "public_access_cidrs: the list is empty"),
        (
            {"public_access_cidrs": ["203.0.113.9/24"]},
            r"public_access_cidrs\[0\]: '203.0.113.9/24' has host bits",
        ),
    ],
)
def test_bad_public_access_cidrs_stop_the_environment(kwargs, message):
    import aws_cdk as cdk

    from eks_ultraserver.constructs.environment import UltraServerEnvironment
    from eks_ultraserver.model import ConfigurationError

    stack = cdk.Stack(cdk.App(builtin_cloud_formation_validation=False), "S")
    with pytest.raises(ConfigurationError, match=message):
        UltraServerEnvironment(
            stack, "Env", ultraservers=_one_ultraserver(), availability_zone="us-east-1-dfw-2a", **kwargs
        )
    assert stack.node.try_find_child("Env") is None


# ---------------------------------------------------------------- misspelt context keys


def test_a_misspelt_context_key_warns_and_names_the_key_meant(restricted_env):
    """GIVEN 'kubernetesVerison' in the context THEN synth warns naming it and
    'kubernetesVersion', and the version stays the default (the key is not read)."""
    (warning,) = [w for w in _warnings(restricted_env) if "kubernetesVerison" in w]
    assert "did you mean 'kubernetesVersion'?" in warning
    (cluster,) = _of_type(restricted_env, "AWS::EKS::Cluster").values()
    assert cluster["Properties"]["Version"] == "1.36"


def test_feature_flags_cache_entries_and_far_off_keys_do_not_warn(restricted_env):
    """GIVEN cdk.json's feature flags (@aws-cdk/...), a context-provider cache entry and
    'costCenter' (the app's own key, far from every key of the library) THEN only the
    misspelt key warns: the context is shared with CDK, other libraries and the app."""
    unknown = [
        m
        for m in Annotations.from_stack(restricted_env.stack).find_warning("*", Match.any_value())
        if "context key" in str(m.entry.data)
    ]
    assert len(unknown) == 1 and "kubernetesVerison" in str(unknown[0].entry.data)


def test_a_misspelt_key_is_named_in_the_configuration_error():
    """GIVEN 'ultraServer' instead of 'ultraServers' WHEN the app is built THEN the one
    error says ultraServers is missing and which key probably meant it."""
    import aws_cdk as cdk

    from eks_ultraserver.app import build_app
    from eks_ultraserver.model import ConfigurationError

    base = json.loads((REPO / "cdk.json").read_text())["context"]
    context = {k: v for k, v in base.items() if k != "ultraServers"} | {"ultraServer": base["ultraServers"]}
    with pytest.raises(ConfigurationError) as err:
        build_app(cdk.App(context=context, builtin_cloud_formation_validation=False))
    assert "ultraServers: missing" in str(err.value)
    assert "'ultraServer' is ignored" in str(err.value) and "did you mean 'ultraServers'?" in str(err.value)


# ---------------------------------------------------------------- the network on its own


def _network_stack():
    """GIVEN an UltraServerNetwork added to a plain construct 'Net' of a stack."""
    import aws_cdk as cdk

    from constructs import Construct
    from eks_ultraserver.constructs.network import UltraServerNetwork

    stack = cdk.Stack(cdk.App(builtin_cloud_formation_validation=False), "S")
    scope = Construct(stack, "Net")
    return stack, UltraServerNetwork(scope, availability_zone="us-east-1-dfw-2a")


def test_network_alone_adds_the_zone_subnets_to_its_scope():
    """GIVEN the network alone WHEN a reservation zone's subnets are asked for (twice) THEN
    the UltraServer subnet is in the Local Zone (default CIDR, NAT route), the reserved
    subnet of us-east-1b is the /21 of slot 1, made once, and the S3 gateway endpoint
    serves both; every resource is a child of the given scope (no construct of its own)."""
    from conftest import template_of

    stack, network = _network_stack()
    reserved = network.reserved_subnets("us-east-1b")
    assert network.reserved_subnets("us-east-1b") == reserved
    assert network.reserved_subnets("us-east-1-dfw-2a") == network.ultraserver_subnets
    assert network.zone_subnets == {"us-east-1b": reserved[0]}
    assert network.vpc.node.path == "S/Net/Vpc"
    assert network.ultraserver_subnets[0].node.path == "S/Net/UltraServerSubnet"
    assert reserved[0].node.path == "S/Net/ReservedSubnet-us-east-1b"

    template = template_of(stack)
    zone_subnets = {
        v["Properties"]["AvailabilityZone"]: v["Properties"]["CidrBlock"]
        for k, v in template.find_resources("AWS::EC2::Subnet").items()
        if k.startswith(("NetUltraServerSubnet", "NetReservedSubnet"))
    }
    assert zone_subnets == {
        "us-east-1-dfw-2a": "10.0.192.0/18",
        "us-east-1b": "10.0.136.0/21",
    }
    template.has_resource_properties(
        "AWS::EC2::Route",
        {
            "DestinationCidrBlock": "0.0.0.0/0",
            "NatGatewayId": Match.any_value(),
            "RouteTableId": {"Ref": Match.string_like_regexp("^NetUltraServerSubnetRouteTable")},
        },
    )
    (endpoint,) = template.find_resources(
        "AWS::EC2::VPCEndpoint", {"Properties": {"VpcEndpointType": "Gateway"}}
    ).values()
    served = sorted(ref["Ref"] for ref in endpoint["Properties"]["RouteTableIds"])
    zone_tables = [r for r in served if r.startswith(("NetUltraServerSubnet", "NetReservedSubnet"))]
    assert [t.rstrip("0123456789ABCDEF") for t in zone_tables] == [
        "NetReservedSubnetuseast1bRouteTable",
        "NetUltraServerSubnetRouteTable",
    ]
    assert len(served) == 4, "the two private subnets of the VPC and the two zone subnets"


def test_network_with_an_existing_vpc_needs_subnets_and_adds_none():
    """GIVEN an existing VPC WHEN no UltraServer subnets are given THEN one
    ConfigurationError names ultraserver_subnets; WHEN they are THEN they are used, and a
    reservation in another zone is refused (an existing VPC gets no new subnets)."""
    import aws_cdk as cdk
    from aws_cdk import aws_ec2 as ec2

    from eks_ultraserver.constructs.network import UltraServerNetwork
    from eks_ultraserver.model import ConfigurationError

    stack = cdk.Stack(cdk.App(builtin_cloud_formation_validation=False), "S")
    vpc = ec2.Vpc(stack, "Mine", max_azs=2)
    with pytest.raises(ConfigurationError, match="ultraserver_subnets: required with an existing vpc"):
        UltraServerNetwork(stack, availability_zone="us-east-1-dfw-2a", vpc=vpc)
    subnet = ec2.Subnet.from_subnet_attributes(
        stack, "Lz", subnet_id="subnet-0abc", availability_zone="us-east-1-dfw-2a"
    )
    network = UltraServerNetwork(
        stack, availability_zone="us-east-1-dfw-2a", vpc=vpc, ultraserver_subnets=[subnet]
    )
    assert network.vpc is vpc and network.ultraserver_subnets == [subnet]
    assert network.reserved_subnets("us-east-1-dfw-2a") == [subnet]
    with pytest.raises(
        ConfigurationError, match=r"'us-east-1a' differs .* an existing VPC gets no new subnets"
    ):
        network.reserved_subnets("us-east-1a")


def test_network_problems_name_each_bad_argument():
    """GIVEN three NAT gateways and two reservation zones that end in the same letter THEN
    each is one problem (the environment reports them with its other problems)."""
    from eks_ultraserver.constructs.network import network_problems, reserved_subnet_cidr
    from eks_ultraserver.model import Problems

    problems = Problems()
    network_problems(
        availability_zone="us-east-1-dfw-2a",
        vpc=None,
        ultraserver_subnets=None,
        nat_gateways=3,
        reserved_zones=[None, "us-east-1b", "us-east-1-atl-2b"],
        problems=problems,
    )
    assert list(problems) == [
        "nat_gateways: 3 is out of range; use 1 or 2",
        "reservedCapacity[2].availabilityZone: 'us-east-1-atl-2b' and 'us-east-1b' end in the same "
        "letter and would share a subnet range; put these reservations in one zone or use your own "
        "ReservedGpuNodeGroup with your subnets",
    ]
    assert reserved_subnet_cidr("us-east-1a") == "10.0.128.0/21"
    assert reserved_subnet_cidr("us-east-1-atl-2b") == "10.0.136.0/21"


def test_environment_network_keeps_the_construct_paths_of_its_resources(default_env):
    """GIVEN the shipped cdk.json THEN the environment's network resources are its own
    children, as before the network had a module of its own (so their logical ids, and a
    deployed stack's VPC, stay put)."""
    env = default_env.stack.ultraserver_environment
    assert env.network.vpc is env.vpc and env.network.ultraserver_subnets is env.ultraserver_subnets
    assert env.vpc.node.path == f"{env.node.path}/Vpc"
    assert [s.node.path for s in env.ultraserver_subnets] == [f"{env.node.path}/UltraServerSubnet"]
    vpcs = _of_type(default_env, "AWS::EC2::VPC")
    assert [k[:-8] for k in vpcs] == ["EnvironmentVpc"]


def test_validation_targets_give_the_charts_of_the_configuration():
    """GIVEN two UltraServers and the legacy DRA driver line WHEN the validation charts are
    built from ValidationTargets (what the environment passes) and from the whole
    EnvironmentConfig THEN they are the same charts, object for object."""
    from typing import cast

    import cdk8s

    from eks_ultraserver.charts.manifests import validation_charts
    from eks_ultraserver.config import EnvironmentConfig
    from eks_ultraserver.constructs.validation_jobs import ValidationTargets

    context = json.loads((REPO / "cdk.json").read_text())["context"]
    config = EnvironmentConfig.from_mapping(
        context
        | {"ultraServers": THREE, "efaLayout": "all-odd-cards", "draDriverLine": "nvidia-dra-driver-gpu"}
    )
    targets = ValidationTargets(
        ultraservers=config.ultraservers, efa_layout=config.efa_layout, addons=config.addons
    )
    from_targets = validation_charts(cdk8s.App(), cast(EnvironmentConfig, targets))
    from_config = validation_charts(cdk8s.App(), config)
    assert [c.node.id for c in from_targets] == [c.node.id for c in from_config]
    assert len(from_targets) == 6
    assert [c.to_json() for c in from_targets] == [c.to_json() for c in from_config]


def test_an_existing_vpc_from_cdk_json_runs_the_ultraservers_in_the_subnets_named():
    """GIVEN vpcId and ultraServerSubnetIds (with account and Region for the VPC lookup) WHEN
    synthesized THEN no VPC is created and the UltraServer node groups use those subnets;
    vpcId without subnets, or subnets without vpcId, is refused with the key named."""
    from eks_ultraserver.model import ConfigurationError

    synth = synth_environment(
        {
            "vpcId": "vpc-0123456789abcdef0",
            "ultraServerSubnetIds": '["subnet-0123456789abcdef0"]',
            "account": "123456789012",
            "region": "us-east-1",
        }
    )
    assert not _of_type(synth, "AWS::EC2::VPC")
    groups = [
        g
        for g in _of_type(synth, "AWS::EKS::Nodegroup").values()
        if g["Properties"]["CapacityType"] == "CAPACITY_BLOCK"
    ]
    assert groups and all(g["Properties"]["Subnets"] == ["subnet-0123456789abcdef0"] for g in groups)
    with pytest.raises(ConfigurationError, match=r"ultraServerSubnetIds: required with vpcId"):
        synth_environment(
            {"vpcId": "vpc-0123456789abcdef0", "account": "123456789012", "region": "us-east-1"}
        )
    with pytest.raises(ConfigurationError, match=r"ultraServerSubnetIds: .* given without vpcId"):
        synth_environment({"ultraServerSubnetIds": "subnet-0123456789abcdef0"})


def test_ultraservers_must_be_specs_which_checked_themselves():
    """GIVEN a plain dict where an UltraServerSpec belongs WHEN the environment is built THEN
    one error names the entry (each UltraServerSpec validated its fields when it was made,
    so the environment does not check them again)."""
    import aws_cdk as cdk

    from eks_ultraserver.constructs.environment import UltraServerEnvironment
    from eks_ultraserver.model import ConfigurationError

    stack = cdk.Stack(cdk.App(), "S")
    entry = {"capacity_reservation_id": "cr-0123456789abcdef0", "type": "u-p6e-gb200x72", "name": "us-1"}
    with pytest.raises(ConfigurationError, match=r"ultraservers: not UltraServerSpec values: \[0\] \{"):
        UltraServerEnvironment(
            stack,
            "Env",
            ultraservers=[entry],  # type: ignore[list-item]  # the wrong type on purpose
            availability_zone="us-east-1-dfw-2a",
        )
    assert [c for c in stack.node.find_all() if isinstance(c, cdk.CfnResource)] == []
