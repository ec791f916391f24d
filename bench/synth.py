#!/usr/bin/env python3
"""Synthesis benchmark: the environment with 1, 10, 100, 1,000 and 5,556 UltraServers.

Each figure is one fresh Python process (so every run pays the same start-up), timed from
outside with time.perf_counter, CDK's built-in template validation off. Printed next to
the cost of importing aws-cdk-lib and of synthesizing an empty stack in the same run, with
the peak memory of the largest process (the Python app or the jsii Node.js kernel). Each
size gets the smallest ``ultraServerShards`` its fleet fits in (16 up to about 1,000
UltraServers; 128 for 5,556, EKS's 100,000 nodes). Past 9 UltraServers, more nodes than
the new VPC's UltraServer subnet addresses under the VPC CNI's defaults, the environment is
in an existing VPC (``vpcId``, ``ultraServerSubnetIds``, with the lookup cdk.context.json
would cache), as a fleet that size would be.

    .venv/bin/python bench/synth.py            # 1, 10, 100, 1000, 5556 UltraServers
    .venv/bin/python bench/synth.py 1 50       # other sizes
    .venv/bin/python bench/synth.py --runs 3   # median of 3 runs per figure

Targets (2 cores): default environment within 1.5x of the empty stack; at most 5 ms per
additional UltraServer; 1,000 UltraServers in under 20 s; 5,556 in under a minute, within
the machine's memory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

IMPORT_ONLY = "import aws_cdk"

EMPTY_STACK = """
import sys, aws_cdk as cdk
app = cdk.App(outdir=sys.argv[1], builtin_cloud_formation_validation=False)
cdk.Stack(app, "Empty")
app.synth()
"""

BARE_EKS = """
import sys, aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2, aws_eks_v2 as eks
from aws_cdk.lambda_layer_kubectl_v35 import KubectlV35Layer
app = cdk.App(outdir=sys.argv[1], builtin_cloud_formation_validation=False)
stack = cdk.Stack(app, "BareEks")
eks.Cluster(stack, "Cluster", version=eks.KubernetesVersion.V1_35, vpc=ec2.Vpc(stack, "Vpc", max_azs=2),
            default_capacity=0, default_capacity_type=eks.DefaultCapacityType.NODEGROUP,
            kubectl_provider_options=eks.KubectlProviderOptions(kubectl_layer=KubectlV35Layer(stack, "Kubectl")))
app.synth()
"""

ENVIRONMENT = """
import json, sys
import aws_cdk as cdk
from eks_ultraserver.app import build_app
from eks_ultraserver.sharding import fitting_shard_count
n = int(sys.argv[2])
NEW_VPC_ULTRASERVERS = 9  # x72 UltraServers the default /18 addresses (docs/at-scale.md)
context = json.loads(open(sys.argv[3]).read())["context"]
context["ultraServers"] = [
    {"capacityReservationId": f"cr-0{i:016x}", "type": "u-p6e-gb200x72", "name": f"us-{i}"}
    for i in range(n)
]
context["ultraServerShards"] = fitting_shard_count(u["name"] for u in context["ultraServers"])
if n > NEW_VPC_ULTRASERVERS:
    # more nodes than a new VPC's UltraServer subnet can address (the CNI's defaults): an
    # existing VPC, as cdk.context.json would cache its lookup
    vpc, account, region = "vpc-0123456789abcdef0", "123456789012", "us-east-1"
    context.update(vpcId=vpc, ultraServerSubnetIds=["subnet-0123456789abcdef0"], account=account, region=region)
    subnets = [
        {"subnetId": f"subnet-0aaaaaaaaaaaaaaa{i}", "cidr": f"10.0.{16 * i}.0/20",
         "availabilityZone": f"{region}{zone}", "routeTableId": f"rtb-0aaaaaaaaaaaaaaa{i}"}
        for i, zone in enumerate("ab", start=1)
    ]
    context[f"vpc-provider:account={account}:filter.vpc-id={vpc}:region={region}:returnAsymmetricSubnets=true"] = {
        "vpcId": vpc, "vpcCidrBlock": "10.0.0.0/16", "ownerAccountId": account, "availabilityZones": [],
        "subnetGroups": [{"name": "Private", "type": "Private", "subnets": subnets}],
    }
