"""Which nested stack holds each UltraServer's node group, and how many there are.

Part of the shared model (imports neither aws_cdk nor cdk8s): the cdk.json reader checks
``ultraServerShards`` with it, ``constructs/shards.py`` builds the nested stacks from it and
the preflight command compares the deployed count with it. docs/sharding.md explains the
rules below.

An UltraServer's shard is a pure function of its name and of the shard count:
``crc32(name) % count``. Adding or removing an UltraServer never moves another, so no
node group's logical id or nested stack changes. The count must therefore stay what it was
when the environment was created: a different count moves most node groups to another
nested stack, which CloudFormation carries out as delete-and-create (the node group loses
its running nodes). The count is recorded in the parent stack's ``UltraServerShards``
output, and ``eks-ultraserver preflight`` refuses a configuration whose count differs.

CloudFormation's limits (CloudFormation user guide, "Understand CloudFormation quotas"):
500 resources per template, 1 MB per template body read from S3 (nested stacks are), 200
outputs and 200 parameters per template. Each nested stack is one resource of the parent.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Iterable

from eks_ultraserver.model import Problems

__all__ = [
    "DEFAULT_ULTRASERVER_SHARDS",
    "MAX_ULTRASERVERS_PER_SHARD",
    "MAX_VALIDATION_ULTRASERVERS",
    "ULTRASERVER_SHARD_COUNTS",
    "fitting_shard_count",
    "fleet_problems",
    "shard_count_problems",
    "shard_sizes",
    "ultraserver_shard",
    "validation_jobs_problems",
]

#: The shard count of an environment that does not set ``ultraServerShards``: the count of
#: every environment deployed before the key existed (so their node groups stay put).
DEFAULT_ULTRASERVER_SHARDS = 16
#: The counts ``ultraServerShards`` accepts. Powers of two: doubling the count splits each
#: shard in two (``crc32 % 2n`` is ``crc32 % n`` or that plus ``n``). The largest, 256,
#: leaves the parent stack room under CloudFormation's 500 resources and 1 MB for everything
#: else it holds (about 160 resources and 470 KB with every option on and 38 notification
#: rules: tests/test_quality.py synthesizes 1,500 UltraServers over 256 shards with the
#: largest parent, 415 resources and 876 KB).
ULTRASERVER_SHARD_COUNTS: tuple[int, ...] = (16, 32, 64, 128, 256)
#: UltraServers one shard may hold. Each brings 3 resources (launch template, node group
#: with its NodeRepairConfig, missing-nodes alarm) and about 12 KB of template as cdk.out
#: writes it; 70 keeps a full nested stack under 500 resources and 1 MB
#: (tests/test_quality.py synthesizes a full shard).
MAX_ULTRASERVERS_PER_SHARD = 70


#: ``validationJobs`` deploys two Kubernetes manifests per UltraServer (the IMEX channel
#: check and the nvbandwidth MPIJob) as custom resources of the parent stack, about 7.5 KB
#: of template each pair: a few hundred UltraServers would pass the parent's 1 MB. Refused
#: above this many (tests/test_shards.py synthesizes it); larger fleets run the same checks
#: from ``eks-ultraserver manifests`` with kubectl.
MAX_VALIDATION_ULTRASERVERS = 64


def validation_jobs_problems(count: int, key: str, problems: Problems) -> None:
    """Adds a problem when validation jobs are asked for ``count`` UltraServers, more than
    :data:`MAX_VALIDATION_ULTRASERVERS` (``key`` names the setting)."""
    if count > MAX_VALIDATION_ULTRASERVERS:
        problems.add(
            f"{key}: on for {count} UltraServers, more than {MAX_VALIDATION_ULTRASERVERS}: each adds "
            "two Kubernetes manifests (about 7.5 KB) to the parent stack, which CloudFormation "
            "limits to 1 MB; turn it off and run the same checks with `eks-ultraserver manifests` "
            "and kubectl apply (docs/workloads.md)"
        )


def ultraserver_shard(name: str, shards: int = DEFAULT_ULTRASERVER_SHARDS) -> int:
    """The nested stack (0 .. ``shards`` - 1) that holds the node group of UltraServer
    ``name``. With the default count, the shard every release of the library has used."""
    return zlib.crc32(name.encode()) % shards


def shard_sizes(names: Iterable[str], shards: int = DEFAULT_ULTRASERVER_SHARDS) -> Counter[int]:
    """How many of the UltraServers ``names`` each shard holds (shards with none left out)."""
    return Counter(ultraserver_shard(name, shards) for name in names)


def fitting_shard_count(names: Iterable[str]) -> int | None:
    """The smallest count of :data:`ULTRASERVER_SHARD_COUNTS` with no shard holding more
    than :data:`MAX_ULTRASERVERS_PER_SHARD` of ``names``; ``None`` when none does."""
    names = list(names)
    for count in ULTRASERVER_SHARD_COUNTS:
        if max(shard_sizes(names, count).values(), default=0) <= MAX_ULTRASERVERS_PER_SHARD:
            return count
    return None


def shard_count_problems(value: object, key: str, problems: Problems, *, example: str = "") -> bool:
    """Adds a problem when ``value`` is not one of :data:`ULTRASERVER_SHARD_COUNTS`;
    returns whether it is one. ``example``: appended to the message (an example flag)."""
    if isinstance(value, int) and not isinstance(value, bool) and value in ULTRASERVER_SHARD_COUNTS:
        return True
    problems.add(
        f"{key}: {value!r} is not allowed; use one of "
        f"{', '.join(map(str, ULTRASERVER_SHARD_COUNTS))} (default {DEFAULT_ULTRASERVER_SHARDS}). "
        "It is fixed when the environment is created: see docs/sharding.md" + example
    )
    return False


def fleet_problems(
    names: Iterable[str],
    shards: int,
    key: str,
    problems: Problems,
    *,
    example: Callable[[int], str] = lambda _count: "",
) -> None:
    """Adds one problem when a shard would hold more than :data:`MAX_ULTRASERVERS_PER_SHARD`
    of the UltraServers ``names`` with ``shards`` nested stacks (``key`` names the
    setting): the fullest shards, the count that fits, and why it cannot simply change.
    ``example``: given the count that fits, what to append (an example flag)."""
    names = list(names)
    full = sorted(
        (shard, n) for shard, n in shard_sizes(names, shards).items() if n > MAX_ULTRASERVERS_PER_SHARD
    )
    if not full:
        return
    listed = ", ".join(f"UltraServers{shard:02d} ({n})" for shard, n in full[:5])
    more = f" and {len(full) - 5} more" if len(full) > 5 else ""
    fits = fitting_shard_count(names)
    if fits is None:
        fix = (
            f"no allowed count fits {len(names)} UltraServers; split the fleet over two "
            "environments (clusters)"
        )
    else:
        fix = (
            f"a new environment: set {key} to {fits}; an environment already deployed with "
            f"{key} {shards}: keep it (the count is fixed at creation, another one moves the "
            "node groups to other nested stacks, which replaces them) and put the new "
            "UltraServers in a second environment (cluster)"
        )
    problems.add(
        f"{key}: {shards} nested stacks are too few for {len(names)} UltraServers: more than "
        f"{MAX_ULTRASERVERS_PER_SHARD} hash to {listed}{more} (a nested stack holds at most "
        f"{MAX_ULTRASERVERS_PER_SHARD}); {fix}" + (example(fits) if fits is not None else "")
    )
