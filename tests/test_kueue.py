"""Kueue: the Helm values (keys checked against the v0.19.2 chart), the Topology, flavors
and queues (validated against the v0.19.2 CRDs), the queues key's refusals, the release and
manifest in the synthesized environment, and queued MpiJobs (label and pod-set annotations,
validated against the MPIJob CRD)."""

from __future__ import annotations

import json
from pathlib import Path

import cdk8s
import jsonschema
import pytest
import yaml

from eks_ultraserver import cli
from eks_ultraserver.capacity import BurstCapacitySpec, ReservedCapacitySpec, ReservedProvisioner
from eks_ultraserver.charts.kueue import KueueQueuesChart
from eks_ultraserver.charts.mpijob import CapacityTarget, MpiJob, TopologyPlacement, UltraServerTarget
from eks_ultraserver.config import EnvironmentConfig, read_environment
from eks_ultraserver.helm.kueue import (
    DEFAULT_CONFIGURATION,
    EXCLUDED_RESOURCE_PREFIXES,
    MPIJOB_FRAMEWORK,
    POD_LEVEL_FRAMEWORKS,
    KueueValues,
)
from eks_ultraserver.helm.values import unknown_keys
from eks_ultraserver.model import (
    CAPACITY_TYPE_LABEL,
    RESERVED_CAPACITY_LABEL,
    SYSTEM_NODE_LABEL,
    SYSTEM_NODE_LABEL_VALUE,
    ConfigurationError,
    UltraServerType,
)
from eks_ultraserver.queues import (
    QUEUE_NAME_LABEL,
    TOPOLOGY_LEVELS,
    Flavor,
    FlavorKind,
    QueueSpec,
    fleet_flavors,
    queue_problems,
)
from eks_ultraserver.versions import KUEUE, MPI_OPERATOR

from conftest import PACKAGED_UPSTREAM, REPO, UPSTREAM, crd_validator, synth_environment

SYSTEM = {SYSTEM_NODE_LABEL: SYSTEM_NODE_LABEL_VALUE}
CRITICAL = [{"key": "CriticalAddonsOnly", "operator": "Exists"}]
US = [
    {"capacityReservationId": "cr-0123456789abcdef0", "type": "u-p6e-gb200x72", "name": "us-a"},
    {"capacityReservationId": "cr-0123456789abcdef1", "type": "u-p6e-gb200x72", "name": "us-b"},
]
TWO_TEAMS = [
    {"name": "team-a", "quotas": {"ultraserver": 72}, "borrowingLimit": {"ultraserver": 72}},
    {
        "name": "team-b",
        "namespace": "research",
        "quotas": {"ultraserver": 72},
        "lendingLimit": {"ultraserver": 36},
    },
]
RESERVED_NG = ReservedCapacitySpec(
    name="ng",
    instance_type="p5.48xlarge",
    instance_count=2,
    capacity_reservation_id="cr-0bbbbbbbbbbbbbbb2",
    availability_zone="us-east-1a",
)
RESERVED_KARPENTER = ReservedCapacitySpec(
    name="kg",
    instance_type="g6e.48xlarge",
    instance_count=1,
    capacity_reservation_id="cr-0ccccccccccccccc3",
    availability_zone="us-east-1b",
    provisioner=ReservedProvisioner.KARPENTER,
)
BURST = BurstCapacitySpec(instance_families=("g6e",), max_gpus=16)
US72 = UltraServerTarget(name="us-a", type=UltraServerType.U_P6E_GB200X72)
US72B = UltraServerTarget(name="us-b", type=UltraServerType.U_P6E_GB200X72)


# --------------------------------------------------------------------------------------
# Upstream data
# --------------------------------------------------------------------------------------


def _validator(path: Path, version: str) -> jsonschema.Draft7Validator:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    (crd,) = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    return crd_validator(crd, version)


@pytest.fixture(scope="module")
def crds():
    kinds = {
        "Topology": "topology",
        "ResourceFlavor": "resourceflavor",
        "ClusterQueue": "clusterqueue",
        "LocalQueue": "localqueue",
    }
    out = {kind: _validator(UPSTREAM / f"kueue-crd-{f}-v0.19.2.yaml", "v1beta2") for kind, f in kinds.items()}
    out["MPIJob"] = _validator(PACKAGED_UPSTREAM / f"mpi-operator-{MPI_OPERATOR.version}.yaml", "v2beta1")
    return out


def _errors(validator, obj) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


def _assert_valid(crds, objects):
    for obj in objects:
        if obj["kind"] in crds:
            assert obj["apiVersion"].endswith(("/v1beta2", "/v2beta1"))
            assert _errors(crds[obj["kind"]], obj) == [], obj["metadata"]["name"]


def _upstream_values() -> dict:
    return yaml.safe_load((UPSTREAM / f"kueue-values-v{KUEUE.version}.yaml").read_text())


