"""``reservedCapacity`` and ``burstCapacity`` in cdk.json context, and the instance-type table."""

from __future__ import annotations

import json

import pytest

from eks_ultraserver.capacity import (
    EXAMPLE_BURST,
    EXAMPLE_RESERVED,
    INSTANCE_TYPES,
    Architecture,
    BurstCapacitySpec,
    EfaInterface,
    GpuInstanceType,
    ReservationKind,
    ReservedCapacitySpec,
    ReservedProvisioner,
    with_instance_types,
)
from eks_ultraserver.config import EnvironmentConfig
from eks_ultraserver.model import ConfigurationError

from conftest import REPO

BASE = json.loads((REPO / "cdk.json").read_text())["context"]
RID = "cr-0aaaaaaaaaaaaaaa1"
ARN = "arn:aws:resource-groups:us-east-1:123456789012:group/my-odcrs"


def _config(instance_types=INSTANCE_TYPES, **overrides):
    ctx = {k: v for k, v in BASE.items() if k not in ("reservedCapacity", "burstCapacity")}
    ctx.update(overrides)
    return EnvironmentConfig.from_mapping(
        {k: v for k, v in ctx.items() if v is not None}, instance_types=instance_types
    )


def _reserved(**entry):
    base = {
        "name": "eval",
        "instanceType": "p5.48xlarge",
        "instanceCount": 2,
        "capacityReservationId": RID,
        "availabilityZone": "us-east-1a",
    }
    base.update(entry)
    return [{k: v for k, v in base.items() if v is not None}]


def test_neither_key_means_no_extra_capacity():
    config = _config()
    assert config.reserved_capacity == () and config.burst_capacity is None


def test_documented_examples_parse_from_dash_c_json_text():
    """GIVEN the docs' examples as -c JSON strings WHEN read THEN typed values with defaults."""
    config = _config(reservedCapacity=json.dumps(EXAMPLE_RESERVED), burstCapacity=json.dumps(EXAMPLE_BURST))
    (odcr,) = config.reserved_capacity
    assert (odcr.name, odcr.instance_type, odcr.instance_count, odcr.kind, odcr.provisioner) == (
        "eval",
        "p5.48xlarge",
        2,
        ReservationKind.ODCR,
        ReservedProvisioner.NODEGROUP,
    )
    burst = config.burst_capacity
    assert burst.instance_families == ("g6e", "p5") and burst.max_gpus == 64
    assert burst.capacity_types == ("spot", "on-demand")
    assert burst.ami_alias == "al2023@latest" and burst.max_vcpus is None and burst.consolidate_after == "10m"


