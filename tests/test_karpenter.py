"""Karpenter: the construct (IAM, interruption queue, Helm release) and the GPU NodePools.

NodePools and EC2NodeClasses are validated against Karpenter's v1.14.1 CRD schemas and the
Helm values against the chart's v1.14.1 values.yaml (verbatim copies in tests/third_party).
"""

from __future__ import annotations

import json
import re
from typing import Any

import aws_cdk as cdk
import cdk8s
import jsonschema
import pytest
import yaml
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Annotations, Match
from aws_cdk.lambda_layer_kubectl_v35 import KubectlV35Layer

from eks_ultraserver.capacity import (
    INSTANCE_TYPES,
    BurstCapacitySpec,
    CapacityClass,
    ReservedCapacitySpec,
    ReservedProvisioner,
)
from eks_ultraserver.charts.karpenter import (
    KarpenterGpuCapacityChart,
    burst_node_pool,
    ec2_node_class,
    efa_network_interfaces,
    reserved_node_pool,
)
from eks_ultraserver.constructs.karpenter import INTERRUPTION_EVENTS, Karpenter, controller_policies
from eks_ultraserver.helm.values import unknown_keys
from eks_ultraserver.model import ConfigurationError
from eks_ultraserver.versions import KARPENTER

from conftest import ACCOUNT, LOCAL_ZONE, REGION, REPO, UPSTREAM, crd_validator, icluster, template_of

CLUSTER_NAME = "gpu-cluster"
BURST = BurstCapacitySpec(
    instance_families=("g6e", "p5"), instance_sizes=("12xlarge", "48xlarge"), max_gpus=64
)
ON_DEMAND_ONLY = BurstCapacitySpec(instance_families=("g6e",), max_gpus=8, max_vcpus=256, spot=False)
KARPENTER_ODCR = ReservedCapacitySpec(
    name="kp",
    instance_type="p5.48xlarge",
    instance_count=2,
    capacity_reservation_id="cr-0aaaaaaaaaaaaaaa1",
    availability_zone="us-east-1b",
    provisioner=ReservedProvisioner.KARPENTER,
)
#: A Karpenter reservation of a type without an EFA layout in the table.
KARPENTER_G6E = ReservedCapacitySpec(
    name="kg",
    instance_type="g6e.48xlarge",
    instance_count=1,
    capacity_reservation_id="cr-0ccccccccccccccc3",
    availability_zone="us-east-1b",
    provisioner=ReservedProvisioner.KARPENTER,
)
RESERVED_SUBNET = "subnet-0123456789abcdef0"
NODEGROUP_ODCR = ReservedCapacitySpec(
    name="ng",
    instance_type="p5.48xlarge",
    instance_count=2,
    capacity_reservation_id="cr-0bbbbbbbbbbbbbbb2",
    availability_zone="us-east-1a",
)

# --------------------------------------------------------------------------------------
# Upstream schemas and values
# --------------------------------------------------------------------------------------


def _crd_validator(filename: str) -> jsonschema.Draft7Validator:
    # The CRD files are Helm templates: drop the `{{ ... }}` lines (upstream README).
    text = "\n".join(line for line in (UPSTREAM / filename).read_text().splitlines() if "{{" not in line)
    crd = yaml.safe_load(text)
    return crd_validator(crd, "v1")


@pytest.fixture(scope="module")
def schemas():
    return {
        "NodePool": _crd_validator("karpenter-nodepool-crd-v1.14.1.yaml"),
        "EC2NodeClass": _crd_validator("karpenter-ec2nodeclass-crd-v1.14.1.yaml"),
    }


def _network_interface_rules(interfaces) -> list[str]:
    """The CRD's two CEL rules on ``spec.networkInterfaces`` (x-kubernetes-validations, which
    jsonschema does not run): a primary ENA interface on card 0 device 0; no duplicate
    (card, device) and at most one efa-only interface per card."""
    out = []
    if interfaces and not any(
        i["deviceIndex"] == 0 and i["networkCardIndex"] == 0 and i["interfaceType"] == "interface"
        for i in interfaces
    ):
        out.append("networkInterfaces must include a primary interface with interfaceType='interface'")
    for i in interfaces:
        same_slot = [
            j
            for j in interfaces
            if (j["networkCardIndex"], j["deviceIndex"]) == (i["networkCardIndex"], i["deviceIndex"])
        ]
        efa_on_card = [
            j
            for j in interfaces
            if j["networkCardIndex"] == i["networkCardIndex"] and j["interfaceType"] == "efa-only"
        ]
        if len(same_slot) != 1 or (i["interfaceType"] == "efa-only" and len(efa_on_card) != 1):
            out.append(
                f"networkInterfaces: duplicate slot or second efa-only on card {i['networkCardIndex']}"
            )
    return out


def _errors(schemas, obj) -> list[str]:
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in schemas[obj["kind"]].iter_errors(obj)]
    if obj["kind"] == "EC2NodeClass":
        errors += _network_interface_rules(obj["spec"].get("networkInterfaces", []))
    return errors


