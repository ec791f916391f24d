"""The documentation site (mkdocs.yml, docs/): generated blocks current, every page the code
names present, and a strict build that succeeds offline and fails on a broken link."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from markdown.extensions.toc import slugify  # type: ignore[import-untyped]

from conftest import REPO

DOCS = REPO / "docs"
#: Folders of the repository that hold no source of ours.
_NOT_OURS = {".git", ".venv", "node_modules", "build", "cdk.out", "site", "dist", "__pycache__"}
#: ``docs/<page>.md``, an optional ``#anchor``, and an optional section named in quotes
#: after it: ``docs/operations.md, "Upgrading"``.
_REFERENCE_RE = re.compile(
    r'docs/(?P<page>[A-Za-z0-9_./-]+?\.md)(?:#(?P<anchor>[\w-]+))?(?:,?\s+"(?P<section>[^"\n]+)")?'
)
_HEADING_RE = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
_FENCE_RE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)


def _docs_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("eks_ultraserver_docs_tool", REPO / "tools" / "docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _headings(page: Path) -> list[str]:
    """The page's headings as plain text (code fences skipped, inline Markdown removed)."""
    text = _FENCE_RE.sub("", page.read_text())
    plain = []
    for _, title in _HEADING_RE.findall(text):
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title).replace("`", "")
        plain.append(title.strip())
    return plain


def _anchors(page: Path) -> set[str]:
    """The ids MkDocs' toc extension gives the headings (duplicates get _1, _2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for title in _headings(page):
        slug = slugify(title, "-")
        if slug in seen:
            seen[slug] += 1
            slug = f"{slug}_{seen[slug]}"
        else:
            seen[slug] = 0
        out.add(slug)
    return out


def _our_files(suffix: str) -> list[Path]:
    """Our files ending in ``suffix``, without descending into .venv, node_modules and the like."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in _NOT_OURS]
        found.extend(Path(folder, f) for f in files if f.endswith(suffix))
    return found


def _mkdocs_build(config: Path, site: Path, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site), "-f", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _no_network_prefix() -> tuple[str, ...]:
    """A new network namespace (as in test_cdk_cli): any connection attempt fails at once."""
    prefix = ("unshare", "--net", *(() if os.geteuid() == 0 else ("--map-root-user",)))
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True)
    assert probe.returncode == 0, f"cannot create a network namespace here ({probe.stderr.strip()})"
    return prefix


