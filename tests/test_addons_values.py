"""Helm values of the GPU platform add-ons (charts/): keys checked against upstream, the EKS
guide's settings, every refusal, and the generated MPI operator chart. No CDK, no network."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from eks_ultraserver.config import DraDriverLine
from eks_ultraserver.helm.dra_driver import DraDriverValues
from eks_ultraserver.helm.dra_driver import contradiction_problems as dra_contradiction_problems
from eks_ultraserver.helm.efa import DranetValues, EfaDevicePluginValues
from eks_ultraserver.helm.gpu_operator import (
    GDRCOPY_ENV,
    GPU_OPERATOR_SUBCHART_KEYS,
    PLATFORM_CONTRADICTIONS,
    GpuOperatorValues,
)
from eks_ultraserver.helm.mpi_operator import (
    CHART_VALUES,
    MpiOperatorRelease,
    MpiOperatorValues,
    chart_files,
    load_manifest,
    write_chart,
)
from eks_ultraserver.helm.values import deep_merge, unknown_keys
from eks_ultraserver.model import (
    GPU_TAINT,
    SYSTEM_NODE_LABEL,
    SYSTEM_NODE_LABEL_VALUE,
    ConfigurationError,
)
from eks_ultraserver.versions import (
    DRA_DRIVER,
    DRA_DRIVER_LEGACY,
    DRANET,
    EFA_DEVICE_PLUGIN,
    GPU_OPERATOR,
    GPU_OPERATOR_DEVICE_PLUGIN,
    MPI_OPERATOR,
)

from conftest import PACKAGED_UPSTREAM, UPSTREAM

SYSTEM = {SYSTEM_NODE_LABEL: SYSTEM_NODE_LABEL_VALUE}
CRITICAL = [{"key": "CriticalAddonsOnly", "operator": "Exists"}]
#: The release manifest the library ships and pins.
MPI_MANIFEST = PACKAGED_UPSTREAM / f"mpi-operator-{MPI_OPERATOR.version}.yaml"
#: The release pinned before (test data only), with its SHA-256 (tests/third_party/README.md).
MPI_MANIFEST_V070 = UPSTREAM / "mpi-operator-v0.7.0.yaml"
MPI_V070 = "v0.7.0@sha256:507d5dc8e12bcef43be5b9c89bc93c450581fedb316c62282d7831720ef7b5c4"
CRD_TEMPLATE = "templates/00-customresourcedefinition-mpijobs.kubeflow.org.yaml"
KEEP = "    helm.sh/resource-policy: keep\n"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def mpi_chart():
    return write_chart(MPI_MANIFEST.read_bytes(), MpiOperatorRelease.resolve())


def upstream_values(name: str) -> dict:
    return yaml.safe_load((UPSTREAM / name).read_text())


# --------------------------------------------------------------------------------------
# The key checker itself: it must catch a typo
# --------------------------------------------------------------------------------------

DEFAULTS = {
    "devicePlugin": {"enabled": True, "config": {"name": ""}},
    "featureGates": {},
    "controller": {"nodeSelector": {}, "affinity": {"nodeAffinity": {"preferred": []}}},
    "image": {"tag": None},
    "sub": {"master": {"config": {}}},
}


def test_checker_flags_a_misspelled_top_level_key():
    assert unknown_keys({"devicePlugn": {"enabled": True}}, DEFAULTS) == ["devicePlugn"]


def test_checker_flags_a_misspelled_nested_key():
    assert unknown_keys({"devicePlugin": {"enabeld": True}}, DEFAULTS) == ["devicePlugin.enabeld"]
    assert unknown_keys({"devicePlugin": {"config": {"nmae": "x"}}}, DEFAULTS) == ["devicePlugin.config.nmae"]


def test_checker_accepts_declared_keys_kubernetes_objects_and_free_form_maps():
    values = {
        "devicePlugin": {"enabled": False},
        "featureGates": {"AnyGate": True},  # default {}: free-form
        "controller": {
            "nodeSelector": {"a": "b"},
            # Kubernetes API below affinity, not chart options
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}},
        },
        "image": {"tag": "v1"},
    }
    assert unknown_keys(values, DEFAULTS) == []


def test_checker_accepts_also_known_subchart_keys_and_nothing_else():
    values = {"sub": {"master": {"nodeSelector": {"a": "b"}, "nodeSelectr": {}}}}
    assert unknown_keys(values, DEFAULTS, also_known=["sub.master.nodeSelector"]) == [
        "sub.master.nodeSelectr"
    ]


# --------------------------------------------------------------------------------------
# Every key the library sets exists upstream
# --------------------------------------------------------------------------------------


def _gpu(**kw):
    return GpuOperatorValues(system_node_selector=SYSTEM, system_node_tolerations=CRITICAL, **kw)


def _dra(line, version=None):
    return DraDriverValues(
        line=line, version=version, system_node_selector=SYSTEM, system_node_tolerations=CRITICAL
    )


KEY_CASES = {
    # pinned versions
    f"gpu-operator-{GPU_OPERATOR.version}": (
        lambda: _gpu(),
        f"gpu-operator-values-{GPU_OPERATOR.version}.yaml",
        GPU_OPERATOR_SUBCHART_KEYS,
    ),
    f"dra-driver-nvidia-gpu-{DRA_DRIVER.version}": (
        lambda: _dra(DraDriverLine.KUBERNETES_SIGS),
        f"dra-driver-nvidia-gpu-values-v{DRA_DRIVER.version}.yaml",
        (),
    ),
    f"nvidia-dra-driver-gpu-{DRA_DRIVER_LEGACY.version}": (
        lambda: _dra(DraDriverLine.NGC),
        f"nvidia-dra-driver-gpu-values-v{DRA_DRIVER_LEGACY.version}.yaml",
        (),
    ),
    f"efa-device-plugin-{EFA_DEVICE_PLUGIN.version}": (
        lambda: EfaDevicePluginValues(),
        f"aws-efa-k8s-device-plugin-values-{EFA_DEVICE_PLUGIN.version}.yaml",
        (),
    ),
    f"dranet-{DRANET.version}": (
        lambda: DranetValues(kubernetes_version="1.34"),
        f"aws-dranet-values-v{DRANET.version}.yaml",
        (),
    ),
    # other versions users may pin
    "gpu-operator-v25.3.4": (
        lambda: _gpu(version="v25.3.4"),
        "gpu-operator-values-v25.3.4.yaml",
        GPU_OPERATOR_SUBCHART_KEYS,
    ),
    "gpu-operator-v25.10.1": (
        lambda: _gpu(version="v25.10.1"),
        "gpu-operator-values-v25.10.1.yaml",
        GPU_OPERATOR_SUBCHART_KEYS,
    ),
    "gpu-operator-v26.7.0-without-dra-chart": (
        lambda: _gpu(version="v26.7.0", with_dra_driver_chart=False),
        "gpu-operator-values-v26.7.0.yaml",
        GPU_OPERATOR_SUBCHART_KEYS,
    ),
    "nvidia-dra-driver-gpu-25.12.0": (
        lambda: _dra(DraDriverLine.NGC, "25.12.0"),
        "nvidia-dra-driver-gpu-values-v25.12.0.yaml",
        (),
    ),
    "efa-device-plugin-v0.5.14": (
        lambda: EfaDevicePluginValues(version="v0.5.14"),
        "aws-efa-k8s-device-plugin-values-v0.5.14.yaml",
        (),
    ),
}


@pytest.mark.parametrize("case", sorted(KEY_CASES))
def test_every_key_the_library_sets_exists_in_the_upstream_values(case):
    # GIVEN the builder (with system selector and tolerations, so every optional key is set)
    factory, upstream_file, also_known = KEY_CASES[case]
    # WHEN its values are built THEN each key is declared by that chart version's values.yaml
    assert unknown_keys(factory().values(), upstream_values(upstream_file), also_known=also_known) == []


def test_mpi_operator_values_use_only_the_generated_charts_keys(mpi_chart):
    defaults = yaml.safe_load((mpi_chart.path / "values.yaml").read_text())
    values = MpiOperatorValues(system_node_selector=SYSTEM, system_node_tolerations=CRITICAL).values()
    assert defaults == CHART_VALUES
    assert unknown_keys(values, defaults) == []


# --------------------------------------------------------------------------------------
# What the values say
# --------------------------------------------------------------------------------------


def test_gpu_operator_values_are_the_eks_guide_values():
    values = GpuOperatorValues().values()
    # ml-eks-nvidia-ultraserver, gpu-operator-values.yaml
    assert values["driver"] == {"enabled": False}
    assert values["toolkit"] == {"enabled": False}
    assert values["cdi"] == {"enabled": False}
    assert values["devicePlugin"] == {"enabled": True, "env": [GDRCOPY_ENV]}
    assert values["ccManager"] == {"enabled": False}
    assert values["nfd"] == {"enabled": True}
    assert values["gfd"] == {"enabled": True}
    assert values["migManager"] == {"enabled": False}
    assert values["dcgmExporter"]["enabled"] is True
    assert values["daemonsets"]["tolerations"] == [GPU_TOLERATION]
    assert values["node-feature-discovery"]["worker"]["tolerations"] == [GPU_TOLERATION]
    # not pinned without a selector
    assert "operator" not in values and "master" not in values["node-feature-discovery"]


def test_gpu_toleration_tolerates_the_node_groups_taint():
    tol = GpuOperatorValues().values()["daemonsets"]["tolerations"][0]
    assert tol["key"] == GPU_TAINT.key and tol["effect"] == GPU_TAINT.effect
    assert tol["operator"] == "Exists"  # any value, so also GPU_TAINT's "true"


def test_gpu_operator_controllers_are_pinned_to_the_system_nodes():
    values = GpuOperatorValues(system_node_selector=SYSTEM).values()
    node_affinity = values["operator"]["affinity"]["nodeAffinity"]
    (term,) = node_affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term == {"matchExpressions": [{"key": SYSTEM_NODE_LABEL, "operator": "In", "values": ["system"]}]}
    assert node_affinity["preferredDuringSchedulingIgnoredDuringExecution"] is None
    assert values["node-feature-discovery"]["master"]["nodeSelector"] == SYSTEM
    assert values["node-feature-discovery"]["gc"]["nodeSelector"] == SYSTEM


@pytest.mark.parametrize("line", list(DraDriverLine))
def test_dra_driver_values_are_the_eks_guide_values_on_both_lines(line):
    values = DraDriverValues(line=line).values()
    assert values["resources"] == {"gpus": {"enabled": False}, "computeDomains": {"enabled": True}}
    # null (not {}) so Helm drops the chart's control-plane defaults
    assert values["controller"] == {"nodeSelector": None, "affinity": None, "tolerations": []}
    terms = values["kubeletPlugin"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    # the guide's gpu.present=true, and only on UltraServer nodes (ComputeDomains need IMEX)
    assert terms == [
        {
            "matchExpressions": [
                {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]},
                {"key": "eks-ultraserver.io/ultraserver", "operator": "Exists"},
            ]
        }
    ]
    assert values["kubeletPlugin"]["tolerations"] == [GPU_TOLERATION]


def test_dra_controller_goes_to_the_system_nodes_when_given():
    values = DraDriverValues(system_node_selector=SYSTEM, system_node_tolerations=CRITICAL).values()
    assert values["controller"] == {"nodeSelector": SYSTEM, "affinity": None, "tolerations": CRITICAL}


def test_dra_line_switch_changes_chart_and_repository():
    sigs, ngc = DraDriverValues().chart, DraDriverValues(line=DraDriverLine.NGC).chart
    assert (sigs.chart, sigs.repository, sigs.version) == (
        "dra-driver-nvidia-gpu",
        "oci://registry.k8s.io/dra-driver-nvidia/charts",
        DRA_DRIVER.version,
    )
    assert (ngc.chart, ngc.repository, ngc.version) == (
        "nvidia-dra-driver-gpu",
        "https://helm.ngc.nvidia.com/nvidia",
        DRA_DRIVER_LEGACY.version,
    )


@pytest.mark.parametrize("builder", [EfaDevicePluginValues, lambda: DranetValues(kubernetes_version="1.35")])
def test_efa_components_run_on_gpu_nodes_only(builder):
    values = builder().values()
    assert values == {"tolerations": [GPU_TOLERATION], "nodeSelector": {"nvidia.com/gpu.present": "true"}}


def test_user_values_are_deep_merged_over_the_librarys():
    # GIVEN user values that change one nested key, replace a list and null a default
    extra = {
        "dcgmExporter": {"serviceMonitor": {"enabled": True}},
        "daemonsets": {"tolerations": []},
        "gfd": None,
    }
    values = GpuOperatorValues(extra_values=extra).values()
    assert values["dcgmExporter"] == {"enabled": True, "serviceMonitor": {"enabled": True}}
    assert values["daemonsets"]["tolerations"] == []
    assert values["gfd"] is None
    assert values["driver"] == {"enabled": False}
    assert extra == {
        "dcgmExporter": {"serviceMonitor": {"enabled": True}},
        "daemonsets": {"tolerations": []},
        "gfd": None,
    }, "inputs are not modified"


def test_deep_merge_does_not_share_structure():
    base = {"a": {"b": [1]}}
    merged = deep_merge(base, {"a": {"c": 2}})
    merged["a"]["b"].append(3)
    assert base == {"a": {"b": [1]}}


def test_pinned_gpu_operator_is_v26_3_3_with_device_plugin_v0_19_3():
    # GIVEN the pin WHEN read THEN v26.3.3, whose device plugin reverted the MOFED default
    assert GPU_OPERATOR.version == "v26.3.3" and GPU_OPERATOR.app_version == "v26.3.3"
    built = GpuOperatorValues()
    assert built.chart.version == "v26.3.3"
    assert built.device_plugin_version == "v0.19.3" == GPU_OPERATOR.extra["device_plugin"]


@pytest.mark.parametrize("version", sorted(GPU_OPERATOR_DEVICE_PLUGIN))
def test_device_plugin_map_agrees_with_each_charts_values(version):
    # GIVEN a GPU Operator version the library knows WHEN its values.yaml is read THEN the
    # device plugin it deploys is the one the map (and so the EFA refusal) assumes
    defaults = upstream_values(f"gpu-operator-values-{version}.yaml")
    assert defaults["devicePlugin"]["version"] == GPU_OPERATOR_DEVICE_PLUGIN[version]


def test_cdi_is_set_off_although_the_pinned_chart_defaults_it_on():
    # GIVEN v26.3.3, whose chart turns CDI on, and v25.3.4 (the EKS guide's), where it is off
    assert upstream_values(f"gpu-operator-values-{GPU_OPERATOR.version}.yaml")["cdi"]["enabled"] is True
    assert upstream_values("gpu-operator-values-v25.3.4.yaml")["cdi"]["enabled"] is False
    # WHEN the library's values are built THEN CDI is off explicitly, as the guide ran it
    for version in ("v25.3.4", "v25.10.1", GPU_OPERATOR.version):
        assert GpuOperatorValues(version=version).values()["cdi"] == {"enabled": False}


def test_device_plugin_hands_gdrcopy_to_gpu_pods_and_keeps_it_with_a_version_override():
    # GIVEN v26.3.3's device plugin, which passes /dev/gdrdrv only with GDRCOPY_ENABLED
    assert upstream_values(f"gpu-operator-values-{GPU_OPERATOR.version}.yaml")["devicePlugin"]["env"] == []
    # WHEN the values are built (also with a user's device plugin version)
    plain = GpuOperatorValues().values()["devicePlugin"]
    pinned = GpuOperatorValues(extra_values={"devicePlugin": {"version": "v0.19.3"}}).values()["devicePlugin"]
    # THEN the plugin runs with GDRCOPY_ENABLED=true
    assert {"name": "GDRCOPY_ENABLED", "value": "true"} in plain["env"]
    assert pinned == {"enabled": True, "env": [GDRCOPY_ENV], "version": "v0.19.3"}


def test_confidential_computing_manager_is_off():
    # GIVEN v26.3.3, which turns the CC manager on with defaultMode on
    upstream = upstream_values(f"gpu-operator-values-{GPU_OPERATOR.version}.yaml")["ccManager"]
    assert upstream["enabled"] is True and upstream["defaultMode"] == "on"
    # THEN the library turns it off
    assert GpuOperatorValues().values()["ccManager"] == {"enabled": False}


def test_version_override_of_the_gpu_operator():
    built = GpuOperatorValues(version="v25.3.4")
    assert built.chart.version == "v25.3.4" and built.chart.chart == "gpu-operator"
    assert built.device_plugin_version == "v0.17.4"


# --------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------


def test_refuses_a_device_plugin_that_takes_the_efa_devices():
    with pytest.raises(ConfigurationError, match=r"v0\.19\.1.*NVIDIA/k8s-device-plugin #1692"):
        GpuOperatorValues(extra_values={"devicePlugin": {"version": "v0.19.1"}})


def test_refuses_an_unknown_gpu_operator_version_unless_the_device_plugin_is_named():
    with pytest.raises(
        ConfigurationError,
        match=r"'v26\.3\.0' is a GPU Operator version whose NVIDIA device plugin this library does not know.*devicePlugin\.version",
    ):
        GpuOperatorValues(version="v26.3.0")
    accepted = GpuOperatorValues(version="v26.3.0", extra_values={"devicePlugin": {"version": "v0.19.3"}})
    assert accepted.device_plugin_version == "v0.19.3"
    with pytest.raises(ConfigurationError, match=r"v0\.19\.0-v0\.19\.2"):
        GpuOperatorValues(version="v26.3.0", extra_values={"devicePlugin": {"version": "v0.19.2"}})


def test_refuses_gpu_operator_26_7_with_the_dra_driver_chart():
    with pytest.raises(
        ConfigurationError, match=r"'v26\.7\.0' ships the ComputeDomain CRD.*no key to leave that CRD out"
    ):
        GpuOperatorValues(version="v26.7.0")


def test_gpu_operator_26_7_values_have_no_key_that_drops_the_compute_domain_crd():
    # The refusal above rests on this: v26.7.0's values.yaml has no switch for its CRDs
    # other than these three, none of which leaves crds/ out of the install.
    def paths(tree, prefix=""):
        for key, value in tree.items():
            yield prefix + key
            if isinstance(value, dict):
                yield from paths(value, prefix + key + ".")

    crd_keys = sorted(
        p for p in paths(upstream_values("gpu-operator-values-v26.7.0.yaml")) if "crd" in p.lower()
    )
    # cleanupCRD: uninstall hook; upgradeCRD: pre-upgrade hook; nvidiaDriverCRD: the driver CR
    assert crd_keys == [
        "driver.nvidiaDriverCRD",
        "driver.nvidiaDriverCRD.deployDefaultCR",
        "driver.nvidiaDriverCRD.driverType",
        "driver.nvidiaDriverCRD.enabled",
        "driver.nvidiaDriverCRD.nodeSelector",
        "operator.cleanupCRD",
        "operator.upgradeCRD",
    ]


@pytest.mark.parametrize(("key", "refused", "why", "source"), PLATFORM_CONTRADICTIONS)
def test_refuses_gpu_operator_values_that_contradict_the_platform(key, refused, why, source):
    # GIVEN addonValues setting the key to the refused value (as JSON true and as "true")
    first, second = key.split(".")
    for given in (refused, str(refused).lower()):
        # WHEN the values are built THEN one error names the key, the value, why and the source
        with pytest.raises(ConfigurationError) as err:
            GpuOperatorValues(extra_values={first: {second: given}})
        (problem,) = err.value.problems
        assert problem.startswith(f"addonValues.gpuOperator.{key}: {given!r} contradicts the platform")
        assert why in problem and source in problem
    # the library's own value is accepted
    assert (
        GpuOperatorValues(extra_values={first: {second: not refused}}).values()[first][second] is not refused
    )


def test_every_contradiction_is_reported_at_once():
    extra = {"driver": {"enabled": True}, "toolkit": {"enabled": True}, "migManager": {"enabled": True}}
    with pytest.raises(ConfigurationError) as err:
        GpuOperatorValues(extra_values=extra)
    assert len(err.value.problems) == 3
    assert "amazon-eks-ami #1817" in str(err.value) and "MIG is not supported with CDMM" in str(err.value)


def test_refuses_dra_gpu_allocation_without_the_override():
    # GIVEN resources.gpus.enabled=true alone (the chart's templates then refuse to render)
    with pytest.raises(
        ConfigurationError,
        match=r"addonValues\.draDriver\.resources\.gpus\.enabled: True without "
        r"addonValues\.draDriver\.gpuResourcesEnabledOverride: true: the chart refuses to render",
    ):
        DraDriverValues(extra_values={"resources": {"gpus": {"enabled": True}}})
    # WHEN the override is set too THEN it is the user's explicit choice, accepted
    both = {"resources": {"gpus": {"enabled": "true"}}, "gpuResourcesEnabledOverride": True}
    assert DraDriverValues(extra_values=both).values()["resources"]["gpus"] == {"enabled": "true"}
    assert dra_contradiction_problems({"resources": {"gpus": {"enabled": False}}}) == []


def test_refuses_dra_without_compute_domains():
    with pytest.raises(
        ConfigurationError, match=r"resources\.computeDomains\.enabled: False contradicts the platform"
    ):
        DraDriverValues(extra_values={"resources": {"computeDomains": {"enabled": False}}})


def test_refuses_a_gpu_operator_older_than_the_guide():
    with pytest.raises(ConfigurationError, match=r"older than v25\.3\.4"):
        GpuOperatorValues(version="v24.9.2", extra_values={"devicePlugin": {"version": "v0.17.0"}})


def test_refuses_a_malformed_version_and_bad_selector_together():
    with pytest.raises(ConfigurationError) as err:
        GpuOperatorValues(version="latest", system_node_selector={"bad key!": "x"})
    assert len(err.value.problems) == 2
    assert "'latest' is not a chart version" in str(err.value)
    assert "system_node_selector: 'bad key!' is not a valid Kubernetes label key" in str(err.value)


@pytest.mark.parametrize(
    ("line", "version", "message"),
    [
        (
            DraDriverLine.KUBERNETES_SIGS,
            "25.8.0",
            r"'25\.8\.0' is a version of the NGC chart.*draDriverLine=nvidia-dra-driver-gpu",
        ),
        (
            DraDriverLine.NGC,
            "0.4.1",
            r"'0\.4\.1' is a version of the kubernetes-sigs chart.*draDriverLine=dra-driver-nvidia-gpu",
        ),
        (DraDriverLine.NGC, "25.3.0", r"older than 25\.8\.0"),
        (DraDriverLine.NGC, "x", r"'x' is not a chart version"),
    ],
)
def test_refuses_a_dra_version_of_the_wrong_line(line, version, message):
    with pytest.raises(ConfigurationError, match=message):
        DraDriverValues(line=line, version=version)


def test_refuses_an_unknown_dra_line():
    with pytest.raises(ConfigurationError, match=r"draDriverLine: 'nvidia' is not allowed"):
        DraDriverValues(line="nvidia")  # type: ignore[arg-type]  # a wrong value on purpose: the check must name it


def test_refuses_an_efa_device_plugin_older_than_the_guide():
    with pytest.raises(ConfigurationError, match=r"'v0\.5\.6' is older than v0\.5\.14"):
        EfaDevicePluginValues(version="v0.5.6")


def test_refuses_dranet_before_kubernetes_1_34():
    with pytest.raises(ConfigurationError, match=r"'dranet' needs Kubernetes 1\.34 or later.*'1\.33'"):
        DranetValues(kubernetes_version="1.33")


def test_refuses_values_that_are_not_json_data():
    with pytest.raises(ConfigurationError, match=r"addonValues\.dranet\.x: .* is not JSON data"):
        DranetValues(kubernetes_version="1.35", extra_values={"x": object()})


def test_refuses_mpi_values_the_generated_chart_does_not_have():
    with pytest.raises(
        ConfigurationError,
        match=r"addonValues\.mpiOperator\.replicas: the generated MPI operator chart has no such value",
    ):
        MpiOperatorValues(extra_values={"replicas": 2})


# --------------------------------------------------------------------------------------
# MPI operator: the manifest
# --------------------------------------------------------------------------------------


def test_pinned_manifest_checksum_matches_the_upstream_copy():
    assert hashlib.sha256(MPI_MANIFEST.read_bytes()).hexdigest() == MPI_OPERATOR.sha256


def test_local_manifest_with_a_wrong_checksum_is_refused(tmp_path):
    tampered = tmp_path / "mpi-operator.yaml"
    tampered.write_bytes(MPI_MANIFEST.read_bytes().replace(b"replicas: 1", b"replicas: 2"))
    with pytest.raises(
        ConfigurationError,
        match=r"mpiOperatorManifest: .* has SHA-256 [0-9a-f]{64}, but the MPI operator v0\.8\.0 release manifest has b38def13",
    ):
        load_manifest(MpiOperatorRelease.resolve(), local_path=tampered)


def test_missing_local_manifest_is_refused(tmp_path):
    with pytest.raises(ConfigurationError, match=r"mpiOperatorManifest: cannot read"):
        load_manifest(MpiOperatorRelease.resolve(), local_path=tmp_path / "nope.yaml")


def test_mpi_version_override_needs_a_checksum():
    with pytest.raises(
        ConfigurationError, match=r"'v0\.9\.0' has no checksum.*v0\.9\.0@sha256:<64 hex digits>"
    ):
        MpiOperatorRelease.resolve("v0.9.0")
    with pytest.raises(ConfigurationError, match=r"is not a SHA-256"):
        MpiOperatorRelease.resolve("v0.9.0@sha256:abc")
    release = MpiOperatorRelease.resolve("v0.9.0@sha256:" + "a" * 64)
    assert release.url == MPI_OPERATOR.repository.replace("v0.8.0", "v0.9.0")
    assert release.sha256 == "a" * 64


# --------------------------------------------------------------------------------------
# MPI operator: the generated chart
# --------------------------------------------------------------------------------------

_WITH_BLOCK = re.compile(
    r"^(?P<i>[ ]*)\{\{- with \.Values\.(?P<key>\w+) \}\}\n(?P=i)(?P=key):\n"
    r"(?P=i)  \{\{- toYaml \. \| nindent (?P<n>\d+) \}\}\n(?P=i)\{\{- end \}\}\n",
    re.MULTILINE,
)


def render(template: str, values: dict) -> str:
    """Renders the only template constructs the generator emits (its scheduling blocks
    and the {{ "{{" }} escape), the way Helm would."""

    def block(match):
        value = values.get(match["key"])
        if not value:
            return ""
        body = yaml.safe_dump(value, default_flow_style=False).rstrip("\n")
        pad = " " * int(match["n"])
        return f"{match['i']}{match['key']}:\n" + "\n".join(pad + line for line in body.splitlines()) + "\n"

    rendered = _WITH_BLOCK.sub(block, template)
    assert "{{-" not in rendered, "the generator emitted a construct render() does not know"
    return rendered.replace('{{ "{{" }}', "{{")


def crd_document(manifest: Path) -> str:
    """The CustomResourceDefinition document of a release manifest, as upstream wrote it."""
    (crd,) = [d for d in manifest.read_text().split("\n---\n") if "kind: CustomResourceDefinition" in d]
    return crd.strip("\n") + "\n"


def rendered(chart, values: dict | None = None) -> dict[str, str]:
    """Each template of a generated chart as Helm renders it, by file name."""
    return {
        f: render((chart.path / f).read_text(), CHART_VALUES if values is None else values)
        for f in chart.files
        if f.startswith("templates/")
    }


def test_chart_has_the_crd_as_a_template_and_no_namespace_document(mpi_chart):
    # GIVEN the chart generated from the pinned manifest
    assert mpi_chart.namespace == "mpi-operator" == MPI_OPERATOR.namespace
    # THEN nothing is in crds/ (Helm never upgrades those) and the CRD is a template
    assert not [f for f in mpi_chart.files if f.startswith("crds/")]
    crd = rendered(mpi_chart)[CRD_TEMPLATE]
    # which renders to the manifest's CRD document, with one line added: the keep policy
    upstream = crd_document(MPI_MANIFEST)
    assert crd.count(KEEP) == 1
    assert crd.replace(KEEP, "", 1) == upstream
    expected = yaml.load(upstream, Loader=yaml.CSafeLoader)
    expected["metadata"]["annotations"]["helm.sh/resource-policy"] = "keep"
    assert yaml.load(crd, Loader=yaml.CSafeLoader) == expected
    assert sorted(yaml.safe_load(text)["kind"] for text in rendered(mpi_chart).values()) == [
        "ClusterRole",
        "ClusterRole",
        "ClusterRole",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "ServiceAccount",
    ]


def test_upgrading_from_v070_changes_the_crd_helm_deploys(mpi_chart):
    # GIVEN the chart of the release pinned before (from the verbatim v0.7.0 manifest)
    old_release = MpiOperatorRelease.resolve(MPI_V070)
    old = write_chart(load_manifest(old_release, local_path=MPI_MANIFEST_V070), old_release)
    # WHEN it is replaced by the pinned v0.8.0 chart (a helm upgrade of the same release)
    assert yaml.safe_load((old.path / "Chart.yaml").read_text())["version"] == "0.7.0"
    assert old.path != mpi_chart.path
    before, after = rendered(old), rendered(mpi_chart)
    # THEN both deploy the CRD as a template, and the upgrade carries the new schema:
    # v0.8.0 adds the pod template's workloadRef (Kubernetes 1.35 core types)
    assert not [f for f in old.files + mpi_chart.files if f.startswith("crds/")]
    assert before[CRD_TEMPLATE] != after[CRD_TEMPLATE]
    assert "workloadRef:" not in before[CRD_TEMPLATE] and "workloadRef:" in after[CRD_TEMPLATE]
    assert before[CRD_TEMPLATE].replace(KEEP, "", 1) == crd_document(MPI_MANIFEST_V070)
    worker = yaml.load(after[CRD_TEMPLATE], Loader=yaml.CSafeLoader)["spec"]["versions"][0]["schema"][
        "openAPIV3Schema"
    ]["properties"]["spec"]["properties"]["mpiReplicaSpecs"]["additionalProperties"]["properties"]["template"]
    assert worker["properties"]["spec"]["properties"]["workloadRef"]["required"] == ["name", "podGroup"]


def test_helm_release_secret_stays_well_under_the_kubernetes_limit(mpi_chart):
    # GIVEN the release record Helm stores for this chart (pkg/release/v1: the chart with
    # its templates as base64, the values and the rendered manifest), estimated here
    templates = [
        {"name": f, "data": base64.b64encode((mpi_chart.path / f).read_bytes()).decode()}
        for f in mpi_chart.files
        if f.startswith("templates/")
    ]
    manifest = "".join(
        f"---\n# Source: mpi-operator/{name}\n{text}" for name, text in sorted(rendered(mpi_chart).items())
    )
    release = {
        "name": "mpi-operator",
        "chart": {
            "metadata": yaml.safe_load((mpi_chart.path / "Chart.yaml").read_text()),
            "templates": templates,
            "values": CHART_VALUES,
            "files": [],
        },
        "config": MpiOperatorValues(system_node_selector=SYSTEM).values(),
        "manifest": manifest,
        "version": 1,
        "namespace": mpi_chart.namespace,
    }
    # WHEN encoded as Helm's Secret driver does (JSON, gzip BestCompression, base64)
    stored = base64.b64encode(gzip.compress(json.dumps(release).encode(), compresslevel=9, mtime=0))
    # THEN it holds the CRD twice yet stays under 90 % of a Secret's 1 MiB (Helm v4.1.4
    # measured 272,756 bytes; see the module docstring)
    assert len(release["manifest"]) > 650_000
    assert 200_000 < len(stored) < 0.9 * 1024 * 1024


def test_chart_yaml_names_the_release(mpi_chart):
    chart = yaml.safe_load((mpi_chart.path / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "mpi-operator"
    assert chart["version"] == "0.8.0" and chart["appVersion"] == "v0.8.0"
    assert MPI_OPERATOR.sha256 in chart["description"]


def test_rendered_deployment_is_scheduled_by_values(mpi_chart):
    (deployment,) = [f for f in mpi_chart.files if "deployment" in f]
    template = (mpi_chart.path / deployment).read_text()
    values = MpiOperatorValues(system_node_selector=SYSTEM, system_node_tolerations=CRITICAL).values()
    doc = yaml.safe_load(render(template, values))
    pod = doc["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == SYSTEM
    assert pod["tolerations"] == CRITICAL
    assert "affinity" not in pod
    assert pod["containers"][0]["image"] == "mpioperator/mpi-operator:0.8.0"
    # with the chart's defaults nothing is added
    assert "nodeSelector" not in yaml.safe_load(render(template, CHART_VALUES))["spec"]["template"]["spec"]


_CHART_LISTING = """
import hashlib, sys
from eks_ultraserver.helm.mpi_operator import MpiOperatorRelease, load_manifest, write_chart
release = MpiOperatorRelease.resolve()
chart = write_chart(load_manifest(release), release)
for f in sorted(p for p in chart.path.rglob("*")):
    s = f.stat()
    data = hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else "dir"
    print(f.relative_to(chart.path).as_posix(), oct(s.st_mode), int(s.st_mtime), data)