# --------------------------------------------------------------------------------------
# The chart
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chart_objects():
    """GIVEN burst capacity (g6e and p5, sizes 12xlarge and 48xlarge), a p5.48xlarge and a
    g6e.48xlarge ODCR for Karpenter (and one for a node group) WHEN the chart is
    synthesized (plain strings for the role, security group and reservation subnet)."""
    chart = KarpenterGpuCapacityChart(
        cdk8s.App(),
        "karpenter-gpu-capacity",
        node_role="KarpenterNodeRole",
        discovery=CLUSTER_NAME,
        burst=BURST,
        reserved=[KARPENTER_ODCR, KARPENTER_G6E, NODEGROUP_ODCR],
        security_group_ids=["sg-0123456789abcdef0"],
        reserved_subnet_ids=[RESERVED_SUBNET],
    )
    return {(o["kind"], o["metadata"]["name"]): o for o in chart.to_json()}


def test_chart_objects_validate_against_the_v1_14_1_crds(schemas, chart_objects):
    """THEN a plain pool and one pool per EFA instance type, for burst and for reserved
    capacity; every object passes the CRD schema and its networkInterfaces CEL rules."""
    assert sorted(chart_objects) == [
        ("EC2NodeClass", "gpu-burst"),
        ("EC2NodeClass", "gpu-burst-p5-48xlarge"),
        ("EC2NodeClass", "gpu-reserved"),
        ("EC2NodeClass", "gpu-reserved-p5-48xlarge"),
        ("NodePool", "gpu-burst"),
        ("NodePool", "gpu-burst-p5-48xlarge"),
        ("NodePool", "gpu-reserved"),
        ("NodePool", "gpu-reserved-p5-48xlarge"),
    ]
    for obj in chart_objects.values():
        assert _errors(schemas, obj) == [], obj["metadata"]["name"]
        if obj["kind"] == "NodePool":
            assert obj["spec"]["template"]["spec"]["nodeClassRef"]["name"] == obj["metadata"]["name"]


def test_network_interface_rules_can_fail():
    """The CEL checks are not vacuous: no primary, a duplicate slot, two efa-only on a card."""
    assert _network_interface_rules([{"networkCardIndex": 1, "deviceIndex": 0, "interfaceType": "efa-only"}])
    twice = {"networkCardIndex": 0, "deviceIndex": 0, "interfaceType": "interface"}
    assert _network_interface_rules([twice, dict(twice)])
    assert _network_interface_rules(
        [
            twice,
            {"networkCardIndex": 1, "deviceIndex": 0, "interfaceType": "efa-only"},
            {"networkCardIndex": 1, "deviceIndex": 1, "interfaceType": "efa-only"},
        ]
    )


P5_LAYOUT = (
    [{"networkCardIndex": 0, "deviceIndex": 0, "interfaceType": "interface"}]
    + [{"networkCardIndex": 0, "deviceIndex": 1, "interfaceType": "efa-only"}]
    + [{"networkCardIndex": c, "deviceIndex": 0, "interfaceType": "efa-only"} for c in range(1, 32)]
)


@pytest.mark.parametrize("pool", ["gpu-burst-p5-48xlarge", "gpu-reserved-p5-48xlarge"])
def test_p5_pools_get_efa_only_interfaces_on_the_documented_cards(chart_objects, pool):
    """THEN the p5.48xlarge classes declare the managed node groups' layout (EC2 user guide,
    efa-acc-inst-types, P5 "save IP addresses"): ENA primary on card 0, efa-only on card 0
    device 1 and on cards 1-31 device 0 (32 EFA devices, one IP per node); their pools take
    only that instance type."""
    node_class = chart_objects[("EC2NodeClass", pool)]["spec"]
    assert node_class["networkInterfaces"] == P5_LAYOUT
    reqs = chart_objects[("NodePool", pool)]["spec"]["template"]["spec"]["requirements"]
    assert {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["p5.48xlarge"]} in reqs
    assert not any(r["key"] == "karpenter.k8s.aws/instance-family" and r["operator"] == "In" for r in reqs)


def test_non_efa_types_get_no_interfaces_and_leave_efa_types_to_their_pools(chart_objects):
    """THEN the plain pools declare no interfaces (Karpenter's single ENA), and gpu-burst
    leaves p5.48xlarge to its own pool, so an EFA pod never gets efa on every card."""
    for pool in ("gpu-burst", "gpu-reserved"):
        assert "networkInterfaces" not in chart_objects[("EC2NodeClass", pool)]["spec"], pool
    reqs = chart_objects[("NodePool", "gpu-burst")]["spec"]["template"]["spec"]["requirements"]
    assert {"key": "node.kubernetes.io/instance-type", "operator": "NotIn", "values": ["p5.48xlarge"]} in reqs
    reserved = chart_objects[("NodePool", "gpu-reserved")]["spec"]["template"]["spec"]["requirements"]
    assert {
        "key": "node.kubernetes.io/instance-type",
        "operator": "In",
        "values": ["g6e.48xlarge"],
    } in reserved