def test_every_reservation_shape():
    config = _config(
        reservedCapacity=[
            _reserved()[0],
            {
                "name": "grp",
                "instanceType": "p5en.48xlarge",
                "instanceCount": 1,
                "capacityReservationResourceGroupArn": ARN,
                "availabilityZone": "us-east-1b",
            },
            {
                "name": "cb",
                "instanceType": "p6-b200.48xlarge",
                "instanceCount": "2",
                "capacityType": "capacity-block",
                "capacityReservationId": "cr-0bbbbbbbbbbbbbbb2",
                "availabilityZone": "us-east-1a",
            },
            {
                "name": "kp",
                "instanceType": "g6e.48xlarge",
                "instanceCount": 4,
                "provisioner": "karpenter",
                "capacityReservationId": "cr-0ccccccccccccccc3",
                "availabilityZone": "us-east-1c",
            },
        ]
    )
    grp, cb, kp = config.reserved_capacity[1:]
    assert grp.resource_group_arn == ARN and grp.target == ARN
    assert cb.kind is ReservationKind.CAPACITY_BLOCK and cb.instance_count == 2
    # Karpenter entries need no EFA table entry; they need their zone like node groups.
    assert kp.provisioner is ReservedProvisioner.KARPENTER and kp.availability_zone == "us-east-1c"


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"colour": "red"}, r"reservedCapacity\[0\]: unknown key\(s\) 'colour'"),
        ({"name": "Eval_1"}, r"reservedCapacity\[0\]\.name: 'Eval_1' is not a DNS-1123 label"),
        (
            {"instanceType": "p6e-gb200.36xlarge"},
            r"instanceType: 'p6e-gb200.36xlarge' runs only inside UltraServers",
        ),
        (
            {"instanceType": "g6e.48xlarge"},
            r"instanceType: 'g6e.48xlarge' has no EFA layout.*with_instance_types",
        ),
        ({"instanceCount": 0}, r"instanceCount: 0 is not an integer from 1 to 1000"),
        (
            {"capacityType": "spot"},
            r"capacityType: 'spot' is not allowed; use one of 'odcr', 'capacity-block'",
        ),
        ({"provisioner": "asg"}, r"provisioner: 'asg' is not allowed"),
        (
            {"capacityReservationId": None},
            r"give capacityReservationId .* or capacityReservationResourceGroupArn",
        ),
        ({"capacityReservationResourceGroupArn": ARN}, r"not both"),
        (
            {"capacityReservationId": "cr-123"},
            r"capacityReservationId: 'cr-123' is not a Capacity Reservation id",
        ),
        (
            {"capacityReservationId": None, "capacityReservationResourceGroupArn": "group/x"},
            r"'group/x' is not a resource group ARN",
        ),
        (
            {
                "capacityReservationId": None,
                "capacityReservationResourceGroupArn": ARN,
                "capacityType": "capacity-block",
            },
            r"a Capacity Block is targeted by its reservation id",
        ),
        (
            {
                "capacityReservationId": None,
                "capacityReservationResourceGroupArn": ARN,
                "provisioner": "karpenter",
            },
            r"Karpenter selects reservations by id or tags",
        ),
        (
            {"availabilityZone": None},
            r"availabilityZone: missing; a node group of a reservation needs subnets",
        ),
        (
            {"availabilityZone": None, "provisioner": "karpenter"},
            r"reservedCapacity\[0\]\.availabilityZone: missing; Karpenter launches into a reservation "
            r"only from a subnet in the reservation's zone",
        ),
        ({"availabilityZone": "east"}, r"availabilityZone: 'east' is not an Availability Zone"),
    ],
)
def test_each_reserved_rule(entry, match):
    with pytest.raises(ConfigurationError, match=match):
        _config(reservedCapacity=_reserved(**entry))


def test_reserved_not_a_list_and_bad_json_name_the_key_and_an_example():
    with pytest.raises(
        ConfigurationError, match=r"reservedCapacity: .* is not a list .*e\.g\. -c reservedCapacity="
    ):
        _config(reservedCapacity={"name": "x"})
    with pytest.raises(ConfigurationError, match=r"reservedCapacity: .* is not valid JSON"):
        _config(reservedCapacity="[{")


def test_duplicate_names_and_reservations():
    with pytest.raises(ConfigurationError) as err:
        _config(reservedCapacity=_reserved() + _reserved())
    text = str(err.value)
    assert "name 'eval' appears more than once (entries 0 and 1)" in text
    assert f"reservation {RID!r} appears more than once" in text


@pytest.mark.parametrize(
    ("burst", "match"),
    [
        ({"instanceFamilies": ["p5"]}, r"burstCapacity\.maxGpus: missing"),
        ({"instanceFamilies": [], "maxGpus": 8}, r"instanceFamilies: \[\] is not a non-empty list"),
        ({"instanceFamilies": ["p6e-gb200"], "maxGpus": 8}, r"'p6e-gb200' is the UltraServer family"),
        ({"instanceFamilies": ["c7i"], "maxGpus": 8}, r"'c7i' is not an NVIDIA GPU family"),
        ({"instanceFamilies": ["g7x"], "maxGpus": 8}, r"maxVcpus: missing, and family\(ies\) g7x"),
        ({"instanceFamilies": ["p5", "p5"], "maxGpus": 8}, r"lists a family twice"),
        ({"instanceFamilies": ["p5"], "maxGpus": 8, "instanceSizes": ["48XL"]}, r"instanceSizes: \['48XL'\]"),
        ({"instanceFamilies": ["p5"], "maxGpus": -1}, r"maxGpus: -1 is not an integer"),
        ({"instanceFamilies": ["p5"], "maxGpus": 8, "spot": "maybe"}, r"spot: 'maybe' is not a boolean"),
        ({"instanceFamilies": ["p5"], "maxGpus": 8, "amiAlias": "al2@latest"}, r"amiAlias: 'al2@latest'"),
        ({"instanceFamilies": ["p5"], "maxGpus": 8, "consolidateAfter": "soon"}, r"consolidateAfter: 'soon'"),
        ({"instanceFamilies": ["p5"], "maxGpus": 8, "zones": ["a"]}, r"unknown key\(s\) 'zones'"),
    ],
)
def test_each_burst_rule(burst, match):
    with pytest.raises(ConfigurationError, match=match):
        _config(burstCapacity=burst)


