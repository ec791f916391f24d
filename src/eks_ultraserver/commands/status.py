"""``eks-ultraserver status``: how each UltraServer is doing, after deploy.

For every UltraServer in ``ultraServers`` it asks EC2 about its Capacity Block (state,
time left) and Kubernetes about its nodes (label ``eks-ultraserver.io/ultraserver``):
how many are Ready against the UltraServer's size, whether they all carry one
``nvidia.com/gpu.clique`` value (GPU Feature Discovery sets it; nodes with the same value
share one multi-node NVLink domain), and how many ``vpc.amazonaws.com/efa`` devices
each node has allocatable. It lists the NVIDIA DRA driver's ComputeDomains
(``resource.nvidia.com/v1beta1``, ``status.status`` Ready/NotReady) under the UltraServer
whose nodes they run on.

Prints a table (or JSON with ``--json``) and exits 0 (all fine), 1 (something needs
attention) or 2 (usage, configuration, credentials, Region, network or Kubernetes access
error). Kubernetes access: ``--kubeconfig``/``--kube-context``, else straight from the AWS
credentials the way ``aws eks get-token`` does it (``commands/kube.py``).
"""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
    read_configuration,
    table,
)

#: The NVIDIA DRA driver's ComputeDomain custom resource (namespaced).
COMPUTE_DOMAIN_GROUP = "resource.nvidia.com"
COMPUTE_DOMAIN_VERSION = "v1beta1"
COMPUTE_DOMAIN_PLURAL = "computedomains"
#: The extended resource the EFA Kubernetes device plugin advertises.
EFA_RESOURCE = "vpc.amazonaws.com/efa"


class KubernetesAccessError(Exception):
    """Kubernetes could not be reached or refused the credentials: exit status 2."""


# --------------------------------------------------------------------------------------
# What was found
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class NodeFacts:
    name: str
    ready: bool
    clique: str | None
    efa: int


@dataclass(frozen=True, kw_only=True, slots=True)
class ComputeDomainFacts:
    namespace: str
    name: str
    status: str
    nodes: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return self.status == "Ready"

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "status": self.status,
            "nodes": list(self.nodes),
        }


@dataclass(kw_only=True, slots=True)
class UltraServerStatus:
    """One row of the table."""

    name: str
    reservation_id: str
    ultraserver_type: str
    expected_nodes: int
    block_state: str = "unknown"
    start: datetime | None = None
    end: datetime | None = None
    nodes: list[NodeFacts] = field(default_factory=list)
    #: ``None`` when the EFA device plugin does not run (efaMode dranet, efaLayout none).
    efa_expected: int | None = None
    compute_domains: list[ComputeDomainFacts] = field(default_factory=list)

    @property
    def ready_nodes(self) -> int:
        return sum(1 for n in self.nodes if n.ready)

    @property
    def cliques(self) -> list[str]:
        return sorted({n.clique for n in self.nodes if n.clique})

    def time_left(self, now: datetime) -> str:
        from eks_ultraserver.aws_checks import format_duration

        if self.block_state == "active" and self.end is not None:
            return format_duration(self.end - now)
        if self.block_state == "scheduled" and self.start is not None:
            return f"starts in {format_duration(self.start - now)}"
        return "-"

    def cells(self, now: datetime) -> tuple[str, ...]:
        cliques = self.cliques
        if not self.nodes:
            clique_cell = "-"
        elif len(cliques) == 1 and all(n.clique for n in self.nodes):
            clique_cell = "1 OK"
        else:
            clique_cell = str(len(cliques))
        efa = [n.efa for n in self.nodes]
        if not efa:
            efa_cell = "-"
        else:
            efa_cell = str(min(efa)) if min(efa) == max(efa) else f"{min(efa)}..{max(efa)}"
            if self.efa_expected is not None:
                efa_cell += f" (of {self.efa_expected})"
        domains = self.compute_domains
        return (
            self.name,
            self.reservation_id,
            self.block_state,
            self.time_left(now),
            f"{self.ready_nodes}/{self.expected_nodes}",
            clique_cell,
            efa_cell,
            f"{sum(d.ready for d in domains)}/{len(domains)}" if domains else "0",
        )

    def to_json(self, now: datetime) -> dict[str, Any]:
        efa = [n.efa for n in self.nodes]
        return {
            "name": self.name,
            "capacityReservationId": self.reservation_id,
            "type": self.ultraserver_type,
            "blockState": self.block_state,
            "startDate": self.start.isoformat() if self.start else None,
            "endDate": self.end.isoformat() if self.end else None,
            "secondsLeft": int((self.end - now).total_seconds())
            if self.block_state == "active" and self.end
            else None,
            "nodesExpected": self.expected_nodes,
            "nodesFound": len(self.nodes),
            "nodesReady": self.ready_nodes,
            "cliques": self.cliques,
            "oneClique": bool(self.nodes) and len(self.cliques) == 1 and all(n.clique for n in self.nodes),
            "efaPerNode": {"min": min(efa), "max": max(efa)} if efa else None,
            "efaExpected": self.efa_expected,
            "nodes": [
                {"name": n.name, "ready": n.ready, "clique": n.clique, "efa": n.efa} for n in self.nodes
            ],
            "computeDomains": [d.to_json() for d in self.compute_domains],
        }