@pytest.mark.parametrize("name", sorted(INSTANCE_TYPES))
def test_every_table_layout_is_a_valid_node_class(schemas, name):
    """Every documented layout (capacity.INSTANCE_TYPES, the node groups' table) becomes
    networkInterfaces the CRD accepts: one ENA primary and one efa-only per table entry."""
    spec = INSTANCE_TYPES[name]
    interfaces = efa_network_interfaces(spec)
    assert interfaces[0] == {"networkCardIndex": 0, "deviceIndex": 0, "interfaceType": "interface"}
    assert [(i["networkCardIndex"], i["deviceIndex"]) for i in interfaces[1:]] == [
        (e.card, e.device_index) for e in spec.efa
    ]
    assert {i["interfaceType"] for i in interfaces[1:]} == {"efa-only"}
    node_class = ec2_node_class(
        name="x",
        role="r",
        discovery="d",
        ami_alias="al2023@latest",
        capacity=CapacityClass.BURST,
        network_interfaces=interfaces,
    )
    assert _errors(schemas, node_class) == []


def test_p6_b300_has_no_efa_on_card_0():
    interfaces = efa_network_interfaces(INSTANCE_TYPES["p6-b300.48xlarge"])
    assert [i["networkCardIndex"] for i in interfaces if i["interfaceType"] == "efa-only"] == list(
        range(1, 17)
    )


@pytest.mark.parametrize(
    ("burst", "pools"),
    [
        # Only EFA types named: no plain pool (it would have nothing to launch).
        (
            BurstCapacitySpec(instance_families=("p5", "p5e"), instance_sizes=("48xlarge",), max_gpus=16),
            ["gpu-burst-p5-48xlarge", "gpu-burst-p5e-48xlarge"],
        ),
        # No EFA type in the families: one plain pool, as before.
        (BurstCapacitySpec(instance_families=("g6e", "g6"), max_gpus=16), ["gpu-burst"]),
        # A family with every size: the plain pool keeps the other sizes (p5.4xlarge).
        (BurstCapacitySpec(instance_families=("p5",), max_gpus=16), ["gpu-burst", "gpu-burst-p5-48xlarge"]),
    ],
)
def test_burst_pools_follow_the_efa_types_the_pool_can_pick(schemas, burst, pools):
    chart = KarpenterGpuCapacityChart(cdk8s.App(), "c", node_role="r", discovery="d", burst=burst)
    assert chart.burst_pools == pools
    for obj in chart.to_json():
        assert _errors(schemas, obj) == [], obj["metadata"]["name"]
        if obj["kind"] == "NodePool":
            # Every burst pool carries the whole limit (Karpenter limits are per NodePool).
            assert obj["spec"]["limits"] == {"nvidia.com/gpu": 16}


def test_reserved_classes_select_the_reservation_zone_subnets_and_their_own_reservations(chart_objects):
    """THEN each reserved class selects the reservations of its instance types and the
    subnets of their zone by id; its pool requires that zone; burst classes keep the
    discovery tag (they never see the reservations' subnets)."""
    for pool, rid in (
        ("gpu-reserved", "cr-0ccccccccccccccc3"),
        ("gpu-reserved-p5-48xlarge", "cr-0aaaaaaaaaaaaaaa1"),
    ):
        spec = chart_objects[("EC2NodeClass", pool)]["spec"]
        assert spec["capacityReservationSelectorTerms"] == [{"id": rid}]
        assert spec["subnetSelectorTerms"] == [{"id": RESERVED_SUBNET}]
        reqs = chart_objects[("NodePool", pool)]["spec"]["template"]["spec"]["requirements"]
        assert {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-east-1b"]} in reqs
    for pool in ("gpu-burst", "gpu-burst-p5-48xlarge"):
        spec = chart_objects[("EC2NodeClass", pool)]["spec"]
        assert spec["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": CLUSTER_NAME}}]


def test_schema_check_can_fail(schemas):
    """The validators are not vacuous: a misspelled field and a wrong enum are caught."""
    pool = burst_node_pool(BURST)
    pool["spec"]["disruption"]["consolidationPolicy"] = "WhenIdle"
    pool["spec"]["template"]["spec"]["taint"] = []
    errors = _errors(schemas, pool)
    assert any("WhenIdle" in e for e in errors) and any("'taint'" in e for e in errors)


def test_burst_is_spot_first_with_on_demand_fallback_in_one_pool(chart_objects):
    """THEN one NodePool allows both capacity types: Karpenter tries Spot first and falls
    back to On-Demand (Karpenter docs, NodePools, Capacity Type)."""
    spec = chart_objects[("NodePool", "gpu-burst")]["spec"]
    reqs = {r["key"]: r for r in spec["template"]["spec"]["requirements"] if r["operator"] == "In"}
    assert reqs["karpenter.sh/capacity-type"]["values"] == ["spot", "on-demand"]
    assert reqs["karpenter.k8s.aws/instance-family"]["values"] == ["g6e", "p5"]
    assert reqs["karpenter.k8s.aws/instance-size"]["values"] == ["12xlarge", "48xlarge"]
    assert reqs["karpenter.k8s.aws/instance-gpu-manufacturer"]["values"] == ["nvidia"]
    assert spec["limits"] == {"nvidia.com/gpu": 64}
    assert "weight" not in spec
    on_demand = burst_node_pool(ON_DEMAND_ONLY)["spec"]
    assert on_demand["template"]["spec"]["requirements"][0]["values"] == ["on-demand"]
    assert on_demand["limits"] == {"nvidia.com/gpu": 8, "cpu": 256}


