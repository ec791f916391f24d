"""GPU sharing per pool (time-slicing / MPS through the NVIDIA device plugin) and the burst
pool's own zone.

The device plugin configurations the library writes are checked against the keys of the
device plugin's config format, derived from the Go types the plugin parses them into
(NVIDIA/k8s-device-plugin v0.19.3, api/config/v1/*.go, verbatim in tests/third_party).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from aws_cdk.assertions import Annotations, Match

from eks_ultraserver.capacity import (
    DEVICE_PLUGIN_CONFIG_LABEL,
    BurstCapacitySpec,
    GpuSharingSpec,
    ReservedCapacitySpec,
    ReservedProvisioner,
    SharingStrategy,
    read_capacity,
    sharing_configs,
)
from eks_ultraserver.config import read_environment
from eks_ultraserver.helm.gpu_operator import DEVICE_PLUGIN_CONFIG_MAP, GDRCOPY_ENV, GpuOperatorValues
from eks_ultraserver.helm.values import unknown_keys
from eks_ultraserver.model import CAPACITY_TYPE_LABEL, ConfigurationError, Problems

from conftest import LOCAL_ZONE, REPO, UPSTREAM, cfn_lint_errors, synth_environment

TIME_SLICED_BURST: dict = {
    "instanceFamilies": ["g6e"],
    "maxGpus": 16,
    "maxVcpus": 768,
    "sharing": {"strategy": "time-slicing", "replicas": 4},
}
MPS_RESERVED: dict = {
    "name": "infer",
    "instanceType": "p5.48xlarge",
    "instanceCount": 1,
    "capacityReservationId": "cr-0ddddddddddddddd1",
    "availabilityZone": "us-east-1a",
    "sharing": {"strategy": "mps", "replicas": 2},
}

# --------------------------------------------------------------------------------------
# The device plugin's config format, from its Go types
# --------------------------------------------------------------------------------------

_GO_FILES = ("config", "sharing", "replicas", "flags", "imex")
_STRUCT_RE = re.compile(r"^type (\w+) struct \{\n(.*?)^\}", re.M | re.S)
_FIELD_RE = re.compile(r"^\s*(\w+)\s+(\*?\[?\]?\*?[\w.]+)\s+`json:\"([^\",]*)")
_EMBEDDED_RE = re.compile(r"^\s*(\w+)\s*$")


def _go_structs() -> dict[str, dict[str, str]]:
    """Struct name -> {json key: Go type name (pointers and slices stripped)}, with embedded
    structs' fields inlined (``Flags`` embeds ``CommandLineFlags``)."""
    raw: dict[str, tuple[dict[str, str], list[str]]] = {}
    for name in _GO_FILES:
        text = (UPSTREAM / f"k8s-device-plugin-{name}-v0.19.3.go").read_text()
        for struct, body in _STRUCT_RE.findall(text):
            fields: dict[str, str] = {}
            embedded: list[str] = []
            for line in body.splitlines():
                if m := _FIELD_RE.match(line):
                    fields[m[3]] = m[2].lstrip("*[]")
                elif m := _EMBEDDED_RE.match(line):
                    embedded.append(m[1])
            raw[struct] = (fields, embedded)

    def resolved(struct: str) -> dict[str, str]:
        fields, embedded = raw[struct]
        out = dict(fields)
        for inner in embedded:
            out.update(resolved(inner))
        return out

    return {struct: resolved(struct) for struct in raw}


def _format_problems(value: Any, go_type: str, structs: dict[str, dict[str, str]], path: str) -> list[str]:
    """Keys of ``value`` that the Go type does not declare (recursively through structs and
    lists of structs); values of non-struct types are not checked further."""
    if go_type not in structs:
        return []
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _format_problems(v, go_type, structs, f"{path}[{i}]")]
    if not isinstance(value, dict):
        return [f"{path}: {value!r} is not an object ({go_type})"]
    fields = structs[go_type]
    out = []
    for key, inner in value.items():
        if key not in fields:
            out.append(f"{path}.{key}: not a key of {go_type} ({', '.join(sorted(fields))})")
        else:
            out += _format_problems(inner, fields[key], structs, f"{path}.{key}")
    return out


