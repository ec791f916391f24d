"""The pure plan of ``eks-ultraserver upgrade``: what one node group's upgrade would do.

No AWS calls here: :func:`plan_nodegroup` turns a :class:`NodegroupState` (what
``DescribeNodegroup`` says) and the targets into a :class:`NodegroupPlan`; the calls and
waits are in :mod:`eks_ultraserver.commands.upgrade_aws`, the command line in
:mod:`eks_ultraserver.commands.upgrade`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True, slots=True)
class NodegroupState:
    """What ``DescribeNodegroup`` says, reduced to what the upgrade needs."""

    name: str
    status: str
    capacity_type: str
    version: str
    release_version: str
    min_size: int
    desired_size: int
    max_size: int
    auto_scaling_groups: tuple[str, ...]
    capacity_reservation_id: str | None

    @classmethod
    def from_api(cls, ng: Mapping[str, Any]) -> NodegroupState:
        scaling = ng.get("scalingConfig", {})
        asgs = tuple(g["name"] for g in ng.get("resources", {}).get("autoScalingGroups", []) if g.get("name"))
        return cls(
            name=ng["nodegroupName"],
            status=ng.get("status", ""),
            capacity_type=ng.get("capacityType", ""),
            version=ng.get("version", ""),
            release_version=ng.get("releaseVersion", ""),
            min_size=int(scaling.get("minSize", 0)),
            desired_size=int(scaling.get("desiredSize", 0)),
            max_size=int(scaling.get("maxSize", 0)),
            auto_scaling_groups=asgs,
            capacity_reservation_id=(ng.get("tags") or {}).get("eks-ultraserver:capacity-reservation-id"),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class NodegroupPlan:
    state: NodegroupState
    target_version: str
    target_release: str | None
    restore_min: int
    restore_desired: int
    #: "upgrade", "up-to-date" or "refused"
    action: str
    reason: str = ""
    steps: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        s = self.state
        return {
            "nodegroup": s.name,
            "capacityType": s.capacity_type,
            "capacityReservationId": s.capacity_reservation_id,
            "status": s.status,
            "from": {"version": s.version, "releaseVersion": s.release_version},
            "to": {"version": self.target_version, "releaseVersion": self.target_release},
            "scaling": {"minSize": s.min_size, "desiredSize": s.desired_size, "maxSize": s.max_size},
            "restore": {
                "minSize": self.restore_min,
                "desiredSize": self.restore_desired,
                "maxSize": s.max_size,
            },
            "action": self.action,
            "reason": self.reason,
            "steps": list(self.steps),
        }


def _minor(version: str) -> tuple[int, int]:
    from eks_ultraserver.versions import parse_kubernetes_version

    return parse_kubernetes_version(version)


def plan_nodegroup(
    state: NodegroupState,
    *,
    cluster_version: str,
    target_version: str,
    target_release: str | None,
    restore_size: int | None,
) -> NodegroupPlan:
    """What the upgrade of one node group would do; pure (no AWS calls)."""
    if restore_size is not None:
        restore_min = restore_desired = restore_size
    else:
        restore_min, restore_desired = state.min_size, state.desired_size
    plan = functools.partial(
        NodegroupPlan,
        state=state,
        target_version=target_version,
        target_release=target_release,
        restore_min=restore_min,
        restore_desired=restore_desired,
    )

    def refused(reason: str) -> NodegroupPlan:
        return plan(action="refused", reason=reason)

    if restore_desired > state.max_size:
        return refused(
            f"--restore-size {restore_desired} is above the node group's max size {state.max_size} "
            "(the UltraServer's instance count)"
        )
    if state.version and _minor(target_version) < _minor(state.version):
        return refused(
            f"the node group runs Kubernetes {state.version}; EKS cannot roll it back to {target_version}"
        )
    if _minor(target_version) > _minor(cluster_version):
        return refused(
            f"Kubernetes {target_version} is newer than the control plane ({cluster_version}): "
            "upgrade the cluster first (set kubernetesVersion in cdk.json and cdk deploy)"
        )
    if state.version == target_version and target_release and state.release_version == target_release:
        return plan(action="up-to-date", reason=f"already at {target_version} / {target_release}")
    if state.status != "ACTIVE":
        return refused(
            f"status is {state.status}, not ACTIVE: wait for the current update to finish "
            "(aws eks describe-nodegroup) and fix any health issue first"
        )
    steps = []
    if state.desired_size or state.min_size:
        steps.append(
            f"scale to zero: min {state.min_size}->0, desired {state.desired_size}->0, max {state.max_size} "
            f"kept; wait until its Auto Scaling group has no instances (running pods are drained)"
        )
    else:
        steps.append("scale to zero: already min 0 / desired 0")
    release = f" / AMI release {target_release}" if target_release else " / latest AMI release"
    steps.append(
        f"update: Kubernetes {state.version or '?'} -> {target_version}{release} "
        f"(from {state.release_version or '?'}), only once desired size is 0; wait"
    )
    if restore_desired:
        steps.append(
            f"restore: min {restore_min}, desired {restore_desired}, max {state.max_size}; wait for ACTIVE "
            "(nodes join while the Capacity Block is active)"
        )
    else:
        steps.append(
            "restore: none, the node group was already at 0 (pass --restore-size N to bring N nodes back)"
        )
    note = ""
    if state.capacity_type != "CAPACITY_BLOCK":
        note = (
            f"capacity type {state.capacity_type or '?'}: the scale-to-zero step is not required, done anyway"
        )
    return plan(action="upgrade", reason=note, steps=tuple(steps))