@pytest.mark.parametrize(
    "pool", ["gpu-burst", "gpu-burst-p5-48xlarge", "gpu-reserved", "gpu-reserved-p5-48xlarge"]
)
def test_no_pool_ever_provisions_ultraserver_nodes(chart_objects, pool):
    reqs = chart_objects[("NodePool", pool)]["spec"]["template"]["spec"]["requirements"]
    assert {
        "key": "node.kubernetes.io/instance-type",
        "operator": "NotIn",
        "values": ["p6e-gb200.36xlarge"],
    } in reqs
    assert {"key": "karpenter.k8s.aws/instance-family", "operator": "NotIn", "values": ["p6e-gb200"]} in reqs


@pytest.mark.parametrize(
    "pool", ["gpu-burst", "gpu-burst-p5-48xlarge", "gpu-reserved", "gpu-reserved-p5-48xlarge"]
)
def test_gpu_taint_label_and_job_protection(chart_objects, pool):
    spec = chart_objects[("NodePool", pool)]["spec"]
    template = spec["template"]
    assert template["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    capacity = "burst" if pool.startswith("gpu-burst") else "reserved"
    assert template["metadata"]["labels"] == {"eks-ultraserver.io/capacity": capacity}
    assert template["spec"]["expireAfter"] == "Never"
    assert spec["disruption"] == {
        "consolidationPolicy": "WhenEmpty",
        "consolidateAfter": "10m",
        "budgets": [{"nodes": "10%", "reasons": ["Empty"]}, {"nodes": "0", "reasons": ["Drifted"]}],
    }


def test_reserved_pool_selects_only_karpenter_reservations_and_outweighs_burst(chart_objects):
    pool = chart_objects[("NodePool", "gpu-reserved-p5-48xlarge")]["spec"]
    assert pool["weight"] == 50
    reqs = {r["key"]: r["values"] for r in pool["template"]["spec"]["requirements"] if r["operator"] == "In"}
    assert reqs["karpenter.sh/capacity-type"] == ["reserved"]
    assert reqs["node.kubernetes.io/instance-type"] == ["p5.48xlarge"]
    selected = [
        term["id"]
        for (kind, _), obj in chart_objects.items()
        if kind == "EC2NodeClass"
        for term in obj["spec"].get("capacityReservationSelectorTerms", [])
    ]
    assert sorted(selected) == ["cr-0aaaaaaaaaaaaaaa1", "cr-0ccccccccccccccc3"], "not the node group's"
    assert "capacityReservationSelectorTerms" not in chart_objects[("EC2NodeClass", "gpu-burst")]["spec"]


def test_node_class_discovery_ami_and_hardening(chart_objects):
    spec = chart_objects[("EC2NodeClass", "gpu-burst")]["spec"]
    assert spec["role"] == "KarpenterNodeRole"
    assert spec["amiSelectorTerms"] == [{"alias": "al2023@latest"}]
    assert spec["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": CLUSTER_NAME}}]
    assert spec["securityGroupSelectorTerms"] == [
        {"id": "sg-0123456789abcdef0"},
        {"tags": {"karpenter.sh/discovery": CLUSTER_NAME}},
    ]
    assert (
        spec["metadataOptions"]["httpTokens"] == "required"
        and spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
    )
    assert spec["blockDeviceMappings"][0]["ebs"]["encrypted"] is True
    assert spec["instanceStorePolicy"] == "RAID0"


def test_chart_snapshot(chart_objects, snapshot_json):
    assert snapshot_json == {f"{k[0]}/{k[1]}": v for k, v in sorted(chart_objects.items())}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"burst": None, "reserved": [NODEGROUP_ODCR]}, r"nothing to create"),
        ({"discovery": "${Token[TOKEN.12]}"}, r"discovery: .* must be a plain, non-empty string"),
        ({"node_role": ""}, r"node_role: empty"),
        (
            {
                "reserved": [
                    ReservedCapacitySpec(
                        name="nozone",
                        instance_type="p5.48xlarge",
                        instance_count=1,
                        capacity_reservation_id="cr-0ddddddddddddddd4",
                        provisioner=ReservedProvisioner.KARPENTER,
                    )
                ]
            },
            r"reserved\['nozone'\]\.availability_zone: missing; Karpenter launches into a reservation "
            r"only from a subnet in the reservation's zone",
        ),
    ],
)
def test_chart_validation(kwargs, match):
    args: dict[str, Any] = {"node_role": "r", "discovery": "d", "burst": BURST}
    args.update(kwargs)
    with pytest.raises(ConfigurationError, match=match):
        KarpenterGpuCapacityChart(cdk8s.App(), "c", **args)


def test_a_karpenter_reservation_by_resource_group_is_refused_by_the_spec():
    """The spec checks itself: Karpenter selects reservations by id, never by resource group,
    so no chart ever receives such a reservation."""
    with pytest.raises(ConfigurationError, match=r"Karpenter selects reservations by id or tags"):
        ReservedCapacitySpec(
            name="grp",
            instance_type="p5.48xlarge",
            instance_count=1,
            resource_group_arn="arn:aws:resource-groups:us-east-1:123456789012:group/x",
            provisioner=ReservedProvisioner.KARPENTER,
        )


def test_builders_alone_validate_too(schemas):
    node_class = ec2_node_class(
        name="x",
        role="r",
        discovery="d",
        ami_alias="al2023@v20251103",
        capacity=CapacityClass.RESERVED,
        capacity_reservation_ids=["cr-0123456789abcdef0"],
    )
    assert _errors(schemas, node_class) == []
    assert _errors(schemas, reserved_node_pool([KARPENTER_ODCR])) == []