@pytest.fixture(scope="module")
def go_structs():
    structs = _go_structs()
    # the parser found what the format documents (guards the regexes themselves)
    assert set(structs["Config"]) == {"version", "flags", "resources", "sharing", "imex"}
    assert set(structs["Sharing"]) == {"timeSlicing", "mps"}
    assert set(structs["ReplicatedResources"]) == {
        "renameByDefault",
        "failRequestsGreaterThanOne",
        "resources",
    }
    assert set(structs["ReplicatedResource"]) == {"name", "rename", "devices", "replicas"}
    assert "gdrcopyEnabled" in structs["Flags"]
    return structs


def _device_plugin_config_problems(text: str, structs) -> list[str]:
    config = yaml.safe_load(text)
    problems = _format_problems(config, "Config", structs, "config")
    if config.get("version") != "v1":  # parseConfigFrom: "unknown version"
        problems.append(f"config.version: {config.get('version')!r}, the format is v1")
    sharing = config.get("sharing", {})
    if len(sharing) != 1:
        problems.append(f"config.sharing: {sorted(sharing)} (one of timeSlicing / mps)")
    for key, replicated in sharing.items():
        resources = replicated.get("resources") or []
        if not resources:  # ReplicatedResources.UnmarshalJSON: "no resources specified"
            problems.append(f"config.sharing.{key}.resources: empty")
        for r in resources:  # ReplicatedResource.UnmarshalJSON
            if not isinstance(r.get("replicas"), int) or r["replicas"] < 2:
                problems.append(f"config.sharing.{key}.resources: replicas {r.get('replicas')!r} < 2")
            if r.get("name") != "nvidia.com/gpu":
                problems.append(f"config.sharing.{key}.resources: name {r.get('name')!r}")
        if key == "mps" and replicated.get("failRequestsGreaterThanOne") is not True:
            problems.append("config.sharing.mps.failRequestsGreaterThanOne: the plugin forces true")
    return problems


def test_the_format_check_catches_keys_the_format_does_not_have(go_structs):
    """GIVEN configs with a misspelt key, a flag the format lacks and MPS that does not fail
    larger requests WHEN checked THEN each is reported (the check is not vacuous)."""
    bad = {
        "version": "v1",
        "flags": {"gdrcopyEnable": True},
        "sharing": {
            "mps": {
                "failRequestsGreaterThanOne": False,
                "resources": [{"name": "nvidia.com/gpu", "replica": 2}],
            }
        },
    }
    problems = _device_plugin_config_problems(yaml.safe_dump(bad), go_structs)
    assert any("flags.gdrcopyEnable:" in p for p in problems)
    assert any("resources[0].replica:" in p for p in problems)
    assert any("forces true" in p for p in problems)


# --------------------------------------------------------------------------------------
# GpuSharingSpec
# --------------------------------------------------------------------------------------


def test_sharing_spec_defaults_follow_the_device_plugin():
    """GIVEN time-slicing and MPS with no failRequestsGreaterThanOne THEN time-slicing does
    not fail larger requests and MPS does (the plugin forces it); the config names differ
    by every setting."""
    ts = GpuSharingSpec(strategy=SharingStrategy.TIME_SLICING, replicas=4)
    mps = GpuSharingSpec(strategy=SharingStrategy.MPS, replicas=2)
    assert ts.strategy is SharingStrategy.TIME_SLICING
    assert (ts.fail_requests_greater_than_one, mps.fail_requests_greater_than_one) == (False, True)
    assert ts.config_name == "time-slicing-4" and mps.config_name == "mps-2"
    assert GpuSharingSpec(
        strategy=SharingStrategy.TIME_SLICING, replicas=4, rename_by_default=True
    ).config_name == ("time-slicing-4-renamed")
    strict = GpuSharingSpec(
        strategy=SharingStrategy.TIME_SLICING, replicas=4, fail_requests_greater_than_one=True
    )
    assert strict.config_name == "time-slicing-4-strict"
    assert mps.device_plugin_config() == {
        "version": "v1",
        "sharing": {
            "mps": {
                "renameByDefault": False,
                "failRequestsGreaterThanOne": True,
                "resources": [{"name": "nvidia.com/gpu", "replicas": 2}],
            }
        },
    }
    assert GpuSharingSpec(strategy=SharingStrategy.MPS, replicas=2, rename_by_default=True).resource_name == (
        "nvidia.com/gpu.shared"
    )


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"strategy": "time-slicing", "replicas": 1}, r"replicas: 1 is not an integer from 2 to 64"),
        ({"strategy": "time-slicing", "replicas": True}, r"replicas: True is not an integer"),
        (
            {"strategy": "mig", "replicas": 2},
            r"strategy: 'mig' is not allowed; use one of 'time-slicing', 'mps'",
        ),
        (
            {"strategy": "mps", "replicas": 2, "fail_requests_greater_than_one": False},
            r"fail_requests_greater_than_one: false is not allowed with strategy 'mps': the device plugin forces",
        ),
        (
            {"strategy": "mps", "replicas": 2, "rename_by_default": "yes"},
            r"rename_by_default: 'yes' is not a boolean",
        ),
    ],
)
def test_sharing_spec_refuses_what_the_device_plugin_would(fields, match):
    with pytest.raises(ConfigurationError, match=match):
        GpuSharingSpec(**fields)


