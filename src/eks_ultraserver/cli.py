"""The ``eks-ultraserver`` command-line tool (also ``python -m eks_ultraserver``).

Exit status: 0 all good, 1 a blocking problem was found, 2 usage or credentials error.

Each subcommand lives in ``eks_ultraserver/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``func(args) -> int``.
Command modules import what they need lazily, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from eks_ultraserver.commands.common import EXIT_USAGE

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = ("versions", "preflight", "upgrade", "status", "manifests")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eks-ultraserver",
        description="Tools for Amazon EKS on EC2 P6e-GB200 UltraServers.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"eks_ultraserver.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
