"""GpuNodeGroupOptions: the options UltraServerNodeGroup and ReservedGpuNodeGroup share are
declared, defaulted and checked once (constructs/gpu_nodegroup.py)."""

from __future__ import annotations

import dataclasses
import itertools
import typing
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam

from eks_ultraserver.constructs.gpu_nodegroup import GpuNodeGroupKwargs, GpuNodeGroupOptions
from eks_ultraserver.constructs.nodegroup import UltraServerNodeGroup
from eks_ultraserver.constructs.reserved import ReservedGpuNodeGroup
from eks_ultraserver.model import ConfigurationError, InstanceStorePolicy, Taint

from conftest import ACCOUNT, REGION, cluster_in_new_vpc

ZONE = "us-east-1a"
CONSTRUCTS = (UltraServerNodeGroup, ReservedGpuNodeGroup)
OPTION_NAMES = [f.name for f in dataclasses.fields(GpuNodeGroupOptions)]
_ids = itertools.count()


@pytest.fixture(scope="module")
def env():
    """GIVEN a Kubernetes 1.34 cluster, a subnet in one zone, a security group and a role."""
    app = cdk.App(builtin_cloud_formation_validation=False)
    stack = cdk.Stack(app, "Options", env=cdk.Environment(account=ACCOUNT, region=REGION))
    vpc, cluster = cluster_in_new_vpc(stack, "1.34")
    subnet = ec2.Subnet.from_subnet_attributes(
        stack, "ZoneSubnet", subnet_id="subnet-0aaaaaaaaaaaaaaaa", availability_zone=ZONE
    )
    group = ec2.SecurityGroup(stack, "Extra", vpc=vpc)
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    return stack, cluster, subnet, group, role


def _own_args(cls: type, cluster: eks.ICluster, subnet: ec2.ISubnet) -> dict[str, Any]:
    """Valid construct-specific arguments; both node groups have 18 nodes."""
    if cls is UltraServerNodeGroup:
        return {
            "cluster": cluster,
            "subnets": [subnet],
            "capacity_reservation_id": "cr-0123456789abcdef0",
            "ultraserver_type": "u-p6e-gb200x72",
        }
    return {
        "cluster": cluster,
        "subnets": [subnet],
        "name": "eval",
        "instance_type": "p5.48xlarge",
        "instance_count": 18,
        "capacity_reservation_id": "cr-0aaaaaaaaaaaaaaa1",
    }


def _build(cls: type, env, **kwargs: Any) -> Any:
    """The construct, built with valid own arguments and ``kwargs`` (own or options)."""
    stack, cluster, subnet, _, _ = env
    return cls(stack, f"Group{next(_ids)}", **{**_own_args(cls, cluster, subnet), **kwargs})


def _problems(cls: type, env, **options: Any) -> list[str]:
    with pytest.raises(ConfigurationError) as err:
        _build(cls, env, **options)
    return [line.removeprefix("  - ") for line in str(err.value).splitlines()[1:]]


# ------------------------------------------------------------------------- one declaration


def test_the_keyword_arguments_are_the_dataclass_fields_with_their_types():
    """GIVEN the dataclass and the TypedDict the constructors' ``**options`` are typed with
    THEN they list the same names, in the same order, with the same types."""
    fields = typing.get_type_hints(GpuNodeGroupOptions)
    kwargs = typing.get_type_hints(GpuNodeGroupKwargs)
    assert list(kwargs) == OPTION_NAMES
    assert kwargs == fields
    assert GpuNodeGroupKwargs.__required_keys__ == frozenset()


@pytest.mark.parametrize("cls", CONSTRUCTS, ids=lambda c: c.__name__)
def test_both_constructors_take_the_options_as_typed_keywords(cls):
    """GIVEN a GPU node group construct THEN its ``**options`` are typed by
    GpuNodeGroupKwargs, and none of its own keyword arguments repeats an option."""
    hints = typing.get_type_hints(cls.__init__)
    assert typing.get_origin(hints["options"]) is typing.Unpack
    assert typing.get_args(hints["options"]) == (GpuNodeGroupKwargs,)
    own = set(hints) - {"options", "return"}
    assert not own & set(OPTION_NAMES)


