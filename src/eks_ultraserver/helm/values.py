"""Helpers shared by the Helm values builders of the GPU platform add-ons.

Everything here is plain Python (no aws_cdk, no cdk8s): deep-merging user values over
the library's, checking that values only use keys a chart declares, and the few
scheduling snippets (GPU toleration, node affinity) every add-on needs.

Helm semantics these helpers follow (Helm docs, "Values Files" and "Deleting a default
key"): maps are merged key by key, lists and scalars are replaced, and a ``null`` value
removes the chart's default for that key.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from eks_ultraserver.model import (
    GPU_PRESENT_LABEL,
    GPU_TAINT,
    is_label_key,
    is_label_value,
)
from eks_ultraserver.versions import ChartVersion

__all__ = [
    "KUBERNETES_OBJECT_KEYS",
    "deep_merge",
    "gpu_node_affinity",
    "gpu_node_toleration",
    "label_selector_problems",
    "node_affinity_for",
    "parse_version",
    "plain",
    "tolerations_problems",
    "unknown_keys",
    "values_problems",
    "with_version",
]

#: Keys whose value is a Kubernetes object (or a free-form map) rather than a tree of chart
#: options: ``unknown_keys`` checks that such a key exists in the chart's defaults but does
#: not look inside it (``affinity.nodeAffinity.requiredDuring...`` is Kubernetes API, not a
#: chart option, and a chart default of ``{}`` says nothing about it).
KUBERNETES_OBJECT_KEYS = frozenset(
    {
        "affinity",
        "annotations",
        "env",
        "labels",
        "nodeSelector",
        "podAnnotations",
        "podSecurityContext",
        "resources",
        "securityContext",
        "tolerations",
    }
)

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$")


def parse_version(value: object) -> tuple[int, int, int] | None:
    """``"v25.10.1"`` / ``"0.4.1"`` / ``"v1.2.0-eksbuild.2"`` -> ``(major, minor, patch)``;
    ``None`` for anything else."""
    if not isinstance(value, str):
        return None
    match = _VERSION_RE.match(value.strip())
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def with_version(chart: ChartVersion, version: str | None) -> ChartVersion:
    """The pinned chart, or the same chart at another version (``app_version`` is then
    unknown and left empty)."""
    if version is None or version == chart.version:
        return chart
    return dataclasses.replace(chart, version=version, app_version="")


def plain(value: Any) -> Any:
    """A deep copy made only of ``dict``, ``list`` and scalars (what Helm values are)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return copy.deepcopy(value)


