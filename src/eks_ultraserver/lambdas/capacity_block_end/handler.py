"""Acts on nodes whose Capacity Block ends soon: cordon, label, annotate, announce, evict.

Runs every few minutes (an EventBridge schedule). For each watched reservation (the
UltraServers' and the ``reservedCapacity`` Capacity Blocks, listed in ``reservations.json``
next to this file, written at synth), EC2 ``DescribeCapacityReservations`` gives the end
date; a block is *ending* when it is ``active`` and ``now >= end - notice``. The nodes of an
ending block (found by their label selector) are, once each:

- cordoned (``spec.unschedulable: true``), labelled ``eks-ultraserver.io/capacity-block-ending
  =true`` and annotated ``eks-ultraserver.io/capacity-block-end=<ISO 8601 end>``;
- announced: one SNS message per block, when at least one of its nodes was newly marked
  (when ``TOPIC_ARN`` is set);
- optionally (``EVICT=true``) drained: every pod on them but DaemonSet and mirror pods gets
  an eviction (``policy/v1`` Eviction, ``deleteOptions.gracePeriodSeconds``), so it receives
  SIGTERM and can checkpoint. An eviction refused by a PodDisruptionBudget (HTTP 429) is
  tried again on the next run.

A node already annotated with the block's end is not patched or announced again. Nothing is
done to the nodes of a block that is not ending.

EKS scales a Capacity Block node group down 40 minutes before the block ends (EKS user
guide, capacity-blocks-mng); EC2 starts terminating its instances 30 minutes before the end
(EC2 user guide, capacity-blocks-monitor): the notice must be longer than both.

Standard library and boto3 only (the Lambda Python runtime's). The bearer token is the one
``aws eks get-token`` makes: a presigned STS ``GetCallerIdentity`` URL carrying the
``x-k8s-aws-id`` header (the cluster name), base64url-encoded after ``k8s-aws-v1.``.

Environment: ``CLUSTER_NAME``, ``TOPIC_ARN``, ``NOTICE_MINUTES``, ``EVICT`` (``true`` or
``false``), ``EVICTION_GRACE_PERIOD_SECONDS``; ``CLUSTER_ENDPOINT`` and ``CLUSTER_CA`` (base64
PEM) override what ``eks:DescribeCluster`` returns (tests use a plain ``http://`` endpoint).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)
LOG.setLevel(logging.INFO)

#: Set to ``true`` on the nodes of a Capacity Block that ends soon.
ENDING_LABEL = "eks-ultraserver.io/capacity-block-ending"
#: The block's end (ISO 8601, UTC) on each of its nodes.
END_ANNOTATION = "eks-ultraserver.io/capacity-block-end"
#: What a mirror (static) pod carries; the kubelet owns it, the API cannot evict it.
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
#: The file of watched reservations, next to this module.
RESERVATIONS_FILE = Path(__file__).with_name("reservations.json")
#: How long the presigned token URL is valid (the authenticator accepts up to 15 minutes).
TOKEN_EXPIRES_SECONDS = 60


# --------------------------------------------------------------------------------------
# Pure logic
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reservation:
    """One watched Capacity Block: what it is called and how its nodes are selected."""

    name: str
    reservation_id: str
    label_selector: str

    @classmethod
    def from_json(cls, item: Mapping[str, str]) -> Reservation:
        return cls(item["name"], item["capacityReservationId"], item["labelSelector"])


@dataclass(frozen=True, slots=True)
class EndingBlock:
    reservation: Reservation
    end: datetime

    @property
    def end_text(self) -> str:
        return iso(self.end)


def iso(when: datetime) -> str:
    """``2026-12-02T11:30:00Z``: UTC, seconds."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ending_blocks(
    reservations: Sequence[Reservation],
    described: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
    notice: timedelta,
) -> list[EndingBlock]:
    """The reservations whose block is ``active`` and ends within ``notice`` of ``now``.
    ``described``: ``DescribeCapacityReservations``' items."""
    by_id = {item["CapacityReservationId"]: item for item in described}
    found = []
    for reservation in reservations:
        item = by_id.get(reservation.reservation_id)
        if item is None or item.get("State") != "active" or item.get("EndDate") is None:
            continue
        end = item["EndDate"]
        if now >= end - notice:
            found.append(EndingBlock(reservation, end))
    return found


def node_patch(block: EndingBlock) -> dict[str, Any]:
    """The merge patch that cordons a node and marks it with the block's end."""
    return {
        "metadata": {
            "labels": {ENDING_LABEL: "true"},
            "annotations": {END_ANNOTATION: block.end_text},
        },
        "spec": {"unschedulable": True},
    }