# --------------------------------------------------------------------------------------
# Kubernetes reads
# --------------------------------------------------------------------------------------


def _node_facts(node: Any) -> NodeFacts:
    from eks_ultraserver.model import GPU_CLIQUE_LABEL

    labels = node.metadata.labels or {}
    conditions = (node.status.conditions if node.status else None) or []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    allocatable = (node.status.allocatable if node.status else None) or {}
    try:
        efa = int(allocatable.get(EFA_RESOURCE, "0"))
    except ValueError:
        efa = 0
    return NodeFacts(name=node.metadata.name, ready=ready, clique=labels.get(GPU_CLIQUE_LABEL), efa=efa)


def _kube_call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Calls the Kubernetes API, turning access errors into :class:`KubernetesAccessError`."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return fn(*args, **kwargs)
    except ApiException as exc:
        if exc.status == 404:
            raise
        hint = {
            401: ": the credentials are not accepted (an EKS access entry for this IAM principal?)",
            403: ": forbidden (the principal needs list on nodes and computedomains)",
        }.get(exc.status or 0, "")
        raise KubernetesAccessError(f"Kubernetes {what}: {exc.status} {exc.reason}{hint}") from exc
    except HTTPError as exc:
        raise KubernetesAccessError(f"Kubernetes {what}: cannot reach the API server: {exc}") from exc


def list_ultraserver_nodes(api: Any, name: str) -> list[NodeFacts]:
    """The nodes labelled ``eks-ultraserver.io/ultraserver=<name>``, by name."""
    from kubernetes import client as k8s

    from eks_ultraserver.model import ULTRASERVER_LABEL

    found = _kube_call(
        "list nodes", k8s.CoreV1Api(api).list_node, label_selector=f"{ULTRASERVER_LABEL}={name}"
    )
    return sorted((_node_facts(n) for n in found.items), key=lambda n: n.name)