# --------------------------------------------------------------------------------------
# cdk.json
# --------------------------------------------------------------------------------------


def _read(reserved=None, burst=None):
    problems = Problems()
    context = {"reservedCapacity": reserved, "burstCapacity": burst}
    got = read_capacity(context.get, problems, "1.35")
    return got, list(problems)


def test_cdk_json_sharing_of_a_reservation_and_the_burst_pool():
    (reserved, burst), problems = _read([MPS_RESERVED], TIME_SLICED_BURST | {"availabilityZone": LOCAL_ZONE})
    assert problems == []
    assert reserved[0].sharing == GpuSharingSpec(strategy=SharingStrategy.MPS, replicas=2)
    assert burst.sharing == GpuSharingSpec(strategy=SharingStrategy.TIME_SLICING, replicas=4)
    assert burst.availability_zone == LOCAL_ZONE
    assert sharing_configs(reserved, burst) == {
        "mps-2": GpuSharingSpec(strategy=SharingStrategy.MPS, replicas=2).device_plugin_config(),
        "time-slicing-4": GpuSharingSpec(
            strategy=SharingStrategy.TIME_SLICING, replicas=4
        ).device_plugin_config(),
    }


def test_cdk_json_sharing_problems_are_named_after_their_keys():
    """GIVEN a reservation whose sharing has an unknown key and a bad count, a Karpenter
    reservation that renames, a burst pool that renames and a bad zone WHEN read THEN one
    problem each, under its cdk.json path."""
    kp = MPS_RESERVED | {
        "name": "kp",
        "provisioner": "karpenter",
        "sharing": {"strategy": "time-slicing", "replicas": 2, "renameByDefault": True},
    }
    bad = MPS_RESERVED | {"sharing": {"strategy": "mps", "replicas": 0, "slices": 3}}
    _, problems = _read(
        [bad, kp],
        TIME_SLICED_BURST
        | {
            "availabilityZone": "dallas",
            "sharing": {"strategy": "time-slicing", "replicas": 4, "renameByDefault": True},
        },
    )
    text = "\n".join(problems)
    assert "reservedCapacity[0].sharing: unknown key(s) 'slices'" in text
    assert "reservedCapacity[0].sharing.replicas: 0 is not an integer from 2 to 64" in text
    assert (
        "reservedCapacity[1].sharing.renameByDefault: true is not allowed on a pool Karpenter launches"
        in text
    )
    assert "burstCapacity.sharing.renameByDefault: true is not allowed on a pool Karpenter launches" in text
    assert "burstCapacity.availabilityZone: 'dallas' is not an Availability Zone name" in text


def test_a_sharing_key_on_an_ultraserver_is_refused_with_the_reason():
    """GIVEN an ultraServers entry with sharing WHEN the context is read THEN one
    ConfigurationError names the key and says why UltraServers never share."""
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    servers = [
        {
            "capacityReservationId": "cr-0123456789abcdef0",
            "type": "u-p6e-gb200x72",
            "sharing": {"strategy": "time-slicing", "replicas": 2},
        }
    ]
    with pytest.raises(ConfigurationError) as err:
        read_environment((context | {"ultraServers": servers}).get)
    text = str(err.value)
    assert "ultraServers[0].sharing: {'strategy': 'time-slicing', 'replicas': 2} is not allowed" in text
    assert (
        "CDMM" in text
        and "MIG is not supported" in text
        and "ComputeDomain (IMEX) jobs need whole GPUs" in text
    )
    assert "unknown key" not in text


# --------------------------------------------------------------------------------------
# GPU Operator values
# --------------------------------------------------------------------------------------