# --------------------------------------------------------------------------------------
# The construct
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synth():
    """GIVEN a cluster named gpu-cluster with system nodes WHEN Karpenter is added with the
    burst pool and a Karpenter ODCR (one synth for the module)."""
    app = cdk.App(builtin_cloud_formation_validation=False)
    stack = cdk.Stack(app, "Burst", env=cdk.Environment(account=ACCOUNT, region=REGION))
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=1)
    cluster = eks.Cluster(
        stack,
        "Cluster",
        version=eks.KubernetesVersion.V1_35,
        vpc=vpc,
        cluster_name=CLUSTER_NAME,
        default_capacity=0,
        default_capacity_type=eks.DefaultCapacityType.NODEGROUP,
        kubectl_provider_options=eks.KubectlProviderOptions(kubectl_layer=KubectlV35Layer(stack, "Kubectl")),
    )
    karpenter = Karpenter(stack, "Karpenter", cluster=icluster(cluster), subnets=vpc.private_subnets)
    manifest = karpenter.add_gpu_capacity(
        burst=BURST,
        reserved=[KARPENTER_ODCR, NODEGROUP_ODCR],
        reserved_subnets=[vpc.private_subnets[0]],
    )
    tpl = template_of(stack).to_json()
    return stack, cluster, vpc, karpenter, manifest, tpl


def _of_type(tpl, type_):
    return {k: v for k, v in tpl["Resources"].items() if v["Type"] == type_}


def _one(tpl, type_, prefix=""):
    hits = {k: v for k, v in _of_type(tpl, type_).items() if k.startswith(prefix)}
    assert len(hits) == 1, list(hits)
    return next(iter(hits.items()))