def _upstream_configuration() -> dict:
    return yaml.safe_load(_upstream_values()["managerConfig"]["controllerManagerConfigYaml"])


# --------------------------------------------------------------------------------------
# Helm values
# --------------------------------------------------------------------------------------


def test_every_values_key_exists_in_the_chart():
    """GIVEN the controller pinned to the system nodes THEN every key set is a key of the
    chart's values.yaml at v0.19.2, and the pins are there."""
    values = KueueValues(system_node_selector=SYSTEM, system_node_tolerations=CRITICAL).values()
    assert unknown_keys(values, _upstream_values()) == []
    controller = values["controllerManager"]
    assert controller["nodeSelector"] == SYSTEM
    assert controller["tolerations"] == CRITICAL
    assert controller["manager"]["image"] == {
        "repository": "registry.k8s.io/kueue/kueue",
        "tag": "v0.19.2",
        "pullPolicy": "IfNotPresent",
    }
    assert (KUEUE.chart, KUEUE.repository, KUEUE.version) == (
        "kueue",
        "oci://registry.k8s.io/kueue/charts",
        "0.19.2",
    )


def test_the_default_configuration_is_the_charts():
    """The library's copy of the chart's Configuration equals the one in values.yaml."""
    assert _upstream_configuration() == DEFAULT_CONFIGURATION


def test_configuration_keeps_the_chart_default_adds_gpu_only_quotas_and_the_mpijob_integration():
    """THEN the YAML string in the values is the chart's configuration, with Kueue told to
    ignore every resource but GPUs and without the pod-level integrations (whose pod
    webhooks fail closed in the platform's namespaces); the MPIJob integration stays even
    when an override replaces the frameworks list."""
    text = KueueValues().values()["managerConfig"]["controllerManagerConfigYaml"]
    assert isinstance(text, str)
    config = yaml.safe_load(text)
    upstream = _upstream_configuration()
    assert {k: v for k, v in config.items() if k not in ("resources", "integrations")} == {
        k: v for k, v in upstream.items() if k != "integrations"
    }
    assert config["integrations"]["frameworks"] == [
        f for f in upstream["integrations"]["frameworks"] if f not in POD_LEVEL_FRAMEWORKS
    ]
    assert "pod" in upstream["integrations"]["frameworks"]
    assert not set(POD_LEVEL_FRAMEWORKS) & set(config["integrations"]["frameworks"])
    assert {"batch/job", MPIJOB_FRAMEWORK} <= set(config["integrations"]["frameworks"])
    assert config["resources"] == {"excludeResourcePrefixes": list(EXCLUDED_RESOURCE_PREFIXES)}
    assert MPIJOB_FRAMEWORK in upstream["integrations"]["frameworks"]
    assert "nvidia.com/gpu" not in EXCLUDED_RESOURCE_PREFIXES
    assert not any("nvidia.com/gpu".startswith(p) for p in EXCLUDED_RESOURCE_PREFIXES)
    assert all(
        any(r.startswith(p) for p in EXCLUDED_RESOURCE_PREFIXES)
        for r in ("cpu", "memory", "vpc.amazonaws.com/efa")
    )
    overridden = KueueValues(
        configuration={"integrations": {"frameworks": ["batch/job"]}}
    ).configuration_yaml()
    assert yaml.safe_load(overridden)["integrations"]["frameworks"] == ["batch/job", MPIJOB_FRAMEWORK]


def test_a_yaml_configuration_in_extra_values_is_refused():
    with pytest.raises(
        ConfigurationError, match=r"addonValues\.kueue\.managerConfig\.controllerManagerConfigYaml"
    ):
        KueueValues(extra_values={"managerConfig": {"controllerManagerConfigYaml": "kind: Configuration"}})
    with pytest.raises(ConfigurationError, match=r"system_node_selector"):
        KueueValues(system_node_selector={"bad key!": "x"})


# --------------------------------------------------------------------------------------
# Topology, flavors, queues
# --------------------------------------------------------------------------------------


def _objects(chart) -> list[dict]:
    return chart.to_json()


