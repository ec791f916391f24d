"""Node health: the EKS node monitoring agent add-on and EKS node auto repair
(``NodeRepairConfig``) on every GPU node group, with reboot-first repair actions for
reserved capacity (constructs/gpu_nodegroup.py, docs/node-health.md)."""

from __future__ import annotations

import copy
import json
import re

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Match, Template

from eks_ultraserver.config import EnvironmentConfig
from eks_ultraserver.constructs.gpu_nodegroup import (
    NODE_REPAIR_OVERRIDES,
    RepairAction,
    node_repair_config,
)
from eks_ultraserver.constructs.nodegroup import UltraServerNodeGroup
from eks_ultraserver.constructs.reserved import ReservedGpuNodeGroup
from eks_ultraserver.model import ConfigurationError

from conftest import (
    ACCOUNT,
    EVERY_RESERVED_KIND,
    LOCAL_ZONE,
    REGION,
    REPO,
    cfn_lint_errors,
    cluster_in_new_vpc,
    synth_environment,
    template_of,
)

NODE_GROUP_RESERVED = [k for k in EVERY_RESERVED_KIND if k.get("provisioner") != "karpenter"]


def _gpu_nodegroups(synth) -> dict[str, dict]:
    """The GPU node groups of an environment (parent and nested stacks), by their
    UltraServer or reservation name."""
    out = {}
    for resource in synth.all_resources.values():
        if resource["Type"] != "AWS::EKS::Nodegroup":
            continue
        labels = resource["Properties"].get("Labels", {})
        name = labels.get("eks-ultraserver.io/ultraserver") or labels.get(
            "eks-ultraserver.io/reserved-capacity"
        )
        if name:
            out[name] = resource["Properties"]
    return out


@pytest.fixture(scope="module")
def repair_on():
    """GIVEN the default UltraServer and two reserved node groups (an ODCR, a Capacity
    Block) and no ``nodeRepair`` key WHEN synthesized."""
    return synth_environment({"reservedCapacity": json.dumps(NODE_GROUP_RESERVED)})


@pytest.fixture(scope="module")
def repair_off():
    """GIVEN the same with ``-c nodeRepair=false`` WHEN synthesized."""
    return synth_environment({"reservedCapacity": json.dumps(NODE_GROUP_RESERVED), "nodeRepair": "false"})


# ------------------------------------------------------------------ the node groups


def test_every_gpu_node_group_repairs_one_node_at_a_time_rebooting_first(repair_on):
    """THEN each GPU node group (UltraServer, ODCR, Capacity Block) has node auto repair
    enabled, one node at a time, with the reboot-first overrides."""
    groups = _gpu_nodegroups(repair_on)
    assert sorted(groups) == ["eval", "ft", "us-1"]
    for name, props in groups.items():
        config = props["NodeRepairConfig"]
        assert config["Enabled"] is True, name
        assert config["MaxParallelNodesRepairedCount"] == 1, name
        assert len(config["NodeRepairConfigOverrides"]) == len(NODE_REPAIR_OVERRIDES), name


def test_ultraserver_node_group_has_the_repair_config(repair_on):
    """THEN the UltraServer's node group (in its nested stack) reboots on XID 48 and on an
    NVLink error, and replaces on XID 79 (the GPU fell off the bus); in the table's order."""
    (nested,) = repair_on.nested.values()
    Template.from_json(nested).has_resource_properties(
        "AWS::EKS::Nodegroup",
        {
            "Labels": Match.object_like({"eks-ultraserver.io/ultraserver": "us-1"}),
            "NodeRepairConfig": {
                "Enabled": True,
                "MaxParallelNodesRepairedCount": 1,
                "NodeRepairConfigOverrides": Match.array_with(
                    [
                        {
                            "NodeMonitoringCondition": "AcceleratedHardwareReady",
                            "NodeUnhealthyReason": reason,
                            "MinRepairWaitTimeMins": 10,
                            "RepairAction": action,
                        }
                        for reason, action in (
                            ("NvidiaXID48Error", "Reboot"),
                            ("NvidiaNVLinkError", "Reboot"),
                            ("NvidiaXID79Error", "Replace"),
                        )
                    ]
                ),
            },
        },
    )


def test_reserved_node_groups_have_the_repair_config(repair_on):
    """THEN the reserved node groups (parent stack) have the same configuration."""
    template = Template.from_json(repair_on.template)
    for name in ("eval", "ft"):
        template.has_resource_properties(
            "AWS::EKS::Nodegroup",
            {
                "Labels": Match.object_like({"eks-ultraserver.io/reserved-capacity": name}),
                "NodeRepairConfig": {
                    "Enabled": True,
                    "MaxParallelNodesRepairedCount": 1,
                    "NodeRepairConfigOverrides": Match.array_with(
                        [
                            {
                                "NodeMonitoringCondition": "AcceleratedHardwareReady",
                                "NodeUnhealthyReason": "NvidiaDoubleBitError",
                                "MinRepairWaitTimeMins": 10,
                                "RepairAction": "Reboot",
                            }
                        ]
                    ),
                },
            },
        )


