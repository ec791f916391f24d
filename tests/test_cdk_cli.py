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


def _cdk(*args, outdir):
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
    assert CDK.exists(), "run `make test` (it installs the pinned CDK CLI with npm ci)"
    return subprocess.run(
        [str(CDK), "synth", "--quiet", "--no-notices", "-o", str(outdir), *args],
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
