"""Imports run one way (docs: architecture):

    app.py -> constructs/ (aws_cdk) -> charts/ (cdk8s), helm/ (values builders) -> shared model
    command-line tool (commands/, aws_checks/) -> charts/, the shared model, boto3
    the synth-time lookup (lookups.py) -> the shared model, boto3

Checked statically from the source, lazy imports inside functions included. (import-linter
cannot see `constructs/` and `charts/`: they reach the package through symlinks.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "src" / "eks_ultraserver"
MODEL = (
    "versions",
    "model",
    "patterns",
    "context",
    "settings",
    "endpoint_access",
    "config",
    "instance_types",
    "quotas",
    "sharding",
    "capacity",
    "capacity_reader",
    "synth_files",
    "runai_config",
)
SOURCES = {
    "constructs": REPO / "constructs",
    "charts": REPO / "charts",
    "": PACKAGE,
}


def _modules() -> dict[str, Path]:
    """eks_ultraserver module name -> file, for every module of the library."""
    out: dict[str, Path] = {}
    for prefix, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            if prefix == "" and path.relative_to(folder).parts[0] in ("constructs", "charts"):
                continue  # the symlinks: the folders themselves are listed above
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join(["eks_ultraserver", *([prefix] if prefix else []), *parts])
            out[name] = path
    return out


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _hits(imported: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(i for i in imported if any(i == f or i.startswith(f + ".") for f in forbidden))


RULES = [
    (
        "charts (cdk8s) never import the AWS CDK, the constructs, the tool or boto3",
        ("eks_ultraserver.charts",),
        (
            "aws_cdk",
            "eks_ultraserver.constructs",
            "eks_ultraserver.app",
            "eks_ultraserver.commands",
            "eks_ultraserver.aws_checks",
            "boto3",
            "botocore",
        ),
    ),
    (
        "the shared model imports neither side",
        tuple(f"eks_ultraserver.{m}" for m in MODEL),
        (
            "aws_cdk",
            "cdk8s",
            "eks_ultraserver.constructs",
            "eks_ultraserver.charts",
            "eks_ultraserver.commands",
            "eks_ultraserver.aws_checks",
            "eks_ultraserver.app",
            "boto3",
            "botocore",
        ),
    ),
    (
        "Helm values builders import neither the AWS CDK nor cdk8s, the constructs, the tool or boto3",
        ("eks_ultraserver.helm",),
        (
            "aws_cdk",
            "cdk8s",
            "eks_ultraserver.constructs",
            "eks_ultraserver.charts",
            "eks_ultraserver.app",
            "eks_ultraserver.commands",
            "eks_ultraserver.aws_checks",
            "boto3",
            "botocore",
        ),
    ),
    (
        "the synth-time lookup is no construct: it imports neither the AWS CDK nor cdk8s",
        ("eks_ultraserver.lookups",),
        (
            "aws_cdk",
            "cdk8s",
            "eks_ultraserver.constructs",
            "eks_ultraserver.charts",
            "eks_ultraserver.commands",
        ),
    ),
    (
        "constructs never import the command-line tool",
        ("eks_ultraserver.constructs",),
        ("eks_ultraserver.commands", "eks_ultraserver.cli", "eks_ultraserver.app"),
    ),
    (
        "boto3 only in the tool, the AWS checks and the one synth-time lookup",
        (
            "eks_ultraserver.constructs",
            "eks_ultraserver.charts",
            "eks_ultraserver.helm",
            "eks_ultraserver.app",
        ),
        ("boto3",),
    ),
    (
        "nothing imports the app module but the CDK app itself",
        ("eks_ultraserver",),
        ("app",),
    ),
]


@pytest.mark.parametrize(("rule", "sources", "forbidden"), RULES, ids=[r[0] for r in RULES])
def test_imports_run_one_way(rule, sources, forbidden):
    modules = _modules()
    for expected in ("charts.mpijob", "constructs.environment", "helm.gpu_operator", "lookups"):
        assert f"eks_ultraserver.{expected}" in modules
    offenders = {
        name: hits
        for name, path in modules.items()
        if any(name == s or name.startswith(s + ".") for s in sources)
        and (hits := _hits(_imports(path), forbidden))
    }
    assert offenders == {}, rule


def test_the_checker_sees_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from aws_cdk import aws_eks_v2\n")
    assert _hits(_imports(bad), ("aws_cdk",)) == ["aws_cdk", "aws_cdk.aws_eks_v2"]