def _copy_site(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(REPO / "mkdocs.yml", root / "mkdocs.yml")
    shutil.copytree(DOCS, root / "docs")
    return root


# ----------------------------------------------------------------- generated blocks


def test_every_generated_block_is_current():
    """GIVEN the versions module and the configuration keys WHEN the docs' generated blocks
    are compared with what tools/docs.py renders THEN each is current and each generator's
    home page holds its block."""
    tool = _docs_tool()
    blocks, problems = tool.scan(REPO)
    assert problems == []
    stale = [f"{b.path.relative_to(REPO)}: {b.name}" for b in blocks if not b.current]
    assert stale == [], "stale generated blocks; run: python tools/docs.py"
    homes = {(b.path.relative_to(REPO).as_posix(), b.name) for b in blocks}
    assert ("docs/versions.md", "versions") in homes
    assert ("docs/configuration.md", "context-keys") in homes


def test_the_check_names_a_stale_block_and_writing_fixes_it(tmp_path, capsys):
    """GIVEN a copy of the docs whose versions table is out of date WHEN the tool runs with
    --check THEN it exits 1 naming the file and the block; AND after a plain run the check
    passes and the table is the versions module's."""
    from eks_ultraserver import versions

    tool = _docs_tool()
    root = _copy_site(tmp_path)
    page = root / "docs" / "versions.md"
    page.write_text(page.read_text().replace("| Kubernetes (EKS) |", "| Kubernetes (old) |"))

    assert tool.main(["--check", "--root", str(root)]) == 1
    assert "docs/versions.md: the 'versions' block is stale" in capsys.readouterr().err

    assert tool.main(["--root", str(root)]) == 0
    assert tool.main(["--check", "--root", str(root)]) == 0
    assert versions.markdown_table() in page.read_text()


def test_the_check_reports_a_home_page_without_its_block(tmp_path, capsys):
    tool = _docs_tool()
    root = _copy_site(tmp_path)
    page = root / "docs" / "configuration.md"
    page.write_text(re.sub(r"<!-- context-keys:(begin|end) -->\n", "", page.read_text()))
    assert tool.main(["--check", "--root", str(root)]) == 1
    assert "docs/configuration.md: no 'context-keys' block" in capsys.readouterr().err


def test_the_context_keys_table_lists_every_key_with_what_the_code_says():
    """GIVEN config.CONTEXT_KEYS and the configuration dataclasses WHEN the table is rendered
    THEN every key has one row with its description, and defaults and allowed values are
    the code's (not written by hand)."""
    from eks_ultraserver.config import CONTEXT_KEYS
    from eks_ultraserver.model import EfaLayout
    from eks_ultraserver.versions import DEFAULT_KUBERNETES_VERSION, SUPPORTED_KUBERNETES_VERSIONS

    rows = {
        m.group(1): line
        for line in _docs_tool().context_keys_table().splitlines()
        if (m := re.match(r"\| \[`(\w+)`\]", line))
    }
    assert list(rows) == list(CONTEXT_KEYS)
    for key, description in CONTEXT_KEYS.items():
        assert f"| {description} |" in rows[key]
    assert f'`"{DEFAULT_KUBERNETES_VERSION}"`' in rows["kubernetesVersion"]
    assert all(f'`"{v}"`' in rows["kubernetesVersion"] for v in SUPPORTED_KUBERNETES_VERSIONS)
    assert f"`{EfaLayout.PER_GPU.value}`" in rows["efaLayout"]
    assert all(f"`{m.value}`" in rows["efaLayout"] for m in EfaLayout)
    assert "| `false` |" in rows["validationJobs"]
    assert "no default" in rows["ultraServers"]


def test_every_context_key_has_its_section_in_the_configuration_page():
    """The table links each key to a section named like it (the strict build checks the
    anchors too; this says which key lacks one, without a build)."""
    from eks_ultraserver.config import CONTEXT_KEYS

    anchors = _anchors(DOCS / "configuration.md")
    assert [k for k in CONTEXT_KEYS if k.lower() not in anchors] == []


# ----------------------------------------------------------------- references to pages


def _references() -> list[tuple[str, str, str | None, str | None]]:
    """(file, page, anchor, section) for each ``docs/<page>.md`` named in our Python files
    and in README/docs Markdown."""
    files = [*_our_files(".py"), REPO / "README.md", *DOCS.rglob("*.md")]
    found = []
    for path in files:
        for m in _REFERENCE_RE.finditer(path.read_text(errors="replace")):
            found.append((path.relative_to(REPO).as_posix(), m["page"], m["anchor"], m["section"]))
    return found


def test_the_code_names_pages_and_the_reference_finder_sees_them():
    """Not vacuous: the code's known references are found, with the section named."""
    refs = {(f, page, section) for f, page, _, section in _references()}
    assert ("src/eks_ultraserver/commands/upgrade.py", "operations.md", "Upgrading") in refs
    assert any(f == "charts/karpenter.py" and page == "capacity.md" for f, page, _ in refs)


def test_every_docs_page_named_in_the_repository_exists_with_its_section():
    """GIVEN every ``docs/<page>.md`` that a *.py file, README.md or a docs page names WHEN
    each is looked up THEN the page exists, and a named section or anchor is a heading of
    that page."""
    missing = []
    for where, page, anchor, section in _references():
        target = DOCS / page
        if not target.is_file():
            missing.append(f"{where}: docs/{page} does not exist")
            continue
        if section is not None and section not in _headings(target):
            missing.append(f'{where}: docs/{page} has no heading "{section}"')
        if anchor is not None and anchor not in _anchors(target):
            missing.append(f"{where}: docs/{page} has no anchor #{anchor}")
    assert missing == []


@pytest.mark.parametrize(
    "page",
    sorted(
        p.relative_to(DOCS).as_posix()
        for p in [
            DOCS / "addons.md",
            DOCS / "capacity.md",
            *DOCS.glob("constructs/*.md"),
            *DOCS.glob("addons/*.md"),
        ]
    ),
)
def test_construct_and_addon_pages_have_usage_options_and_how_to_verify(page):
    headings = _headings(DOCS / page)
    for wanted in ("Usage", "Options", "How to verify"):
        assert wanted in headings, f"docs/{page} lacks a '{wanted}' section"


# ----------------------------------------------------------------- the strict build


@pytest.mark.slow
def test_the_site_builds_strict_without_network(tmp_path):
    """GIVEN no network at all (a fresh network namespace) WHEN the site is built with
    ``mkdocs build --strict`` THEN it succeeds: every page in the nav, every link and
    anchor resolved, nothing fetched."""
    site = tmp_path / "site"
    result = _mkdocs_build(REPO / "mkdocs.yml", site, _no_network_prefix())
    assert result.returncode == 0, result.stderr
    assert (site / "index.html").is_file()
    assert (site / "operations" / "index.html").is_file()
    assert "Upgrading" in (site / "operations" / "index.html").read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("link", "contains a link 'no-such-page.md', but the target is not found"),
        ("anchor", "does not contain an anchor '#no-such-section'"),
        ("page left out of the nav", 'not included in the "nav" configuration'),
    ],
)
def test_a_broken_site_fails_the_strict_build(tmp_path, change, expected):
    """GIVEN a copy of the docs with one broken link, a link to a missing anchor, or a page
    that the nav leaves out WHEN it is built strict THEN the build fails and says why: the
    check that guards the real site is known to work."""
    root = _copy_site(tmp_path)
    index = root / "docs" / "index.md"
    if change == "link":
        index.write_text(index.read_text() + "\nSee [nothing](no-such-page.md).\n")
    elif change == "anchor":
        index.write_text(index.read_text() + "\nSee [nothing](configuration.md#no-such-section).\n")
    else:
        (root / "docs" / "orphan.md").write_text("# Orphan\n")
    result = _mkdocs_build(root / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert expected in result.stderr + result.stdout
