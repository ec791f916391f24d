"""The deployed stack's UltraServer shard count against the configured one.

``ultraServerShards`` is fixed when an environment is created (``eks_ultraserver.sharding``,
docs/sharding.md): another count hashes most UltraServers to other nested stacks, and
CloudFormation replaces a node group that moves to another stack (delete, then create:
its nodes go, and during a Capacity Block it may not get them back). Synth cannot see what
is deployed, so the parent stack records the count in its ``UltraServerShards`` output and
this check compares it (``cloudformation:DescribeStacks``; stack outputs as the
CloudFormation API reference, ``Output``, describes them). A stack deployed before that
output existed used the only count there was, 16.
"""

from __future__ import annotations

import re
from typing import Any

from botocore import exceptions as botocore_exceptions

from eks_ultraserver.aws_checks.errors import AwsSetupError, call, error_code, is_optional_failure
from eks_ultraserver.aws_checks.findings import Finding, Severity
from eks_ultraserver.sharding import DEFAULT_ULTRASERVER_SHARDS

__all__ = ["SHARDS_OUTPUT_RE", "check_ultraserver_shards", "deployed_shard_count"]

#: The output's key: CDK names it after the construct path, ``...UltraServerShards`` and,
#: under a construct, an 8-digit hash.
SHARDS_OUTPUT_RE = re.compile(r"UltraServerShards(?:[0-9A-F]{8})?$")
#: Stacks that hold no resources: created from a change set that was never executed, or
#: whose first create failed and rolled back (CloudFormation can only delete such a stack;
#: the next deploy creates it anew, with any count).
_NOT_DEPLOYED_STATES = frozenset({"REVIEW_IN_PROGRESS", "ROLLBACK_COMPLETE"})


def deployed_shard_count(stack: dict[str, Any]) -> int:
    """The shard count a ``DescribeStacks`` stack was deployed with: its
    ``UltraServerShards`` output, else (deployed before the output existed) 16."""
    for output in stack.get("Outputs", []):
        if SHARDS_OUTPUT_RE.search(output.get("OutputKey", "")):
            return int(output["OutputValue"])
    return DEFAULT_ULTRASERVER_SHARDS


def check_ultraserver_shards(cloudformation: Any, *, stack_name: str, configured: int) -> list[Finding]:
    """Blocking when the stack ``stack_name`` is deployed with another shard count than
    ``configured``; a note when it is not deployed (the count is then being chosen) or
    cannot be read (no permission)."""
    subject = f"stack {stack_name}"
    check = "ultraServerShards"
    try:
        stacks = call("cloudformation:DescribeStacks", cloudformation.describe_stacks, StackName=stack_name)[
            "Stacks"
        ]
    except AwsSetupError as exc:
        if not is_optional_failure(exc):
            raise
        return [
            Finding(
                subject=subject,
                check=check,
                severity=Severity.NOTE,
                message="not allowed to call cloudformation:DescribeStacks: the deployed shard count "
                "is not checked",
            )
        ]
    except botocore_exceptions.ClientError as exc:
        # DescribeStacks answers ValidationError "Stack with id ... does not exist"
        if error_code(exc) != "ValidationError" or "does not exist" not in str(exc):
            raise
        stacks = []
    if not stacks or stacks[0].get("StackStatus") in _NOT_DEPLOYED_STATES:
        return [
            Finding(
                subject=subject,
                check=check,
                severity=Severity.NOTE,
                message=f"not deployed yet: a new environment with {configured} nested stacks for its "
                "UltraServers; the count is fixed once it is created (docs/sharding.md)",
            )
        ]
    deployed = deployed_shard_count(stacks[0])
    if deployed == configured:
        return [
            Finding(
                subject=subject,
                check=check,
                severity=Severity.OK,
                message=f"{configured}, as deployed",
            )
        ]
    keep = (
        "remove ultraServerShards from the context (16 is the default)"
        if deployed == DEFAULT_ULTRASERVER_SHARDS
        else f"set -c ultraServerShards={deployed}"
    )
    return [
        Finding(
            subject=subject,
            check=check,
            severity=Severity.BLOCKING,
            message=f"the stack was deployed with {deployed} nested stacks for its UltraServers, the "
            f"configuration asks for {configured}: most node groups would move to another nested "
            "stack, which CloudFormation carries out by deleting and re-creating them (their nodes "
            "and running jobs go)",
            fix=f"keep the count the stack was created with: {keep}; for more UltraServers than it "
            "holds, deploy a second environment (docs/sharding.md)",
        )
    ]