def _by_kind(objects, kind) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_two_teams_with_reserved_and_burst_capacity_validate_against_the_crds(crds):
    """GIVEN two UltraServers, a node-group and a Karpenter reservation and burst capacity,
    and two teams WHEN the chart is built THEN every Kueue object validates against the
    v0.19.2 CRDs, with the Topology, the flavors' labels and one cohort."""
    flavors = fleet_flavors(
        ultraserver_gpus=144, reserved_capacity=[RESERVED_NG, RESERVED_KARPENTER], burst_capacity=BURST
    )
    queues = [
        QueueSpec(
            name="team-a", quotas={"ultraserver": 72, "reserved-ng": 16}, borrowing_limit={"ultraserver": 72}
        ),
        QueueSpec(
            name="team-b",
            namespace="research",
            quotas={"ultraserver": 72, "burst": 16},
            lending_limit={"ultraserver": 36},
        ),
    ]
    objects = _objects(KueueQueuesChart(cdk8s.App(), "q", flavors=flavors, queues=queues))
    _assert_valid(crds, objects)

    (topology,) = _by_kind(objects, "Topology").values()
    assert [level["nodeLabel"] for level in topology["spec"]["levels"]] == list(TOPOLOGY_LEVELS)
    assert TOPOLOGY_LEVELS[0] == "topology.k8s.aws/network-node-layer-1"
    assert TOPOLOGY_LEVELS[-2:] == ("nvidia.com/gpu.clique", "kubernetes.io/hostname")

    rf = _by_kind(objects, "ResourceFlavor")
    assert set(rf) == {"ultraserver", "reserved-ng", "reserved-kg", "burst"}
    assert rf["ultraserver"]["spec"]["topologyName"] == topology["metadata"]["name"]
    assert rf["ultraserver"]["spec"]["nodeLabels"] == {
        "node.kubernetes.io/instance-type": "p6e-gb200.36xlarge"
    }
    assert rf["reserved-ng"]["spec"]["nodeLabels"] == {RESERVED_CAPACITY_LABEL: "ng"}
    assert rf["reserved-kg"]["spec"]["nodeLabels"] == {
        CAPACITY_TYPE_LABEL: "reserved",
        "karpenter.sh/capacity-type": "reserved",
        "node.kubernetes.io/instance-type": "g6e.48xlarge",
    }
    assert rf["burst"]["spec"]["nodeLabels"] == {CAPACITY_TYPE_LABEL: "burst"}
    for name, flavor in rf.items():
        assert flavor["spec"]["tolerations"] == [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
        assert ("topologyName" in flavor["spec"]) == (name == "ultraserver")

    cq = _by_kind(objects, "ClusterQueue")
    assert set(cq) == {"team-a", "team-b"}
    assert {q["spec"]["cohortName"] for q in cq.values()} == {"eks-ultraserver"}
    (group,) = cq["team-a"]["spec"]["resourceGroups"]
    assert group["coveredResources"] == ["nvidia.com/gpu"]
    assert group["flavors"] == [
        {
            "name": "ultraserver",
            "resources": [{"name": "nvidia.com/gpu", "nominalQuota": 72, "borrowingLimit": 72}],
        },
        {"name": "reserved-ng", "resources": [{"name": "nvidia.com/gpu", "nominalQuota": 16}]},
    ]
    assert cq["team-b"]["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0]["lendingLimit"] == 36
    assert cq["team-b"]["spec"]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "research"}
    }

    lq = [o for o in objects if o["kind"] == "LocalQueue"]
    assert {(q["metadata"]["namespace"], q["metadata"]["name"], q["spec"]["clusterQueue"]) for q in lq} == {
        ("team-a", "team-a", "team-a"),
        ("research", "team-b", "team-b"),
    }
    assert sorted(_by_kind(objects, "Namespace")) == ["research", "team-a"]
    # namespaces come before the LocalQueues in them (kubectl applies in order)
    kinds = [o["kind"] for o in objects]
    assert max(i for i, k in enumerate(kinds) if k == "Namespace") < kinds.index("LocalQueue")


def test_without_queues_one_default_queue_holds_every_gpu(crds):
    flavors = fleet_flavors(ultraserver_gpus=144, reserved_capacity=[RESERVED_NG])
    objects = _objects(KueueQueuesChart(cdk8s.App(), "q", flavors=flavors))
    _assert_valid(crds, objects)
    (cq,) = _by_kind(objects, "ClusterQueue").values()
    assert cq["metadata"]["name"] == "default"
    quotas = {
        f["name"]: f["resources"][0]["nominalQuota"] for f in cq["spec"]["resourceGroups"][0]["flavors"]
    }
    assert quotas == {"ultraserver": 144, "reserved-ng": 16}  # 2 x p5.48xlarge, 8 GPUs each
    (lq,) = _by_kind(objects, "LocalQueue").values()
    assert (lq["metadata"]["namespace"], lq["spec"]["clusterQueue"]) == ("default", "default")
    assert _by_kind(objects, "Namespace") == {}


def _context(**extra) -> dict:
    return {"ultraServers": json.dumps(US), "availabilityZone": "us-east-1-dfw-2a", **extra}


