"""The package layout works in every way it is used (see pyproject.toml's comment).

- `import constructs` is the library, never our folder; nothing imports our code as
  `constructs.<x>` or `charts.<x>`;
- the editable install serves the repository's files;
- `python app.py` and the real `cdk synth` work from the repository root;
- a wheel installed into a fresh virtual environment works from another directory, in a
  CDK app of its own.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO

SOURCE_DIRS = [REPO / "src" / "eks_ultraserver", REPO / "constructs", REPO / "charts", REPO / "tests"]


def _env(**extra):
    env = dict(os.environ)
    env.pop("CDK_CONTEXT_JSON", None)
    env.pop("CDK_OUTDIR", None)
    env.update(extra)
    return env


def test_import_constructs_is_the_library():
    import constructs
    import eks_ultraserver.constructs.nodegroup  # noqa: F401  (loads our subpackage too)

    assert hasattr(constructs, "Construct")
    assert "site-packages" in (constructs.__file__ or "")
    assert not (REPO / "constructs" / "__init__.py").exists()
    assert not (REPO / "charts" / "__init__.py").exists()


def test_nothing_loads_our_modules_as_top_level_constructs_or_charts():
    import eks_ultraserver.constructs.environment  # noqa: F401

    ours = {p.stem for p in (REPO / "constructs").glob("*.py")} | {
        p.stem for p in (REPO / "charts").glob("*.py")
    }
    loaded = [
        m for m in sys.modules if m.split(".")[0] in ("constructs", "charts") and m.split(".")[-1] in ours
    ]
    assert loaded == []
    offenders = []
    for folder in SOURCE_DIRS:
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                for name in names:
                    if name.startswith(("constructs.", "charts.")) or name == "charts":
                        offenders.append(f"{path.relative_to(REPO)}: {name}")
    assert offenders == []


def test_editable_install_serves_the_repository():
    import eks_ultraserver
    import eks_ultraserver.charts
    import eks_ultraserver.constructs.nodegroup as nodegroup

    assert Path(eks_ultraserver.__file__).resolve() == REPO / "src" / "eks_ultraserver" / "__init__.py"
    assert Path(nodegroup.__file__).resolve() == REPO / "constructs" / "nodegroup.py"
    assert {Path(p).resolve() for p in eks_ultraserver.charts.__path__} == {REPO / "charts"}


def test_public_names():
    from eks_ultraserver import UltraServerEnvironment, UltraServerNodeGroup
    from eks_ultraserver.constructs.environment import UltraServerEnvironment as E
    from eks_ultraserver.constructs.nodegroup import UltraServerNodeGroup as N

    assert UltraServerNodeGroup is N and UltraServerEnvironment is E


@pytest.mark.slow
def test_python_app_py_from_the_repository_root(tmp_path):
    result = subprocess.run(
        # CDK's built-in template validation off: the CLI test runs it; cfn-lint covers it
        [sys.executable, "app.py"],
        cwd=REPO,
        env=_env(CDK_OUTDIR=str(tmp_path), CDK_VALIDATION="false"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    template = json.loads((tmp_path / "UltraServerEnvironment.template.json").read_text())
    assert any(r["Type"] == "AWS::EKS::Nodegroup" for r in template["Resources"].values())


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_used_from_another_directory(tmp_path):
    """Builds the wheel, installs it (no deps, no index) into a new venv that borrows the
    dependencies of this one through a .pth file, and synthesizes a stack of its own."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("eks_ultraserver-*.whl")
    # every module of the library and the upstream files synth installs are in the wheel
    import zipfile

    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"eks_ultraserver/{prefix}{path.relative_to(root).as_posix()}"
        for prefix, root in (
            ("", REPO / "src" / "eks_ultraserver"),
            ("constructs/", REPO / "constructs"),
            ("charts/", REPO / "charts"),
        )
        for path in root.rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and (path.suffix in {".py", ".yaml", ".txt", ".typed"} or path.name == "README.md")
        and not (
            root.name == "eks_ultraserver" and path.relative_to(root).parts[0] in ("constructs", "charts")
        )
    }
    assert (
        "eks_ultraserver/commands/cli.py" not in expected and "eks_ultraserver/commands/common.py" in expected
    )
    assert sorted(expected - shipped) == []
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    import sysconfig

    (Path(site) / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            site,
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    app_dir = tmp_path / "elsewhere"
    app_dir.mkdir()
    (app_dir / "myapp.py").write_text(
        textwrap.dedent("""
        import json, sys
        import aws_cdk as cdk
        from aws_cdk import aws_ec2 as ec2, aws_eks_v2 as eks
        import eks_ultraserver
        from eks_ultraserver import UltraServerNodeGroup

        app = cdk.App(outdir=sys.argv[1])
        stack = cdk.Stack(app, "Mine")
        cluster = eks.Cluster(stack, "C", version=eks.KubernetesVersion.V1_34, default_capacity=0,
                              default_capacity_type=eks.DefaultCapacityType.NODEGROUP)
        subnet = ec2.Subnet.from_subnet_attributes(stack, "S", subnet_id="subnet-0abc",
                                                   availability_zone="us-east-1-dfw-2a")
        UltraServerNodeGroup(stack, "Us", cluster=cluster, capacity_reservation_id="cr-0123456789abcdef0",
                             ultraserver_type="u-p6e-gb200x36", subnets=[subnet])
        app.synth()
        print(json.dumps({"package": eks_ultraserver.__file__}))
    """)
    )
    out = tmp_path / "out"
    result = subprocess.run(
        [py, "myapp.py", str(out)], cwd=app_dir, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    package = json.loads(result.stdout.strip().splitlines()[-1])["package"]
    assert package.startswith(site), package
    template = json.loads((out / "Mine.template.json").read_text())
    groups = [r for r in template["Resources"].values() if r["Type"] == "AWS::EKS::Nodegroup"]
    assert groups[0]["Properties"]["CapacityType"] == "CAPACITY_BLOCK"
