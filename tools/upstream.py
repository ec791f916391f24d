#!/usr/bin/env python3
"""Fetch one upstream file at a pinned tag, verbatim, and print its provenance row.

Needs access to GitHub (raw.githubusercontent.com and api.github.com); the tests never run
it. The row it prints goes into the README table of the folder the file lands in
(``src/eks_ultraserver/third_party/`` for what synth installs, ``tests/third_party/`` for
test data); ``tests/test_third_party.py`` then holds the file to that row's SHA-256.

    python tools/upstream.py kubeflow/mpi-operator v0.8.2 deploy/v2beta1/mpi-operator.yaml \\
        src/eks_ultraserver/third_party/mpi-operator-v0.8.2.yaml

    python tools/upstream.py NVIDIA/gpu-operator v26.3.3 deployments/gpu-operator/values.yaml \\
        tests/third_party/gpu-operator-values-v26.3.3.yaml

For a release manifest that synth installs, also move its pin in
``src/eks_ultraserver/versions.py`` (version and ``sha256``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import urllib.request
from pathlib import Path

RAW = "https://raw.githubusercontent.com/{repo}/{tag}/{path}"
COMMIT = "https://api.github.com/repos/{repo}/commits/{tag}"


def provenance_row(
    *, name: str, repo: str, tag: str, commit: str, path: str, license: str, data: bytes
) -> str:
    """One row of a third-party README table (File | Source repository | Tag | Commit |
    Path | License | SHA-256)."""
    sha256 = hashlib.sha256(data).hexdigest()
    return f"| `{name}` | {repo} | {tag} | `{commit}` | `{path}` | {license} | `{sha256}` |"


def _get(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "eks-ultraserver-tools"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("repo", help="owner/name on GitHub, e.g. kubeflow/mpi-operator")
    parser.add_argument("tag", help="the release tag, e.g. v0.8.2")
    parser.add_argument("path", help="the file's path in the repository at that tag")
    parser.add_argument("dest", type=Path, help="where to write it (a third_party folder)")
    parser.add_argument("--license", default="Apache-2.0", help="the repository's license (check LICENSE)")
    args = parser.parse_args(argv)

    data = _get(RAW.format(repo=args.repo, tag=args.tag, path=args.path))
    commit = json.loads(_get(COMMIT.format(repo=args.repo, tag=args.tag)))["sha"]
    args.dest.parent.mkdir(parents=True, exist_ok=True)
    args.dest.write_bytes(data)
    print(f"wrote {args.dest} ({len(data)} bytes)", file=sys.stderr)
    print(
        provenance_row(
            name=args.dest.name,
            repo=args.repo,
            tag=args.tag,
            commit=commit,
            path=args.path,
            license=args.license,
            data=data,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