@pytest.mark.parametrize(
    ("queues", "message"),
    [
        (
            [{"name": "a", "quotas": {"reserved-x": 1}}],
            r"queues\[0\]\.quotas\.reserved-x: unknown flavor 'reserved-x'.*reservedCapacity",
        ),
        (
            [{"name": "a", "quotas": {"burst": 1}}],
            r"queues\[0\]\.quotas\.burst: unknown flavor 'burst' \(the burst flavor exists with burstCapacity only\)",
        ),
        (
            [{"name": "a", "quotas": {"ultraserver": 145}}],
            r"queues\[0\]\.quotas\.ultraserver: 145 GPUs is more than the flavor has \(144 GPUs\)",
        ),
        (
            [{"name": "a", "quotas": {"ultraserver": 100}}, {"name": "b", "quotas": {"ultraserver": 100}}],
            r"queues: the quotas of flavor 'ultraserver' add up to 200 GPUs, more than the 144",
        ),
        (
            [{"name": "a", "quotas": {"ultraserver": 1}}, {"name": "a", "quotas": {"ultraserver": 1}}],
            r"queues\[1\]\.name: 'a' is already the name of entry 0",
        ),
        (
            [{"name": "Team_A", "quotas": {"ultraserver": 1}}],
            r"queues\[0\]\.name: 'Team_A' is not a DNS-1123 label",
        ),
        (
            [{"name": "a", "namespace": "NS", "quotas": {"ultraserver": 1}}],
            r"queues\[0\]\.namespace: 'NS' is not a Kubernetes namespace",
        ),
        (
            [{"name": "a", "quotas": {"ultraserver": -8}}],
            r"queues\[0\]\.quotas\.ultraserver: -8 is not a whole number of GPUs",
        ),
        ([{"name": "a", "quotas": {}}], r"queues\[0\]\.quotas: missing"),
        (
            [{"name": "a", "quotas": {"ultraserver": 8}, "borrowingLimit": {"ultraserver": 8}}],
            r"queues\[0\]\.borrowingLimit: .* single queue: there is no other queue in the cohort to borrow from",
        ),
        (
            [{"name": "a", "quotas": {"ultraserver": 8}, "lendingLimit": {"ultraserver": 9}}],
            r"queues\[0\]\.lendingLimit\.ultraserver: 9 is more than the team's quota of 8",
        ),
        ([{"name": "a", "quotas": {"ultraserver": 8}, "team": "x"}], r"queues\[0\]: unknown key\(s\) 'team'"),
        ('{"name": "a"}', r"queues: \{'name': 'a'\} is not a list of queues"),
        ("[not json", r"queues: '\[not json' is not valid JSON"),
    ],
)
def test_bad_queues_are_one_clear_error(queues, message):
    raw = queues if isinstance(queues, str) else json.dumps(queues)
    with pytest.raises(ConfigurationError, match=message):
        read_environment(_context(queues=raw).get)


def test_queues_with_kueue_off_are_refused_and_every_problem_is_listed():
    with pytest.raises(ConfigurationError) as err:
        read_environment(
            _context(kueue="false", queues=json.dumps([{"name": "a", "quotas": {"ultraserver": 1}}])).get
        )
    assert any("queues: given, but kueue is false" in p for p in err.value.problems)
    with pytest.raises(ConfigurationError, match=r"kueue: 'sometimes' is not a boolean"):
        read_environment(_context(kueue="sometimes").get)


def test_the_queues_key_reaches_the_configuration():
    config = read_environment(_context(queues=json.dumps(TWO_TEAMS)).get)
    assert config.kueue is True
    assert [(q.name, q.namespace, dict(q.quotas)) for q in config.queues] == [
        ("team-a", "team-a", {"ultraserver": 72}),
        ("team-b", "research", {"ultraserver": 72}),
    ]
    assert read_environment(_context(kueue="false").get).kueue is False
    assert read_environment(_context().get).queues == ()


# --------------------------------------------------------------------------------------
# The environment
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_teams():
    return synth_environment({"ultraServers": US, "queues": TWO_TEAMS})


def _of_type(template, cfn_type) -> dict:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == cfn_type}


def test_environment_installs_kueue_after_the_mpi_operator_then_the_queues(two_teams, crds):
    """GIVEN two teams in cdk.json WHEN synthesized THEN the Kueue release (OCI chart,
    pinned, waiting, controller on the system nodes) depends on the MPI operator release,
    and the queues manifest on the Kueue release; its objects validate against the CRDs."""
    template = two_teams.template
    helm = _of_type(template, "Custom::AWSCDK-EKS-HelmChart")
    (kueue_id,) = [k for k, v in helm.items() if v["Properties"].get("Chart") == "kueue"]
    props = helm[kueue_id]["Properties"]
    assert props["Repository"] == "oci://registry.k8s.io/kueue/charts/kueue"
    assert (props["Version"], props["Namespace"], props["Release"]) == ("0.19.2", "kueue-system", "kueue")
    assert props["Wait"] is True
    values = json.loads(props["Values"]) if isinstance(props["Values"], str) else props["Values"]
    assert values["controllerManager"]["nodeSelector"] == SYSTEM
    (mpi_id,) = [k for k, v in helm.items() if "MpiOperator" in k]
    assert mpi_id in helm[kueue_id]["DependsOn"]

    manifests = _of_type(template, "Custom::AWSCDK-EKS-KubernetesResource")
    (queues_id,) = [k for k in manifests if "KueueQueues" in k]
    assert kueue_id in manifests[queues_id]["DependsOn"]
    objects = json.loads(manifests[queues_id]["Properties"]["Manifest"])
    _assert_valid(crds, objects)
    assert sorted(o["metadata"]["name"] for o in objects if o["kind"] == "ClusterQueue") == [
        "team-a",
        "team-b",
    ]
    assert sorted(o["metadata"]["name"] for o in objects if o["kind"] == "LocalQueue") == ["team-a", "team-b"]
    assert {o["kind"] for o in objects} == {
        "Namespace",
        "Topology",
        "ResourceFlavor",
        "ClusterQueue",
        "LocalQueue",
    }


