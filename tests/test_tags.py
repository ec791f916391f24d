"""Cost allocation: a tag applied to the app with ``Tags.of(app)`` lands on every resource of
the environment that can carry tags, in the parent and the nested templates, and on what
the GPU launch templates launch."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest

from eks_ultraserver.app import build_app

from conftest import REPO, Synth

TAG = {"Key": "cost-center", "Value": "ml-42"}

#: Resources aws-cdk-lib itself creates as plain ``CfnResource`` (no tag manager, so no
#: ``Tags.of`` can reach them), by resource type and a fragment of the logical id.
NOT_REACHABLE = {
    ("AWS::SSM::Parameter", "KubectlReadyBarrier"): (
        "aws_eks_v2.Cluster's barrier parameter (a constant string, no cost)"
    ),
    ("AWS::IAM::Role", "CustomVpcRestrictDefaultSGCustomResourceProvider"): (
        "role of the provider of ec2.Vpc's restrict-default-security-group custom resource"
    ),
    ("AWS::Lambda::Function", "CustomVpcRestrictDefaultSGCustomResourceProvider"): (
        "that provider's function: runs once per deployment"
    ),
}
#: Launch templates still built as a plain ``CfnLaunchTemplate`` (no tag manager), by a
#: fragment of the logical id: none (the system node group's is tagged too).
UNTAGGED_LAUNCH_TEMPLATES: dict[str, str] = {}


@pytest.fixture(scope="module")
def tagged():
    """GIVEN the environment of cdk.json with reserved capacity (an ODCR node group and one
    for Karpenter), burst capacity and notifications, and a tag on the app WHEN
    synthesized (as conftest.synth_environment does, with the tag added before synth)."""
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    context["reservedCapacity"] = json.dumps(
        [
            {
                "name": "eval",
                "instanceType": "p5.48xlarge",
                "instanceCount": 2,
                "capacityType": "odcr",
                "capacityReservationId": "cr-0bbbbbbbbbbbbbbb1",
                "availabilityZone": "us-east-1a",
            },
            {
                "name": "kp",
                "instanceType": "p5.48xlarge",
                "instanceCount": 2,
                "capacityReservationId": "cr-0bbbbbbbbbbbbbbb3",
                "availabilityZone": "us-east-1-dfw-2a",
                "provisioner": "karpenter",
            },
        ]
    )
    context["burstCapacity"] = json.dumps({"instanceFamilies": ["g6e"], "maxGpus": 8})
    context["notificationEmail"] = "ops@example.com"
    app = cdk.App(context=context, builtin_cloud_formation_validation=False)
    stack = build_app(app)
    cdk.Tags.of(app).add(TAG["Key"], TAG["Value"])
    return Synth(stack)


def _tag_property(resource_type: str) -> str | None:
    """The property that holds a resource type's tags (CloudFormation schema ``tagging``,
    as cfn-lint ships it), or None when the type takes none."""
    from cfnlint.schema.manager import PROVIDER_SCHEMA_MANAGER

    try:
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource_type).schema
    except Exception:  # custom resources: no schema, no tags
        return None
    tagging = schema.get("tagging") or {}
    if not tagging.get("taggable"):
        return None
    return tagging.get("tagProperty", "/properties/Tags").rsplit("/", 1)[-1]


def _carries_tag(tags: object) -> bool:
    if isinstance(tags, dict):
        return tags.get(TAG["Key"]) == TAG["Value"]
    return isinstance(tags, list) and TAG in tags


def test_every_taggable_resource_carries_the_app_tag(tagged):
    """THEN every resource whose type takes tags carries the tag (a list of Key/Value or a
    map, whichever its type uses), except the few aws-cdk-lib creates untaggable."""
    untagged, checked = [], 0
    for template_name, template in tagged.templates().items():
        for logical_id, resource in template["Resources"].items():
            rtype = resource["Type"]
            prop = _tag_property(rtype)
            if prop is None or any(t == rtype and f in logical_id for t, f in NOT_REACHABLE):
                continue
            checked += 1
            if not _carries_tag(resource.get("Properties", {}).get(prop)):
                untagged.append(f"{rtype} {logical_id} ({template_name})")
    assert untagged == []
    assert checked > 50, "the check is not vacuous"


def test_the_exceptions_still_exist(tagged):
    """The exception lists stay honest: each entry still matches an untagged resource."""
    resources = tagged.all_resources
    for rtype, fragment in NOT_REACHABLE:
        matches = [r for lid, r in resources.items() if r["Type"] == rtype and fragment in lid]
        assert matches, (rtype, fragment)
        assert not any(_carries_tag(r.get("Properties", {}).get("Tags")) for r in matches)
    for fragment in UNTAGGED_LAUNCH_TEMPLATES:
        matches = [
            r for lid, r in resources.items() if r["Type"] == "AWS::EC2::LaunchTemplate" and fragment in lid
        ]
        assert matches and not any("TagSpecifications" in r["Properties"] for r in matches), fragment


def test_launch_templates_tag_themselves_and_what_they_launch(tagged):
    """THEN each launch template (not taggable in its CloudFormation schema, so not covered
    above) carries the tag on itself and on its instances, volumes and network interfaces:
    the GPU instances are where the cost is (EKS copies no node group tag to them)."""
    templates = {
        lid: r
        for lid, r in tagged.all_resources.items()
        if r["Type"] == "AWS::EC2::LaunchTemplate" and not any(f in lid for f in UNTAGGED_LAUNCH_TEMPLATES)
    }
    assert len(templates) >= 3, "an UltraServer, a reserved and the system node group"
    assert any("SystemLaunchTemplate" in lid for lid in templates)
    for logical_id, resource in templates.items():
        properties = resource["Properties"]
        specs = properties["TagSpecifications"] + properties["LaunchTemplateData"]["TagSpecifications"]
        assert {s["ResourceType"] for s in specs} == {
            "launch-template",
            "instance",
            "volume",
            "network-interface",
        }
        assert all(TAG in s["Tags"] for s in specs), logical_id
