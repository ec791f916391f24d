"""The AWS side of ``eks-ultraserver upgrade``: the EKS, SSM and Auto Scaling calls and waits.

:func:`apply_plan` runs the three steps of one node group's plan (scale to zero, update,
restore) in the order the EKS user guide (capacity-blocks-mng) requires; the plan itself
is in :mod:`eks_ultraserver.commands.upgrade_plan`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eks_ultraserver.commands.upgrade_plan import NodegroupPlan, NodegroupState


class UpgradeRefused(Exception):
    """A node group cannot be upgraded safely now; the message says why and what to do."""


def describe_nodegroup(eks: Any, cluster: str, nodegroup: str) -> NodegroupState:
    from eks_ultraserver.aws_checks import call

    return NodegroupState.from_api(
        call("eks:DescribeNodegroup", eks.describe_nodegroup, clusterName=cluster, nodegroupName=nodegroup)[
            "nodegroup"
        ]
    )


def capacity_block_nodegroups(eks: Any, cluster: str) -> list[NodegroupState]:
    """Every node group of the cluster whose capacity type is ``CAPACITY_BLOCK``."""
    from eks_ultraserver.aws_checks import call

    names: list[str] = []
    kwargs: dict[str, Any] = {"clusterName": cluster}
    while True:
        page = call("eks:ListNodegroups", eks.list_nodegroups, **kwargs)
        names += page.get("nodegroups", [])
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    states = [describe_nodegroup(eks, cluster, n) for n in names]
    return [s for s in states if s.capacity_type == "CAPACITY_BLOCK"]


def latest_release(ssm: Any, kubernetes_version: str) -> str | None:
    """The recommended AL2023 ARM64 NVIDIA AMI release for a version (SSM), or ``None``."""
    from eks_ultraserver.aws_checks import describe_ami

    return describe_ami(ssm, kubernetes_version).release_version


@dataclass(kw_only=True, slots=True)
class Waits:
    poll_seconds: float = 30.0
    timeout_seconds: float = 3600.0
    progress: Callable[[str], None] = field(default=lambda _m: None)
    #: Called between polls; the command passes its own hook (replaced in tests).
    sleep: Callable[[float], None] = time.sleep
    #: The clock the timeouts are measured with.
    monotonic: Callable[[], float] = time.monotonic


def wait_for_update(eks: Any, cluster: str, nodegroup: str, update: Mapping[str, Any], waits: Waits) -> None:
    """Polls ``DescribeUpdate`` until the update leaves InProgress, then waits for ACTIVE."""
    from eks_ultraserver.aws_checks import call

    update_id, kind = update["id"], update.get("type", "update")
    started = waits.monotonic()
    status = update.get("status", "InProgress")
    while status == "InProgress":
        elapsed = waits.monotonic() - started
        if elapsed > waits.timeout_seconds:
            raise UpgradeRefused(
                f"{nodegroup}: {kind} {update_id} still InProgress after {int(elapsed // 60)} min; "
                f"check 'aws eks describe-update --name {cluster} --nodegroup-name {nodegroup} "
                f"--update-id {update_id}' and rerun this command when it is done"
            )
        waits.progress(f"{nodegroup}: {kind} {update_id} InProgress ({int(elapsed)} s)")
        waits.sleep(waits.poll_seconds)
        current = call(
            "eks:DescribeUpdate",
            eks.describe_update,
            name=cluster,
            updateId=update_id,
            nodegroupName=nodegroup,
        )["update"]
        status = current.get("status", "")
        update = current
    if status != "Successful":
        errors = "; ".join(
            f"{e.get('errorCode', '?')}: {e.get('errorMessage', '')}" for e in update.get("errors", [])
        )
        raise UpgradeRefused(
            f"{nodegroup}: {kind} {update_id} ended {status}{': ' + errors if errors else ''}; "
            "fix the cause, then rerun this command (it continues from the node group's current state)"
        )
    waits.progress(f"{nodegroup}: {kind} {update_id} Successful; waiting for ACTIVE")
    delay = max(1, int(waits.poll_seconds)) if waits.poll_seconds else 0
    attempts = max(1, math.ceil(waits.timeout_seconds / max(waits.poll_seconds, 1)))
    call(
        "eks:DescribeNodegroup",
        eks.get_waiter("nodegroup_active").wait,
        clusterName=cluster,
        nodegroupName=nodegroup,
        WaiterConfig={"Delay": delay, "MaxAttempts": attempts},
    )


def wait_for_no_instances(autoscaling: Any, state: NodegroupState, waits: Waits) -> None:
    """Waits until the node group's Auto Scaling groups have no instances left."""
    from eks_ultraserver.aws_checks import call

    if not state.auto_scaling_groups:
        return
    started = waits.monotonic()
    while True:
        groups = call(
            "autoscaling:DescribeAutoScalingGroups",
            autoscaling.describe_auto_scaling_groups,
            AutoScalingGroupNames=list(state.auto_scaling_groups),
        ).get("AutoScalingGroups", [])
        left = sum(len(g.get("Instances", [])) for g in groups)
        if left == 0:
            waits.progress(f"{state.name}: no instances left")
            return
        elapsed = waits.monotonic() - started
        if elapsed > waits.timeout_seconds:
            raise UpgradeRefused(
                f"{state.name}: {left} instance(s) still running after {int(elapsed // 60)} min at "
                "desired size 0; check pod disruption budgets that block draining, then rerun"
            )
        waits.progress(f"{state.name}: {left} instance(s) terminating ({int(elapsed)} s)")
        waits.sleep(waits.poll_seconds)