def test_gpu_operator_gets_one_named_config_per_setting_and_no_default(go_structs):
    """GIVEN two pools' settings WHEN the GPU Operator values are built THEN
    devicePlugin.config creates the ConfigMap with both configs (YAML in the device
    plugin's format), sets no default (nodes without the label keep whole GPUs) and keeps
    GDRCOPY_ENABLED; every key exists in the chart's values.yaml."""
    reserved, _ = ReservedCapacitySpec.parse("r", **_python(MPS_RESERVED))
    assert reserved is not None
    configs = sharing_configs(
        [reserved],
        BurstCapacitySpec(
            instance_families=("g6e",),
            max_gpus=16,
            sharing=GpuSharingSpec(strategy=SharingStrategy.TIME_SLICING, replicas=4),
        ),
    )
    values = GpuOperatorValues(device_plugin_configs=configs).values()
    plugin = values["devicePlugin"]
    assert plugin["env"] == [GDRCOPY_ENV]
    assert plugin["config"]["create"] is True
    assert plugin["config"]["name"] == DEVICE_PLUGIN_CONFIG_MAP
    assert "default" not in plugin["config"]
    assert sorted(plugin["config"]["data"]) == ["mps-2", "time-slicing-4"]
    for text in plugin["config"]["data"].values():
        assert _device_plugin_config_problems(text, go_structs) == []
    defaults = yaml.safe_load((UPSTREAM / "gpu-operator-values-v26.3.3.yaml").read_text())
    assert unknown_keys({"devicePlugin": plugin}, defaults) == []


def test_gpu_operator_values_without_sharing_have_no_device_plugin_config():
    assert "config" not in GpuOperatorValues().values()["devicePlugin"]
    assert GpuOperatorValues().values() == GpuOperatorValues(device_plugin_configs={}).values()


def test_addon_values_may_not_replace_the_pools_configs():
    with pytest.raises(
        ConfigurationError, match=r"addonValues.gpuOperator.devicePlugin.config: .* would replace"
    ):
        GpuOperatorValues(
            device_plugin_configs={
                "mps-2": GpuSharingSpec(strategy=SharingStrategy.MPS, replicas=2).device_plugin_config()
            },
            extra_values={"devicePlugin": {"config": {"name": "mine", "default": "any"}}},
        )


def _python(entry: dict) -> dict:
    """A cdk.json reservedCapacity entry as ReservedCapacitySpec fields."""
    keys = {v: k for k, v in ReservedCapacitySpec.CONTEXT_KEYS.items()}
    return {keys[k]: v for k, v in entry.items()}


# --------------------------------------------------------------------------------------
# The whole environment (the "done when")
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_env():
    """GIVEN a time-sliced burst pool in a Local Zone and an MPS reservation run by a node
    group WHEN the environment is synthesized from cdk.json context."""
    return synth_environment(
        {
            "reservedCapacity": json.dumps([MPS_RESERVED]),
            "burstCapacity": json.dumps(TIME_SLICED_BURST | {"availabilityZone": LOCAL_ZONE}),
        }
    )


def _of_type(synth, cfn_type):
    return {k: v for k, v in synth.all_resources.items() if v["Type"] == cfn_type}


def test_the_gpu_operator_release_carries_both_configs_in_the_device_plugin_format(shared_env, go_structs):
    (release,) = [
        r
        for r in _of_type(shared_env, "Custom::AWSCDK-EKS-HelmChart").values()
        if r["Properties"].get("Chart") == "gpu-operator"
    ]
    config = json.loads(release["Properties"]["Values"])["devicePlugin"]["config"]
    assert sorted(config["data"]) == ["mps-2", "time-slicing-4"]
    for name, text in config["data"].items():
        assert _device_plugin_config_problems(text, go_structs) == [], name
    assert yaml.safe_load(config["data"]["mps-2"])["sharing"]["mps"]["resources"] == [
        {"name": "nvidia.com/gpu", "replicas": 2}
    ]
    assert "timeSlicing" in yaml.safe_load(config["data"]["time-slicing-4"])["sharing"]