def test_kueue_false_installs_nothing_of_kueue():
    template = synth_environment({"kueue": False}).template
    helm = _of_type(template, "Custom::AWSCDK-EKS-HelmChart")
    assert [v for v in helm.values() if v["Properties"].get("Chart") == "kueue"] == []
    assert [k for k in _of_type(template, "Custom::AWSCDK-EKS-KubernetesResource") if "Kueue" in k] == []


def test_the_construct_refuses_bad_queues_before_building():
    import aws_cdk as cdk

    from eks_ultraserver.config import UltraServerSpec
    from eks_ultraserver.constructs.environment import UltraServerEnvironment

    stack = cdk.Stack(cdk.App(), "S", env=cdk.Environment(account="123456789012", region="us-east-1"))
    spec = UltraServerSpec(
        capacity_reservation_id="cr-0123456789abcdef0", type=UltraServerType.U_P6E_GB200X36, name="us-1"
    )
    with pytest.raises(
        ConfigurationError,
        match=r"queues\[0\]\.quotas\.ultraserver: 37 GPUs is more than the flavor has \(36 GPUs\)",
    ):
        UltraServerEnvironment(
            stack,
            "Env",
            ultraservers=[spec],
            availability_zone="us-east-1-dfw-2a",
            queues=[QueueSpec(name="a", quotas={"ultraserver": 37})],
        )
    with pytest.raises(ConfigurationError, match=r"queues: given, but kueue is false"):
        UltraServerEnvironment(
            stack,
            "Env2",
            ultraservers=[spec],
            availability_zone="us-east-1-dfw-2a",
            kueue=False,
            queues=[QueueSpec(name="a", quotas={"ultraserver": 1})],
        )
    assert stack.node.try_find_child("Env") is None


# --------------------------------------------------------------------------------------
# Queued jobs
# --------------------------------------------------------------------------------------


def _mpijob(**kwargs) -> tuple[MpiJob, dict]:
    kwargs.setdefault("ultraservers", [US72])
    job = MpiJob(
        cdk8s.App(), "j", name="train", image="example.com/train:1.0", command=["python", "t.py"], **kwargs
    )
    (mpijob,) = [o for o in job.to_json() if o["kind"] == "MPIJob"]
    return job, mpijob


def _annotations(mpijob: dict) -> dict[str, dict]:
    specs = mpijob["spec"]["mpiReplicaSpecs"]
    return {
        role: specs[role]["template"]["metadata"].get("annotations", {}) for role in ("Launcher", "Worker")
    }


def test_a_queued_job_in_one_ultraserver_requires_one_nvlink_domain(crds):
    """GIVEN a queue and a job that fits one UltraServer THEN the MPIJob carries the queue
    label and both pod sets require the clique; the ComputeDomain claim and EFA stay."""
    job, mpijob = _mpijob(workers=18, efa_devices=4, queue="team-a", namespace="team-a")
    assert mpijob["metadata"]["labels"][QUEUE_NAME_LABEL] == "team-a"
    required = {"kueue.x-k8s.io/podset-required-topology": "nvidia.com/gpu.clique"}
    assert _annotations(mpijob) == {"Launcher": required, "Worker": required}
    worker = mpijob["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"]
    assert (
        worker["resourceClaims"]
        and worker["containers"][0]["resources"]["limits"]["vpc.amazonaws.com/efa"] == 4
    )
    assert job.topology_placement is TopologyPlacement.REQUIRED
    assert _errors(crds["MPIJob"], mpijob) == []
    # the queue label is on the MPIJob only, not on the ComputeDomain
    (cd,) = [o for o in job.to_json() if o["kind"] == "ComputeDomain"]
    assert QUEUE_NAME_LABEL not in cd["metadata"].get("labels", {})


def test_a_job_over_two_ultraservers_is_sliced_per_ultraserver_or_preferred(crds):
    _, sliced = _mpijob(ultraservers=[US72, US72B], workers=36, efa_devices=4, queue="q")
    annotations = _annotations(sliced)
    assert annotations["Worker"] == {
        "kueue.x-k8s.io/podset-slice-required-topology": "nvidia.com/gpu.clique",
        "kueue.x-k8s.io/podset-slice-size": "18",
    }
    assert annotations["Launcher"] == {"kueue.x-k8s.io/podset-required-topology": "nvidia.com/gpu.clique"}
    assert _errors(crds["MPIJob"], sliced) == []
    _, preferred = _mpijob(ultraservers=[US72, US72B], workers=20, efa_devices=4, queue="q")
    preferred_clique = {"kueue.x-k8s.io/podset-preferred-topology": "nvidia.com/gpu.clique"}
    assert _annotations(preferred) == {"Launcher": preferred_clique, "Worker": preferred_clique}
    _, free = _mpijob(workers=2, queue="q", topology="unconstrained")
    assert _annotations(free)["Worker"] == {"kueue.x-k8s.io/podset-unconstrained-topology": "true"}