def list_compute_domains(api: Any) -> list[ComputeDomainFacts] | None:
    """Every ComputeDomain in the cluster, or ``None`` when the resource type is not
    installed (the NVIDIA DRA driver is missing)."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    try:
        found = _kube_call(
            "list computedomains",
            k8s.CustomObjectsApi(api).list_cluster_custom_object,
            COMPUTE_DOMAIN_GROUP,
            COMPUTE_DOMAIN_VERSION,
            COMPUTE_DOMAIN_PLURAL,
        )
    except ApiException:  # 404: the CRD is not installed
        return None
    out = []
    for item in found.get("items", []):
        meta = item.get("metadata", {})
        status = item.get("status") or {}
        out.append(
            ComputeDomainFacts(
                namespace=meta.get("namespace", ""),
                name=meta.get("name", ""),
                status=status.get("status") or "NotReady",
                nodes=tuple(n.get("name", "") for n in status.get("nodes") or []),
            )
        )
    return sorted(out, key=lambda d: (d.namespace, d.name))


# --------------------------------------------------------------------------------------
# Findings
# --------------------------------------------------------------------------------------


def findings_for(us: UltraServerStatus, *, now: datetime, min_time_left: timedelta, region: str) -> list[Any]:
    """What needs attention on one UltraServer (warnings and blocking) or is worth a note."""
    from eks_ultraserver.aws_checks import (
        EC2_TERMINATION_BEFORE_END,
        EKS_SCALE_DOWN_BEFORE_END,
        RESERVATION_STATES,
        Finding,
        Severity,
        format_duration,
    )
    from eks_ultraserver.aws_checks.findings import iso_time
    from eks_ultraserver.model import GPU_CLIQUE_LABEL

    subject = f"{us.name} {us.reservation_id}"
    out: list[Finding] = []

    def add(check: str, severity: Severity, message: str, fix: str = "") -> None:
        out.append(Finding(subject=subject, check=check, severity=severity, message=message, fix=fix))

    if us.block_state == "not found":
        add(
            "block",
            Severity.BLOCKING,
            f"EC2 does not know {us.reservation_id} in {region}",
            "check ultraServers[].capacityReservationId, --profile and --region",
        )
    elif us.block_state not in ("active", "scheduled"):
        severity, message, fix = RESERVATION_STATES.get(
            us.block_state,
            (Severity.WARNING, f"{us.block_state}: a state this tool does not know", "check the EC2 console"),
        )
        if severity is Severity.OK:
            severity = Severity.NOTE
        add("block", severity, message, fix.replace("<id>", us.reservation_id))

    if us.block_state == "active" and us.end is not None and us.end - now < min_time_left:
        add(
            "time left",
            Severity.WARNING,
            f"the block ends in {format_duration(us.end - now)} ({iso_time(us.end)}); EKS scales the "
            f"node group to 0 at {iso_time(us.end - EKS_SCALE_DOWN_BEFORE_END)} and EC2 terminates "
            f"instances from {iso_time(us.end - EC2_TERMINATION_BEFORE_END)}",
            "extend the block (aws ec2 describe-capacity-block-extension-offerings, "
            "purchase-capacity-block-extension) or finish and checkpoint work before the scale-down",
        )

    ready = us.ready_nodes
    if us.block_state == "active" and ready < us.expected_nodes:
        not_ready = [n.name for n in us.nodes if not n.ready]
        detail = f"; not Ready: {', '.join(not_ready)}" if not_ready else ""
        add(
            "nodes",
            Severity.WARNING,
            f"{ready} of {us.expected_nodes} nodes Ready while the block is active "
            f"({len(us.nodes)} registered{detail})",
            f"kubectl get nodes -l eks-ultraserver.io/ultraserver={us.name}; check the node group's "
            "health in the EKS console (instances that fail to launch or join) and "
            "kubectl describe node on the ones not Ready",
        )

    unlabelled = [n.name for n in us.nodes if not n.clique]
    if len(us.cliques) > 1:
        groups = ", ".join(f"{c} ({sum(1 for n in us.nodes if n.clique == c)} nodes)" for c in us.cliques)
        add(
            "clique",
            Severity.WARNING,
            f"the nodes are in {len(us.cliques)} NVLink cliques ({groups}), not one",
            "a ComputeDomain spans one clique: check the UltraServer's interconnect "
            "(aws ec2 describe-capacity-block-status) and that the node group uses one Capacity Block",
        )
    if unlabelled:
        add(
            "clique",
            Severity.WARNING,
            f"{len(unlabelled)} node(s) have no {GPU_CLIQUE_LABEL} label: {', '.join(unlabelled)}",
            "GPU Feature Discovery sets it once the GPU driver and the fabric manager run: "
            "check the GPU Operator pods on those nodes (kubectl -n gpu-operator get pods -o wide)",
        )

    if us.efa_expected:
        short = [f"{n.name} ({n.efa})" for n in us.nodes if n.efa < us.efa_expected]
        if short:
            add(
                "efa",
                Severity.WARNING,
                f"{len(short)} node(s) have fewer than {us.efa_expected} {EFA_RESOURCE} allocatable: "
                f"{', '.join(short)}",
                "check the EFA device plugin pod on those nodes (kubectl -n kube-system get pods -o wide "
                "| grep efa) and the instance's network interfaces (efaLayout)",
            )

    for d in us.compute_domains:
        if not d.ready:
            add(
                "computedomain",
                Severity.WARNING,
                f"ComputeDomain {d.namespace}/{d.name} is {d.status}",
                f"kubectl -n {d.namespace} describe computedomain {d.name}; check the IMEX daemon pods "
                "(kubectl -n nvidia-dra-driver-gpu get pods -o wide)",
            )
    return out


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------

_DESCRIPTION = """\
Show, per UltraServer in ultraServers: its Capacity Block state and time left, nodes
Ready against the UltraServer's size, whether all its nodes carry one
nvidia.com/gpu.clique value (one NVLink domain), vpc.amazonaws.com/efa devices
allocatable per node (min..max, against what efaLayout gives), and the ComputeDomains
running on it (Ready/total). Then what needs attention, with what to do.

Kubernetes access: --kubeconfig/--kube-context, else straight from the AWS credentials
the way 'aws eks get-token' does it (endpoint and CA from eks:DescribeCluster).

Needs: ec2:DescribeCapacityReservations, eks:DescribeCluster (without --kubeconfig),
cloudformation:DescribeStacks (only when the cluster name is not known), and in
Kubernetes list on nodes and on computedomains.resource.nvidia.com."""

_EPILOG = """\
exit status: 0 all fine (notes allowed); 1 something needs attention: nodes missing or
not Ready while the block is active, nodes in more than one clique or without one, fewer
EFA devices than efaLayout gives, a ComputeDomain NotReady, a block ending within
--min-hours-left, or a block that is not active or scheduled; 2 usage, configuration,
credentials, Region, network or Kubernetes access error.