def test_the_pools_nodes_are_labelled_to_select_their_config(shared_env):
    """THEN the reserved node group's nodes carry mps-2 and the burst NodePool's template
    time-slicing-4; the UltraServer node groups carry no config label (whole GPUs)."""
    groups = _of_type(shared_env, "AWS::EKS::Nodegroup")
    labels = {k: g["Properties"].get("Labels", {}) for k, g in groups.items()}
    (reserved,) = [lbl for lbl in labels.values() if lbl.get(CAPACITY_TYPE_LABEL) == "reserved"]
    assert reserved[DEVICE_PLUGIN_CONFIG_LABEL] == "mps-2"
    others = [lbl for lbl in labels.values() if lbl.get(CAPACITY_TYPE_LABEL) != "reserved"]
    assert others and all(DEVICE_PLUGIN_CONFIG_LABEL not in lbl for lbl in others)
    env = shared_env.stack.ultraserver_environment
    pool = env.karpenter.capacity_chart.objects["BurstNodePool"]
    assert pool["spec"]["template"]["metadata"]["labels"] == {
        CAPACITY_TYPE_LABEL: "burst",
        DEVICE_PLUGIN_CONFIG_LABEL: "time-slicing-4",
    }


def test_the_shared_environment_passes_cfn_lint(shared_env):
    for name, tpl in shared_env.templates().items():
        assert cfn_lint_errors(tpl) == [], name


def test_the_burst_pool_lives_in_its_zone_subnet(shared_env):
    """THEN the burst class selects the subnet of its zone by id (the UltraServers' Local
    Zone subnet here: cdk.json puts them there) and the NodePool requires that zone."""
    env = shared_env.stack.ultraserver_environment
    assert env.availability_zone == LOCAL_ZONE
    objects = env.karpenter.capacity_chart.objects
    assert objects["BurstNodeClass"]["spec"]["subnetSelectorTerms"] == [
        {"id": s.subnet_id} for s in env.ultraserver_subnets
    ]
    assert {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [LOCAL_ZONE]} in objects[
        "BurstNodePool"
    ]["spec"]["template"]["spec"]["requirements"]


def test_a_burst_pool_in_another_zone_gets_a_subnet_there():
    """GIVEN the burst pool in a regular AZ other than the UltraServers' Local Zone WHEN
    synthesized THEN a new private subnet in that zone, selected by the burst class."""
    synth = synth_environment(
        {"burstCapacity": json.dumps(TIME_SLICED_BURST | {"availabilityZone": "us-east-1c"})}
    )
    env = synth.stack.ultraserver_environment
    subnet = env.network.zone_subnets["us-east-1c"]
    assert env.karpenter.capacity_chart.objects["BurstNodeClass"]["spec"]["subnetSelectorTerms"] == [
        {"id": subnet.subnet_id}
    ]
    zones = [s["Properties"]["AvailabilityZone"] for s in _of_type(synth, "AWS::EC2::Subnet").values()]
    assert zones.count("us-east-1c") == 1


def test_shared_karpenter_pools_warn_about_physical_gpus(shared_env):
    Annotations.from_stack(shared_env.stack).has_warning(
        "*",
        Match.string_like_regexp(
            r"Karpenter pools with shared GPUs \(burstCapacity \(maxGpus 16\): time-slicing x4\).*kubernetes-sigs/karpenter #729"
        ),
    )


def test_shared_and_zoned_pools_validate_against_the_crds():
    """GIVEN a time-sliced burst pool in a Local Zone and an MPS reservation for Karpenter
    WHEN the chart is built (plain strings) THEN every object passes the CRD schemas."""
    import cdk8s
    from test_karpenter import _crd_validator

    from eks_ultraserver.charts.karpenter import KarpenterGpuCapacityChart

    schemas = {
        "NodePool": _crd_validator("karpenter-nodepool-crd-v1.14.1.yaml"),
        "EC2NodeClass": _crd_validator("karpenter-ec2nodeclass-crd-v1.14.1.yaml"),
    }
    (reserved, burst), problems = _read(
        [MPS_RESERVED | {"provisioner": "karpenter"}], TIME_SLICED_BURST | {"availabilityZone": LOCAL_ZONE}
    )
    assert problems == []
    chart = KarpenterGpuCapacityChart(
        cdk8s.App(),
        "c",
        node_role="KarpenterNodeRole",
        discovery="gpu-cluster",
        burst=burst,
        reserved=reserved,
        security_group_ids=["sg-0123456789abcdef0"],
        reserved_subnet_ids=["subnet-0123456789abcdef0"],
        burst_subnet_ids=["subnet-0123456789abcdef1"],
    )
    objects = chart.to_json()
    assert len(objects) == 4
    for obj in objects:
        errors = [e.message for e in schemas[obj["kind"]].iter_errors(obj)]
        assert errors == [], obj["metadata"]["name"]
    pools = {o["metadata"]["name"]: o for o in objects if o["kind"] == "NodePool"}
    assert (
        pools["gpu-burst"]["spec"]["template"]["metadata"]["labels"][DEVICE_PLUGIN_CONFIG_LABEL]
        == "time-slicing-4"
    )
    assert (
        pools["gpu-reserved-p5-48xlarge"]["spec"]["template"]["metadata"]["labels"][
            DEVICE_PLUGIN_CONFIG_LABEL
        ]
        == "mps-2"
    )


