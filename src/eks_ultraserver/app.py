"""Builds the CDK app that ``app.py`` synthesizes: configuration from context, one stack."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import aws_cdk as cdk

from eks_ultraserver.config import (
    EnvironmentConfig,
    misspelling_message,
    misspelt_context_keys,
    read_context_files,
)
from eks_ultraserver.instance_types import INSTANCE_TYPES, GpuInstanceType
from eks_ultraserver.model import STACK_NAME, ConfigurationError


def under_cdk_cli() -> bool:
    """True when the CDK CLI runs the app (it passes context and the output directory)."""
    return any(k in os.environ for k in ("CDK_CONTEXT_JSON", "CDK_CONTEXT_FILE"))


def local_context(directory: str | os.PathLike = ".") -> dict:
    """Context for ``python app.py`` run without the CDK CLI.

    The CLI reads ``cdk.json`` and ``cdk.context.json`` and hands their context to the app
    in ``CDK_CONTEXT_JSON``; a plain ``python app.py`` gets nothing. Then read the same two
    files, so both ways synthesize the same stack. Returns ``{}`` under the CLI.
    """
    if under_cdk_cli():
        return {}
    cdk_json = Path(directory) / "cdk.json"
    return read_context_files(cdk_json) if cdk_json.is_file() else {}


def build_app(
    app: cdk.App,
    *,
    stack_name: str | None = None,
    instance_types: Mapping[str, GpuInstanceType] = INSTANCE_TYPES,
):
    """Reads the configuration from ``app``'s context and adds the environment stack.
    ``instance_types``: the table ``reservedCapacity`` entries may use
    (``instance_types.with_instance_types(GpuInstanceType(...))`` for your own types).

    Raises ``ConfigurationError`` (one message, every problem) before adding anything.
    An unknown top-level context key close to a known one (``kubernetesVerison``) is a
    synth warning on the stack, or one more problem in the error when there is one.
    """
    from eks_ultraserver.constructs.stack import UltraServerStack

    get = app.node.try_get_context
    misspelt = misspelt_context_keys(app.node.get_all_context() or {})
    # With no availabilityZone, look the zone up from the reservations (cached in
    # cdk.context.json like CDK's own context providers; boto3 only when not cached).
    looked_up: dict = {}
    if get("availabilityZone") in (None, ""):
        from eks_ultraserver.lookups import resolve_reservations

        looked_up = resolve_reservations(get, account=get("account"), region=get("region"))
    hints = [misspelling_message(key, meant) for key, meant in misspelt.items()]
    try:
        config = EnvironmentConfig.from_context(
            lambda key: looked_up.get(key, get(key)), instance_types=instance_types
        )
    except ConfigurationError as err:
        if not hints:
            raise
        raise ConfigurationError([*err.problems, *hints], subject="configuration (cdk.json context)") from err
    problems = []
    if config.vpc_id and not (config.account and config.region):
        problems.append(
            f"vpcId: {config.vpc_id!r} needs account and region to look the VPC up; "
            "e.g. -c account=123456789012 -c region=us-east-1"
        )
    if config.region and not config.availability_zone.startswith(config.region):
        problems.append(f"availabilityZone: {config.availability_zone!r} is not in region {config.region!r}")
    if problems:
        raise ConfigurationError([*problems, *hints], subject="configuration (cdk.json context)")
    env = (
        cdk.Environment(account=config.account, region=config.region)
        if config.account or config.region
        else None
    )
    stack = UltraServerStack(app, stack_name or STACK_NAME, config=config, env=env)
    for key, hint in zip(misspelt, hints, strict=True):
        cdk.Annotations.of(stack).add_warning_v2(f"eks-ultraserver:unknown-context-key:{key}", hint)
    return stack
