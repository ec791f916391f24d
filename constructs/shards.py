"""The nested stacks that hold an environment's UltraServer node groups.

UltraServer node groups live in nested stacks, ``ultraserver_shards`` of them at most (16
by default; ``ultraServerShards`` in cdk.json). Each UltraServer's shard is a hash of its
name (``eks_ultraserver.sharding``), so adding or removing one never moves another (its
logical id and its nested stack stay put), and the parent stack stays far from
CloudFormation's 500-resource and 1 MB limits however many UltraServers there are. See
docs/sharding.md.
"""

from __future__ import annotations

import aws_cdk as cdk

from constructs import Construct
from eks_ultraserver.sharding import (
    DEFAULT_ULTRASERVER_SHARDS,
    MAX_ULTRASERVERS_PER_SHARD,
    ULTRASERVER_SHARD_COUNTS,
    fleet_problems,
    shard_count_problems,
    ultraserver_shard,
)

__all__ = [
    "DEFAULT_ULTRASERVER_SHARDS",
    "MAX_ULTRASERVERS_PER_SHARD",
    "SHARDS_OUTPUT",
    "ULTRASERVER_SHARDS",
    "ULTRASERVER_SHARD_COUNTS",
    "fleet_problems",
    "shard_count_problems",
    "shard_stack",
    "ultraserver_shard",
]

#: The default shard count (kept under its earlier name).
ULTRASERVER_SHARDS = DEFAULT_ULTRASERVER_SHARDS
#: The construct id of the parent stack's output that records the shard count, which
#: ``eks-ultraserver preflight`` compares with the configured one.
SHARDS_OUTPUT = "UltraServerShards"


def shard_stack(scope: Construct, index: int) -> cdk.NestedStack:
    """The nested stack ``UltraServers<index>`` (at least two digits) under ``scope``."""
    return cdk.NestedStack(
        scope,
        f"UltraServers{index:02d}",
        description=f"UltraServer node groups, shard {index:02d} (eks-ultraserver)",
    )
