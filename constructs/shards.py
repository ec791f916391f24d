"""The nested stacks that hold an environment's UltraServer node groups.

UltraServer node groups live in nested stacks, at most ``ULTRASERVER_SHARDS``. Each
UltraServer's shard is a hash of its name, so adding or removing one never moves another
(its logical id and its nested stack stay put), and the parent stack stays far from
CloudFormation's 500-resource and 1 MB limits however many UltraServers there are.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import aws_cdk as cdk

from constructs import Construct
from eks_ultraserver.model import Problems

#: How many nested stacks UltraServer node groups may spread over.
ULTRASERVER_SHARDS = 16
#: UltraServers one shard may hold. Each brings 3 resources (launch template, node group
#: with its NodeRepairConfig, missing-nodes alarm) and about 12 KB of template as cdk.out
#: writes it; 70 keeps a full nested stack under 500 resources and 1 MB
#: (tests/test_quality.py synthesizes a full shard). With 16 shards and names spread by
#: hash, an environment holds about 1,000 UltraServers before one shard is full.
MAX_ULTRASERVERS_PER_SHARD = 70


def ultraserver_shard(name: str) -> int:
    """The nested stack (0..ULTRASERVER_SHARDS-1) that holds an UltraServer's node group."""
    return zlib.crc32(name.encode()) % ULTRASERVER_SHARDS


def shard_problems(names: Iterable[str], problems: Problems) -> None:
    """Adds a problem for each shard that more than ``MAX_ULTRASERVERS_PER_SHARD`` of the
    UltraServers ``names`` hash to."""
    sizes: dict[int, int] = {}
    for name in names:
        shard = ultraserver_shard(name)
        sizes[shard] = sizes.get(shard, 0) + 1
    for shard, count in sorted(sizes.items()):
        if count > MAX_ULTRASERVERS_PER_SHARD:
            problems.add(
                f"ultraservers: {count} UltraServers hash to nested stack "
                f"UltraServers{shard:02d}, more than {MAX_ULTRASERVERS_PER_SHARD}; split "
                "the fleet over two environments (clusters)"
            )


def shard_stack(scope: Construct, index: int) -> cdk.NestedStack:
    """The nested stack ``UltraServers<index>`` (two digits) under ``scope``."""
    return cdk.NestedStack(
        scope,
        f"UltraServers{index:02d}",
        description=f"UltraServer node groups, shard {index:02d} (eks-ultraserver)",
    )
