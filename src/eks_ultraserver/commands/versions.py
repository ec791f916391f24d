"""``eks-ultraserver versions``: the pinned versions, as the README's table or JSON."""

from __future__ import annotations

import argparse
import dataclasses
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "versions",
        help="print the pinned Kubernetes, chart and image versions",
        description="Print every version this library pins (the README's version table).",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eks_ultraserver import versions

    if args.json:
        print(
            json.dumps(
                {
                    "kubernetes": {
                        "supported": list(versions.SUPPORTED_KUBERNETES_VERSIONS),
                        "default": versions.DEFAULT_KUBERNETES_VERSION,
                    },
                    "charts": [dataclasses.asdict(c) for c in versions.ALL_CHARTS],
                },
                indent=2,
            )
        )
    else:
        print(versions.markdown_table(), end="")
    return 0