def test_burst_from_dash_c_strings_and_unknown_family_with_explicit_cpu_limit():
    config = _config(burstCapacity='{"instanceFamilies":["g7x"],"maxGpus":"8","maxVcpus":256,"spot":"false"}')
    assert config.burst_capacity.max_gpus == 8 and config.burst_capacity.max_vcpus == 256
    assert config.burst_capacity.capacity_types == ("on-demand",)


def test_all_problems_of_both_keys_in_one_error():
    with pytest.raises(ConfigurationError) as err:
        _config(
            reservedCapacity=_reserved(name="X", instanceCount=0),
            burstCapacity={"instanceFamilies": ["p6e-gb200"]},
        )
    assert len(err.value.problems) == 4
    assert str(err.value).startswith("invalid configuration (cdk.json context) (4 problems):")


# --------------------------------------------------------------------------------------
# The instance-type table
# --------------------------------------------------------------------------------------


def test_documented_efa_layouts():
    """EC2 user guide efa-acc-inst-types: p5/p5e 32 cards with efa-only on card 0 device 1
    and cards 1-31; p6-b200 8 cards likewise; p6-b300 card 0 ENA only, efa-only on 1-16."""
    p5 = INSTANCE_TYPES["p5.48xlarge"]
    assert p5.network_cards == 32 and p5.efa_devices == 32
    assert p5.efa[0] == EfaInterface(card=0, device_index=1)
    assert [(i.card, i.device_index) for i in p5.efa[1:]] == [(c, 0) for c in range(1, 32)]
    assert INSTANCE_TYPES["p5e.48xlarge"].efa == p5.efa
    b200 = INSTANCE_TYPES["p6-b200.48xlarge"]
    assert [(i.card, i.device_index) for i in b200.efa] == [(0, 1)] + [(c, 0) for c in range(1, 8)]
    b300 = INSTANCE_TYPES["p6-b300.48xlarge"]
    assert b300.network_cards == 17 and [i.card for i in b300.efa] == list(range(1, 17))
    assert all(i.device_index == 0 for i in b300.efa)
    assert {t.ami_type for t in INSTANCE_TYPES.values()} == {"AL2023_x86_64_NVIDIA"}
    assert Architecture.ARM64.ami_type == "AL2023_ARM_64_NVIDIA"


def test_an_extended_table_makes_an_instance_type_configurable():
    """GIVEN a table extended with g6e.48xlarge WHEN the reader gets it THEN a reservedCapacity
    entry of that type reads, and the spec resolves the type from that table; the library's
    table is left as it was (read-only, no global registry)."""
    g6e = GpuInstanceType(
        name="g6e.48xlarge",
        architecture=Architecture.X86_64,
        gpus=8,
        vcpus=192,
        network_cards=4,
        efa=tuple(EfaInterface(card=c) for c in range(1, 4)),
    )
    table = with_instance_types(g6e)
    config = _config(instance_types=table, reservedCapacity=_reserved(instanceType="g6e.48xlarge"))
    (spec,) = config.reserved_capacity
    assert spec.instance_type == "g6e.48xlarge" and spec.gpu_type is g6e and g6e.efa_devices == 3
    assert "g6e.48xlarge" not in INSTANCE_TYPES and set(table) == set(INSTANCE_TYPES) | {"g6e.48xlarge"}
    with pytest.raises(ConfigurationError, match="has no EFA layout"):
        _config(reservedCapacity=_reserved(instanceType="g6e.48xlarge"))