def test_without_a_queue_or_on_other_capacity_no_kueue_metadata():
    _, plain = _mpijob(workers=2)
    assert QUEUE_NAME_LABEL not in plain["metadata"].get("labels", {})
    assert _annotations(plain) == {"Launcher": {}, "Worker": {}}
    capacity = CapacityTarget(node_selector={CAPACITY_TYPE_LABEL: "burst"}, gpus_per_node=8)
    _, burst = _mpijob(ultraservers=[], capacity=capacity, workers=2, slots_per_worker=8, queue="q")
    assert burst["metadata"]["labels"][QUEUE_NAME_LABEL] == "q"
    assert _annotations(burst) == {"Launcher": {}, "Worker": {}}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workers": 2, "topology": "required"}, r"topology: 'required' given without queue"),
        ({"workers": 2, "queue": "Team_A"}, r"queue: 'Team_A' is not a LocalQueue name"),
        (
            {"workers": 2, "queue": "q", "topology": "nearby"},
            r"topology: 'nearby' is not allowed; use one of 'required'",
        ),
        (
            {"ultraservers": [US72, US72B], "workers": 20, "queue": "q", "topology": "required"},
            r"20 workers do not fit in one UltraServer \(at most 18 nodes\)",
        ),
        (
            {"ultraservers": [US72, US72B], "workers": 20, "queue": "q", "topology": "slices"},
            r"20 workers do not divide by 18",
        ),
    ],
)
def test_bad_queue_arguments_are_refused(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        _mpijob(**kwargs)


def test_manifests_command_queues_the_mpijobs(tmp_path, monkeypatch, capsys):
    """GIVEN `manifests --queue team-a --namespace team-a` THEN every MPIJob written has the
    queue label and namespace, and the IMEX check Job is not queued."""
    monkeypatch.chdir(REPO)
    code = cli.main(["manifests", "--out", str(tmp_path), "--queue", "team-a", "--namespace", "team-a"])
    assert code == 0
    objects = [
        o
        for p in sorted((tmp_path / "validation").glob("*.yaml"))
        for o in yaml.safe_load_all(p.read_text())
        if o
    ]
    mpijobs = [o for o in objects if o["kind"] == "MPIJob"]
    assert mpijobs and all(o["metadata"]["labels"][QUEUE_NAME_LABEL] == "team-a" for o in mpijobs)
    assert all(o["metadata"]["namespace"] == "team-a" for o in objects)
    assert all(QUEUE_NAME_LABEL not in o["metadata"].get("labels", {}) for o in objects if o["kind"] == "Job")
    config = EnvironmentConfig.from_mapping(json.loads((REPO / "cdk.json").read_text())["context"])
    assert len(mpijobs) == len(config.ultraservers)


def test_the_crd_validators_catch_a_wrong_field(crds):
    """The schemas bite: an unknown field, a missing required one and a bad quota type."""
    cq = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": {"name": "x"},
        "spec": {
            "cohort": "old-v1beta1-name",
            "resourceGroups": [
                {"flavors": [{"name": "f", "resources": [{"name": "nvidia.com/gpu", "nominalQuota": [1]}]}]}
            ],
        },
    }
    errors = _errors(crds["ClusterQueue"], cq)
    assert any("cohort" in e for e in errors)
    assert any("coveredResources" in e for e in errors)
    assert any("nominalQuota" in e for e in errors)
    assert _errors(
        crds["Topology"],
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Topology", "metadata": {"name": "t"}, "spec": {}},
    )


def test_validation_jobs_wait_for_kueue():
    """Kueue's webhooks intercept MPIJobs and Jobs: the validation jobs are applied once
    Kueue is ready."""
    template = synth_environment({"validationJobs": True}).template
    (kueue_id,) = [k for k, v in _of_type(template, "Custom::AWSCDK-EKS-HelmChart").items() if "Kueue" in k]
    jobs = {
        k: v
        for k, v in _of_type(template, "Custom::AWSCDK-EKS-KubernetesResource").items()
        if any(o["kind"] in ("MPIJob", "Job") for o in json.loads(v["Properties"]["Manifest"]))
    }
    assert jobs and all(kueue_id in v["DependsOn"] for v in jobs.values())