def _sub_document(resource) -> tuple[dict, dict]:
    """The policy document with ``${...}`` left in place, and the Fn::Sub variables: one
    Fn::Sub JSON string (condition keys with the cluster name) or Fn::Sub per string."""
    variables: dict = {}

    def unsub(value):
        if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
            sub = value["Fn::Sub"]
            text, given = (sub, {}) if isinstance(sub, str) else sub
            variables.update(given)
            return text
        if isinstance(value, dict):
            return {k: unsub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [unsub(v) for v in value]
        return value

    document = unsub(resource["Properties"]["PolicyDocument"])
    return (json.loads(document) if isinstance(document, str) else document), variables


def test_controller_policies_are_the_upstream_statements_scoped_to_the_cluster(synth):
    *_, tpl = synth
    policies = {
        k: _sub_document(v)
        for k, v in _of_type(tpl, "AWS::IAM::ManagedPolicy").items()
        if k.startswith("Karpenter")
    }
    sids = sorted(s["Sid"] for doc, _ in policies.values() for s in doc["Statement"])
    assert sids == sorted(
        [
            "AllowScopedEC2InstanceAccessActions",
            "AllowScopedEC2LaunchTemplateAccessActions",
            "AllowScopedEC2InstanceActionsWithTags",
            "AllowScopedResourceCreationTagging",
            "AllowScopedResourceTagging",
            "AllowScopedDeletion",
            "AllowPassingInstanceRole",
            "AllowScopedInstanceProfileCreationActions",
            "AllowScopedInstanceProfileTagActions",
            "AllowScopedInstanceProfileActions",
            "AllowAPIServerEndpointDiscovery",
            "AllowInterruptionQueueActions",
            "AllowRegionalReadActions",
            "AllowSSMReadActions",
            "AllowPricingReadActions",
            "AllowUnscopedInstanceProfileListAction",
            "AllowInstanceProfileReadActions",
        ]
    )
    for doc, variables in policies.values():
        text = json.dumps(doc)
        used = set(re.findall(r"\$\{([^}]+)\}", text))
        # Every variable is used (CloudFormation warns otherwise) and every one used is given.
        assert set(variables) == used - {"AWS::Partition", "AWS::Region", "AWS::AccountId"}
        assert set(variables) <= {"ClusterName", "NodeRoleArn", "QueueArn"}
        assert len(json.dumps(doc, separators=(",", ":"))) < 6144  # managed policy size limit
    # Objects where possible (CDK's template validation reads them); one Fn::Sub JSON string
    # only where a condition key names the cluster (NodeLifecycle, IAMIntegration).
    raw = {k: v["Properties"]["PolicyDocument"] for k, v in _of_type(tpl, "AWS::IAM::ManagedPolicy").items()}
    strings = sorted(k for k, doc in raw.items() if "Fn::Sub" in doc)
    assert [re.sub(r"[0-9A-F]{8}$", "", k) for k in strings] == [
        "KarpenterIAMIntegrationPolicy",
        "KarpenterNodeLifecyclePolicy",
    ]
    statements = {s["Sid"]: s for doc, _ in policies.values() for s in doc["Statement"]}
    # Every write action on EC2 is scoped by the cluster's tags.
    for sid in (
        "AllowScopedEC2LaunchTemplateAccessActions",
        "AllowScopedResourceTagging",
        "AllowScopedDeletion",
    ):
        assert statements[sid]["Condition"]["StringEquals"] == {
            "aws:ResourceTag/kubernetes.io/cluster/${ClusterName}": "owned"
        }
    assert statements["AllowPassingInstanceRole"]["Resource"] == "${NodeRoleArn}"
    assert statements["AllowInterruptionQueueActions"]["Resource"] == "${QueueArn}"
    # Only the actions the upstream template grants on "*".
    unscoped = {
        a
        for s in statements.values()
        if s["Resource"] == "*"
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    assert unscoped == {
        "ec2:DescribeCapacityReservations",
        "ec2:DescribeImages",
        "ec2:DescribeInstances",
        "ec2:DescribeInstanceStatus",
        "ec2:DescribeInstanceTypeOfferings",
        "ec2:DescribeInstanceTypes",
        "ec2:DescribeLaunchTemplates",
        "ec2:DescribePlacementGroups",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSpotPriceHistory",
        "ec2:DescribeSubnets",
        "pricing:GetProducts",
        "iam:ListInstanceProfiles",
    }
    assert controller_policies().keys() == {
        "NodeLifecycle",
        "IAMIntegration",
        "EKSIntegration",
        "Interruption",
        "ResourceDiscovery",
    }


def test_controller_role_through_pod_identity(synth):
    *_, tpl = synth
    _, role = _one(tpl, "AWS::IAM::Role", "KarpenterControllerRole")
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert sorted(statement["Action"]) == ["sts:AssumeRole", "sts:TagSession"]
    _, association = _one(tpl, "AWS::EKS::PodIdentityAssociation")
    assert association["Properties"]["Namespace"] == "kube-system"
    assert association["Properties"]["ServiceAccount"] == "karpenter"


def test_node_role_has_an_ec2_linux_access_entry(synth):
    *_, tpl = synth
    node_role_id, node_role = _one(tpl, "AWS::IAM::Role", "KarpenterNodeRole")
    assert node_role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "ec2.amazonaws.com"
    }
    _, entry = _one(tpl, "AWS::EKS::AccessEntry", "Karpenter")
    assert entry["Properties"]["Type"] == "EC2_LINUX"
    assert entry["Properties"]["PrincipalArn"] == {"Fn::GetAtt": [node_role_id, "Arn"]}


def test_interruption_queue_is_encrypted_tls_only_and_fed_by_five_rules(synth):
    *_, tpl = synth
    queue_id, queue = _one(tpl, "AWS::SQS::Queue")
    assert queue["Properties"] == {"MessageRetentionPeriod": 300, "SqsManagedSseEnabled": True}
    _, policy = _one(tpl, "AWS::SQS::QueuePolicy")
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    deny = [s for s in statements if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    allow = [s for s in statements if s["Effect"] == "Allow"]
    assert {s["Principal"]["Service"] for s in allow} == {"events.amazonaws.com"}
    rules = _of_type(tpl, "AWS::Events::Rule")
    patterns = sorted(
        (r["Properties"]["EventPattern"]["source"][0], r["Properties"]["EventPattern"]["detail-type"][0])
        for r in rules.values()
    )
    assert patterns == sorted((source, detail) for _, source, detail in INTERRUPTION_EVENTS)
    assert all(
        r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [queue_id, "Arn"]} for r in rules.values()
    )


def _values(helm) -> dict:
    """The Helm values JSON with CloudFormation references replaced by placeholders."""
    parts = helm["Properties"]["Values"]["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "TOKEN" for p in parts))


def test_helm_release_pins_the_chart_and_runs_the_controller_on_system_nodes(synth):
    *_, tpl = synth
    _helm_id, helm = _one(tpl, "Custom::AWSCDK-EKS-HelmChart", "Karpenter")
    props = helm["Properties"]
    assert (props["Chart"], props["Version"], props["Namespace"], props["Release"]) == (
        "karpenter",
        KARPENTER.version,
        "kube-system",
        "karpenter",
    )
    assert props["Repository"] == "oci://public.ecr.aws/karpenter/karpenter"
    values = _values(helm)
    assert values["nodeSelector"] == {"kubernetes.io/os": "linux", "eks-ultraserver.io/node-role": "system"}
    assert values["settings"] == {"clusterName": "TOKEN", "interruptionQueue": "TOKEN"}
    assert values["serviceAccount"] == {"name": "karpenter"}
    depends = set(helm.get("DependsOn", []))
    policy_ids = {k for k in _of_type(tpl, "AWS::IAM::ManagedPolicy") if k.startswith("Karpenter")}
    pod_identity_id, _ = _one(tpl, "AWS::EKS::PodIdentityAssociation")
    assert policy_ids | {pod_identity_id} <= depends


def test_helm_values_set_aws_region_to_the_stack_region(synth):
    """THEN the controller gets AWS_REGION (the chart sets none; without it the controller
    asks IMDS, out of a pod's reach with IMDSv2 hop limit 1: karpenter-provider-aws #8219)."""
    *_, tpl = synth
    _, helm = _one(tpl, "Custom::AWSCDK-EKS-HelmChart", "Karpenter")
    assert _values(helm)["controller"]["env"] == [{"name": "AWS_REGION", "value": REGION}]


def test_helm_values_keys_exist_in_the_upstream_chart(synth):
    *_, karpenter, _manifest, _tpl = synth
    defaults = yaml.safe_load((UPSTREAM / "karpenter-values-v1.14.1.yaml").read_text())
    assert unknown_keys(karpenter.values, defaults) == []
    assert unknown_keys({"settings": {"clusterNmae": "x"}}, defaults) == ["settings.clusterNmae"]


def test_node_pools_are_applied_after_the_helm_release(synth):
    *_, tpl = synth
    helm_id, _ = _one(tpl, "Custom::AWSCDK-EKS-HelmChart", "Karpenter")
    _manifest_id, manifest = _one(tpl, "Custom::AWSCDK-EKS-KubernetesResource")
    assert helm_id in manifest.get("DependsOn", [])
    text = "".join(
        p if isinstance(p, str) else "TOKEN" for p in manifest["Properties"]["Manifest"]["Fn::Join"][1]
    )
    objects = json.loads(text)
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert kinds == [
        ("EC2NodeClass", "gpu-burst"),
        ("NodePool", "gpu-burst"),
        ("EC2NodeClass", "gpu-burst-p5-48xlarge"),
        ("NodePool", "gpu-burst-p5-48xlarge"),
        ("EC2NodeClass", "gpu-reserved-p5-48xlarge"),
        ("NodePool", "gpu-reserved-p5-48xlarge"),
    ]
    assert '"role":"TOKEN"' in text and '{"id":"TOKEN"}' in text  # node role name, cluster SG id
    # The reserved class selects the subnet given as reserved_subnets, by id.
    reserved_class = next(o for o in objects if o["metadata"]["name"] == "gpu-reserved-p5-48xlarge")
    assert reserved_class["spec"]["subnetSelectorTerms"] == [{"id": "TOKEN"}]
    subnet_id = next(k for k in _of_type(tpl, "AWS::EC2::Subnet") if "PrivateSubnet1" in k)
    assert {"Ref": subnet_id} in manifest["Properties"]["Manifest"]["Fn::Join"][1]


def test_several_burst_pools_warn_that_each_has_the_whole_limit(synth):
    """THEN synth warns: gpu-burst and gpu-burst-p5-48xlarge may each run maxGpus GPUs."""
    stack, *_ = synth
    warnings = Annotations.from_stack(stack).find_warning(
        "*",
        Match.string_like_regexp(r"burstCapacity: 2 burst NodePools \(gpu-burst, gpu-burst-p5-48xlarge\)"),
    )
    assert len(warnings) == 1
    assert "up to 128 GPUs in all" in str(warnings[0].entry.data)


def test_subnets_carry_the_discovery_tag(synth):
    *_, _vpc, _karpenter, _manifest, tpl = synth
    private = {k: v for k, v in _of_type(tpl, "AWS::EC2::Subnet").items() if "Private" in k}
    public = {k: v for k, v in _of_type(tpl, "AWS::EC2::Subnet").items() if "Public" in k}
    assert private and all(
        {"Key": "karpenter.sh/discovery", "Value": CLUSTER_NAME} in v["Properties"]["Tags"]
        for v in private.values()
    )
    assert all(
        {"Key": "karpenter.sh/discovery", "Value": CLUSTER_NAME} not in v["Properties"]["Tags"]
        for v in public.values()
    )


def test_construct_snapshot(synth, snapshot_json):
    *_, tpl = synth
    keep = (
        "AWS::IAM::ManagedPolicy",
        "AWS::IAM::Role",
        "AWS::EKS::PodIdentityAssociation",
        "AWS::EKS::AccessEntry",
        "AWS::SQS::Queue",
        "AWS::SQS::QueuePolicy",
        "AWS::Events::Rule",
        "Custom::AWSCDK-EKS-HelmChart",
        "Custom::AWSCDK-EKS-KubernetesResource",
    )
    assert snapshot_json == {
        k: v
        for k, v in tpl["Resources"].items()
        if v["Type"] in keep
        and (k.startswith("Karpenter") or v["Type"] == "Custom::AWSCDK-EKS-KubernetesResource")
    }


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"subnets": []}, r"subnets: none given"),
        ({"discovery": "${Token[TOKEN.9]}"}, r"discovery: .* must be a plain string"),
        ({"system_node_selector": {"bad key!": "x"}}, r"system_node_selector: 'bad key!'"),
        ({"replicas": 0}, r"replicas: 0 is not an integer from 1 to 10"),
        ({"extra_values": []}, r"extra_values: \[\] is not an object of Helm values"),
    ],
)
def test_construct_validation(synth, kwargs, match):
    stack, cluster, vpc, *_ = synth
    args = {"subnets": vpc.private_subnets}
    args.update(kwargs)
    with pytest.raises(ConfigurationError, match=match):
        Karpenter(stack, "Bad", cluster=cluster, **args)
    assert not stack.node.try_find_child("Bad")