def is_marked(node: Mapping[str, Any], block: EndingBlock) -> bool:
    """True when the node already carries the block's end, its label and is cordoned."""
    metadata = node.get("metadata", {})
    return (
        (metadata.get("annotations") or {}).get(END_ANNOTATION) == block.end_text
        and (metadata.get("labels") or {}).get(ENDING_LABEL) == "true"
        and bool(node.get("spec", {}).get("unschedulable"))
    )


def evictable(pod: Mapping[str, Any]) -> bool:
    """Pods a drain evicts: not DaemonSet pods (their controller ignores cordons and would
    recreate them), not mirror pods (the kubelet owns them), not already terminating or done."""
    metadata = pod.get("metadata", {})
    if MIRROR_POD_ANNOTATION in (metadata.get("annotations") or {}):
        return False
    if any(ref.get("kind") == "DaemonSet" for ref in metadata.get("ownerReferences") or []):
        return False
    if metadata.get("deletionTimestamp"):
        return False
    return pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")


def eviction(pod: Mapping[str, Any], grace_period_seconds: int) -> dict[str, Any]:
    """The ``policy/v1`` Eviction of one pod."""
    return {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod["metadata"]["name"], "namespace": pod["metadata"]["namespace"]},
        "deleteOptions": {"gracePeriodSeconds": grace_period_seconds},
    }


def announcement(block: EndingBlock, nodes: Sequence[str], *, cluster: str, evict: bool) -> tuple[str, str]:
    """The SNS subject (at most 100 characters) and message of one ending block."""
    reservation = block.reservation
    subject = f"Capacity Block {reservation.name} ends at {block.end_text}"[:100]
    message = {
        "event": "CapacityBlockEnding",
        "cluster": cluster,
        "name": reservation.name,
        "capacityReservationId": reservation.reservation_id,
        "endDate": block.end_text,
        "labelSelector": reservation.label_selector,
        "nodes": list(nodes),
        "cordoned": True,
        "evicting": evict,
        "note": (
            "EKS scales the node group down 40 minutes before the end; EC2 terminates the "
            "instances from 30 minutes before the end."
        ),
    }
    return subject, json.dumps(message, indent=2)


# --------------------------------------------------------------------------------------
# The Kubernetes API, over HTTPS
# --------------------------------------------------------------------------------------


class KubernetesError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status


class Kubernetes:
    """Just the calls the handler makes: list nodes, patch a node, list a node's pods,
    evict a pod. ``token`` is called before each request (tokens expire)."""

    def __init__(self, endpoint: str, *, token: Callable[[], str], ca_pem: str | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token = token
        self.context = ssl.create_default_context(cadata=ca_pem) if ca_pem else None

    def _call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.endpoint + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token()}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=30) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            raise KubernetesError(exc.code, exc.read().decode(errors="replace")) from exc
        return json.loads(text) if text else None

    def nodes(self, label_selector: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"labelSelector": label_selector})
        return self._call("GET", f"/api/v1/nodes?{query}").get("items", [])

    def patch_node(self, name: str, patch: Mapping[str, Any]) -> None:
        self._call(
            "PATCH",
            f"/api/v1/nodes/{urllib.parse.quote(name)}",
            patch,
            content_type="application/merge-patch+json",
        )

    def pods_on(self, node: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"fieldSelector": f"spec.nodeName={node}"})
        return self._call("GET", f"/api/v1/pods?{query}").get("items", [])

    def evict(self, body: Mapping[str, Any]) -> None:
        namespace = urllib.parse.quote(body["metadata"]["namespace"])
        name = urllib.parse.quote(body["metadata"]["name"])
        self._call("POST", f"/api/v1/namespaces/{namespace}/pods/{name}/eviction", body)


def eks_token(sts: Any, cluster_name: str) -> str:
    """The bearer token ``aws eks get-token`` makes, from an STS client (signed with the
    function's role)."""

    def add_cluster_header(request: Any, **_: Any) -> None:
        request.headers["x-k8s-aws-id"] = cluster_name

    event = "before-sign.sts.GetCallerIdentity"
    sts.meta.events.register(event, add_cluster_header)
    try:
        url = sts.generate_presigned_url(
            "get_caller_identity", Params={}, ExpiresIn=TOKEN_EXPIRES_SECONDS, HttpMethod="GET"
        )
    finally:
        sts.meta.events.unregister(event, add_cluster_header)
    return "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