def test_the_environment_passes_kueue_configuration_and_keeps_the_mpijob_integration():
    import aws_cdk as cdk

    from eks_ultraserver.config import UltraServerSpec
    from eks_ultraserver.constructs.environment import UltraServerEnvironment

    stack = cdk.Stack(cdk.App(), "S", env=cdk.Environment(account="123456789012", region="us-east-1"))
    spec = UltraServerSpec(
        capacity_reservation_id="cr-0123456789abcdef0", type=UltraServerType.U_P6E_GB200X36, name="us-1"
    )
    env = UltraServerEnvironment(
        stack,
        "Env",
        ultraservers=[spec],
        availability_zone="us-east-1-dfw-2a",
        kueue_configuration={"integrations": {"frameworks": ["batch/job"]}},
    )
    assert env.kueue is not None
    config = yaml.safe_load(env.kueue.values["managerConfig"]["controllerManagerConfigYaml"])
    assert config["integrations"]["frameworks"] == ["batch/job", MPIJOB_FRAMEWORK]


def test_a_shared_pool_flavor_counts_replicas_and_a_renamed_one_no_gpus():
    """GIVEN a reservation shared by time-slicing x4, one shared with renameByDefault and a
    burst pool shared x2 WHEN the flavors are built THEN a shared flavor holds physical GPUs
    x replicas (what its nodes advertise as nvidia.com/gpu) and the renamed one none (its
    nodes advertise nvidia.com/gpu.shared, which no ClusterQueue covers)."""
    from eks_ultraserver.capacity import (
        BurstCapacitySpec,
        GpuSharingSpec,
        ReservedCapacitySpec,
        SharingStrategy,
    )
    from eks_ultraserver.queues import fleet_flavors

    def reservation(name, rid, sharing=None):
        return ReservedCapacitySpec(
            name=name,
            instance_type="p5.48xlarge",
            instance_count=2,
            capacity_reservation_id=rid,
            sharing=sharing,
        )

    reserved = [
        reservation(
            "eval", "cr-0bbbbbbbbbbbbbbb1", GpuSharingSpec(strategy=SharingStrategy.TIME_SLICING, replicas=4)
        ),
        reservation(
            "notebooks",
            "cr-0bbbbbbbbbbbbbbb2",
            GpuSharingSpec(strategy=SharingStrategy.TIME_SLICING, replicas=4, rename_by_default=True),
        ),
        reservation("plain", "cr-0bbbbbbbbbbbbbbb3"),
    ]
    burst = BurstCapacitySpec(
        instance_families=("g6e",),
        max_gpus=8,
        sharing=GpuSharingSpec(strategy=SharingStrategy.TIME_SLICING, replicas=2),
    )
    flavors = fleet_flavors(ultraserver_gpus=72, reserved_capacity=reserved, burst_capacity=burst)
    assert flavors["reserved-eval"].gpus == 2 * 8 * 4
    assert flavors["reserved-notebooks"].gpus == 0
    assert flavors["reserved-plain"].gpus == 2 * 8
    assert flavors["burst"].gpus == 8 * 2
    assert flavors["ultraserver"].gpus == 72


# --------------------------------------------------------------------------------------
# Found in review: overlapping flavors, Kueue's limits, bad configuration, open queues
# --------------------------------------------------------------------------------------


def test_a_karpenter_reservation_flavor_selects_no_node_of_a_node_group_reservation():
    """GIVEN a node-group and a Karpenter reservation of the same instance type WHEN
    synthesized THEN the Karpenter reservation's flavor does not select the node group's
    nodes (their labels in the template, plus the kubelet's instance-type label): Kueue
    would otherwise count those GPUs under both flavors."""
    zone = "us-east-1-dfw-2a"
    reserved = [
        {"name": "ng", "instanceType": "p5.48xlarge", "instanceCount": 1,
         "capacityReservationId": "cr-0bbbbbbbbbbbbbbb1", "availabilityZone": zone},
        {"name": "kg", "instanceType": "p5.48xlarge", "instanceCount": 1,
         "capacityReservationId": "cr-0bbbbbbbbbbbbbbb2", "availabilityZone": zone, "provisioner": "karpenter"},
    ]  # fmt: skip
    synth = synth_environment({"ultraServers": US[:1], "reservedCapacity": reserved})
    resources = synth.template["Resources"]
    (labels,) = [
        r["Properties"]["Labels"]
        for r in resources.values()
        if r["Type"] == "AWS::EKS::Nodegroup"
        and r["Properties"].get("Labels", {}).get(RESERVED_CAPACITY_LABEL) == "ng"
    ]
    node_labels = {**labels, "node.kubernetes.io/instance-type": "p5.48xlarge"}
    (manifest,) = [
        json.loads(r["Properties"]["Manifest"])
        for k, r in resources.items()
        if r["Type"] == "Custom::AWSCDK-EKS-KubernetesResource" and "KueueQueues" in k
    ]
    flavors = _by_kind(manifest, "ResourceFlavor")
    selects = lambda f: all(node_labels.get(k) == v for k, v in f["spec"]["nodeLabels"].items())  # noqa: E731
    assert selects(flavors["reserved-ng"])
    assert not selects(flavors["reserved-kg"])
    assert flavors["reserved-kg"]["spec"]["nodeLabels"]["karpenter.sh/capacity-type"] == "reserved"


