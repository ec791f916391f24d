"""Configuration from cdk.json context: every rule, one message with every problem."""

from __future__ import annotations

import json

import pytest

from eks_ultraserver.config import (
    EXAMPLE_RESERVATION_ID,
    AddonsConfig,
    DraDriverLine,
    EfaMode,
    EnvironmentConfig,
    UltraServerSpec,
)
from eks_ultraserver.model import ConfigurationError, EfaLayout, UltraServerType

from conftest import REPO

BASE = json.loads((REPO / "cdk.json").read_text())["context"]


def _config(**overrides):
    ctx = dict(BASE)
    ctx.update(overrides)
    return EnvironmentConfig.from_mapping({k: v for k, v in ctx.items() if v is not None})


def _error(**overrides) -> str:
    with pytest.raises(ConfigurationError) as err:
        _config(**overrides)
    return str(err.value)


def test_shipped_cdk_json_is_a_valid_example():
    config = _config()
    assert config.uses_example_reservation
    assert [u.capacity_reservation_id for u in config.ultraservers] == [EXAMPLE_RESERVATION_ID]
    assert config.availability_zone == "us-east-1-dfw-2a"
    assert config.efa_layout is EfaLayout.PER_GPU
    assert config.validation_jobs is False


def test_ultraservers_as_json_string_from_dash_c():
    text = json.dumps(
        [
            {"capacityReservationId": "cr-0aaaaaaaaaaaaaaa1", "type": "u-p6e-gb200x72", "name": "a"},
            {"capacityReservationId": "cr-0aaaaaaaaaaaaaaa2", "type": "u-p6e-gb200x36"},
        ]
    )
    config = _config(ultraServers=text)
    assert [(u.name, u.type, u.instance_count) for u in config.ultraservers] == [
        ("a", UltraServerType.U_P6E_GB200X72, 18),
        ("us-2", UltraServerType.U_P6E_GB200X36, 9),
    ]


def test_booleans_and_enums_from_dash_c_strings():
    config = _config(
        validationJobs="true",
        efaLayout="all-odd-cards",
        draDriverLine="nvidia-dra-driver-gpu",
        efaMode="dranet",
        kubernetesVersion="1.34",
    )
    assert config.validation_jobs is True
    assert config.efa_layout is EfaLayout.ALL_ODD_CARDS
    assert config.addons.dra_driver_line is DraDriverLine.NGC
    assert config.addons.efa_mode is EfaMode.DRANET


def test_malformed_reservation_id():
    msg = _error(ultraServers=[{"capacityReservationId": "cr-12345", "type": "u-p6e-gb200x72"}])
    assert "ultraServers[0].capacityReservationId: 'cr-12345' is not a Capacity Reservation id" in msg


def test_unknown_ultraserver_type_names_the_instance_type_mixup():
    msg = _error(
        ultraServers=[{"capacityReservationId": EXAMPLE_RESERVATION_ID, "type": "p6e-gb200.36xlarge"}]
    )
    assert "ultraServers[0].type: 'p6e-gb200.36xlarge' is not an UltraServer type" in msg
    assert "EC2 instance type inside an UltraServer" in msg


def test_duplicate_reservation_ids_and_names():
    msg = _error(
        ultraServers=[
            {"capacityReservationId": EXAMPLE_RESERVATION_ID, "type": "u-p6e-gb200x72", "name": "a"},
            {"capacityReservationId": EXAMPLE_RESERVATION_ID, "type": "u-p6e-gb200x72", "name": "a"},
        ]
    )
    assert "capacityReservationId 'cr-0123456789abcdef0' appears more than once" in msg
    assert "name 'a' appears more than once" in msg


def test_kubernetes_version_too_old_or_unsupported():
    assert "kubernetesVersion: '1.32' is not supported (DRA needs 1.33 or later)" in _error(
        kubernetesVersion="1.32"
    )
    assert (
        "kubernetesVersion: '1.37' is not supported (newer than this release of the library knows)"
        in _error(kubernetesVersion="1.37")
    )


def test_ultraservers_string_that_is_not_json():
    msg = _error(ultraServers='[{"capacityReservationId": "cr-0123456789abcdef0"')
    assert "ultraServers: " in msg and "is not valid JSON" in msg and "-c ultraServers=" in msg


