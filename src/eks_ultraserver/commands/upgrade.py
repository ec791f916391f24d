"""``eks-ultraserver upgrade``: upgrade Capacity Block node groups the way EKS requires.

The EKS user guide (capacity-blocks-mng) says: "When upgrading managed node groups with
Capacity Blocks, make sure that the desired size of the node group is set to 0." This
command does the whole sequence, one node group at a time, and cannot skip the first
step by accident:

1. scale to zero: ``UpdateNodegroupConfig`` min = desired = 0 (max kept), wait for the
   update and for the Auto Scaling group to have no instances left;
2. update: ``UpdateNodegroupVersion`` to the Kubernetes version and AMI release, but only
   after ``DescribeNodegroup`` shows desired size 0 (refused otherwise), then wait;
3. restore: ``UpdateNodegroupConfig`` back to the size it had (or ``--restore-size``),
   then wait for the node group to be ACTIVE. Nodes join when the block is active.

It is a dry run unless ``--apply`` is given. Exit status: 0 planned or done, 1 refused or
failed, 2 usage, configuration, credentials, Region or network error.

CloudFormation: the node group is a CloudFormation resource. The scaling config ends as
it began (the template's value), so there is no drift from that step; the version is
not in the template unless the app pins ``kubernetes_version``/``release_version`` on
``UltraServerNodeGroup`` (then set the same values in the app before the next deploy).
See docs/operations.md, "Upgrading".

The pure plan is in ``upgrade_plan``, the AWS calls and waits in ``upgrade_aws``; this
module is the command line: arguments, run, rendering.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from eks_ultraserver.commands.common import (
    EXIT_OK,
    EXIT_PROBLEM,
    Progress,
    UsageError,
    add_cluster_arguments,
    add_context_arguments,
    cluster_name,
    fail,
    load_context,
    make_client,
    open_session,
    table,
)
from eks_ultraserver.commands.upgrade_aws import (
    UpgradeRefused,
    Waits,
    apply_plan,
    capacity_block_nodegroups,
    describe_nodegroup,
    latest_release,
)
from eks_ultraserver.commands.upgrade_plan import NodegroupPlan, NodegroupState, plan_nodegroup

__all__ = ["NodegroupPlan", "NodegroupState", "UpgradeRefused", "plan_nodegroup", "register", "run"]

#: Replaced in tests; the waits call it between polls.
sleep: Callable[[float], None] = time.sleep
#: Replaced in tests; the waits measure their timeout with it.
monotonic: Callable[[], float] = time.monotonic


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------

_DESCRIPTION = """\
Upgrade the Kubernetes version or AMI release of Capacity Block node groups in the order
the EKS user guide requires: scale to zero (min = desired = 0, max kept) and wait until
no instance is left, update the version (refused while desired size > 0), restore the
size and wait. One node group at a time. A dry run that prints the plan unless --apply.

Upgrade the control plane first (kubernetesVersion in cdk.json, cdk deploy), then run
this. Scaling to zero terminates the node group's nodes (pods are drained): the
UltraServer's jobs stop until the size is restored.