def deep_merge(base: Mapping[str, Any], *overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` with each override merged over it, the way Helm merges ``--values`` files.

    Maps merge key by key; anything else (lists, scalars, ``None``) replaces what was
    there. ``None`` is kept: Helm reads it as "delete the chart's default for this key".
    Neither argument is modified.
    """
    out = plain(base)
    for override in overrides:
        if not override:
            continue
        for key, value in override.items():
            key = str(key)
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = deep_merge(out[key], value)
            else:
                out[key] = plain(value)
    return out


def unknown_keys(
    values: Mapping[str, Any],
    defaults: Mapping[str, Any],
    *,
    also_known: Iterable[str] = (),
    prefix: str = "",
) -> list[str]:
    """Dotted paths of keys in ``values`` that the chart's default ``values.yaml`` does not
    declare (an empty list when every key is known).

    Walks nested maps. Below a key it accepts anything when the chart's default there is
    not a map or is an empty map (``featureGates: {}``: a free-form map), and at
    ``KUBERNETES_OBJECT_KEYS``. ``also_known`` lists dotted paths the chart reads although
    its own ``values.yaml`` does not show them (keys of a bundled subchart, for example);
    anything below such a path is accepted too.
    """
    known = frozenset(also_known)
    out: list[str] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if path in known:
            continue
        declared = isinstance(defaults, Mapping) and key in defaults
        known_below = any(k.startswith(path + ".") for k in known)
        if not declared and not known_below:
            out.append(path)
            continue
        if key in KUBERNETES_OBJECT_KEYS or not isinstance(value, Mapping):
            continue
        default = defaults.get(key) if declared else {}
        if not isinstance(default, Mapping):
            default = {}
        if declared and not default and not known_below:
            continue
        out.extend(unknown_keys(value, default, also_known=known, prefix=path + "."))
    return out


def label_selector_problems(where: str, selector: object) -> list[str]:
    """Problems of a node selector (label key -> value), each naming ``where``."""
    if selector is None:
        return []
    if not isinstance(selector, Mapping):
        return [f"{where}: {selector!r} is not a mapping of node label keys to values"]
    out = []
    if not selector:
        out.append(f"{where}: an empty selector pins nothing; pass None to leave controllers unpinned")
    for key, value in selector.items():
        if not is_label_key(key):
            out.append(f"{where}: {key!r} is not a valid Kubernetes label key")
        if not isinstance(value, str) or not is_label_value(value):
            out.append(f"{where}[{key!r}]: {value!r} is not a valid Kubernetes label value")
    return out


_TOLERATION_KEYS = {"key", "operator", "value", "effect", "tolerationSeconds"}


def tolerations_problems(where: str, tolerations: object) -> list[str]:
    """Problems of a list of Kubernetes tolerations."""
    if tolerations is None:
        return []
    if isinstance(tolerations, (str, bytes, Mapping)) or not isinstance(tolerations, Sequence):
        return [f"{where}: {tolerations!r} is not a list of tolerations"]
    out = []
    for i, tol in enumerate(tolerations):
        if not isinstance(tol, Mapping):
            out.append(f"{where}[{i}]: {tol!r} is not a toleration (a mapping with key, operator, effect)")
            continue
        unknown = sorted(set(tol) - _TOLERATION_KEYS)
        if unknown:
            out.append(
                f"{where}[{i}]: unknown field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(_TOLERATION_KEYS))}"
            )
        if tol.get("operator", "Equal") not in ("Equal", "Exists"):
            out.append(f"{where}[{i}].operator: {tol.get('operator')!r} is not 'Equal' or 'Exists'")
        if tol.get("effect") not in (None, "", "NoSchedule", "PreferNoSchedule", "NoExecute"):
            out.append(
                f"{where}[{i}].effect: {tol.get('effect')!r} is not NoSchedule, PreferNoSchedule or NoExecute"
            )
    return out


def values_problems(where: str, values: object) -> list[str]:
    """Problems of user-supplied extra values (must be a mapping with string keys)."""
    if values is None:
        return []
    if not isinstance(values, Mapping):
        return [f"{where}: {values!r} is not an object of Helm values"]
    out = []

    def walk(path: str, value: object) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                if not isinstance(k, str) or not k:
                    out.append(f"{path}: key {k!r} is not a non-empty string")
                else:
                    walk(f"{path}.{k}", v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{path}[{i}]", v)
        elif value is not None and not isinstance(value, (str, int, float, bool)):
            out.append(f"{path}: {value!r} is not JSON data (object, list, string, number, boolean or null)")

    walk(where, values)
    return out


def gpu_node_toleration() -> dict[str, str]:
    """Tolerates the GPU nodes' taint (``model.GPU_TAINT``, ``nvidia.com/gpu=true:NoSchedule``).

    ``Exists`` rather than ``Equal true``: it also covers nodes tainted
    ``nvidia.com/gpu:NoSchedule`` without a value, and is what the EKS P6e-GB200 guide
    (ml-eks-nvidia-ultraserver) and the charts' own defaults use for their node agents.
    """
    return {"key": GPU_TAINT.key, "operator": "Exists", "effect": GPU_TAINT.effect}


def node_affinity_for(selector: Mapping[str, str]) -> dict[str, Any]:
    """A required node affinity equal to a node selector (every label must match)."""
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": key, "operator": "In", "values": [value]}
                            for key, value in sorted(selector.items())
                        ]
                    }
                ]
            }
        }
    }


def gpu_node_affinity() -> dict[str, Any]:
    """Required node affinity on ``nvidia.com/gpu.present=true`` (set at boot by the AL2023
    NVIDIA AMI; the affinity the EKS guide gives the DRA kubelet plugin)."""
    return node_affinity_for({GPU_PRESENT_LABEL: "true"})