print(chart.path)
"""


def test_chart_is_byte_for_byte_deterministic_across_processes(mpi_chart):
    # GIVEN the chart written by this process and by two other processes
    def listing():
        out = subprocess.run(
            [sys.executable, "-c", _CHART_LISTING],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
        ).stdout.splitlines()
        return out[:-1], Path(out[-1])

    (first, first_path), (second, second_path) = listing(), listing()
    # THEN every file and folder has the same bytes, mode and (fixed) mtime: the S3 asset
    # hash is the same from one synth to the next
    assert first == second and len(first) == len(mpi_chart.files) + 1  # + templates/
    assert {line.split()[0] for line in first} == set(mpi_chart.files) | {"templates"}
    assert all(line.split()[2] == "315532800" for line in first)
    # each in a temporary directory of its own, removed when that process exited
    assert first_path != second_path and first_path.name == second_path.name == mpi_chart.path.name
    assert not first_path.exists() and not second_path.exists()
    # in this process the same chart is written once
    again = write_chart(MPI_MANIFEST.read_bytes(), MpiOperatorRelease.resolve())
    assert again == mpi_chart
    assert Path(tempfile.gettempdir()) in mpi_chart.path.parents


def test_template_braces_are_escaped_in_every_template_the_crd_included():
    # GIVEN a manifest whose RBAC and CRD text contain "{{"
    manifest = (
        b"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: mpi-operator\n"
        b"---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        b"metadata:\n  name: mpijobs.kubeflow.org\n  annotations:\n    note: '{{ crd }}'\n"
        b"---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: mpi-operator\n"
        b"  annotations:\n    note: '{{ not a template }}'\n"
        b"---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: mpi-operator\n"
        b"spec:\n  template:\n    spec:\n      containers:\n      - name: c\n"
    )
    release = MpiOperatorRelease(version="v0.7.0", sha256=hashlib.sha256(manifest).hexdigest(), url="file:")
    # WHEN turned into a chart
    files, namespace = chart_files(manifest, release)
    # THEN Helm prints every "{{" literally, in the CRD too (now a template)
    sa = files["templates/01-serviceaccount-mpi-operator.yaml"].decode()
    assert """note: '{{ "{{" }} not a template }}'""" in sa
    assert yaml.safe_load(render(sa, {}))["metadata"]["annotations"]["note"] == "{{ not a template }}"
    crd = files["templates/00-customresourcedefinition-mpijobs.kubeflow.org.yaml"].decode()
    assert """note: '{{ "{{" }} crd }}'""" in crd
    # and the keep policy joins the CRD's existing annotations
    assert yaml.safe_load(render(crd, {}))["metadata"]["annotations"] == {
        "note": "{{ crd }}",
        "helm.sh/resource-policy": "keep",
    }
    assert namespace == "mpi-operator"
    assert not [f for f in files if f.startswith("crds/")]


def test_keep_policy_is_added_to_a_crd_without_annotations_or_refused():
    def manifest(crd: bytes) -> bytes:
        return (
            b"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: mpi-operator\n---\n"
            + crd
            + b"---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: mpi-operator\n"
            b"spec:\n  template:\n    spec:\n      containers:\n      - name: c\n"
        )

    def release(data: bytes) -> MpiOperatorRelease:
        return MpiOperatorRelease(version="v0.7.0", sha256=hashlib.sha256(data).hexdigest(), url="file:")

    # GIVEN a CRD without annotations WHEN charted THEN it gets an annotations block
    plain = manifest(
        b"apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        b"metadata:\n  labels:\n    app: mpi-operator\n  name: mpijobs.kubeflow.org\nspec: {}\n"
    )
    files, _ = chart_files(plain, release(plain))
    crd = yaml.safe_load(files[CRD_TEMPLATE])
    assert crd["metadata"] == {
        "annotations": {"helm.sh/resource-policy": "keep"},
        "labels": {"app": "mpi-operator"},
        "name": "mpijobs.kubeflow.org",
    }
    # GIVEN a CRD written in flow style WHEN charted THEN refused: no line to add it to
    flow = manifest(
        b'{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", '
        b'"metadata": {"name": "mpijobs.kubeflow.org"}}\n'
    )
    with pytest.raises(
        ConfigurationError,
        match=r"cannot add the annotation helm\.sh/resource-policy: keep to the CustomResourceDefinition "
        r"'mpijobs\.kubeflow\.org'",
    ):
        chart_files(flow, release(flow))


def test_manifest_without_a_crd_or_namespace_is_refused():
    manifest = b"---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: x\n"
    release = MpiOperatorRelease(version="v0.7.0", sha256=hashlib.sha256(manifest).hexdigest(), url="file:")
    with pytest.raises(ConfigurationError) as err:
        chart_files(manifest, release)
    text = str(err.value)
    assert "no Namespace document" in text and "no CustomResourceDefinition" in text
    assert "expected one controller Deployment, found 0" in text


# --------------------------------------------------------------------------------------
# Snapshots (one per component) and layering
# --------------------------------------------------------------------------------------


def test_snapshot_gpu_operator_values(snapshot_json):
    assert GpuOperatorValues(system_node_selector=SYSTEM).values() == snapshot_json


def test_snapshot_dra_driver_values(snapshot_json):
    assert DraDriverValues(system_node_selector=SYSTEM).values() == snapshot_json


def test_snapshot_efa_device_plugin_values(snapshot_json):
    assert EfaDevicePluginValues().values() == snapshot_json


def test_snapshot_dranet_values(snapshot_json):
    assert DranetValues(kubernetes_version="1.35").values() == snapshot_json


def test_snapshot_mpi_operator_values(snapshot_json):
    assert MpiOperatorValues(system_node_selector=SYSTEM).values() == snapshot_json


def test_values_builders_do_not_import_aws_cdk():
    code = (
        "import sys\n"
        "import eks_ultraserver.helm.gpu_operator, eks_ultraserver.helm.dra_driver\n"
        "import eks_ultraserver.helm.efa, eks_ultraserver.helm.mpi_operator\n"
        "assert not [m for m in sys.modules if m.startswith(('aws_cdk', 'jsii'))], 'aws_cdk imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent)


def test_environment_variable_names_a_local_copy(tmp_path, monkeypatch):
    # GIVEN the variable naming another, verbatim copy of the pinned manifest
    copy = tmp_path / "mine.yaml"
    copy.write_bytes(MPI_MANIFEST.read_bytes())
    monkeypatch.setenv("EKS_ULTRASERVER_MPI_OPERATOR_MANIFEST", str(copy))
    # WHEN / THEN that copy is read and verified; a tampered one is refused
    assert load_manifest(MpiOperatorRelease.resolve()) == copy.read_bytes()
    copy.write_bytes(copy.read_bytes() + b"# edited\n")
    with pytest.raises(ConfigurationError, match="has SHA-256"):
        load_manifest(MpiOperatorRelease.resolve())


def test_default_is_the_packaged_copy_and_another_release_needs_a_file(monkeypatch):
    # GIVEN no variable WHEN the pinned release is loaded THEN the packaged copy is used
    monkeypatch.delenv("EKS_ULTRASERVER_MPI_OPERATOR_MANIFEST", raising=False)
    assert load_manifest(MpiOperatorRelease.resolve()) == MPI_MANIFEST.read_bytes()
    # a release the library does not ship is not downloaded: the error says what to pass
    other = MpiOperatorRelease.resolve("v0.6.0@sha256:" + "0" * 64)
    with pytest.raises(
        ConfigurationError, match=r"no copy of the MPI operator v0\.6\.0 .*mpiOperatorManifest=<path>"
    ):
        load_manifest(other)