examples:
  eks-ultraserver status
  eks-ultraserver status --kubeconfig ~/.kube/config --kube-context gb200
  eks-ultraserver status --json --quiet | jq '.ultraServers[] | {name, nodesReady}'"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status",
        help="per UltraServer: Capacity Block, nodes, NVLink clique, EFA, ComputeDomains",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_context_arguments(parser)
    add_cluster_arguments(parser, note="; not needed with --kubeconfig")
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="use this kubeconfig instead of a token from the AWS credentials",
    )
    parser.add_argument(
        "--kube-context",
        metavar="NAME",
        help="the kubeconfig context to use (default: its current context; implies a kubeconfig: "
        "KUBECONFIG or ~/.kube/config when --kubeconfig is not given)",
    )
    parser.add_argument(
        "--min-hours-left",
        metavar="HOURS",
        type=float,
        default=2.0,
        help="needs attention when an active block ends sooner than this many hours (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress lines on stderr (default: one line per question)"
    )
    parser.set_defaults(func=run)


def _client_error() -> type[Exception]:
    from botocore.exceptions import ClientError

    return ClientError


def run(args: argparse.Namespace) -> int:
    from eks_ultraserver.aws_checks import AwsSetupError, Severity, describe_reservation
    from eks_ultraserver.commands import kube
    from eks_ultraserver.model import ConfigurationError, EfaLayout
    from eks_ultraserver.settings import EfaMode

    if args.min_hours_left < 0:
        return fail(f"--min-hours-left: {args.min_hours_left} is negative; give hours >= 0")
    progress = Progress(enabled=not args.quiet)
    now = datetime.now(UTC)
    try:
        context = load_context(args.context_file, args.context)
        config, _zone_configured = read_configuration(context)
        session, region = open_session(args, context)
        ec2 = make_client(session, "ec2", region)
        if args.kubeconfig or args.kube_context:
            where = args.kube_context or "the current context"
            progress(f"connecting to Kubernetes with {args.kubeconfig or 'the kubeconfig'} ({where})")
            api, kube_context = _kubeconfig_client(args.kubeconfig, args.kube_context)
            cluster = args.cluster or context.get("clusterName") or f"of kubeconfig context {kube_context}"
        else:
            cluster = cluster_name(args, context, session, region, other_ways=["--kubeconfig"])
            progress(f"connecting to EKS cluster {cluster} in {region}")
            api = kube.client_for_eks_cluster(session, make_client(session, "eks", region), cluster, region)

        efa_expected: int | None = None
        if config.addons.efa_mode is EfaMode.DEVICE_PLUGIN and config.efa_layout is not EfaLayout.NONE:
            efa_expected = config.efa_layout.efa_devices
        rows: list[UltraServerStatus] = []
        specs = config.ultraservers
        for i, spec in enumerate(specs, start=1):
            progress(f"asking EC2 and Kubernetes about {spec.name} [{i}/{len(specs)}]")
            row = UltraServerStatus(
                name=spec.name,
                reservation_id=spec.capacity_reservation_id,
                ultraserver_type=spec.type.value,
                expected_nodes=spec.instance_count,
                efa_expected=efa_expected,
            )
            facts = describe_reservation(ec2, spec.capacity_reservation_id)
            if facts is None:
                row.block_state = "not found"
            else:
                row.block_state, row.start, row.end = facts.state, facts.start_date, facts.end_date
            row.nodes = list_ultraserver_nodes(api, spec.name)
            rows.append(row)
        progress("listing ComputeDomains")
        domains = list_compute_domains(api)
    except UsageError as exc:
        return fail(str(exc))
    except ConfigurationError as exc:
        return fail(f"{args.context_file}: {exc}")
    except (AwsSetupError, KubernetesAccessError) as exc:
        return fail(str(exc))
    except _client_error() as exc:
        return fail(f"AWS refused: {exc}")

    unplaced = _place_compute_domains(rows, domains or [])
    from eks_ultraserver.aws_checks import Finding

    findings: list[Finding] = []
    for row in rows:
        findings += findings_for(
            row, now=now, min_time_left=timedelta(hours=args.min_hours_left), region=region
        )
    findings += _cluster_findings(domains, unplaced)
    attention = [f for f in findings if f.severity in (Severity.WARNING, Severity.BLOCKING)]
    code = EXIT_PROBLEM if attention else EXIT_OK
    if args.json:
        document = {
            "cluster": cluster,
            "region": region,
            "time": now.isoformat(timespec="seconds"),
            "ultraServers": [r.to_json(now) for r in rows],
            "otherComputeDomains": [d.to_json() for d in unplaced],
            "computeDomainsInstalled": domains is not None,
            "findings": [f.to_json() for f in findings],
            "exitCode": code,
        }
        print(json.dumps(document, indent=2))
    else:
        print(render(cluster, region, rows, unplaced, findings, now=now, code=code))
    return code


