#!/usr/bin/env python3
"""Regenerates the generated blocks of the documentation from the code.

A generated block sits between two markers in a Markdown file under ``docs/`` (and in
``README.md`` while it still has one):

    <!-- versions:begin -->
    ...
    <!-- versions:end -->

Each block has one generator here, and one home page in ``docs/``:

- ``versions``: the table of every pinned version, ``eks_ultraserver.versions.markdown_table()``
  (docs/versions.md);
- ``context-keys``: the ``cdk.json`` context keys, from ``eks_ultraserver.config.CONTEXT_KEYS``
  with each key's default and allowed values read from the configuration dataclasses
  (docs/configuration.md).

    python tools/docs.py            # rewrite every stale block
    python tools/docs.py --check    # exit 1 and name each stale block; write nothing

``tests/test_docs.py`` runs the check, so a change to the versions or the configuration
keys fails the tests until the docs are regenerated.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_BLOCK_RE = re.compile(
    r"(?P<begin><!-- (?P<name>[a-z][a-z0-9-]*):begin -->\n)(?P<body>.*?)(?P<end><!-- (?P=name):end -->)",
    re.S,
)


# --------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------


def versions_table() -> str:
    """Every pinned version (the same table ``python -m eks_ultraserver versions`` prints)."""
    from eks_ultraserver import versions

    return versions.markdown_table()


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _config_field(key: str) -> tuple[type, dataclasses.Field[typing.Any]] | None:
    """The dataclass field a context key sets, found by name: ``efaLayout`` ->
    ``EnvironmentConfig.efa_layout``; ``addonVersions`` -> ``AddonsConfig.versions``."""
    from eks_ultraserver.config import AddonsConfig, EnvironmentConfig

    by_key = {k: attr for attr, k in EnvironmentConfig.CONTEXT_KEYS.items()}  # the declared mapping
    snake = _snake(key)
    candidates = [
        (EnvironmentConfig, by_key.get(key, "")),
        (EnvironmentConfig, snake),
        (EnvironmentConfig, snake.replace("_", "")),  # ultraServers -> ultraservers
        (AddonsConfig, snake),
        (AddonsConfig, _snake(key.removeprefix("addon")[:1].lower() + key.removeprefix("addon")[1:])),
    ]
    for cls, name in candidates:
        for f in dataclasses.fields(cls):
            if f.name == name:
                return cls, f
    return None


def _unwrap_optional(tp: typing.Any) -> typing.Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _code(value: object) -> str:
    return f"`{value}`"


def _allowed(field_name: str, tp: typing.Any) -> str:
    from eks_ultraserver.versions import SUPPORTED_KUBERNETES_VERSIONS

    if field_name == "kubernetes_version":
        return "one of " + ", ".join(_code(f'"{v}"') for v in SUPPORTED_KUBERNETES_VERSIONS)
    if field_name == "ultraserver_shards":
        from eks_ultraserver.sharding import ULTRASERVER_SHARD_COUNTS

        return "one of " + ", ".join(_code(v) for v in ULTRASERVER_SHARD_COUNTS)
    tp = _unwrap_optional(tp)
    origin = typing.get_origin(tp) or tp
    if isinstance(origin, type) and issubclass(origin, enum.Enum):
        return "one of " + ", ".join(_code(m.value) for m in origin)
    if origin is bool:
        return "`true` or `false`"
    if origin in (tuple, list):
        return "list (JSON)"
    if isinstance(origin, type) and issubclass(origin, Mapping | dict):
        return "object (JSON)"
    if dataclasses.is_dataclass(origin):
        return "object (JSON)"
    if origin is str:
        return "string"
    return "-"


def _default(f: dataclasses.Field[typing.Any]) -> str:
    if f.default is dataclasses.MISSING:
        return "not set" if f.default_factory is not dataclasses.MISSING else "no default"
    value = f.default
    if value is None or value == ():
        return "not set"
    if isinstance(value, enum.Enum):
        return _code(value.value)
    if isinstance(value, bool):
        return _code(str(value).lower())
    if isinstance(value, str):
        return _code(f'"{value}"')
    return _code(value)


def context_keys_table() -> str:
    """One row per ``cdk.json`` context key, in the order of ``config.CONTEXT_KEYS``.

    Each key links to its section of docs/configuration.md (a heading named like the key),
    so the strict site build fails when a key has no section."""
    from eks_ultraserver.config import CONTEXT_KEYS

    rows = ["| key | what it sets | default | value |", "|---|---|---|---|"]
    for key, description in CONTEXT_KEYS.items():
        found = _config_field(key)
        if found is None:
            default, allowed = "-", "-"
        else:
            cls, f = found
            hints = typing.get_type_hints(cls)
            default, allowed = _default(f), _allowed(f.name, hints[f.name])
        rows.append(f"| [`{key}`](#{key.lower()}) | {description} | {default} | {allowed} |")
    return "\n".join(rows) + "\n"


@dataclass(frozen=True)
class Generator:
    name: str
    #: the page under docs/ that is the block's home (it must hold the block)
    home: str
    render: Callable[[], str]


GENERATORS: dict[str, Generator] = {
    g.name: g
    for g in (
        Generator("versions", "versions.md", versions_table),
        Generator("context-keys", "configuration.md", context_keys_table),
    )
}


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    path: Path
    name: str
    current: bool


def _files(root: Path) -> list[Path]:
    files = sorted((root / "docs").rglob("*.md")) if (root / "docs").is_dir() else []
    readme = root / "README.md"
    return [*files, readme] if readme.is_file() else files


def _render(text: str, rendered: dict[str, str]) -> tuple[str, list[tuple[str, bool]]]:
    """``text`` with every known block regenerated, and (name, was current) per block."""
    found: list[tuple[str, bool]] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in GENERATORS:
            return match.group(0)
        body = rendered.setdefault(name, GENERATORS[name].render())
        found.append((name, match.group("body") == body))
        return match.group("begin") + body + match.group("end")

    return _BLOCK_RE.sub(replace, text), found


def scan(root: Path = REPO, *, write: bool = False) -> tuple[list[Block], list[str]]:
    """Every generated block under ``root`` (and whether it was current), and the problems
    that regenerating cannot fix (a generator whose home page lacks its block). With
    ``write``, stale blocks are rewritten."""
    rendered: dict[str, str] = {}
    blocks: list[Block] = []
    for path in _files(root):
        text = path.read_text()
        new, found = _render(text, rendered)
        blocks.extend(Block(path, name, current) for name, current in found)
        if write and new != text:
            path.write_text(new)
    problems = []
    for g in GENERATORS.values():
        home = root / "docs" / g.home
        if not any(b.path == home and b.name == g.name for b in blocks):
            problems.append(
                f"docs/{g.home}: no '{g.name}' block; add the markers "
                f"<!-- {g.name}:begin --> and <!-- {g.name}:end --> on lines of their own"
            )
    return blocks, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Regenerate the generated blocks of docs/ (and README.md) from the code."
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 naming each stale block")
    parser.add_argument("--root", type=Path, default=REPO, help="the repository (default: this one)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    blocks, problems = scan(root, write=not args.check)
    stale = [b for b in blocks if not b.current]
    for b in stale:
        where = b.path.relative_to(root)
        if args.check:
            print(f"{where}: the '{b.name}' block is stale", file=sys.stderr)
        else:
            print(f"{where}: regenerated the '{b.name}' block")
    for p in problems:
        print(p, file=sys.stderr)
    if args.check and stale:
        print("run: python tools/docs.py", file=sys.stderr)
    return 1 if problems or (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