def test_node_repair_false_disables_it_on_every_gpu_node_group(repair_off):
    """GIVEN nodeRepair=false THEN every GPU node group says ``Enabled: false`` and carries
    no overrides."""
    groups = _gpu_nodegroups(repair_off)
    assert sorted(groups) == ["eval", "ft", "us-1"]
    for props in groups.values():
        assert props["NodeRepairConfig"] == {"Enabled": False}


def test_the_system_node_group_keeps_eks_defaults(repair_on):
    """THEN the system node group (no GPU, on demand) gets no repair configuration."""
    system = [
        r["Properties"]
        for r in repair_on.all_resources.values()
        if r["Type"] == "AWS::EKS::Nodegroup"
        and r["Properties"].get("Labels", {}).get("eks-ultraserver.io/node-role")
    ]
    assert system and all("NodeRepairConfig" not in p for p in system)


# ------------------------------------------------------------------------- the add-on


def test_the_node_monitoring_agent_addon_comes_after_the_system_nodes(repair_on, repair_off):
    """THEN the EKS node monitoring agent is a managed add-on at EKS's default version,
    created after the system node group, with its DCGM DaemonSet tolerating the GPU taint;
    it is installed whether or not repair is on."""
    for synth in (repair_on, repair_off):
        Template.from_json(synth.template).has_resource(
            "AWS::EKS::Addon",
            {
                "Properties": {
                    "AddonName": "eks-node-monitoring-agent",
                    "AddonVersion": Match.absent(),
                    "ConfigurationValues": json.dumps(
                        {"dcgmAgent": {"tolerations": [{"operator": "Exists"}]}}, sort_keys=True
                    ),
                },
                "DependsOn": Match.array_with(
                    [Match.string_like_regexp("^EnvironmentClusterNodegroupSystemNodes")]
                ),
            },
        )


def test_gpu_node_groups_wait_for_the_agent(repair_on):
    """THEN the UltraServer's nested stack and the reserved node groups depend on the
    add-on, so the agent runs before the first GPU node joins."""
    addon = next(
        k
        for k, r in repair_on.template["Resources"].items()
        if r["Type"] == "AWS::EKS::Addon" and r["Properties"]["AddonName"] == "eks-node-monitoring-agent"
    )
    dependents = [
        r
        for r in repair_on.template["Resources"].values()
        if r["Type"] in ("AWS::CloudFormation::Stack", "AWS::EKS::Nodegroup")
        and addon in r.get("DependsOn", [])
    ]
    assert {r["Type"] for r in dependents} == {"AWS::CloudFormation::Stack", "AWS::EKS::Nodegroup"}


# ----------------------------------------------------------------- construct and lint


@pytest.fixture(scope="module")
def construct_stack():
    """GIVEN one UltraServer and one reserved node group with the defaults, and one of
    each with ``node_repair=False``, in a stack of their own."""
    app = cdk.App()
    stack = cdk.Stack(app, "Repair", env=cdk.Environment(account=ACCOUNT, region=REGION))
    _vpc, cluster = cluster_in_new_vpc(stack, "1.34")
    subnet = ec2.Subnet.from_subnet_attributes(
        stack, "LzSubnet", subnet_id="subnet-0aaaaaaaaaaaaaaaa", availability_zone=LOCAL_ZONE
    )
    for suffix, repair in (("On", True), ("Off", False)):
        UltraServerNodeGroup(
            stack,
            f"Us{suffix}",
            cluster=cluster,
            capacity_reservation_id="cr-0123456789abcdef0",
            ultraserver_type="u-p6e-gb200x72",
            subnets=[subnet],
            name=f"us-{suffix.lower()}",
            node_repair=repair,
        )
        ReservedGpuNodeGroup(
            stack,
            f"Reserved{suffix}",
            cluster=cluster,
            name=f"eval-{suffix.lower()}",
            instance_type="p5.48xlarge",
            instance_count=2,
            subnets=[subnet],
            capacity_reservation_id="cr-0aaaaaaaaaaaaaaa1",
            node_repair=repair,
        )
    return template_of(stack).to_json()


