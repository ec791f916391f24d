"""The README's version table is generated from eks_ultraserver.versions."""

import re

from eks_ultraserver import versions

from conftest import REPO


def test_readme_version_table_equals_versions_module():
    readme = (REPO / "README.md").read_text()
    match = re.search(r"<!-- versions:begin -->\n(.*?)<!-- versions:end -->", readme, re.S)
    assert match, "README lacks the versions markers"
    assert match.group(1) == versions.markdown_table(), (
        "README's version table is stale: regenerate it with `python -m eks_ultraserver versions`"
    )


def test_readme_quick_start_commands_match_ci():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "make synth" in readme and "make test" in readme
    assert "make test" in ci