# --------------------------------------------------------------------------------------
# In the environment: every configuration that installs Karpenter
# --------------------------------------------------------------------------------------

ENV_BURST = json.dumps({"instanceFamilies": ["g6e", "p5"], "maxGpus": 64})
ENV_RESERVED = json.dumps(
    [
        {
            "name": "kp",
            "instanceType": "p5.48xlarge",
            "instanceCount": 2,
            "capacityReservationId": "cr-0bbbbbbbbbbbbbbb3",
            "availabilityZone": LOCAL_ZONE,
            "provisioner": "karpenter",
        }
    ]
)
ENVIRONMENTS = {
    "burst alone": {"burstCapacity": ENV_BURST},
    "karpenter reservation alone": {"reservedCapacity": ENV_RESERVED},
    "both": {"burstCapacity": ENV_BURST, "reservedCapacity": ENV_RESERVED},
}


@pytest.fixture(scope="module", params=sorted(ENVIRONMENTS))
def tagged_environment(request):
    """GIVEN the app as app.py builds it, with burst capacity, a Karpenter reservation (in
    the UltraServers' zone) or both, and the tag team=x on the app."""
    from eks_ultraserver.app import build_app

    context = json.loads((REPO / "cdk.json").read_text())["context"]
    context.update(ENVIRONMENTS[request.param])
    app = cdk.App(context=context, builtin_cloud_formation_validation=False)
    cdk.Tags.of(app).add("team", "x")
    stack = build_app(app)
    return request.param, stack, template_of(stack).to_json()