Needs: eks:DescribeCluster, eks:ListNodegroups, eks:DescribeNodegroup,
eks:UpdateNodegroupConfig, eks:UpdateNodegroupVersion, eks:DescribeUpdate,
autoscaling:DescribeAutoScalingGroups, ssm:GetParameters; cloudformation:DescribeStacks
only when neither --cluster nor clusterName names the cluster."""

_EPILOG = """\
exit status: 0 planned (dry run), done or already up to date; 1 refused or an update
failed (rerun continues from the node group's current state); 2 usage, configuration,
credentials, Region or network error.

examples:
  eks-ultraserver upgrade                                  # plan for every Capacity Block node group
  eks-ultraserver upgrade --nodegroup us-1 --apply         # to the control plane's version, latest AMI
  eks-ultraserver upgrade --release-version 1.35.6-20260728 --apply
  eks-ultraserver upgrade --nodegroup us-1 --restore-size 18 --apply   # after an interrupted run"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "upgrade",
        help="upgrade Capacity Block node groups: scale to 0, update, restore (dry run unless --apply)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_context_arguments(parser)
    add_cluster_arguments(parser)
    parser.add_argument(
        "--nodegroup",
        action="append",
        default=[],
        metavar="NAME",
        help="a node group to upgrade (repeatable; default: every node group of the cluster "
        "whose capacity type is CAPACITY_BLOCK)",
    )
    parser.add_argument(
        "--kubernetes-version",
        metavar="VERSION",
        help="target Kubernetes version, e.g. 1.35 (default: the control plane's version)",
    )
    parser.add_argument(
        "--release-version",
        metavar="RELEASE",
        help="target AMI release, e.g. 1.35.6-20260728 (default: the recommended AL2023 ARM64 "
        "NVIDIA release for the target version, read from SSM)",
    )
    parser.add_argument(
        "--restore-size",
        type=int,
        metavar="N",
        help="min and desired size after the update (default: the size before the run; a node "
        "group already at 0 stays at 0)",
    )
    parser.add_argument(
        "--apply",
        action="store_true",
        help="make the changes (default: dry run, print the plan only)",
    )
    parser.add_argument(
        "--timeout-minutes",
        type=float,
        default=60.0,
        metavar="MIN",
        help="give up on one wait after this many minutes (default: %(default)s)",
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds between status polls while waiting (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the plan and the result as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.set_defaults(func=run)


def _context(args: argparse.Namespace) -> dict[str, Any]:
    if args.context_file == "cdk.json" and not Path("cdk.json").exists() and args.cluster:
        # Outside the app's directory with --cluster given: nothing to read.
        return {key: value for key, _, value in (c.partition("=") for c in args.context)}
    return load_context(args.context_file, args.context)


def run(args: argparse.Namespace) -> int:
    from eks_ultraserver.aws_checks import AwsSetupError, call, release_date
    from eks_ultraserver.versions import MIN_AMI_RELEASE_DATE, SUPPORTED_KUBERNETES_VERSIONS

    progress = Progress(enabled=not args.quiet)
    if args.poll_seconds < 0 or args.timeout_minutes <= 0:
        return fail("--poll-seconds must be >= 0 and --timeout-minutes > 0")
    if args.restore_size is not None and args.restore_size < 0:
        return fail(f"--restore-size: {args.restore_size} is negative")
    try:
        context = _context(args)
        if args.kubernetes_version and args.kubernetes_version not in SUPPORTED_KUBERNETES_VERSIONS:
            raise UsageError(
                f"--kubernetes-version: {args.kubernetes_version!r} is not supported; use one of "
                f"{', '.join(SUPPORTED_KUBERNETES_VERSIONS)}"
            )
        if args.release_version:
            date = release_date(args.release_version)
            if date is None:
                raise UsageError(
                    f"--release-version: {args.release_version!r} is not an EKS AMI release "
                    "(expected e.g. 1.35.6-20260728)"
                )
            if date < MIN_AMI_RELEASE_DATE:
                raise UsageError(
                    f"--release-version: {args.release_version!r} is older than v{MIN_AMI_RELEASE_DATE}, "
                    "the oldest AMI release P6e-GB200 supports (NVIDIA driver 580, CDMM)"
                )
        session, region = open_session(args, context)
        cluster = cluster_name(args, context, session, region)
        eks = make_client(session, "eks", region)
        ssm = make_client(session, "ssm", region)
        autoscaling = make_client(session, "autoscaling", region)

        progress(f"reading cluster {cluster} in {region}")
        cluster_version = call("eks:DescribeCluster", eks.describe_cluster, name=cluster)["cluster"][
            "version"
        ]
        target_version = args.kubernetes_version or cluster_version
        if args.release_version and not args.release_version.startswith(f"{target_version}."):
            raise UsageError(
                f"--release-version {args.release_version} is for another Kubernetes version than {target_version}"
            )
        target_release = args.release_version or latest_release(ssm, target_version)
        if args.nodegroup:
            states = [describe_nodegroup(eks, cluster, n) for n in args.nodegroup]
        else:
            states = capacity_block_nodegroups(eks, cluster)
        if not states:
            return fail(
                f"cluster {cluster} has no Capacity Block node group; pass --nodegroup NAME", EXIT_PROBLEM
            )
        plans = [
            plan_nodegroup(
                s,
                cluster_version=cluster_version,
                target_version=target_version,
                target_release=target_release,
                restore_size=args.restore_size,
            )
            for s in states
        ]
    except UsageError as exc:
        return fail(str(exc))
    except AwsSetupError as exc:
        return fail(str(exc))
    except _client_error() as exc:
        from eks_ultraserver.aws_checks import error_code

        if error_code(exc) == "ResourceNotFoundException":
            message = exc.response.get("Error", {}).get("Message", str(exc))
            return fail(f"{message}: check --cluster, --nodegroup and --region")
        return fail(f"AWS refused: {exc}", EXIT_PROBLEM)

    config_version = context.get("kubernetesVersion")
    results: dict[str, str] = {}
    code = EXIT_PROBLEM if any(p.action == "refused" for p in plans) else EXIT_OK
    if args.apply and code == EXIT_OK:
        waits = Waits(
            poll_seconds=args.poll_seconds,
            timeout_seconds=args.timeout_minutes * 60,
            progress=progress,
            sleep=sleep,
            monotonic=monotonic,
        )
        for plan in plans:
            if plan.action != "upgrade":
                results[plan.state.name] = plan.action
                continue
            try:
                apply_plan(plan, eks=eks, autoscaling=autoscaling, cluster=cluster, waits=waits)
            except AwsSetupError as exc:
                return fail(f"{exc} ({_resume_hint(plan)})")
            except (UpgradeRefused, *_client_error()) as exc:
                results[plan.state.name] = f"failed: {exc} ({_resume_hint(plan)})"
                code = EXIT_PROBLEM
                break
            results[plan.state.name] = "done"

    if args.json:
        print(
            json.dumps(
                {
                    "cluster": cluster,
                    "region": region,
                    "clusterVersion": cluster_version,
                    "apply": args.apply,
                    "plans": [
                        {
                            **p.to_json(),
                            "result": results.get(
                                p.state.name, "planned" if p.action == "upgrade" else p.action
                            ),
                        }
                        for p in plans
                    ],
                    "cdkJson": _cdk_advice(config_version, target_version),
                    "exitCode": code,
                },
                indent=2,
            )
        )
    else:
        print(
            _render(
                cluster,
                region,
                cluster_version,
                plans,
                results,
                args.apply,
                code,
                config_version,
                target_version,
            )
        )
    return code


def _resume_hint(plan: NodegroupPlan) -> str:
    size = f" --restore-size {plan.restore_desired}" if plan.restore_desired else ""
    return f"to continue: eks-ultraserver upgrade --nodegroup {plan.state.name}{size} --apply"


def _client_error():
    from botocore.exceptions import ClientError, WaiterError

    return (ClientError, WaiterError)


def _cdk_advice(config_version: Any, target_version: str) -> str:
    if config_version and str(config_version) != target_version:
        return (
            f"cdk.json kubernetesVersion is {config_version} but the node groups go to {target_version}: "
            f"set kubernetesVersion to {target_version} so the next cdk deploy agrees with the cluster"
        )
    return (
        "no cdk.json change needed: the node group's size ends as the template has it; if the app "
        "pins kubernetes_version/release_version on UltraServerNodeGroup, set them to the new values"
    )


def _render(
    cluster: str,
    region: str,
    cluster_version: str,
    plans: Sequence[NodegroupPlan],
    results: Mapping[str, str],
    apply: bool,
    code: int,
    config_version: Any,
    target_version: str,
) -> str:
    lines = [
        f"Cluster {cluster} in {region}, control plane Kubernetes {cluster_version}",
        "",
        table(
            [
                (
                    p.state.name,
                    p.state.capacity_reservation_id or "-",
                    f"{p.state.version} {p.state.release_version}".strip(),
                    f"{p.target_version} {p.target_release or '(latest)'}",
                    f"{p.state.min_size}/{p.state.desired_size}/{p.state.max_size}",
                    results.get(p.state.name, "planned" if p.action == "upgrade" else p.action),
                )
                for p in plans
            ],
            headers=("NODEGROUP", "RESERVATION", "NOW", "TARGET", "MIN/DESIRED/MAX", "RESULT"),
        ),
    ]
    for p in plans:
        lines += ["", f"{p.state.name}:"]
        if p.reason:
            lines.append(f"  {'REFUSED: ' if p.action == 'refused' else ''}{p.reason}")
        lines += [f"  {i}. {s}" for i, s in enumerate(p.steps, start=1)]
        result = results.get(p.state.name, "")
        if result.startswith("failed"):
            lines.append(f"  {result}")
    lines.append("")
    if any(p.action == "refused" for p in plans):
        lines.append(
            "Nothing changed: fix the refused node group(s) or leave them out with --nodegroup (exit 1)."
        )
    elif not apply:
        lines.append("Dry run: nothing changed. Run again with --apply to do the steps above.")
    elif code == EXIT_OK:
        lines.append("Done. " + _cdk_advice(config_version, target_version) + ".")
    else:
        lines.append("Stopped (exit 1): see the failed node group above for the command that continues.")
    return "\n".join(lines)
