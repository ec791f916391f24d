"""What the ``eks-ultraserver`` subcommands share: exit statuses, the context the stack
reads (``cdk.json``, ``cdk.context.json``, ``-c`` overrides), AWS sessions, progress lines,
plain-text tables and error output.

Exit status: 0 all good, 1 a blocking problem was found, 2 usage, configuration,
credentials, Region or network error.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from eks_ultraserver.config import EnvironmentConfig

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A bad command line or configuration: printed as is, exit status 2."""


def add_context_arguments(parser: argparse.ArgumentParser, *, aws: bool = True) -> None:
    """``--context-file`` (alias ``--cdk-json``), ``-c``, and with ``aws`` ``--region``, ``--profile``."""
    parser.add_argument(
        "--context-file",
        "--cdk-json",
        dest="context_file",
        metavar="PATH",
        default="cdk.json",
        help="the CDK app's cdk.json whose 'context' the stack reads, with cdk.context.json "
        "beside it (default: %(default)s in the current directory); a JSON file without "
        "'app'/'context' keys is read as the context itself",
    )
    parser.add_argument(
        "-c",
        "--context",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override one context key, as with 'cdk deploy -c' (repeatable; lists and "
        "objects as JSON text, e.g. -c availabilityZone=us-east-1-dfw-2a)",
    )
    if not aws:
        return
    parser.add_argument(
        "--region",
        help="AWS Region (default: 'region' from the context, else AWS_REGION / the profile's region)",
    )
    parser.add_argument(
        "--profile",
        help="AWS named profile for credentials (default: AWS_PROFILE, else the default credential chain)",
    )


def load_context(path: str | Path, overrides: Sequence[str]) -> dict[str, Any]:
    """The context the stack reads (:func:`eks_ultraserver.config.read_context_files`).
    Raises :class:`UsageError` with a message for the user."""
    from eks_ultraserver.config import read_context_files
    from eks_ultraserver.model import ConfigurationError

    try:
        return read_context_files(path, overrides)
    except ConfigurationError as err:
        raise UsageError("; ".join(err.problems)) from None


def create_session(*, profile: str | None, region: str | None) -> Any:
    """A boto3 session (tests replace this function to hand out stubbed clients)."""
    import boto3

    return boto3.Session(profile_name=profile, region_name=region)


def open_session(args: argparse.Namespace, context: Mapping[str, Any]) -> tuple[Any, str]:
    """The session and its Region; raises ``AwsSetupError`` when either is missing."""
    from botocore import exceptions as botocore_exceptions

    from eks_ultraserver.aws_checks import setup_error

    region = args.region or context.get("region") or None
    try:
        session = create_session(profile=args.profile, region=region)
    except botocore_exceptions.BotoCoreError as exc:
        err = setup_error(exc)
        if err is None:
            raise
        raise err from exc
    region = getattr(session, "region_name", None) or region
    if not region:
        raise setup_error(botocore_exceptions.NoRegionError())  # type: ignore[misc]
    return session, region


def make_client(session: Any, service: str, region: str) -> Any:
    from botocore import exceptions as botocore_exceptions

    from eks_ultraserver.aws_checks import setup_error

    try:
        return session.client(service, region_name=region)
    except botocore_exceptions.BotoCoreError as exc:
        err = setup_error(exc)
        if err is None:
            raise
        raise err from exc


class Progress:
    """Progress lines on stderr (stdout stays clean for the table or the JSON)."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self._stream = stream
        self.enabled = enabled

    def __call__(self, message: str) -> None:
        if self.enabled:
            stream = self._stream or sys.stderr
            print(f"... {message}", file=stream, flush=True)


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """A plain-text table; the last column is not padded."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers) - 1)]
    lines = []
    for row in [headers, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=False)] + [str(row[-1])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"eks-ultraserver: error: {message}", file=sys.stderr)
    return code


#: The placeholder zone used only to parse the rest of the configuration when
#: ``availabilityZone`` is not set (synth then looks the zone up from the reservation).
_PARSE_ONLY_ZONE = "us-east-1a"


def read_configuration(context: Mapping[str, Any]) -> tuple[EnvironmentConfig, bool]:
    """``(config, zone_configured)`` from the context; raises ``ConfigurationError``.

    When ``availabilityZone`` is not set, the stack looks it up from the reservation at
    synth; preflight then parses the rest with a placeholder zone and reports the zone
    of each reservation instead of comparing it.
    """
    from eks_ultraserver.config import EnvironmentConfig

    zone_configured = context.get("availabilityZone") not in (None, "")
    probe = dict(context)
    if not zone_configured:
        probe["availabilityZone"] = _PARSE_ONLY_ZONE
    return EnvironmentConfig.from_mapping(probe), zone_configured


#: ``CfnOutput(self, "ClusterName")`` of ``UltraServerEnvironment``: its output key is the
#: logical id, the construct path plus an 8-hex-digit hash.
CLUSTER_OUTPUT_RE = re.compile(r"ClusterName(?:[0-9A-F]{8})?$")


def add_stack_name_argument(parser: argparse.ArgumentParser, purpose: str) -> None:
    """``--stack-name`` (default: the app's stack, ``model.STACK_NAME``): the deployed stack
    the command reads for ``purpose``."""
    from eks_ultraserver.model import STACK_NAME

    parser.add_argument(
        "--stack-name",
        default=STACK_NAME,
        help=f"the deployed CloudFormation stack {purpose} (default: %(default)s)",
    )


def add_cluster_arguments(parser: argparse.ArgumentParser, *, note: str = "") -> None:
    """``--cluster`` and ``--stack-name``, the arguments :func:`cluster_name` reads; ``note``
    is added to ``--cluster``'s help."""
    parser.add_argument(
        "--cluster",
        help="EKS cluster name (default: 'clusterName' from the context, else the ClusterName "
        f"output of the stack --stack-name){note}",
    )
    add_stack_name_argument(parser, "whose ClusterName output names the cluster")


def cluster_name(
    args: argparse.Namespace,
    context: Mapping[str, Any],
    session: Any,
    region: str,
    *,
    other_ways: Sequence[str] = (),
) -> str:
    """The EKS cluster's name: ``--cluster``, else ``clusterName`` from the context, else the
    ``ClusterName`` output of the stack ``--stack-name`` (``cloudformation:DescribeStacks``).
    Raises :class:`UsageError` saying what to pass when none of them names it (with the
    command's ``other_ways``, e.g. ``--kubeconfig``)."""
    from botocore.exceptions import ClientError

    from eks_ultraserver.aws_checks import call

    if args.cluster or context.get("clusterName"):
        return str(args.cluster or context["clusterName"])
    cloudformation = make_client(session, "cloudformation", region)
    try:
        stacks = call(
            "cloudformation:DescribeStacks", cloudformation.describe_stacks, StackName=args.stack_name
        )["Stacks"]
    except ClientError as exc:
        raise UsageError(
            f"no cluster name: clusterName is not in the context and stack {args.stack_name} "
            f"cannot be read ({exc}); pass {_one_of('--cluster NAME', '--stack-name', *other_ways)}"
        ) from None
    for output in stacks[0].get("Outputs", []) if stacks else []:
        if CLUSTER_OUTPUT_RE.search(output.get("OutputKey", "")):
            return str(output["OutputValue"])
    raise UsageError(
        f"stack {args.stack_name} has no ClusterName output; pass {_one_of('--cluster NAME', *other_ways)}"
    )


def _one_of(*options: str) -> str:
    """'a', 'a or b', 'a, b or c'."""
    return options[0] if len(options) == 1 else f"{', '.join(options[:-1])} or {options[-1]}"