def test_dranet_needs_kubernetes_1_34():
    assert "efaMode: 'dranet' needs Kubernetes 1.34 or later" in _error(
        efaMode="dranet", kubernetesVersion="1.33"
    )


def test_every_problem_in_one_message_with_examples():
    msg = _error(
        availabilityZone=None, kubernetesVersion="1.20", efaLayout="everything", validationJobs="yes"
    )
    assert msg.startswith("invalid configuration (cdk.json context) (4 problems):")
    assert "availabilityZone: missing" in msg and "-c availabilityZone=" in msg
    assert "efaLayout: 'everything' is not allowed; use one of 'per-gpu', 'all-odd-cards', 'none'" in msg
    assert "validationJobs: 'yes' is not a boolean" in msg


def test_unknown_addon_component_and_bad_email():
    msg = _error(addonVersions='{"gpu-operator": "v1"}', notificationEmail="not-an-address")
    assert "addonVersions: unknown component 'gpu-operator'" in msg
    assert "notificationEmail: 'not-an-address' is not valid" in msg


# ---------------------------------------------------------------- publicAccessCidrs


@pytest.mark.parametrize(
    "given",
    [
        ["203.0.113.0/24", "198.51.100.7/32"],
        '["203.0.113.0/24", "198.51.100.7/32"]',  # -c JSON text
        "203.0.113.0/24,198.51.100.7/32",  # -c comma-separated
    ],
)
def test_public_access_cidrs(given):
    config = _config(publicAccessCidrs=given)
    assert config.public_access_cidrs == ("203.0.113.0/24", "198.51.100.7/32")


def test_public_access_cidrs_default_is_unset():
    assert _config().public_access_cidrs is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"publicAccessCidrs": "[]"}, "publicAccessCidrs: the list is empty, so nobody could reach"),
        (
            {"publicAccessCidrs": ["203.0.113.0/33"]},
            r"publicAccessCidrs\[0\]: '203.0.113.0/33' is not an IPv4 CIDR",
        ),
        (
            {"publicAccessCidrs": ["203.0.113.5"]},
            r"publicAccessCidrs\[0\]: '203.0.113.5' is not an IPv4 CIDR block",
        ),
        (
            {"publicAccessCidrs": ["203.0.113.5/24"]},
            r"publicAccessCidrs\[0\]: '203.0.113.5/24' has host bits set; write the network, '203.0.113.0/24'",
        ),
        ({"publicAccessCidrs": ["2001:db8::/32"]}, "IPv4 clusters accept only IPv4"),
        ({"publicAccessCidrs": ["10.1.0.0/16"]}, "lies in the private or reserved range 10.0.0.0/8"),
        ({"publicAccessCidrs": '{"cidr": "203.0.113.0/24"}'}, "publicAccessCidrs: .* is not a list"),
        (
            {"publicAccessCidrs": ["203.0.113.0/24"], "endpointAccess": "private"},
            "publicAccessCidrs: given, but endpointAccess is 'private'",
        ),
        (
            {"publicAccessCidrs": ["203.0.113.0/24"], "endpointAccess": "public"},
            "use endpointAccess 'public-and-private'",
        ),
    ],
)
def test_bad_public_access_cidrs(overrides, message):
    import re

    assert re.search(message, _error(**overrides))


# ---------------------------------------------------------------- the table of context keys


def test_the_reader_reads_exactly_the_keys_of_the_table():
    """CONTEXT_KEYS is the one list of keys: the reader reads every key of it (even when
    unset) and refuses to read one that is not there."""
    from eks_ultraserver.config import CONTEXT_KEYS

    read: list[str] = []

    def get(key):
        read.append(key)
        return BASE.get(key)

    EnvironmentConfig.from_context(get)
    assert set(read) == set(CONTEXT_KEYS)


def test_reading_a_key_missing_from_the_table_is_a_programming_error(monkeypatch):
    from eks_ultraserver import config

    monkeypatch.setattr(
        config, "CONTEXT_KEYS", {k: v for k, v in config.CONTEXT_KEYS.items() if k != "efaMode"}
    )
    with pytest.raises(KeyError, match="'efaMode' is read but not listed"):
        _config()


def test_the_configuration_page_documents_every_context_key():
    """Each key of the one table has a section of its own on docs/configuration.md (the
    generated table links to it; tests/test_docs.py checks the table is current)."""
    from eks_ultraserver.config import CONTEXT_KEYS

    page = (REPO / "docs" / "configuration.md").read_text()
    assert [k for k in CONTEXT_KEYS if f"\n### `{k}`\n" not in page] == []


