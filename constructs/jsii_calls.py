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
