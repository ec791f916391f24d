"""Fewer jsii round trips: every attribute read of a CDK object is a call into Node.js.

An UltraServerNodeGroup reads the same cluster, subnet, role and security group
attributes as every other node group of the environment; reading each once per object
keeps synthesis at a few milliseconds per UltraServer (see bench/synth.py).
"""

from __future__ import annotations

from typing import Any

# (id(obj), attribute) -> (obj, value); the object is kept so that its id is not reused.
_ATTRIBUTES: dict[tuple[int, str], tuple[object, Any]] = {}
_BASE64: dict[str, str] = {}
_SHARED: dict[str, Any] = {}


def attr(obj: object, name: str) -> Any:
    """``getattr(obj, name)``, read through jsii once per object and attribute.

    Only for attributes that never change once the object exists (ids, names, ARNs,
    tokens that stand for them).
    """
    key = (id(obj), name)
    hit = _ATTRIBUTES.get(key)
    if hit is not None and hit[0] is obj:
        return hit[1]
    value = getattr(obj, name)
    _ATTRIBUTES[key] = (obj, value)
    return value


def is_token(value: object) -> bool:
    """Whether a string is (or contains) an unresolved CDK token, without a jsii call.

    CDK encodes tokens in strings as ``${Token[...]}`` (aws-cdk-lib core, token encoding).
    """
    return isinstance(value, str) and "${Token[" in value


def base64(text: str) -> str:
    """``Fn.base64(text)``, one token per distinct text."""
    token = _BASE64.get(text)
    if token is None:
        from aws_cdk import Fn

        token = _BASE64[text] = Fn.base64(text)
    return token


def shared(value: Any) -> Any:
    """``value`` as one jsii object that every resource with the same value refers to.

    Node groups of an environment repeat the same network interfaces, volumes and
    metadata options. Passed as plain data, each copy is converted and sent to Node.js
    again; wrapped once with ``Token.as_any``, later uses send only a reference, and CDK
    resolves it to the same JSON at synth. Values are keyed by their JSON text, which
    includes any token's unique id, so a value never crosses from one app to another.
    """
    import json

    key = json.dumps(value, sort_keys=True)
    token = _SHARED.get(key)
    if token is None:
        from aws_cdk import Token

        token = _SHARED[key] = Token.as_any(value)
    return token