# ---------------------------------------------------------------- misspelt keys


def test_misspelt_keys_name_the_key_they_probably_mean():
    from eks_ultraserver.config import misspelt_context_keys

    assert misspelt_context_keys(
        ["kubernetesVerison", "ultraServer", "UltraServers", "vpc", "adminPrincipal", "ultraServers"]
    ) == {
        "kubernetesVerison": "kubernetesVersion",
        "ultraServer": "ultraServers",
        "UltraServers": "ultraServers",
        "vpc": "vpcId",
        "adminPrincipal": "adminPrincipalArn",
    }


def test_cdk_keys_cache_entries_and_far_off_keys_are_not_reported():
    """Feature flags, toolkit settings, context-provider caches and the library's own
    reservation lookups are CDK's; a key far from every known key is someone else's (the
    app's own context, another library): decided not to warn about those."""
    from eks_ultraserver.config import misspelt_context_keys
    from eks_ultraserver.lookups import context_key

    keys = [
        *(k for k in BASE if k.startswith("@")),
        "@aws-cdk/core:newStyleStackSynthesis",
        "aws:cdk:enable-path-metadata",
        "aws-cdk:enableDiffNoFail",
        "cdk-default",
        "acknowledged-issue-numbers",
        "availability-zones:account=123456789012:region=us-east-1",
        "ami:account=123456789012:filters.name.0=al2023*:region=us-east-1",
        context_key(account="123456789012", region="us-east-1", reservation_id=EXAMPLE_RESERVATION_ID),
        "costCenter",
        "stage",
        "teamOwner",
    ]
    assert misspelt_context_keys(keys) == {}


def test_context_files_are_read_as_the_cli_hands_them_to_the_app(tmp_path):
    """GIVEN cdk.json, cdk.context.json beside it and -c overrides WHEN read THEN later sources
    win in the CLI's order; `python app.py` and every subcommand use this one reader."""
    from eks_ultraserver import app
    from eks_ultraserver.commands import common
    from eks_ultraserver.config import read_context_files

    (tmp_path / "cdk.json").write_text(json.dumps({"app": "x", "context": {"a": 1, "b": 1, "c": 1}}))
    (tmp_path / "cdk.context.json").write_text(json.dumps({"b": 2, "c": 2}))
    assert read_context_files(tmp_path / "cdk.json", ["c=3"]) == {"a": 1, "b": 2, "c": "3"}
    assert app.local_context(tmp_path) == {"a": 1, "b": 2, "c": 2}
    assert common.load_context(tmp_path / "cdk.json", []) == {"a": 1, "b": 2, "c": 2}
    # no file: the whole context may come from -c; a bad -c or a broken file is named
    assert read_context_files(tmp_path / "none.json", ["a=1"]) == {"a": "1"}
    with pytest.raises(ConfigurationError, match=r"-c 'oops': expected KEY=VALUE"):
        read_context_files(tmp_path / "cdk.json", ["oops"])
    (tmp_path / "cdk.context.json").write_text("{broken")
    with pytest.raises(ConfigurationError, match=r"cdk\.context\.json: not valid JSON"):
        app.local_context(tmp_path)


# ---------------------------------------------------------------- objects built in Python


def test_an_ultraserver_spec_built_in_python_refuses_a_bad_field():
    """GIVEN UltraServerSpec built directly with a bad id, type and name THEN it raises one
    error naming each field; a type given as its value becomes the member."""
    with pytest.raises(ConfigurationError) as err:
        # a wrong type on purpose: the runtime check must name it
        UltraServerSpec(capacity_reservation_id="bad", type="p6e-gb200.36xlarge", name="B_")  # type: ignore[arg-type]
    text = str(err.value)
    assert text.startswith("invalid UltraServerSpec (3 problems):")
    assert "capacity_reservation_id: 'bad' is not a Capacity Reservation id" in text
    assert "type: 'p6e-gb200.36xlarge' is not an UltraServer type" in text
    assert "name: 'B_' is not a DNS-1123 label of at most 40 characters" in text
    # a str on purpose: the value as read from cdk.json becomes the member at run time
    spec = UltraServerSpec(capacity_reservation_id=EXAMPLE_RESERVATION_ID, type="u-p6e-gb200x36", name="a")  # type: ignore[arg-type]
    assert spec.type is UltraServerType.U_P6E_GB200X36 and spec.instance_count == 9