def test_every_configuration_sets_aws_region_with_known_values_keys(tagged_environment):
    """THEN the Karpenter release carries AWS_REGION = the stack's Region (a reference in
    this environment-agnostic stack) and only keys of the chart's default values."""
    _name, stack, tpl = tagged_environment
    _, helm = _one(tpl, "Custom::AWSCDK-EKS-HelmChart", "EnvironmentKarpenter")
    values = _values(helm)
    assert values["controller"]["env"] == [{"name": "AWS_REGION", "value": "TOKEN"}]
    parts = helm["Properties"]["Values"]["Fn::Join"][1]
    at = next(
        i for i, p in enumerate(parts) if isinstance(p, str) and p.endswith('"name":"AWS_REGION","value":"')
    )
    assert parts[at + 1] == {"Ref": "AWS::Region"}
    defaults = yaml.safe_load((UPSTREAM / "karpenter-values-v1.14.1.yaml").read_text())
    assert unknown_keys(stack.ultraserver_environment.karpenter.values, defaults) == []


def test_every_taggable_karpenter_resource_carries_the_app_tags(tagged_environment):
    """THEN every resource of the Karpenter construct whose CloudFormation type takes tags
    (cfn-lint's resource schemas) has team=x. AWS::IAM::ManagedPolicy takes none; the
    policies are typed L1s (iam.CfnManagedPolicy), not plain CfnResources."""
    from cfnlint.schema.manager import PROVIDER_SCHEMA_MANAGER

    _name, stack, tpl = tagged_environment
    mine = {k: v for k, v in tpl["Resources"].items() if k.startswith("EnvironmentKarpenter")}
    taggable = {}
    for logical_id, resource in mine.items():
        if resource["Type"].startswith("Custom::"):
            continue
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource["Type"]).schema
        if schema.get("tagging", {}).get("taggable", "Tags" in schema.get("properties", {})):
            taggable[logical_id] = resource
    assert {r["Type"] for r in taggable.values()} >= {
        "AWS::IAM::Role",
        "AWS::SQS::Queue",
        "AWS::Events::Rule",
        "AWS::EKS::AccessEntry",
        "AWS::EKS::PodIdentityAssociation",
    }
    missing = [
        k for k, r in taggable.items() if {"Key": "team", "Value": "x"} not in r["Properties"].get("Tags", [])
    ]
    assert missing == []
    policies = stack.ultraserver_environment.karpenter.controller_policies
    assert len(policies) == 5 and all(isinstance(p, iam.CfnManagedPolicy) for p in policies.values())


def test_environment_reserved_pool_selects_the_reservation_zone_subnet(tagged_environment):
    """THEN with a Karpenter reservation, its class selects the UltraServers' subnet (the
    reservation's zone) by id, and that subnet is not tagged for discovery (burst nodes
    never land there)."""
    name, _stack, tpl = tagged_environment
    reserved = [
        r
        for r in _of_type(tpl, "Custom::AWSCDK-EKS-KubernetesResource").values()
        if "gpu-reserved" in json.dumps(r["Properties"]["Manifest"])
    ]
    if name == "burst alone":
        assert reserved == [], "no reservation, no reserved pool"
        return
    (manifest,) = reserved
    parts = manifest["Properties"]["Manifest"]["Fn::Join"][1]
    named = next(
        i for i, p in enumerate(parts) if isinstance(p, str) and '"name":"gpu-reserved-p5-48xlarge"' in p
    )
    at = next(
        i
        for i, p in enumerate(parts)
        if i > named and isinstance(p, str) and p.endswith('"subnetSelectorTerms":[{"id":"')
    )
    subnet_id = parts[at + 1]["Ref"]
    assert subnet_id.startswith("EnvironmentUltraServerSubnet")
    tags = tpl["Resources"][subnet_id]["Properties"]["Tags"]
    assert not any(t["Key"] == "karpenter.sh/discovery" for t in tags)


@pytest.mark.slow
def test_cfn_lint_finds_no_errors(synth):
    """cfn-lint accepts the policy documents as Fn::Sub JSON strings, the queue, the rules
    and the access entry (one lint of the module's template)."""
    from conftest import cfn_lint_errors

    *_, tpl = synth
    assert cfn_lint_errors(tpl) == []