# --------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    cluster_name: str
    topic_arn: str
    notice: timedelta
    evict: bool
    grace_period_seconds: int
    endpoint: str | None = None
    ca_pem: str | None = None

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Settings:
        ca = env.get("CLUSTER_CA")
        return cls(
            cluster_name=env["CLUSTER_NAME"],
            topic_arn=env.get("TOPIC_ARN", ""),
            notice=timedelta(minutes=int(env["NOTICE_MINUTES"])),
            evict=env.get("EVICT", "false").lower() == "true",
            grace_period_seconds=int(env.get("EVICTION_GRACE_PERIOD_SECONDS", "600")),
            endpoint=env.get("CLUSTER_ENDPOINT") or None,
            ca_pem=base64.b64decode(ca).decode() if ca else None,
        )


def describe(ec2: Any, reservations: Sequence[Reservation]) -> list[dict[str, Any]]:
    """The reservations' ``DescribeCapacityReservations`` items (100 ids per call; an id
    EC2 no longer knows makes the whole call fail, so each is then asked alone)."""
    items: list[dict[str, Any]] = []
    ids = list(dict.fromkeys(r.reservation_id for r in reservations))
    for start in range(0, len(ids), 100):
        chunk = ids[start : start + 100]
        try:
            items.extend(_describe_all(ec2, chunk))
        except Exception as exc:
            if len(chunk) == 1 or "InvalidCapacityReservationId" not in str(exc):
                raise
            for rid in chunk:
                try:
                    items.extend(_describe_all(ec2, [rid]))
                except Exception as inner:
                    if "InvalidCapacityReservationId" not in str(inner):
                        raise
                    LOG.warning("reservation %s: unknown to EC2, skipped", rid)
    return items


def _describe_all(ec2: Any, ids: list[str]) -> list[dict[str, Any]]:
    response = ec2.describe_capacity_reservations(CapacityReservationIds=ids)
    return list(response.get("CapacityReservations", []))


def run(
    settings: Settings,
    reservations: Sequence[Reservation],
    *,
    ec2: Any,
    sns: Any,
    kube: Kubernetes,
    now: datetime,
) -> dict[str, Any]:
    """One pass; returns what it did (logged, and the Lambda function's result)."""
    result: dict[str, Any] = {"ending": [], "marked": [], "announced": [], "evicted": [], "failed": []}
    if not reservations:
        return result
    blocks = ending_blocks(reservations, describe(ec2, reservations), now=now, notice=settings.notice)
    for block in blocks:
        name = block.reservation.name
        result["ending"].append(name)
        nodes = kube.nodes(block.reservation.label_selector)
        marked = []
        for node in nodes:
            node_name = node["metadata"]["name"]
            if is_marked(node, block):
                continue
            kube.patch_node(node_name, node_patch(block))
            marked.append(node_name)
        result["marked"].extend(marked)
        if marked and settings.topic_arn:
            subject, message = announcement(
                block,
                sorted(n["metadata"]["name"] for n in nodes),
                cluster=settings.cluster_name,
                evict=settings.evict,
            )
            sns.publish(TopicArn=settings.topic_arn, Subject=subject, Message=message)
            result["announced"].append(name)
        if not settings.evict:
            continue
        for node in nodes:
            for pod in kube.pods_on(node["metadata"]["name"]):
                if not evictable(pod):
                    continue
                pod_id = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
                try:
                    kube.evict(eviction(pod, settings.grace_period_seconds))
                    result["evicted"].append(pod_id)
                except KubernetesError as exc:
                    # 429: a PodDisruptionBudget forbids it now; 404: already gone. Next run.
                    LOG.warning("eviction of %s: %s", pod_id, exc)
                    result["failed"].append(pod_id)
    return result


def load_reservations(path: Path = RESERVATIONS_FILE) -> list[Reservation]:
    return [Reservation.from_json(item) for item in json.loads(path.read_text())]


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:  # pragma: no cover (AWS)
    """The Lambda entry point: clients from the function's role, then :func:`run`."""
    import boto3

    settings = Settings.from_environment(os.environ)
    endpoint, ca_pem = settings.endpoint, settings.ca_pem
    if endpoint is None:
        cluster = boto3.client("eks").describe_cluster(name=settings.cluster_name)["cluster"]
        endpoint = cluster["endpoint"]
        ca_pem = base64.b64decode(cluster["certificateAuthority"]["data"]).decode()
    sts = boto3.client("sts")
    kube = Kubernetes(endpoint, token=lambda: eks_token(sts, settings.cluster_name), ca_pem=ca_pem)
    result = run(
        settings,
        load_reservations(),
        ec2=boto3.client("ec2"),
        sns=boto3.client("sns"),
        kube=kube,
        now=datetime.now(UTC),
    )
    LOG.info("capacity block end: %s", json.dumps(result))
    return result