# --------------------------------------------------------------------------------------
# Karpenter reservations share alike; an existing VPC keeps the burst pool in its zone
# --------------------------------------------------------------------------------------


def test_karpenter_reservations_of_one_pool_must_share_alike():
    import cdk8s

    from eks_ultraserver.charts.karpenter import KarpenterGpuCapacityChart

    base: dict[str, Any] = {
        "instance_type": "p5.48xlarge",
        "instance_count": 1,
        "availability_zone": "us-east-1a",
        "provisioner": ReservedProvisioner.KARPENTER,
    }
    shared = ReservedCapacitySpec(
        name="a",
        capacity_reservation_id="cr-0aaaaaaaaaaaaaaa1",
        sharing=GpuSharingSpec(strategy=SharingStrategy.MPS, replicas=2),
        **base,
    )
    whole = ReservedCapacitySpec(name="b", capacity_reservation_id="cr-0aaaaaaaaaaaaaaa2", **base)
    with pytest.raises(
        ConfigurationError,
        match=r"reserved\['a', 'b'\].sharing: .*'gpu-reserved-p5-48xlarge'.*\(mps-2, whole GPUs\)",
    ):
        KarpenterGpuCapacityChart(cdk8s.App(), "c", node_role="r", discovery="d", reserved=[shared, whole])
    chart = KarpenterGpuCapacityChart(cdk8s.App(), "c", node_role="r", discovery="d", reserved=[shared])
    labels = chart.objects["ReservedNodePool-p5-48xlarge"]["spec"]["template"]["metadata"]["labels"]
    assert labels[DEVICE_PLUGIN_CONFIG_LABEL] == "mps-2"


def test_an_existing_vpc_keeps_the_burst_pool_in_the_ultraservers_zone():
    from eks_ultraserver.constructs.network import network_problems

    problems = Problems()
    network_problems(
        availability_zone=LOCAL_ZONE,
        vpc=object(),  # type: ignore[arg-type]
        ultraserver_subnets=[object()],  # type: ignore[list-item]
        burst_zone="us-east-1a",
        problems=problems,
    )
    assert list(problems) == [
        "burstCapacity.availabilityZone: 'us-east-1a' differs from the UltraServers' zone "
        "'us-east-1-dfw-2a'; with an existing VPC, reserved capacity must share the "
        "UltraServers' subnets (or use your own ReservedGpuNodeGroup with your subnets)"
    ]


def test_burst_subnets_without_a_burst_zone_are_refused():
    import cdk8s

    from eks_ultraserver.charts.karpenter import KarpenterGpuCapacityChart

    burst = BurstCapacitySpec(instance_families=("g6e",), max_gpus=8)
    with pytest.raises(ConfigurationError, match=r"burst_subnet_ids: given without a burst pool zone"):
        KarpenterGpuCapacityChart(
            cdk8s.App(),
            "c",
            node_role="r",
            discovery="d",
            burst=burst,
            burst_subnet_ids=["subnet-0123456789abcdef1"],
        )


def test_a_renamed_node_group_reservation_gets_its_own_config():
    """GIVEN a node-group reservation with renameByDefault (allowed: no Karpenter) and a
    time-sliced burst pool of the same replicas WHEN their configs are collected THEN two
    names, the renamed one advertising nvidia.com/gpu.shared."""
    (reserved, burst), problems = _read(
        [MPS_RESERVED | {"sharing": {"strategy": "time-slicing", "replicas": 4, "renameByDefault": True}}],
        TIME_SLICED_BURST,
    )
    assert problems == []
    configs = sharing_configs(reserved, burst)
    assert sorted(configs) == ["time-slicing-4", "time-slicing-4-renamed"]
    assert configs["time-slicing-4-renamed"]["sharing"]["timeSlicing"]["renameByDefault"] is True
    assert reserved[0].sharing.resource_name == "nvidia.com/gpu.shared"
