"""``eks-ultraserver manifests``: the YAML it writes is exactly the workload charts."""

from __future__ import annotations

import json
import re

import cdk8s
import pytest
import yaml

from eks_ultraserver import cli
from eks_ultraserver.charts.manifests import benchmark_charts, chart_yaml, validation_charts, write_manifests
from eks_ultraserver.config import EnvironmentConfig

from conftest import REPO

#: A test nccl-tests image named by its component versions (the library pins none).
NCCL_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/nccl-tests:efa1.41.0-ofiv1.14.2-ncclv2.27.3-1"

TWO = json.dumps(
    [
        {"capacityReservationId": "cr-0123456789abcdef0", "type": "u-p6e-gb200x72", "name": "us-a"},
        {"capacityReservationId": "cr-0123456789abcdef1", "type": "u-p6e-gb200x36", "name": "us-b"},
    ]
)


def _repo_context() -> dict:
    return json.loads((REPO / "cdk.json").read_text())["context"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """GIVEN the repository's cdk.json WHEN `manifests --out DIR` runs in-process (once)."""
    out = tmp_path_factory.mktemp("dist")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        code = cli.main(["manifests", "--out", str(out), "--nccl-image", NCCL_IMAGE])
    return code, out


def test_writes_exactly_the_charts(exported):
    """THEN it exits 0 and writes one file per chart, each holding that chart's objects
    (as Testing.synth renders them) and the same bytes as the chart's YAML."""
    code, out = exported
    assert code == 0
    config = EnvironmentConfig.from_mapping(_repo_context())
    app = cdk8s.App()
    expected = {
        "validation": validation_charts(app, config),
        "benchmarks": benchmark_charts(app, config, image=NCCL_IMAGE),
    }
    for sub, charts in expected.items():
        files = sorted(p.name for p in (out / sub).iterdir())
        assert files == sorted(f"{c.node.id}.yaml" for c in charts)
        for chart in charts:
            text = (out / sub / f"{chart.node.id}.yaml").read_text()
            assert list(yaml.safe_load_all(text)) == cdk8s.Testing.synth(chart)
            assert text == chart_yaml(chart)
    assert sorted(p.name for p in out.iterdir()) == ["benchmarks", "validation"]


def test_output_is_deterministic(exported, tmp_path):
    """GIVEN the same configuration WHEN written again THEN the same bytes."""
    _, first = exported
    config = EnvironmentConfig.from_mapping(_repo_context())
    written = write_manifests(config, tmp_path, nccl_image=NCCL_IMAGE)
    assert written and all(p.is_file() for p in written)
    for path in written:
        assert path.read_bytes() == (first / path.relative_to(tmp_path)).read_bytes()


def test_context_overrides_and_stale_files(tmp_path, monkeypatch, capsys):
    """GIVEN -c overrides (two UltraServers, DRANET) and a stale manifest from an earlier
    run WHEN exported THEN the files follow the overrides, the stale YAML is gone and a
    non-YAML file is left alone."""
    monkeypatch.chdir(REPO)
    (tmp_path / "validation").mkdir()
    (tmp_path / "validation" / "nvbandwidth-old.yaml").write_text("stale")
    (tmp_path / "validation" / "NOTES.txt").write_text("mine")
    code = cli.main(
        [
            "manifests",
            "--out",
            str(tmp_path),
            "-c",
            f"ultraServers={TWO}",
            "-c",
            "efaMode=dranet",
            "-c",
            "kubernetesVersion=1.34",
            "--nccl-image",
            NCCL_IMAGE,
        ]
    )
    assert code == 0
    # validation files are named <check>-<UltraServer>-<content digest>.yaml
    assert [
        re.sub(r"-[0-9a-f]{6}\.yaml$", ".yaml", p.name) for p in sorted((tmp_path / "validation").iterdir())
    ] == [
        "NOTES.txt",
        "imex-channel-check-us-a.yaml",
        "imex-channel-check-us-b.yaml",
        "nvbandwidth-us-a.yaml",
        "nvbandwidth-us-b.yaml",
    ]
    assert sorted(p.name for p in (tmp_path / "benchmarks").iterdir()) == [
        "nccl-all-ultraservers.yaml",
        "nccl-us-a.yaml",
        "nccl-us-b.yaml",
    ]
    kinds = [
        d["kind"]
        for d in yaml.safe_load_all((tmp_path / "benchmarks" / "nccl-all-ultraservers.yaml").read_text())
    ]
    assert kinds == ["ComputeDomain", "ResourceClaimTemplate", "MPIJob"]
    stdout = capsys.readouterr().out.splitlines()
    assert str(tmp_path / "benchmarks" / "nccl-all-ultraservers.yaml") in stdout


def test_reads_cdk_context_json_next_to_cdk_json(tmp_path, capsys):
    """GIVEN a cdk.json elsewhere and a cdk.context.json beside it WHEN --cdk-json points
    at it THEN both are read (the cached file renames the UltraServer here)."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "cdk.json").write_text(json.dumps({"app": "x", "context": _repo_context()}))
    renamed = [dict(_repo_context()["ultraServers"][0], name="rack-7")]
    (project / "cdk.context.json").write_text(json.dumps({"ultraServers": renamed}))
    code = cli.main(["manifests", "--out", str(tmp_path / "out"), "--cdk-json", str(project / "cdk.json")])
    assert code == 0
    assert [
        p.name[: -len("-123456.yaml")] for p in (tmp_path / "out" / "validation").glob("nvbandwidth-*")
    ] == ["nvbandwidth-rack-7"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["-c", "efaLayout=lots"],
            "efaLayout: 'lots' is not allowed; use one of 'per-gpu', 'all-odd-cards', 'none'",
        ),
        (["-c", "efaLayout"], "-c 'efaLayout': expected KEY=VALUE"),
        (["--cdk-json", "/nonexistent/cdk.json"], "/nonexistent/cdk.json: not found"),
        (
            [
                "-c",
                'ultraServers=[{"capacityReservationId":"cr-0123456789abcdef0","type":"u-p6e-gb200x72","name":"all-ultraservers"},'
                '{"capacityReservationId":"cr-0123456789abcdef1","type":"u-p6e-gb200x36","name":"b"}]',
            ],
            "which the job across all UltraServers uses",
        ),
    ],
)
def test_bad_input_exits_2_with_the_problem(argv, message, tmp_path, monkeypatch, capsys):
    """GIVEN bad context or arguments THEN exit status 2, the problem on stderr, no files."""
    monkeypatch.chdir(REPO)
    assert cli.main(["manifests", "--out", str(tmp_path / "out"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "benchmarks").exists()


def test_without_an_nccl_image_no_benchmark_is_written(tmp_path, monkeypatch, capsys):
    """GIVEN no --nccl-image (the library pins none) and a stale benchmark WHEN exported THEN
    the validation jobs are written, benchmarks/ holds no YAML, and stderr says why."""
    monkeypatch.chdir(REPO)
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "nccl-us-1.yaml").write_text("stale")
    assert cli.main(["manifests", "--out", str(tmp_path)]) == 0
    assert list((tmp_path / "benchmarks").glob("*.yaml")) == []
    assert len(list((tmp_path / "validation").glob("*.yaml"))) == 2
    assert "NCCL benchmarks not written: pass --nccl-image IMAGE" in capsys.readouterr().err


def test_an_nccl_image_without_a_version_exits_2(tmp_path, monkeypatch, capsys):
    """GIVEN --nccl-image ...:latest THEN exit status 2 and the reason."""
    monkeypatch.chdir(REPO)
    code = cli.main(
        [
            "manifests",
            "--out",
            str(tmp_path),
            "--nccl-image",
            "public.ecr.aws/u1m6g1t5/nccl-tests-arm64:latest",
        ]
    )
    assert code == 2
    assert "names no version (tag latest)" in capsys.readouterr().err


def test_help(capsys):
    """THEN `manifests --help` documents --out, -c and --cdk-json, and the tool lists it."""
    assert "manifests" in cli.COMMANDS
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["manifests", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--out DIR",
        "-c KEY=VALUE, --context KEY=VALUE",
        "--context-file PATH, --cdk-json PATH",
        "validation/",
        "benchmarks/",
    ):
        assert flag in text
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "manifests" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["manifests"])
    assert exit_info.value.code == 2, "--out is required"
