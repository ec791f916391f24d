"""Reading cdk.json context: the files, and the one decoder of ``-c`` values.

Every key can be overridden with ``cdk synth -c key=value``; values given with ``-c`` arrive
as strings, so lists, objects, numbers and booleans are also accepted as JSON text. Part of
the shared model: imports neither aws_cdk nor cdk8s (the command-line tool uses it too).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eks_ultraserver.model import INVALID, ConfigurationError, Problems, SelfValidating
from eks_ultraserver.patterns import INTEGER_RE

__all__ = ["decode", "decoded", "example_flag", "read_context_files", "read_object"]


def decode(raw: Any) -> Any:
    """Values from ``-c`` arrive as strings: decode JSON text (an object, a list, ``true``,
    ``false`` or an integer), keep anything else. Raises ``json.JSONDecodeError``."""
    if isinstance(raw, str):
        text = raw.strip()
        if text[:1] in ("[", "{") or text in ("true", "false") or INTEGER_RE.match(text):
            return json.loads(text)
    return raw


def decoded(key: str, raw: Any, example: Any, problems: Problems) -> Any:
    """:func:`decode`; for text that is not valid JSON, records a problem naming ``key``,
    the value and an example ``-c`` flag, and returns :data:`model.INVALID`."""
    try:
        return decode(raw)
    except json.JSONDecodeError as err:
        problems.add(
            f"{key}: {raw!r} is not valid JSON ({err.msg} at character {err.pos}); "
            f"{example_flag(key, example)}"
        )
        return INVALID


def read_object(
    key: str,
    raw: Any,
    cls: type[SelfValidating],
    problems: Problems,
    *,
    example: str,
    absent: Any = None,
) -> Any:
    r"""The context key ``key`` that holds one object of ``cls.CONTEXT_KEYS``' keys (given
    ``raw``: JSON text from ``-c`` or the cdk.json value): ``absent`` when not set, the
    ``cls.parse`` result when every key is known and valid, else :data:`model.INVALID` with
    every problem recorded (bad JSON, not an object, unknown keys, the object's own rules).
    Each value is :func:`decode`\ d too: numbers and booleans inside ``-c`` text arrive as
    text."""
    value = decoded(key, raw, example, problems)
    if value is None:
        return absent
    if value is INVALID:
        return INVALID
    if not isinstance(value, dict):
        problems.add(f"{key}: {value!r} is not an object; {example_flag(key, example)}")
        return INVALID
    known = {v: k for k, v in cls.CONTEXT_KEYS.items()}
    unknown = sorted(set(value) - set(known))
    if unknown:
        problems.add(
            f"{key}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: " + ", ".join(map(repr, known))
        )
    fields = {known[k]: decoded(f"{key}.{k}", v, example, problems) for k, v in value.items() if k in known}
    config, found = cls.parse(key, **fields)
    problems.extend(found)
    return config if config is not None and not unknown else INVALID


def example_flag(key: str, value: Any) -> str:
    """``e.g. -c key='value'``; a value that is not a string is written as compact JSON."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return f"e.g. -c {key}='{text}'"


def read_context_files(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The context the stack reads: ``path`` (cdk.json; a JSON file without ``app``/``context``
    keys is read as the context itself), then ``cdk.context.json`` beside a cdk.json, then the
    ``KEY=VALUE`` overrides (``-c``), as the CDK CLI hands them to the app. Used by
    ``python app.py`` without the CLI and by the ``eks-ultraserver`` subcommands, so all of
    them read the same configuration. Raises :class:`ConfigurationError` naming the file.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if overrides:  # the whole context may come from -c
            data = {}
        else:
            raise _context_error(
                f"{path}: not found (no such file); run in the CDK app's directory, pass "
                "--context-file PATH, or give the context with -c KEY=VALUE"
            ) from None
    except json.JSONDecodeError as err:
        raise _context_error(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(data, dict):
        raise _context_error(f"{path}: expected a JSON object")
    if "context" in data or "app" in data:
        context = data.get("context") or {}
        if not isinstance(context, dict):
            raise _context_error(f"{path}: 'context' is not an object")
    else:
        context = data
    context = dict(context)
    cached = path.parent / "cdk.context.json"
    if ("context" in data or "app" in data) and cached.is_file():
        # what the CDK CLI hands the app too: context-provider results and lookups
        try:
            extra = json.loads(cached.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise _context_error(f"{cached}: not valid JSON ({err.msg}, line {err.lineno})") from None
        if isinstance(extra, dict):
            context.update(extra)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _context_error(
                f"-c {item!r}: expected KEY=VALUE, e.g. -c availabilityZone=us-east-1-dfw-2a"
            )
        context[key.strip()] = value
    return context


def _context_error(message: str) -> ConfigurationError:
    return ConfigurationError([message], subject="context")
