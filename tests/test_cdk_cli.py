"""The real CDK CLI (pinned in package.json) synthesizes the app offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

CDK = REPO / "node_modules" / ".bin" / "cdk"


def _cdk(*args, outdir, prefix=(), home=None):
    env = dict(os.environ)
    for key in (
        "CDK_CONTEXT_JSON",
        "CDK_OUTDIR",
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ):
        env.pop(key, None)
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        CDK_DISABLE_VERSION_CHECK="1",
        CDK_DISABLE_CLI_TELEMETRY="true",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    if home is not None:
        env.update(HOME=str(home), XDG_CACHE_HOME=str(Path(home) / ".cache"))
    assert CDK.exists(), "run `make test` (it installs the pinned CDK CLI with npm ci)"
    return subprocess.run(
        [*prefix, str(CDK), "synth", "--quiet", "--no-notices", "-o", str(outdir), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_cdk_synth_default_configuration_offline(tmp_path):
    result = _cdk(outdir=tmp_path)
    assert result.returncode == 0, result.stderr
    template = json.loads((tmp_path / "UltraServerEnvironment.template.json").read_text())
    types = [r["Type"] for r in template["Resources"].values()]
    assert "AWS::EKS::Cluster" in types and "AWS::EC2::LaunchTemplate" in types
    assert "example reservation id" in result.stderr
    assert "Traceback" not in result.stderr
    # cdk.json carries the recommended feature flags: the CLI has nothing to report
    assert "feature flags" not in (result.stdout + result.stderr).lower()


def _no_network_prefix() -> list[str]:
    """A command prefix that runs its command in a new network namespace: no interface
    but a loopback that is down, so any connection attempt (Python, jsii's Node, the CLI)
    fails at once."""
    prefix = ["unshare", "--net"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True)
    assert probe.returncode == 0, f"cannot create a network namespace here ({probe.stderr.strip()})"
    reach = subprocess.run(
        [*prefix, sys.executable, "-c", "import socket; socket.create_connection(('127.0.0.1', 9), 1)"],
        capture_output=True,
        text=True,
    )
    assert reach.returncode != 0 and "Network is unreachable" in reach.stderr, reach.stderr
    return prefix


@pytest.mark.slow
def test_cdk_synth_needs_no_network_and_writes_nothing_outside_the_output(tmp_path):
    """GIVEN no network at all (a fresh network namespace) and an empty home directory WHEN
    the CDK CLI synthesizes the default configuration THEN it succeeds, and the home
    directory (where a download cache would go) holds nothing of ours: only the jsii
    runtime's package cache and aws-cdk-lib's asset fingerprint cache, which the toolchain
    keeps for every CDK app."""
    home = tmp_path / "home"
    home.mkdir()
    result = _cdk(outdir=tmp_path / "out", prefix=_no_network_prefix(), home=home)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "UltraServerEnvironment.template.json").is_file()
    toolchain = (".cache/aws/jsii", ".cdk/cache")
    ours = [
        p.relative_to(home).as_posix()
        for p in home.rglob("*")
        if p.is_file() and not p.relative_to(home).as_posix().startswith(toolchain)
    ]
    assert ours == []


@pytest.mark.slow
def test_cdk_synth_bad_configuration_fails_with_one_clear_message(tmp_path):
    result = _cdk(
        "-c", "kubernetesVersion=1.31", "-c", 'ultraServers=[{"capacityReservationId":"cr-1"', outdir=tmp_path
    )
    assert result.returncode != 0
    assert "kubernetesVersion: '1.31' is not supported" in result.stderr
    assert "ultraServers: " in result.stderr and "is not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr and "jsii" not in result.stderr.lower()
    assert not (tmp_path / "UltraServerEnvironment.template.json").exists()