@pytest.mark.parametrize("cls", CONSTRUCTS, ids=lambda c: c.__name__)
def test_defaults_are_the_dataclass_defaults(env, cls):
    """GIVEN no option WHEN a node group is built THEN its options are the dataclass's
    defaults (no construct keeps a default of its own)."""
    assert _build(cls, env).options == GpuNodeGroupOptions()


@pytest.mark.parametrize("cls", CONSTRUCTS, ids=lambda c: c.__name__)
def test_every_option_reaches_the_construct(env, cls):
    """GIVEN a value other than the default for every option WHEN a node group is built
    THEN its options hold exactly those values."""
    _, _, _, group, role = env
    values: dict[str, Any] = {
        "availability_zone": ZONE,
        "instance_store": InstanceStorePolicy.MOUNT,
        "labels": {"team": "research"},
        "taints": [],
        "node_role": role,
        "efa_security_group": group,
        "security_groups": [group],
        "kubernetes_version": "1.34",
        "release_version": "1.34.2-20251103",
        "scaled_to_zero": True,
        "root_volume_size_gib": 200,
        "http_put_response_hop_limit": 2,
        "nodegroup_name": "named",
        "max_unavailable": 3,
        "node_repair": False,
    }
    assert sorted(values) == sorted(OPTION_NAMES)
    defaults = GpuNodeGroupOptions()
    assert all(getattr(defaults, k) != v for k, v in values.items())
    assert _build(cls, env, **values).options == GpuNodeGroupOptions(**values)


# ------------------------------------------------------------------------------- one check


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            {"instance_store": "RAID5"},
            "instance_store: 'RAID5' is not allowed; use one of 'RAID0', 'Mount', 'none'",
        ),
        ({"labels": {"bad key!": "x"}}, "labels: key 'bad key!' is not a valid Kubernetes label key"),
        ({"taints": [Taint(key="k", effect="Sometimes")]}, "taints[0].effect: 'Sometimes' is not allowed"),
        ({"root_volume_size_gib": 10}, "root_volume_size_gib: 10 is out of range; use 20 to 16384"),
        ({"http_put_response_hop_limit": 0}, "http_put_response_hop_limit: 0 is out of range; use 1 to 64"),
        (
            {"availability_zone": "us-east-1b"},
            "subnets: zone(s) us-east-1a differ from availability_zone 'us-east-1b'",
        ),
        (
            {"release_version": "1.33.2-20251201"},
            "release_version: '1.33.2-20251201' is for Kubernetes 1.33, but",
        ),
        ({"max_unavailable": 0}, "max_unavailable: 0 is out of range; use an integer from 1 to 18"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else "message",
)
def test_one_invalid_option_gives_the_same_message_from_both(env, option, message):
    """GIVEN one invalid shared option WHEN each construct is built with it THEN both raise
    one problem, the same line."""
    ultraserver, reserved = (_problems(cls, env, **option) for cls in CONSTRUCTS)
    assert ultraserver == reserved
    assert len(reserved) == 1 and reserved[0].startswith(message)


@pytest.mark.parametrize("cls", CONSTRUCTS, ids=lambda c: c.__name__)
def test_an_unknown_option_is_a_type_error_naming_the_construct(env, cls):
    """GIVEN a keyword argument that no GPU node group takes THEN the TypeError Python
    raises for an unknown keyword argument, naming the construct."""
    with pytest.raises(
        TypeError, match=rf"^{cls.__name__}\.__init__\(\) got an unexpected keyword argument 'labelz'$"
    ):
        _build(cls, env, labelz={"a": "b"})


@pytest.mark.parametrize(
    ("cls", "own"),
    [(UltraServerNodeGroup, {"name": "B!"}), (ReservedGpuNodeGroup, {"capacity_reservation_id": "cr-1"})],
    ids=["UltraServerNodeGroup", "ReservedGpuNodeGroup"],
)
def test_own_problems_come_before_the_options_problems(env, cls, own):
    """GIVEN a bad argument of the construct's own and a bad shared option WHEN built THEN
    the construct's problem is listed first, then the option's: one order for both."""
    problems = _problems(cls, env, instance_store="z", **own)
    assert [p.split(":")[0] for p in problems] == [*own, "instance_store"]