def test_an_environment_config_built_in_python_checks_its_fields():
    good = UltraServerSpec(
        capacity_reservation_id=EXAMPLE_RESERVATION_ID, type=UltraServerType.U_P6E_GB200X72, name="a"
    )
    with pytest.raises(ConfigurationError) as err:
        EnvironmentConfig(
            ultraservers=(good, good),
            availability_zone="east",
            kubernetes_version="1.32",
            endpoint_access="sideways",  # type: ignore[arg-type]  # a wrong value on purpose: the check must name it
            notification_email="nobody",
            addons=AddonsConfig(efa_mode=EfaMode.DRANET),
        )
    text = str(err.value)
    assert text.startswith("invalid EnvironmentConfig (")
    assert "availability_zone: 'east' is not an Availability Zone or Local Zone name" in text
    assert "kubernetes_version: '1.32' is not supported (DRA needs 1.33 or later)" in text
    assert "ultraservers: capacity_reservation_id 'cr-0123456789abcdef0' appears more than once" in text
    assert "endpoint_access: 'sideways' is not allowed" in text
    assert "notification_email: 'nobody' is not valid" in text
    assert "-c " not in text
    # a list and a str on purpose: at run time they become a tuple and the member
    config = EnvironmentConfig(ultraservers=[good], availability_zone="us-east-1-dfw-2a", efa_layout="none")  # type: ignore[arg-type]
    assert config.ultraservers == (good,) and config.efa_layout is EfaLayout.NONE
    with pytest.raises(ConfigurationError, match=r"addons\.efa_mode: 'dranet' needs Kubernetes 1\.34"):
        EnvironmentConfig(
            ultraservers=(good,),
            availability_zone="us-east-1-dfw-2a",
            kubernetes_version="1.33",
            addons=AddonsConfig(efa_mode=EfaMode.DRANET),
        )


def test_addons_config_owns_its_component_keys_and_the_efa_mix_up():
    """The AddonsConfig refuses what GpuPlatformAddons.plan used to re-check, in the same
    words; from cdk.json the same problems come with the other keys'."""
    with pytest.raises(ConfigurationError) as err:
        AddonsConfig(efa_mode=EfaMode.DRANET, versions={"gpu-operator": "v1", "efaDevicePlugin": "v0.5.30"})
    text = str(err.value)
    assert "addonVersions: unknown component 'gpu-operator'" in text
    assert "addonVersions.efaDevicePlugin: given, but efaMode is 'dranet'" in text
    # a str on purpose: the value as read from cdk.json becomes the member at run time
    assert AddonsConfig(dra_driver_line="nvidia-dra-driver-gpu").dra_driver_line is DraDriverLine.NGC  # type: ignore[arg-type]
    msg = _error(addonValues='{"dranet": {}}', clusterName="bad name")
    assert "addonValues.dranet: given, but efaMode is 'device-plugin'" in msg
    assert "clusterName: 'bad name' is not a valid EKS cluster name" in msg


def test_one_decoder_for_every_key():
    """-c text of every JSON kind decodes the same way for every key (context.decode)."""
    from eks_ultraserver.context import decode

    assert decode(' {"a": 1} ') == {"a": 1} and decode("[1]") == [1] and decode("true") is True
    assert decode("-3") == -3 and decode("us-east-1a") == "us-east-1a" and decode(5) == 5
    config = _config(burstCapacity='{"instanceFamilies":["p5"],"maxGpus":8}', validationJobs="false")
    assert config.burst_capacity.max_gpus == 8 and config.validation_jobs is False


def test_kubernetes_version_value_type():
    from eks_ultraserver.versions import KubernetesVersion, kubectl_layer_class

    v = KubernetesVersion.parse("1.9")
    assert v < KubernetesVersion.parse("1.34") and str(v) == "1.9" and v.minor == 9
    assert KubernetesVersion.of("one.two") is None and KubernetesVersion.parse(v) is v
    assert kubectl_layer_class(KubernetesVersion(1, 35)) == "KubectlV35Layer"
    with pytest.raises(ValueError, match="not a Kubernetes version"):
        KubernetesVersion.parse("1")
