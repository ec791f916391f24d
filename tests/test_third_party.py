"""Third-party files: verbatim, listed with their provenance, and the only upstream data used.

Each folder's README table (file, source repository, tag, commit, path, license, SHA-256)
is the record of where a file comes from; these tests hold the files to it.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from eks_ultraserver.versions import MPI_OPERATOR

from conftest import PACKAGED_UPSTREAM, REPO, UPSTREAM

FOLDERS = [PACKAGED_UPSTREAM, UPSTREAM]
COLUMNS = ["File", "Source repository", "Tag", "Commit", "Path", "License", "SHA-256"]
_ROW = re.compile(r"^\|(.+)\|\s*$")
#: A path into the folder beside the clone that held the planning notes' upstream copies
#: (built from parts, so that this file does not itself contain what it looks for).
OUTSIDE = re.compile(r"\.\./" + "shared" + r"\b|" + "/".join(("shared", "upstream")))


def provenance(folder: Path) -> dict[str, dict[str, str]]:
    """The README table of a third-party folder, by file name."""
    lines = [m[1] for line in (folder / "README.md").read_text().splitlines() if (m := _ROW.match(line))]
    header = [c.strip() for c in lines[0].split("|")]
    assert header == COLUMNS, f"{folder}/README.md: table columns {header}, expected {COLUMNS}"
    rows = {}
    for line in lines[2:]:
        cells = [c.strip().strip("`") for c in line.split("|")]
        rows[cells[0]] = dict(zip(COLUMNS, cells, strict=True))
    return rows


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_file_is_listed_and_matches_its_recorded_sha256(folder):
    rows = provenance(folder)
    files = sorted(p.name for p in folder.iterdir() if p.name != "README.md")
    assert files, f"{folder} is empty"
    assert sorted(rows) == files, "the README table and the folder list different files"
    for name, row in rows.items():
        actual = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert actual == row["SHA-256"], f"{name}: SHA-256 {actual}, recorded {row['SHA-256']}"
        assert re.fullmatch(r"[0-9a-f]{40}", row["Commit"]), f"{name}: commit {row['Commit']!r}"
        assert row["License"] == "Apache-2.0" and "/" in row["Source repository"] and row["Path"]


def test_the_pinned_mpi_operator_manifest_ships_with_the_library():
    row = provenance(PACKAGED_UPSTREAM)[f"mpi-operator-{MPI_OPERATOR.version}.yaml"]
    assert row["Tag"] == MPI_OPERATOR.version
    assert row["SHA-256"] == MPI_OPERATOR.sha256


def test_the_package_data_is_what_setuptools_ships():
    """The wheel (see test_layout) takes the folder through this package-data rule."""
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["eks_ultraserver"]
    assert {"third_party/*.yaml", "third_party/*.txt", "third_party/README.md"} <= set(patterns)


def test_nothing_in_the_repository_reads_outside_it():
    """No tracked file reaches for a folder beside the clone (the planning notes' copies)."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    offenders = []
    for name in filter(None, tracked):
        path = REPO / name.decode()
        if not path.is_file() or path.is_symlink():
            continue
        if OUTSIDE.search(path.read_text(errors="replace")):
            offenders.append(name.decode())
    assert offenders == []


def test_the_refresh_script_prints_rows_in_the_tables_format(tmp_path):
    """tools/upstream.py (needs GitHub, never run here) prints the row to add: the same
    columns and hash the tests read back."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("upstream_tool", REPO / "tools" / "upstream.py")
    assert spec and spec.loader
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    name = f"mpi-operator-{MPI_OPERATOR.version}.yaml"
    recorded = provenance(PACKAGED_UPSTREAM)[name]
    row = tool.provenance_row(
        name=name,
        repo=recorded["Source repository"],
        tag=recorded["Tag"],
        commit=recorded["Commit"],
        path=recorded["Path"],
        license=recorded["License"],
        data=(PACKAGED_UPSTREAM / name).read_bytes(),
    )
    (tmp_path / "README.md").write_text(
        "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n" + row + "\n"
    )
    assert provenance(tmp_path) == {name: recorded}
