"""Which resources a template change would replace, from CloudFormation's own schemas.

A replaced node group loses its running jobs and, during a Capacity Block, can lose the
capacity; a replaced cluster or VPC loses everything. CloudFormation replaces a resource
when its logical id disappears or when a create-only property changes. The create-only
properties come from the CloudFormation resource schemas that cfn-lint ships
(``createOnlyProperties``), not from a hand-kept list.

A test helper: every common configuration change keeps the VPC, subnets, cluster and node
groups. Against a deployed stack, ``cdk diff`` tells what an update replaces (it asks
CloudFormation); this module lets the tests prove it for changes nobody has deployed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

#: Resources whose replacement costs a running environment (or its reserved capacity).
PROTECTED_TYPES = frozenset(
    {
        "AWS::EC2::VPC",
        "AWS::EC2::Subnet",
        "AWS::EKS::Cluster",
        "AWS::EKS::Nodegroup",
        "AWS::CloudFormation::Stack",
    }
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Replacement:
    template: str
    logical_id: str
    type: str
    reason: str

    def __str__(self) -> str:
        return f"{self.type} {self.logical_id} ({self.template}): {self.reason}"


@cache
def create_only_properties(resource_type: str) -> tuple[tuple[str, ...], ...]:
    """Create-only property paths of a resource type, e.g. ``(("CapacityType",), ...)``."""
    from cfnlint.schema.manager import PROVIDER_SCHEMA_MANAGER

    try:
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource_type).schema
    except Exception:  # custom resources and types cfn-lint does not know
        return ()
    paths = []
    for pointer in schema.get("createOnlyProperties", []):
        parts = pointer.split("/")[2:]  # "/properties/A/B" -> ["A", "B"]
        if parts:
            paths.append(tuple(parts))
    return tuple(paths)


def _get(properties: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = properties
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def replacements(
    old: Mapping[str, Mapping[str, Any]],
    new: Mapping[str, Mapping[str, Any]],
    *,
    types: frozenset[str] | None = PROTECTED_TYPES,
) -> list[Replacement]:
    """What ``new`` would replace of ``old``; both map a template name to a template.

    :param types: resource types to report. Default: ``PROTECTED_TYPES``; ``None`` for all.
    """
    out: list[Replacement] = []
    for name, old_template in sorted(old.items()):
        new_resources = (new.get(name) or {}).get("Resources", {})
        for logical_id, resource in sorted(old_template.get("Resources", {}).items()):
            rtype = resource.get("Type", "")
            if types is not None and rtype not in types:
                continue
            current = new_resources.get(logical_id)
            if current is None:
                out.append(Replacement(template=name, logical_id=logical_id, type=rtype, reason="removed"))
                continue
            if current.get("Type") != rtype:
                out.append(
                    Replacement(
                        template=name,
                        logical_id=logical_id,
                        type=rtype,
                        reason=f"type changes to {current.get('Type')}",
                    )
                )
                continue
            before = resource.get("Properties", {})
            after = current.get("Properties", {})
            for path in create_only_properties(rtype):
                if _get(before, path) != _get(after, path):
                    out.append(
                        Replacement(
                            template=name,
                            logical_id=logical_id,
                            type=rtype,
                            reason=f"create-only property {'.'.join(path)} changes",
                        )
                    )
    return out


def read_templates(directory: str | Path, stack_name: str) -> dict[str, dict]:
    """A stack's parent and nested templates from a cloud assembly directory.

    Nested templates are the ones the stack's asset manifest lists, so stale files of an
    earlier synth in the same directory are not mistaken for current ones.
    """
    base = Path(directory)
    parent = base / f"{stack_name}.template.json"
    if not parent.is_file():
        return {}
    out: dict[str, dict] = {"parent": json.loads(parent.read_text())}
    assets = base / f"{stack_name}.assets.json"
    if assets.is_file():
        files = json.loads(assets.read_text()).get("files", {})
        for entry in files.values():
            path = entry.get("source", {}).get("path", "")
            if path.endswith(".nested.template.json") and (base / path).is_file():
                out[path.removesuffix(".nested.template.json")] = json.loads((base / path).read_text())
    return out


def placements(templates: Mapping[str, Mapping[str, Any]], resource_type: str) -> dict[str, str]:
    """Logical id -> the template (parent or nested stack) of every ``resource_type``
    resource in ``templates`` (template name -> template): where each one lives."""
    return {
        logical_id: name
        for name, template in templates.items()
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == resource_type
    }


def synth_to_directory(context: Mapping[str, Any], outdir: str | Path, *, stack_name: str) -> dict[str, dict]:
    """Synthesizes the app as app.py does with ``context`` into ``outdir`` (CDK's built-in
    validation off) and returns :func:`read_templates` of it: the fast way for fleets of
    thousands, without a ``Template`` object per nested stack."""
    import aws_cdk as cdk

    from eks_ultraserver.app import build_app

    app = cdk.App(context=dict(context), outdir=str(outdir), builtin_cloud_formation_validation=False)
    build_app(app, stack_name=stack_name)
    app.synth()
    return read_templates(outdir, stack_name)