def _kubeconfig_client(path: str | None, context: str | None) -> tuple[Any, str]:
    """The API client and the name of the kubeconfig context it uses."""
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    from eks_ultraserver.commands import kube

    try:
        api = kube.client_from_kubeconfig(path, context)
        _, active = config.list_kube_config_contexts(config_file=path)
        return api, context or (active or {}).get("name", "?")
    except (ConfigException, OSError) as exc:
        raise UsageError(f"kubeconfig {path or '(default)'}: {exc}") from None


def _place_compute_domains(
    rows: Sequence[UltraServerStatus], domains: Sequence[ComputeDomainFacts]
) -> list[ComputeDomainFacts]:
    """Puts each ComputeDomain under the UltraServer its nodes are on; returns the others
    (no nodes yet, or nodes on no listed UltraServer)."""
    owner = {n.name: row for row in rows for n in row.nodes}
    unplaced = []
    for d in domains:
        placed = {id(owner[n]): owner[n] for n in d.nodes if n in owner}
        for row in placed.values():
            row.compute_domains.append(d)
        if not placed:
            unplaced.append(d)
    return unplaced


def _cluster_findings(
    domains: Sequence[ComputeDomainFacts] | None, unplaced: Sequence[ComputeDomainFacts]
) -> list[Any]:
    from eks_ultraserver.aws_checks import Finding, Severity

    out = []
    if domains is None:
        out.append(
            Finding(
                subject="cluster",
                check="computedomains",
                severity=Severity.NOTE,
                message="the ComputeDomain resource type (resource.nvidia.com/v1beta1) is not installed",
                fix="",
            )
        )
    for d in unplaced:
        if not d.ready:
            out.append(
                Finding(
                    subject=f"{d.namespace}/{d.name}",
                    check="computedomain",
                    severity=Severity.WARNING,
                    message=f"ComputeDomain {d.namespace}/{d.name} is {d.status} on no UltraServer node "
                    "(its workload pods are not scheduled yet?)",
                    fix=f"kubectl -n {d.namespace} describe computedomain {d.name}; check that its pods "
                    "request the ComputeDomain's resource claim template and fit on one UltraServer",
                )
            )
    return out


def render(
    cluster: str,
    region: str,
    rows: Sequence[UltraServerStatus],
    unplaced: Sequence[ComputeDomainFacts],
    findings: Sequence[Any],
    *,
    now: datetime,
    code: int,
) -> str:
    """The human output: a header, one row per UltraServer, findings, a verdict."""
    from eks_ultraserver.aws_checks import Severity

    lines = [
        f"Cluster {cluster} in {region}, {now.isoformat(timespec='minutes')}",
        "",
        table(
            [r.cells(now) for r in rows],
            headers=(
                "ULTRASERVER",
                "RESERVATION",
                "BLOCK",
                "TIME LEFT",
                "NODES",
                "CLIQUES",
                "EFA/NODE",
                "COMPUTEDOMAINS",
            ),
        ),
    ]
    if unplaced:
        listed = ", ".join(f"{d.namespace}/{d.name} ({d.status})" for d in unplaced)
        lines += ["", f"ComputeDomains on no UltraServer node: {listed}"]
    shown = [f for f in findings if f.severity is not Severity.OK]
    shown.sort(key=lambda f: -f.severity.rank)
    if shown:
        lines += ["", "Needs attention:" if code else "Notes:"]
        for f in shown:
            lines.append(f"  {f.severity.value.upper()}: {f.subject}, {f.check}: {f.message}")
            if f.fix:
                lines += textwrap.wrap(
                    f"fix: {f.fix}",
                    width=100,
                    initial_indent="    ",
                    subsequent_indent="         ",
                    break_on_hyphens=False,
                    break_long_words=False,
                )
    attention = sum(1 for f in shown if f.severity in (Severity.WARNING, Severity.BLOCKING))
    lines += ["", "All fine." if code == EXIT_OK else f"{attention} thing(s) need attention (exit 1)."]
    return "\n".join(lines)