def test_the_instance_type_table_is_read_only():
    with pytest.raises(TypeError):
        INSTANCE_TYPES["x.big"] = INSTANCE_TYPES["p5.48xlarge"]  # type: ignore[index]


def test_an_impossible_layout_is_refused():
    with pytest.raises(ConfigurationError) as err:
        GpuInstanceType(
            name="x1.big",
            architecture=Architecture.X86_64,
            gpus=0,
            vcpus=8,
            network_cards=2,
            efa=(EfaInterface(card=0, device_index=0), EfaInterface(card=5), EfaInterface(card=5)),
        )
    text = str(err.value)
    assert "gpus: 0 is not a positive integer" in text
    assert "card 0, device 0 is the primary interface" in text
    assert "efa[1].card: 5 is not a card of 2" in text
    assert "card 5 already has an efa-only interface" in text


# --------------------------------------------------------------------------------------
# The specs check themselves when built in Python
# --------------------------------------------------------------------------------------


def test_a_reserved_spec_built_in_python_names_its_fields():
    """GIVEN a ReservedCapacitySpec built directly WHEN a field is bad THEN one error names
    every bad field (Python names, not cdk.json keys), and enum values become members."""
    with pytest.raises(ConfigurationError) as err:
        ReservedCapacitySpec(
            name="Bad_Name",
            instance_type="p5.48xlarge",
            instance_count=0,
            kind="spot",  # type: ignore[arg-type]  # a wrong value on purpose: the check must name it
            capacity_reservation_id="cr-123",
        )
    assert str(err.value).startswith("invalid ReservedCapacitySpec (4 problems):")
    assert "name: 'Bad_Name' is not a DNS-1123 label" in str(err.value)
    assert "instance_count: 0 is not an integer from 1 to 1000" in str(err.value)
    assert "kind: 'spot' is not allowed; use one of 'odcr', 'capacity-block'" in str(err.value)
    assert "capacity_reservation_id: 'cr-123' is not a Capacity Reservation id" in str(err.value)
    spec = ReservedCapacitySpec(
        name="cb",
        instance_type="p5.48xlarge",
        instance_count=1,
        kind="capacity-block",  # type: ignore[arg-type]  # a str on purpose: it becomes the member at run time
        capacity_reservation_id=RID,
    )
    assert spec.kind is ReservationKind.CAPACITY_BLOCK and spec.gpu_type is INSTANCE_TYPES["p5.48xlarge"]
    # the zone may be left to the environment in Python (cdk.json must give it)
    assert spec.availability_zone is None


def test_a_reserved_spec_needs_one_target_and_a_table_entry_for_a_node_group():
    with pytest.raises(ConfigurationError) as err:
        ReservedCapacitySpec(name="x", instance_type="g6e.48xlarge", instance_count=1)
    text = str(err.value)
    assert "capacity_reservation_id / resource_group_arn: give capacity_reservation_id" in text
    assert "instance_type: 'g6e.48xlarge' has no EFA layout" in text


def test_a_burst_spec_built_in_python_checks_itself_and_keeps_tuples():
    with pytest.raises(ConfigurationError) as err:
        # a list and a non-boolean spot on purpose: the checks must name spot
        BurstCapacitySpec(instance_families=["p6e-gb200"], max_gpus=0, spot="maybe")  # type: ignore[arg-type]
    text = str(err.value)
    assert "instance_families: 'p6e-gb200' is the UltraServer family" in text
    assert "max_gpus: 0 is not an integer from 1 to 100000" in text
    assert "spot: 'maybe' is not a boolean" in text
    assert "-c " not in text  # no cdk.json example in Python use
    # lists on purpose: at run time they become tuples
    burst = BurstCapacitySpec(instance_families=["p5"], instance_sizes=["48xlarge"], max_gpus=8)  # type: ignore[arg-type]
    assert burst.instance_families == ("p5",) and burst.instance_sizes == ("48xlarge",)