app = cdk.App(context=context, outdir=sys.argv[1], builtin_cloud_formation_validation=False)
build_app(app)
app.synth()
"""


def _run(code: str, *args: str) -> tuple[float, int, Path]:
    """One synth: wall seconds, peak memory in MB of the largest process it waited for
    (``wait4``'s ``ru_maxrss``: the app or the jsii kernel), and the output directory."""
    outdir = Path(tempfile.mkdtemp(prefix="bench-"))
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    if (Path(bin_dir) / "node").exists():
        env.setdefault("JSII_NODE", str(Path(bin_dir) / "node"))
    # The synth's own output (its warnings, the validation report) is not the benchmark's:
    # kept in a file, and shown only when the synth fails.
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-c", code, str(outdir), *args], env=env, cwd=REPO, stdout=log, stderr=log
        )
        _pid, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            log.seek(0)
            sys.stderr.write(log.read())
            raise SystemExit(f"synth failed (exit {process.returncode})")
    return elapsed, usage.ru_maxrss // 1024, outdir


def _median(code: str, runs: int, *args: str) -> tuple[float, int, list[tuple[str, int, int]]]:
    """Median wall time and peak memory (MB) of ``runs`` runs, and the templates of the
    last one (name, resources, bytes). The output directories are removed."""
    times = []
    peaks = []
    templates: list[tuple[str, int, int]] = []
    for _ in range(runs):
        wall, peak, outdir = _run(code, *args)
        times.append(wall)
        peaks.append(peak)
        templates = _templates(outdir)
        shutil.rmtree(outdir, ignore_errors=True)
    return statistics.median(times), int(statistics.median(peaks)), templates


def _templates(outdir: Path) -> list[tuple[str, int, int]]:
    out = []
    for path in sorted(outdir.glob("*.template.json")):
        template = json.loads(path.read_text())
        out.append((path.name, len(template.get("Resources", {})), path.stat().st_size))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sizes", nargs="*", type=int, default=[1, 10, 100, 1000, 5556])
    parser.add_argument("--runs", type=int, default=1, help="runs per figure; the median is shown")
    args = parser.parse_args()
    context_file = str(REPO / "cdk.json")

    imp, _, _ = _median(IMPORT_ONLY, args.runs)
    empty, _, _ = _median(EMPTY_STACK, args.runs)
    print(f"import aws-cdk-lib:        {imp:7.2f} s")
    print(f"empty stack synth:         {empty:7.2f} s")
    bare, _, _ = _median(BARE_EKS, args.runs)
    print(f"bare EKS cluster + VPC:    {bare:7.2f} s  (aws_eks_v2 alone, for scale)")
    print()
    print(
        f"{'UltraServers':>12} {'wall s':>8} {'x empty':>8} {'x bare':>7} {'ms/US*':>8} {'templates':>9} {'max res.':>8} {'max KB':>7} {'total KB':>9} {'peak MB':>8}"
    )
    previous: tuple[int, float] | None = None
    for n in args.sizes:
        wall, peak, templates = _median(ENVIRONMENT, args.runs, str(n), context_file)
        per_us = (
            "-"
            if previous is None or n == previous[0]
            else f"{(wall - previous[1]) / (n - previous[0]) * 1000:.1f}"
        )
        previous = (n, wall)
        print(
            f"{n:>12} {wall:>8.2f} {wall / empty:>8.2f} {wall / bare:>7.2f} {per_us:>8} {len(templates):>9} "
            f"{max(t[1] for t in templates):>8} {max(t[2] for t in templates) / 1024:>7.0f} "
            f"{sum(t[2] for t in templates) / 1024:>9.0f} {peak:>8}"
        )
    print("\n* ms per UltraServer added since the previous size (includes new nested stacks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
