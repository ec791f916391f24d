"""``eks-ultraserver preflight``: check the Capacity Blocks, AMI and Kubernetes version
against AWS before a 30-minute deploy finds out.

Reads the same ``cdk.json`` context the stack reads (plus ``-c key=value`` overrides, as
the CDK CLI takes them), asks EC2, SSM and EKS read-only questions, prints a table (or
JSON with ``--json``) and exits 0 (all good), 1 (a blocking problem; with ``--strict``
also a warning) or 2 (usage, configuration, credentials, Region or network error).

The helpers it shares with the other subcommands (context, sessions, progress, tables)
are in ``eks_ultraserver.commands.common``.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from eks_ultraserver.commands.common import (
    EXIT_OK,
    EXIT_PROBLEM,
    Progress,
    UsageError,
    add_context_arguments,
    add_stack_name_argument,
    fail,
    load_context,
    make_client,
    open_session,
    read_configuration,
    table,
)

# --------------------------------------------------------------------------------------
# preflight
# --------------------------------------------------------------------------------------

_DESCRIPTION = """\
Check, before deploying, what CloudFormation cannot: for every Capacity Block in
ultraServers, that it exists in this account and Region, is a Capacity Block for
p6e-gb200.36xlarge in the configured zone, holds as many instances as its UltraServer
type (9 or 18), is in a usable state (scheduled or active; payment-pending warns;
expired, cancelled, failed, payment-failed block), does not end too soon, and (where the
EC2 API reports them) reserves that UltraServer type with a healthy interconnect. Also
that the AL2023 ARM64 NVIDIA AMI resolves for the Kubernetes version and that EKS offers
that version. With reservedCapacity / burstCapacity configured, also each reservation's
type, zone, size and state, that each reserved instance type (and each family of a burst
pool with availabilityZone) is offered in its zone, and the GPU vCPU quotas (Service
Quotas: On-Demand and Spot, P and G/VT) against what the configuration could launch.
Always the EKS quotas: managed node groups per cluster (L-6D54EA21) and nodes per managed
node group (L-BD136A63) against the environment's node groups. And that
ultraServerShards is the count the deployed stack (--stack-name) was created with: another
count would move node groups to other nested stacks, replacing them. Every problem says
what to do.

Needs read-only permissions: ec2:DescribeCapacityReservations and ssm:GetParameters; and,
each optional (without it the check that needs it is reported as a note):
ec2:DescribeInstanceTypeOfferings, ec2:DescribeCapacityBlocks,
ec2:DescribeCapacityBlockStatus, eks:DescribeClusterVersions,
servicequotas:GetServiceQuota, servicequotas:GetAWSDefaultServiceQuota,
cloudformation:DescribeStacks."""

_EPILOG = """\
exit status: 0 all good (notes and warnings allowed), 1 a blocking problem (or a warning
with --strict), 2 usage, configuration, credentials, Region or network error.