def test_constructs_take_node_repair(construct_stack):
    """THEN the constructs render the option: the full configuration by default,
    ``Enabled: false`` with ``node_repair=False``."""
    configs = {
        r["Properties"]["Labels"].get("eks-ultraserver.io/ultraserver")
        or r["Properties"]["Labels"].get("eks-ultraserver.io/reserved-capacity"): r["Properties"][
            "NodeRepairConfig"
        ]
        for r in construct_stack["Resources"].values()
        if r["Type"] == "AWS::EKS::Nodegroup"
    }
    on = {
        "Enabled": True,
        "MaxParallelNodesRepairedCount": 1,
        "NodeRepairConfigOverrides": [
            {
                "MinRepairWaitTimeMins": o.wait_minutes,
                "NodeMonitoringCondition": o.condition,
                "NodeUnhealthyReason": o.reason,
                "RepairAction": str(o.action),
            }
            for o in NODE_REPAIR_OVERRIDES
        ],
    }
    assert configs == {
        "us-on": on,
        "eval-on": on,
        "us-off": {"Enabled": False},
        "eval-off": {"Enabled": False},
    }


def test_cfn_lint_accepts_the_repair_config_and_checks_it(construct_stack):
    """THEN cfn-lint (its AWS::EKS::Nodegroup schema has NodeRepairConfig) finds no error,
    and would find one in a repair action EKS does not have."""
    assert cfn_lint_errors(construct_stack) == []
    broken = copy.deepcopy(construct_stack)
    for resource in broken["Resources"].values():
        if (
            resource["Type"] == "AWS::EKS::Nodegroup"
            and resource["Properties"]["NodeRepairConfig"]["Enabled"]
        ):
            resource["Properties"]["NodeRepairConfig"]["NodeRepairConfigOverrides"][0]["RepairAction"] = (
                "Restart"
            )
    assert any("'Restart'" in e for e in cfn_lint_errors(broken))


def test_node_repair_must_be_a_boolean():
    """GIVEN ``node_repair='yes'`` WHEN a node group is built THEN one ConfigurationError
    names the option and what it takes."""
    app = cdk.App()
    stack = cdk.Stack(app, "Bad", env=cdk.Environment(account=ACCOUNT, region=REGION))
    _vpc, cluster = cluster_in_new_vpc(stack, "1.34")
    subnet = ec2.Subnet.from_subnet_attributes(
        stack, "LzSubnet", subnet_id="subnet-0aaaaaaaaaaaaaaaa", availability_zone=LOCAL_ZONE
    )
    with pytest.raises(ConfigurationError, match=r"node_repair: 'yes' is not a boolean; use True or False"):
        UltraServerNodeGroup(
            stack,
            "Us",
            cluster=cluster,
            capacity_reservation_id="cr-0123456789abcdef0",
            ultraserver_type="u-p6e-gb200x72",
            subnets=[subnet],
            node_repair="yes",  # type: ignore[arg-type]
        )


# ------------------------------------------------------------------------ the context key


def _context(**extra) -> dict:
    base = json.loads((REPO / "cdk.json").read_text())["context"]
    return {**base, **extra}


def test_node_repair_key_defaults_to_true_and_reads_false():
    """GIVEN cdk.json without nodeRepair, then with -c nodeRepair=false THEN the config
    holds True, then False."""
    assert EnvironmentConfig.from_mapping(_context()).node_repair is True
    assert EnvironmentConfig.from_mapping(_context(nodeRepair="false")).node_repair is False
    assert EnvironmentConfig.from_mapping(_context(nodeRepair=False)).node_repair is False


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("maybe", r"nodeRepair: 'maybe' is not a boolean; e\.g\. -c nodeRepair='false'"),
        ("1", r"nodeRepair: 1 is not a boolean"),
        ("[true]", r"nodeRepair: \[True\] is not a boolean"),
    ],
)
def test_a_bad_node_repair_value_is_refused_naming_the_key(value, message):
    """GIVEN nodeRepair that is not a boolean THEN one ConfigurationError names the key and
    the value."""
    with pytest.raises(ConfigurationError, match=message):
        EnvironmentConfig.from_mapping(_context(nodeRepair=value))


# ------------------------------------------------------------------------------- the docs


def test_the_docs_table_lists_every_override_with_its_action():
    """THEN docs/node-health.md lists each override's reason in a table row naming its
    action, and every reason in that table is an override (the page and the code agree)."""
    page = (REPO / "docs" / "node-health.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| `") and "| Re" in line]
    documented = {}
    for row in rows:
        action = row.split("|")[2].strip()
        for reason in re.findall(r"`([A-Za-z0-9]+)`", row.split("|")[1]):
            documented[reason] = action
    assert documented == {o.reason: str(o.action) for o in NODE_REPAIR_OVERRIDES}


def test_node_repair_config_is_reboot_first():
    """THEN replacement is kept to the failures a reboot cannot clear."""
    replaced = sorted(o.reason for o in NODE_REPAIR_OVERRIDES if o.action is RepairAction.REPLACE)
    assert replaced == [
        "NvidiaDeviceCountMismatch",
        "NvidiaXID142Error",
        "NvidiaXID54Error",
        "NvidiaXID79Error",
    ]
    assert node_repair_config(False) == {"Enabled": False}
    reasons = [o.reason for o in NODE_REPAIR_OVERRIDES]
    assert len(reasons) == len(set(reasons))
