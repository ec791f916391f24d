"""Kubernetes versions: 1.36 by default, every supported version synthesizes with its own
kubectl layer, and synth warns when a version is past EKS standard support."""

from __future__ import annotations

import importlib
import json
from datetime import date

import aws_cdk as cdk
import aws_cdk.aws_eks_v2 as eks
import pytest

from eks_ultraserver.config import EnvironmentConfig
from eks_ultraserver.model import ConfigurationError
from eks_ultraserver.versions import (
    DEFAULT_KUBERNETES_VERSION,
    EKS_STANDARD_SUPPORT_ENDS,
    SUPPORTED_KUBERNETES_VERSIONS,
    extended_support_warning,
    in_extended_support,
    kubectl_layer_class,
    kubectl_layer_module,
)

from conftest import REPO, synth_environment


def _warnings(stack: cdk.Stack) -> list[str]:
    from aws_cdk.assertions import Annotations, Match

    found = Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp("extended support"))
    return [str(w.entry.data) for w in found]


def test_default_is_the_newest_supported_version():
    assert DEFAULT_KUBERNETES_VERSION == "1.36" == SUPPORTED_KUBERNETES_VERSIONS[-1]
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    assert context["kubernetesVersion"] == "1.36"
    del context["kubernetesVersion"]
    assert EnvironmentConfig.from_mapping(context).kubernetes_version == "1.36"


@pytest.mark.parametrize("version", SUPPORTED_KUBERNETES_VERSIONS)
def test_every_supported_version_has_a_cdk_version_and_a_kubectl_layer(version):
    assert hasattr(eks.KubernetesVersion, "V1_" + version.split(".")[1])
    module = importlib.import_module(kubectl_layer_module(version))
    assert hasattr(module, kubectl_layer_class(version))
    assert version in EKS_STANDARD_SUPPORT_ENDS


def test_extended_support_follows_the_eks_calendar():
    # 1.34's standard support ends on 2026-12-02: extended from that day on
    assert not in_extended_support("1.34", date(2026, 12, 1))
    assert in_extended_support("1.34", date(2026, 12, 2))
    assert in_extended_support("1.33", date(2026, 12, 2))
    assert not in_extended_support("1.35", date(2026, 12, 2))
    assert not in_extended_support("1.36", date(2030, 1, 1))  # no end announced
    text = extended_support_warning("1.33", date(2026, 12, 2))
    assert text is not None
    assert "2026-07-29" in text and "Versions in standard support: 1.35, 1.36" in text
    assert extended_support_warning("1.36", date(2026, 12, 2)) is None


def test_synth_defaults_to_1_36_without_an_extended_support_warning():
    synth = synth_environment({"kubernetesVersion": None})
    (cluster,) = [
        r for r in synth.template["Resources"].values() if r["Type"] == "Custom::AWSCDK-EKS-Cluster"
    ] or [r for r in synth.template["Resources"].values() if r["Type"] == "AWS::EKS::Cluster"]
    props = cluster["Properties"]
    assert props.get("Version", props.get("Config", {}).get("version")) == "1.36"
    assert _warnings(synth.stack) == []


def test_synth_on_1_33_still_works_and_warns_about_extended_support():
    synth = synth_environment({"kubernetesVersion": "1.33"})
    (warning,) = _warnings(synth.stack)
    assert "kubernetesVersion 1.33" in warning and "extended support" in warning and "1.36" in warning


def test_a_version_newer_than_the_library_knows_is_refused_with_the_allowed_list():
    with pytest.raises(
        ConfigurationError, match=r"kubernetesVersion: '1\.37' is not supported .*1\.33, 1\.34, 1\.35, 1\.36"
    ):
        EnvironmentConfig.from_mapping({"kubernetesVersion": "1.37"})