examples:
  eks-ultraserver preflight
  eks-ultraserver preflight --profile prod --region us-east-1 -c availabilityZone=us-east-1-dfw-2a
  eks-ultraserver preflight --json --strict > preflight.json   # in CI"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "preflight",
        help="check Capacity Blocks, AMI and Kubernetes version against AWS before deploying",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_context_arguments(parser)
    parser.add_argument(
        "--min-hours-left",
        metavar="HOURS",
        type=float,
        default=2.0,
        help="warn when a Capacity Block ends sooner than this many hours (default: %(default)s); "
        "a block that has ended always blocks",
    )
    add_stack_name_argument(
        parser,
        "whose UltraServerShards output ultraServerShards must equal; a stack not deployed yet is "
        "a new environment",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document (findings, summary, exit code) instead of the table",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 on warnings too, not only on blocking problems (default: warnings exit 0)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress lines on stderr (default: one line per check while it waits for AWS)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eks_ultraserver.aws_checks import AwsSetupError, Severity, run_preflight
    from eks_ultraserver.aws_checks.shards import check_ultraserver_shards
    from eks_ultraserver.model import ConfigurationError

    if args.min_hours_left < 0:
        return fail(f"--min-hours-left: {args.min_hours_left} is negative; give hours >= 0")
    progress = Progress(enabled=not args.quiet)
    try:
        context = load_context(args.context_file, args.context)
        config, zone_configured = read_configuration(context)
        session, region = open_session(args, context)
        clients = {name: make_client(session, name, region) for name in ("ec2", "ssm", "eks")}
        capacity = {
            "service_quotas": make_client(session, "service-quotas", region),
            "reserved": config.reserved_capacity,
            "burst": config.burst_capacity,
        }
        progress(f"asking AWS in {region} about {len(config.ultraservers)} Capacity Block(s)")
        report = run_preflight(
            **clients,
            ultraservers=config.ultraservers,
            availability_zone=config.availability_zone if zone_configured else None,
            kubernetes_version=config.kubernetes_version,
            region=region,
            now=datetime.now(UTC),
            min_time_left=timedelta(hours=args.min_hours_left),
            uses_example_reservation=config.uses_example_reservation,
            progress=progress,
            **capacity,
        )
        progress(f"checking the UltraServer shard count of stack {args.stack_name}")
        shards = check_ultraserver_shards(
            make_client(session, "cloudformation", region),
            stack_name=args.stack_name,
            configured=config.ultraserver_shards,
        )
        report = replace(report, findings=(*report.findings, *shards))
    except UsageError as exc:
        return fail(str(exc))
    except ConfigurationError as exc:
        return fail(f"{args.context_file}: {exc}")
    except AwsSetupError as exc:
        return fail(str(exc))

    worst = report.worst
    failed = worst is Severity.BLOCKING or (args.strict and worst is Severity.WARNING)
    code = EXIT_PROBLEM if failed else EXIT_OK
    if args.json:
        print(
            json.dumps({**report.to_json(), "strict": args.strict, "exitCode": code}, indent=2, default=str)
        )
    else:
        print(render(report, strict=args.strict, code=code))
    return code


def render(report, *, strict: bool, code: int) -> str:
    """The human output: a header, the table, the problems with their fixes, a verdict."""
    from eks_ultraserver.aws_checks import Severity

    zone = report.availability_zone or "(from the reservations)"
    lines = [
        f"Preflight in {report.region}, zone {zone}, Kubernetes {report.kubernetes_version}",
        "",
        table(
            [
                (
                    f.severity.value.upper()
                    if f.severity in (Severity.WARNING, Severity.BLOCKING)
                    else f.severity.value,
                    f.subject,
                    f.check,
                    f.message,
                )
                for f in report.findings
            ],
            headers=("RESULT", "SUBJECT", "CHECK", "DETAIL"),
        ),
    ]
    problems = [f for f in report.findings if f.severity in (Severity.BLOCKING, Severity.WARNING)]
    problems.sort(key=lambda f: -f.severity.rank)
    if problems:
        lines += ["", "What to do:"]
        for f in problems:
            lines.append(f"  {f.severity.value.upper()}: {f.subject}, {f.check}: {f.message}")
            lines += textwrap.wrap(
                f"fix: {f.fix}",
                width=100,
                initial_indent="    ",
                subsequent_indent="         ",
                break_on_hyphens=False,
                break_long_words=False,
            )
    blocking, warnings = report.count(Severity.BLOCKING), report.count(Severity.WARNING)
    summary = f"{blocking} blocking, {warnings} warning{'s' if warnings != 1 else ''}"
    if code == EXIT_OK:
        verdict = f"OK to deploy ({summary})." if warnings else "OK to deploy."
    elif blocking:
        verdict = f"Do not deploy yet: {summary} (exit 1)."
    else:
        verdict = f"Warnings fail the run with --strict: {summary} (exit 1)."
    lines += ["", verdict]
    return "\n".join(lines)