def apply_plan(plan: NodegroupPlan, *, eks: Any, autoscaling: Any, cluster: str, waits: Waits) -> None:
    """Runs the three steps of one node group's plan. Raises :class:`UpgradeRefused`."""
    from eks_ultraserver.aws_checks import call

    name = plan.state.name
    state = describe_nodegroup(eks, cluster, name)
    if state.status != "ACTIVE":
        raise UpgradeRefused(f"{name}: status is {state.status}, not ACTIVE; wait and rerun")

    # 1. scale to zero
    if state.desired_size or state.min_size:
        waits.progress(f"{name}: scaling to zero (desired {state.desired_size} -> 0)")
        update = call(
            "eks:UpdateNodegroupConfig",
            eks.update_nodegroup_config,
            clusterName=cluster,
            nodegroupName=name,
            scalingConfig={"minSize": 0, "desiredSize": 0, "maxSize": state.max_size},
        )["update"]
        wait_for_update(eks, cluster, name, update, waits)
    wait_for_no_instances(autoscaling, state, waits)

    # 2. update the version, never while desired > 0 (EKS user guide, capacity-blocks-mng)
    state = describe_nodegroup(eks, cluster, name)
    if state.desired_size != 0:
        raise UpgradeRefused(
            f"{name}: desired size is {state.desired_size}, not 0: refusing to update the version "
            "(the EKS guide requires desired size 0 for Capacity Block node groups); something "
            "scaled it back up: find out what, then rerun"
        )
    kwargs: dict[str, Any] = {"clusterName": cluster, "nodegroupName": name, "version": plan.target_version}
    if plan.target_release:
        kwargs["releaseVersion"] = plan.target_release
    waits.progress(
        f"{name}: updating to Kubernetes {plan.target_version} {plan.target_release or ''}".rstrip()
    )
    update = call("eks:UpdateNodegroupVersion", eks.update_nodegroup_version, **kwargs)["update"]
    wait_for_update(eks, cluster, name, update, waits)

    # 3. restore the size
    if plan.restore_desired:
        waits.progress(f"{name}: restoring desired size {plan.restore_desired}")
        update = call(
            "eks:UpdateNodegroupConfig",
            eks.update_nodegroup_config,
            clusterName=cluster,
            nodegroupName=name,
            scalingConfig={
                "minSize": plan.restore_min,
                "desiredSize": plan.restore_desired,
                "maxSize": state.max_size,
            },
        )["update"]
        wait_for_update(eks, cluster, name, update, waits)