def _many_flavors(count: int) -> dict[str, Flavor]:
    flavors = {
        f"reserved-r{i}": Flavor(
            name=f"reserved-r{i}", kind=FlavorKind.RESERVED, node_labels={"x": str(i)}, gpus=8
        )
        for i in range(count)
    }
    return flavors


def test_a_queue_with_more_flavors_than_a_resource_group_holds_is_refused(crds):
    """The v0.19.2 ClusterQueue CRD holds at most 64 flavors in a resource group: a team
    with quotas on 65 is refused at synth (the CRD would reject the ClusterQueue at deploy);
    64 pass and validate."""
    flavors = _many_flavors(65)
    too_many = QueueSpec(name="team-a", quotas=dict.fromkeys(flavors, 8))
    assert any("65 flavors, more than the 64" in p for p in queue_problems([too_many], flavors))
    just_right = QueueSpec(name="team-a", quotas=dict.fromkeys(list(flavors)[:64], 8))
    assert queue_problems([just_right], flavors) == []
    chart = KueueQueuesChart(cdk8s.App(), "q", flavors=dict(list(flavors.items())[:64]), queues=[just_right])
    _assert_valid(crds, _objects(chart))


def test_the_default_queue_of_a_fleet_with_64_reservations_is_refused_before_any_construct():
    """GIVEN 64 reservations (65 flavors with the UltraServers') and no queues THEN one
    ConfigurationError says to give queues or turn Kueue off, and nothing was added."""
    import aws_cdk as cdk

    from eks_ultraserver.config import UltraServerSpec
    from eks_ultraserver.constructs.environment import UltraServerEnvironment

    stack = cdk.Stack(cdk.App(), "S", env=cdk.Environment(account="123456789012", region="us-east-1"))
    reserved = [
        ReservedCapacitySpec(
            name=f"r{i}",
            instance_type="p5.48xlarge",
            instance_count=1,
            capacity_reservation_id=f"cr-0{i:016x}",
            availability_zone="us-east-1-dfw-2a",
        )
        for i in range(64)
    ]
    spec = UltraServerSpec(
        capacity_reservation_id="cr-1aaaaaaaaaaaaaaaa", type=UltraServerType.U_P6E_GB200X72, name="us-1"
    )
    with pytest.raises(
        ConfigurationError, match=r"65 flavors, more than the 64 .* give queues .* or set kueue to false"
    ):
        UltraServerEnvironment(
            stack,
            "Env",
            ultraservers=[spec],
            availability_zone="us-east-1-dfw-2a",
            reserved_capacity=reserved,
        )
    assert stack.node.try_find_child("Env") is None


@pytest.mark.parametrize(
    "configuration",
    [{"integrations": ["batch/job"]}, {"integrations": "batch/job"}, "abc", {"integrations": None}],
    ids=["list", "text", "not-an-object", "none"],
)
def test_a_bad_kueue_configuration_is_one_error_before_any_construct(configuration):
    import aws_cdk as cdk

    from eks_ultraserver.config import UltraServerSpec
    from eks_ultraserver.constructs.environment import UltraServerEnvironment

    stack = cdk.Stack(cdk.App(), "S", env=cdk.Environment(account="123456789012", region="us-east-1"))
    spec = UltraServerSpec(
        capacity_reservation_id="cr-0123456789abcdef0", type=UltraServerType.U_P6E_GB200X36, name="us-1"
    )
    with pytest.raises(ConfigurationError, match=r"kueue_configuration"):
        UltraServerEnvironment(
            stack,
            "Env",
            ultraservers=[spec],
            availability_zone="us-east-1-dfw-2a",
            kueue_configuration=configuration,
        )
    assert stack.node.try_find_child("Env") is None
    with pytest.raises(ConfigurationError, match=r"configuration"):
        KueueValues(configuration=configuration)


def test_only_the_generated_default_queue_takes_every_namespace():
    """A team that happens to be named 'default' gets its own namespace's LocalQueues only;
    the queue generated when no teams are given takes every namespace."""
    flavors = fleet_flavors(ultraserver_gpus=72)
    team = QueueSpec(name="default", namespace="ml", quotas={"ultraserver": 72})
    chosen = _by_kind(
        _objects(KueueQueuesChart(cdk8s.App(), "q", flavors=flavors, queues=[team])), "ClusterQueue"
    )
    assert chosen["default"]["spec"]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "ml"}
    }
    generated = _by_kind(_objects(KueueQueuesChart(cdk8s.App(), "q", flavors=flavors)), "ClusterQueue")
    assert generated["default"]["spec"]["namespaceSelector"] == {}
