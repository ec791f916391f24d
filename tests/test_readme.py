"""The README is the front door: its two commands are the ones CI and the Makefile run, and
everything it links to exists (tests/test_docs.py checks the docs/ links themselves)."""

import re

from conftest import REPO

README = (REPO / "README.md").read_text()


def _commands(block_title: str) -> list[str]:
    """The shell commands of the first ```sh block after the heading ``block_title``."""
    section = README[README.index(block_title) :]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, f"no sh block under {block_title!r}"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_two_commands_are_make_targets_and_ci_runs_the_test_command():
    commands = _commands("## Two commands")
    assert commands == ["make synth", "make test"]
    makefile = (REPO / "Makefile").read_text()
    for command in commands:
        target = command.split()[1]
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile has no {target} target"
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert any(line == "make test" or line.startswith("make test ") for line in ci), (
        ".ci/run must run the README's test command"
    )


def test_every_relative_link_of_the_readme_exists():
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README)
    assert links, "the README links to the docs"
    assert [link for link in links if not (REPO / link).exists()] == []


def test_the_readme_stays_a_front_door():
    assert len(README.splitlines()) <= 250
