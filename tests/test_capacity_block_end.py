"""The Capacity Block end handler: its pure logic, one run end to end against a local fake
Kubernetes API (HTTP on 127.0.0.1) with EC2 and SNS stubbed, the ``capacityBlockEnd``
configuration, and the construct in a synthesized environment."""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import kubernetes_validate
import pytest
from aws_cdk.assertions import Match, Template
from botocore.stub import ANY

from eks_ultraserver.capacity import ReservationKind, ReservedCapacitySpec, ReservedProvisioner
from eks_ultraserver.config import CONTEXT_KEYS, CapacityBlockEndConfig, ConfigurationError, read_environment
from eks_ultraserver.constructs.capacity_block_end import (
    CLUSTER_ROLE_NAME,
    KUBERNETES_GROUP,
    WatchedBlock,
    cluster_role,
    cluster_role_binding,
)
from eks_ultraserver.lambdas.capacity_block_end import handler as h
from eks_ultraserver.versions import LAMBDA_PYTHON_RUNTIME, SUPPORTED_KUBERNETES_VERSIONS

from aws_stubs import RID, RID2, stubbed
from conftest import synth_environment

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
SOON = NOW + timedelta(minutes=60)
LATER = NOW + timedelta(hours=5)
TOPIC = "arn:aws:sns:us-east-1:123456789012:capacity-blocks"
US1 = h.Reservation("us-1", RID, "eks-ultraserver.io/ultraserver=us-1")
US2 = h.Reservation("us-2", RID2, "eks-ultraserver.io/ultraserver=us-2")


def described(rid: str, end: datetime, state: str = "active") -> dict[str, Any]:
    """A ``DescribeCapacityReservations`` item with the fields the handler reads."""
    return {
        "CapacityReservationId": rid,
        "InstanceType": "p6e-gb200.36xlarge",
        "InstancePlatform": "Linux/UNIX",
        "AvailabilityZone": "us-east-1-dfw-2a",
        "State": state,
        "StartDate": end - timedelta(days=1),
        "EndDate": end,
        "ReservationType": "capacity-block",
        "TotalInstanceCount": 18,
    }


def node(name: str, labels: dict[str, str], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels, "annotations": annotations or {}}, "spec": {}}


def pod(name: str, node_name: str, *, owner: str | None = None, **metadata: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "jobs", **metadata}
    if owner:
        meta["ownerReferences"] = [{"kind": owner, "name": "x", "apiVersion": "apps/v1", "uid": "1"}]
    return {"metadata": meta, "spec": {"nodeName": node_name}, "status": {"phase": "Running"}}


# --------------------------------------------------------------------------------------
# Pure logic
# --------------------------------------------------------------------------------------


def test_a_block_is_ending_only_when_active_and_within_the_notice():
    # GIVEN three blocks: active ending in 60 min, active ending in 5 h, one already expired
    items = [described(RID, SOON), described(RID2, LATER)]
    gone = h.Reservation("us-3", "cr-0aaaaaaaaaaaaaaaa", "eks-ultraserver.io/ultraserver=us-3")
    items.append(described(gone.reservation_id, SOON, state="expired"))
    # WHEN the handler picks the ending ones with 90 minutes' notice
    found = h.ending_blocks([US1, US2, gone], items, now=NOW, notice=timedelta(minutes=90))
    # THEN only the active block within the notice is ending
    assert found == [h.EndingBlock(US1, SOON)]
    # AND at exactly end - notice it counts; a minute earlier it does not
    exact = SOON - timedelta(minutes=90)
    assert h.ending_blocks([US1], items, now=exact, notice=timedelta(minutes=90))
    assert not h.ending_blocks([US1], items, now=exact - timedelta(minutes=1), notice=timedelta(minutes=90))


def test_the_node_patch_cordons_labels_and_annotates_with_the_end():
    block = h.EndingBlock(US1, SOON)
    assert h.node_patch(block) == {
        "metadata": {
            "labels": {"eks-ultraserver.io/capacity-block-ending": "true"},
            "annotations": {"eks-ultraserver.io/capacity-block-end": "2026-12-02T11:00:00Z"},
        },
        "spec": {"unschedulable": True},
    }


def test_a_node_already_marked_with_the_end_is_not_marked_again():
    block = h.EndingBlock(US1, SOON)
    fresh = node("n1", {"eks-ultraserver.io/ultraserver": "us-1"})
    assert not h.is_marked(fresh, block)
    marked = json.loads(json.dumps(fresh))
    marked["metadata"]["labels"].update(h.node_patch(block)["metadata"]["labels"])
    marked["metadata"]["annotations"].update(h.node_patch(block)["metadata"]["annotations"])
    marked["spec"]["unschedulable"] = True
    assert h.is_marked(marked, block)
    # a node uncordoned by someone since, or marked for another end, is marked again
    assert not h.is_marked({**marked, "spec": {}}, block)
    assert not h.is_marked(marked, h.EndingBlock(US1, LATER))


def test_eviction_skips_daemonset_mirror_terminating_and_finished_pods():
    assert h.evictable(pod("job-0", "n1", owner="Job"))
    assert h.evictable(pod("bare", "n1"))
    assert not h.evictable(pod("efa", "n1", owner="DaemonSet"))
    assert not h.evictable(pod("static", "n1", annotations={"kubernetes.io/config.mirror": "abc"}))
    assert not h.evictable(pod("going", "n1", deletionTimestamp="2026-12-02T10:00:00Z"))
    done = pod("done", "n1")
    done["status"]["phase"] = "Succeeded"
    assert not h.evictable(done)
    assert h.eviction(pod("job-0", "n1"), 600) == {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "job-0", "namespace": "jobs"},
        "deleteOptions": {"gracePeriodSeconds": 600},
    }


def test_the_bearer_token_is_a_presigned_get_caller_identity_for_the_cluster():
    # GIVEN an STS client with (dummy) credentials: presigning needs no network
    sts, _ = stubbed("sts")
    # WHEN the handler makes its token
    token = h.eks_token(sts, "my-cluster")
    # THEN it is what `aws eks get-token` makes: k8s-aws-v1. + unpadded base64url of the URL
    assert token.startswith("k8s-aws-v1.") and "=" not in token
    encoded = token.removeprefix("k8s-aws-v1.")
    url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["Action"] == ["GetCallerIdentity"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0].split(";")
    assert query["X-Amz-Expires"] == ["60"]
    # AND the header hook is gone afterwards (a second token works the same)
    assert h.eks_token(sts, "my-cluster").startswith("k8s-aws-v1.")


# --------------------------------------------------------------------------------------
# One run against a fake Kubernetes API
# --------------------------------------------------------------------------------------


class FakeKubernetes:
    """Nodes and pods in memory, served over HTTP like the API server's paths."""

    def __init__(self, nodes: list[dict[str, Any]], pods: list[dict[str, Any]]) -> None:
        self.nodes = {n["metadata"]["name"]: n for n in nodes}
        self.pods = pods
        self.requests: list[tuple[str, str]] = []
        self.evictions: list[dict[str, Any]] = []
        self.tokens: set[str] = set()

    def handle(self, method: str, url: str, body: Any) -> tuple[int, Any]:
        parts = urllib.parse.urlsplit(url)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(parts.query).items()}
        path = parts.path.strip("/").split("/")
        self.requests.append((method, parts.path))
        if method == "GET" and path == ["api", "v1", "nodes"]:
            key, _, value = query["labelSelector"].partition("=")
            items = [n for n in self.nodes.values() if n["metadata"]["labels"].get(key) == value]
            return 200, {"kind": "NodeList", "items": json.loads(json.dumps(items))}
        if method == "PATCH" and path[:3] == ["api", "v1", "nodes"]:
            target = self.nodes[path[3]]
            for section in ("labels", "annotations"):
                target["metadata"].setdefault(section, {}).update(body["metadata"][section])
            target["spec"].update(body["spec"])
            return 200, target
        if method == "GET" and path == ["api", "v1", "pods"]:
            field, _, value = query["fieldSelector"].partition("=")
            assert field == "spec.nodeName"
            return 200, {"kind": "PodList", "items": [p for p in self.pods if p["spec"]["nodeName"] == value]}
        if method == "POST" and path[-1] == "eviction":
            namespace, name = path[3], path[5]
            assert body["metadata"] == {"name": name, "namespace": namespace}
            self.evictions.append(body)
            self.pods = [p for p in self.pods if p["metadata"]["name"] != name]
            return 201, {"kind": "Status", "status": "Success"}
        return 404, {"kind": "Status", "status": "Failure"}


@pytest.fixture
def fake_api() -> Iterator[tuple[FakeKubernetes, str]]:
    nodes = [
        node("us1-a", {"eks-ultraserver.io/ultraserver": "us-1"}),
        node("us1-b", {"eks-ultraserver.io/ultraserver": "us-1"}),
        node("us2-a", {"eks-ultraserver.io/ultraserver": "us-2"}),
        node("system", {"eks-ultraserver.io/node-role": "system"}),
    ]
    pods = [
        pod("train-0", "us1-a", owner="Job"),
        pod("efa-plugin", "us1-a", owner="DaemonSet"),
        pod("kube-proxy-static", "us1-b", annotations={"kubernetes.io/config.mirror": "x"}),
        pod("train-1", "us1-b", owner="Job"),
        pod("train-2", "us2-a", owner="Job"),
    ]
    fake = FakeKubernetes(nodes, pods)

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            fake.tokens.add(self.headers.get("Authorization", ""))
            if self.command == "PATCH":
                assert self.headers["Content-Type"] == "application/merge-patch+json"
            status, payload = fake.handle(self.command, self.path, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PATCH = do_POST = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def one_run(fake_url: str, *, evict: bool, publishes: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One handler run at NOW: us-1 ends in 60 minutes, us-2 in 5 hours; 90 minutes' notice."""
    settings = h.Settings.from_environment(
        {
            "CLUSTER_NAME": "my-cluster",
            "TOPIC_ARN": TOPIC,
            "NOTICE_MINUTES": "90",
            "EVICT": "true" if evict else "false",
            "EVICTION_GRACE_PERIOD_SECONDS": "600",
            "CLUSTER_ENDPOINT": fake_url,
        }
    )
    ec2, ec2_stub = stubbed("ec2")
    sns, sns_stub = stubbed("sns")
    sts, _ = stubbed("sts")
    ec2_stub.add_response(
        "describe_capacity_reservations",
        {"CapacityReservations": [described(RID, SOON), described(RID2, LATER)]},
        {"CapacityReservationIds": [RID, RID2]},
    )
    published: list[dict[str, Any]] = []
    for _ in range(publishes):
        sns_stub.add_response(
            "publish", {"MessageId": "m-1"}, {"TopicArn": TOPIC, "Subject": ANY, "Message": ANY}
        )
    original = sns.publish

    def publish(**kwargs: Any) -> Any:
        published.append(kwargs)
        return original(**kwargs)

    sns.publish = publish
    kube = h.Kubernetes(settings.endpoint or "", token=lambda: h.eks_token(sts, "my-cluster"))
    with ec2_stub, sns_stub:
        result = h.run(settings, [US1, US2], ec2=ec2, sns=sns, kube=kube, now=NOW)
        ec2_stub.assert_no_pending_responses()
        sns_stub.assert_no_pending_responses()
    return result, published


def test_a_run_marks_the_nodes_of_the_ending_block_once_and_announces_it_once(fake_api):
    fake, url = fake_api
    # WHEN the handler runs while us-1 ends in 60 minutes (notice 90) and us-2 in 5 hours
    result, published = one_run(url, evict=False, publishes=1)
    # THEN the nodes of us-1 are cordoned, labelled and annotated with the end
    for name in ("us1-a", "us1-b"):
        n = fake.nodes[name]
        assert n["spec"]["unschedulable"] is True
        assert n["metadata"]["labels"]["eks-ultraserver.io/capacity-block-ending"] == "true"
        assert n["metadata"]["annotations"]["eks-ultraserver.io/capacity-block-end"] == "2026-12-02T11:00:00Z"
    # AND us-2's nodes (not ending) and the system node are untouched
    for name in ("us2-a", "system"):
        assert fake.nodes[name]["spec"] == {}
        assert "eks-ultraserver.io/capacity-block-ending" not in fake.nodes[name]["metadata"]["labels"]
    assert not any(path.endswith(("us2-a", "system")) for method, path in fake.requests if method == "PATCH")
    # AND one message names the block, its end and its nodes
    assert len(published) == 1
    message = json.loads(published[0]["Message"])
    assert message["capacityReservationId"] == RID
    assert message["endDate"] == "2026-12-02T11:00:00Z"
    assert message["nodes"] == ["us1-a", "us1-b"]
    assert published[0]["Subject"] == "Capacity Block us-1 ends at 2026-12-02T11:00:00Z"
    assert result["ending"] == ["us-1"] and result["evicted"] == []
    # AND no pod was listed or evicted without evict, and every call carried a bearer token
    assert not any(method == "POST" for method, _ in fake.requests)
    assert all(t.startswith("Bearer k8s-aws-v1.") for t in fake.tokens)

    # WHEN it runs again
    fake.requests.clear()
    again, published = one_run(url, evict=False, publishes=0)
    # THEN nothing is patched or announced again
    assert published == [] and again["marked"] == [] and again["announced"] == []
    assert [m for m, _ in fake.requests] == ["GET"]


def test_with_evict_the_pods_of_the_ending_nodes_get_evictions_with_the_grace_period(fake_api):
    fake, url = fake_api
    # WHEN the handler runs with evict on
    result, _ = one_run(url, evict=True, publishes=1)
    # THEN the Job pods of us-1's nodes are evicted with the grace period
    assert sorted(e["metadata"]["name"] for e in fake.evictions) == ["train-0", "train-1"]
    assert all(e["deleteOptions"] == {"gracePeriodSeconds": 600} for e in fake.evictions)
    assert all(e["apiVersion"] == "policy/v1" and e["kind"] == "Eviction" for e in fake.evictions)
    # AND the DaemonSet pod, the mirror pod and us-2's pod are left alone
    left = sorted(p["metadata"]["name"] for p in fake.pods)
    assert left == ["efa-plugin", "kube-proxy-static", "train-2"]
    assert result["evicted"] == ["jobs/train-0", "jobs/train-1"]
    # AND a second run evicts nothing more and announces nothing
    fake.evictions.clear()
    again, published = one_run(url, evict=True, publishes=0)
    assert fake.evictions == [] and published == [] and again["evicted"] == []


def test_a_refused_eviction_is_reported_and_the_run_goes_on(fake_api):
    # GIVEN an API that refuses evictions (a PodDisruptionBudget: HTTP 429)
    fake, url = fake_api
    original = fake.handle

    def refuse(method: str, path: str, body: Any) -> tuple[int, Any]:
        if method == "POST":
            return 429, {"kind": "Status", "reason": "TooManyRequests"}
        return original(method, path, body)

    fake.handle = refuse
    # WHEN the handler runs with evict on
    result, published = one_run(url, evict=True, publishes=1)
    # THEN both refusals are listed, the nodes are still marked and the block announced
    assert result["failed"] == ["jobs/train-0", "jobs/train-1"]
    assert fake.nodes["us1-b"]["spec"]["unschedulable"] is True and len(published) == 1


def test_reservations_file_round_trip(tmp_path):
    path = tmp_path / "reservations.json"
    path.write_text(json.dumps([WatchedBlock("us-1", RID, "eks-ultraserver.io/ultraserver=us-1").to_json()]))
    assert h.load_reservations(path) == [US1]


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------


def test_the_notice_bounds_come_from_the_same_eks_fact_as_the_tool():
    from eks_ultraserver.aws_checks.reservations import EC2_TERMINATION_BEFORE_END, EKS_SCALE_DOWN_BEFORE_END
    from eks_ultraserver.settings import EKS_CAPACITY_BLOCK_SCALE_DOWN_MINUTES

    assert timedelta(minutes=EKS_CAPACITY_BLOCK_SCALE_DOWN_MINUTES) == EKS_SCALE_DOWN_BEFORE_END
    assert EKS_SCALE_DOWN_BEFORE_END > EC2_TERMINATION_BEFORE_END


def test_capacity_block_end_defaults_and_context():
    assert "capacityBlockEnd" in CONTEXT_KEYS
    config = CapacityBlockEndConfig()
    assert (config.enabled, config.notice_minutes, config.evict, config.eviction_grace_period_seconds) == (
        True,
        90,
        False,
        600,
    )
    base = {
        "ultraServers": [{"capacityReservationId": RID, "type": "u-p6e-gb200x72"}],
        "availabilityZone": "us-east-1-dfw-2a",
    }
    assert read_environment(base.get).capacity_block_end == config
    given = {
        **base,
        "capacityBlockEnd": '{"noticeMinutes":120,"evict":true,"evictionGracePeriodSeconds":900}',
    }
    assert read_environment(given.get).capacity_block_end == CapacityBlockEndConfig(
        notice_minutes=120, evict=True, eviction_grace_period_seconds=900
    )


def test_bad_capacity_block_end_settings_are_refused_together():
    base = {
        "ultraServers": [{"capacityReservationId": RID, "type": "u-p6e-gb200x72"}],
        "availabilityZone": "us-east-1-dfw-2a",
    }
    bad = {**base, "capacityBlockEnd": {"noticeMinutes": 45, "evict": "yes", "colour": 1}}
    with pytest.raises(ConfigurationError) as err:
        read_environment(bad.get)
    text = str(err.value)
    assert "capacityBlockEnd.noticeMinutes: 45 is not allowed; give whole minutes from 46" in text
    assert "EKS's scale-down" in text
    assert "capacityBlockEnd.evict: 'yes' is not a boolean" in text
    assert "capacityBlockEnd: unknown key(s) 'colour'" in text
    with pytest.raises(ConfigurationError, match=r"eviction_grace_period_seconds: 1000 seconds do not fit"):
        CapacityBlockEndConfig(notice_minutes=60, evict=True, eviction_grace_period_seconds=1000)
    # without eviction the grace period does not matter
    assert CapacityBlockEndConfig(notice_minutes=60, eviction_grace_period_seconds=1000).notice_minutes == 60
    with pytest.raises(ConfigurationError, match=r"notice_minutes: 'soon' is not allowed"):
        CapacityBlockEndConfig(notice_minutes="soon")  # type: ignore[arg-type]


def test_reserved_capacity_blocks_are_watched_by_their_node_labels():
    def spec(**kw: Any) -> ReservedCapacitySpec:
        return ReservedCapacitySpec(name="p5-cb", instance_type="p5.48xlarge", instance_count=2, **kw)

    block = spec(kind=ReservationKind.CAPACITY_BLOCK, capacity_reservation_id=RID2)
    assert WatchedBlock.for_reserved(block) == WatchedBlock(
        "p5-cb", RID2, "eks-ultraserver.io/reserved-capacity=p5-cb"
    )
    karpenter = spec(
        kind=ReservationKind.CAPACITY_BLOCK,
        capacity_reservation_id=RID2,
        provisioner=ReservedProvisioner.KARPENTER,
    )
    assert WatchedBlock.for_reserved(karpenter) == WatchedBlock(
        "p5-cb", RID2, f"karpenter.k8s.aws/capacity-reservation-id={RID2}"
    )
    assert WatchedBlock.for_reserved(spec(capacity_reservation_id=RID2)) is None  # an ODCR


# --------------------------------------------------------------------------------------
# The construct
# --------------------------------------------------------------------------------------

CONTEXT = {
    "ultraServers": [{"capacityReservationId": RID, "type": "u-p6e-gb200x72", "name": "us-1"}],
    "availabilityZone": "us-east-1-dfw-2a",
    "capacityBlockEnd": {"noticeMinutes": 120, "evict": True, "evictionGracePeriodSeconds": 900},
}


@pytest.fixture(scope="module")
def synth():
    return synth_environment(CONTEXT)


def _template(synth) -> Template:
    return Template.from_json(synth.template)


def _only(template, kind: str, match: str = "CapacityBlockEnd") -> dict[str, Any]:
    found = {k: v for k, v in template.find_resources(kind).items() if match in k}
    assert len(found) == 1, sorted(found)
    return next(iter(found.values()))


def test_the_function_runs_the_packaged_handler_in_the_vpc(synth):
    template = _template(synth)
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": LAMBDA_PYTHON_RUNTIME,
            "Handler": "handler.lambda_handler",
            "VpcConfig": Match.object_like({"SubnetIds": Match.any_value()}),
            "Environment": {
                "Variables": {
                    "CLUSTER_NAME": Match.any_value(),
                    "TOPIC_ARN": Match.any_value(),
                    "NOTICE_MINUTES": "120",
                    "EVICT": "true",
                    "EVICTION_GRACE_PERIOD_SECONDS": "900",
                }
            },
        },
    )
    template.has_resource_properties(
        "AWS::Events::Rule", {"ScheduleExpression": "rate(5 minutes)", "State": "ENABLED"}
    )
    template.has_resource_properties(
        "AWS::EKS::AccessEntry",
        {"KubernetesGroups": [KUBERNETES_GROUP], "Type": "STANDARD", "PrincipalArn": Match.any_value()},
    )
    # AND the cluster security group lets the function reach the endpoint on 443
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {"FromPort": 443, "ToPort": 443, "Description": "Capacity Block end handler"},
    )


def test_the_function_may_do_exactly_what_it_needs(synth):
    template = _template(synth)
    policy = _only(template, "AWS::IAM::Policy")
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    # THEN only DescribeCapacityReservations is on "*" (it has no resource-level permission);
    # the topic, its key and the cluster are each named
    assert [(s["Sid"], s["Action"], s["Resource"]) for s in statements] == [
        ("ReadCapacityBlockEnds", "ec2:DescribeCapacityReservations", "*"),
        ("Announce", "sns:Publish", {"Ref": _logical_id(template, "AWS::SNS::Topic", "CapacityBlockEvents")}),
        (
            "AnnounceEncrypted",
            ["kms:Decrypt", "kms:GenerateDataKey"],
            {"Fn::GetAtt": [_logical_id(template, "AWS::KMS::Key", "CapacityBlockEvents"), "Arn"]},
        ),
        (
            "FindCluster",
            "eks:DescribeCluster",
            {"Fn::GetAtt": [_logical_id(template, "AWS::EKS::Cluster", ""), "Arn"]},
        ),
    ]
    assert all(s["Effect"] == "Allow" for s in statements)


def _logical_id(template: Template, kind: str, match: str) -> str:
    found = [k for k in template.find_resources(kind) if match in k]
    assert len(found) == 1, found
    return found[0]


def test_the_rbac_objects_are_narrow_and_valid(synth):
    template = _template(synth)
    manifests = [
        json.loads(r["Properties"]["Manifest"])
        for k, r in template.find_resources("Custom::AWSCDK-EKS-KubernetesResource").items()
        if "CapacityBlockEndRbac" in k
    ]
    assert len(manifests) == 1
    role, binding = manifests[0]
    assert (
        role["rules"]
        == cluster_role()["rules"]
        == [
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
            {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
        ]
    )
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": KUBERNETES_GROUP}
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"] == CLUSTER_ROLE_NAME
    for obj in (cluster_role(), cluster_role_binding()):
        for version in SUPPORTED_KUBERNETES_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_the_function_code_holds_the_handler_and_the_watched_blocks(synth):
    # GIVEN the function's asset folder in the cloud assembly
    template = _template(synth)
    function = _only(template, "AWS::Lambda::Function")
    key = function["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    folder = Path(synth.stack.node.root.outdir) / f"asset.{key}"
    # THEN it holds the package's handler unchanged and the UltraServer's reservation
    assert (folder / "handler.py").read_text() == Path(h.__file__).read_text()
    assert json.loads((folder / "reservations.json").read_text()) == [
        {"capacityReservationId": RID, "labelSelector": "eks-ultraserver.io/ultraserver=us-1", "name": "us-1"}
    ]


def test_disabled_builds_nothing():
    synth = synth_environment({**CONTEXT, "capacityBlockEnd": {"enabled": False}})
    template = _template(synth)
    assert (
        template.find_resources("AWS::Lambda::Function", {"Properties": {"Runtime": LAMBDA_PYTHON_RUNTIME}})
        == {}
    )
    assert {k for k in template.find_resources("AWS::EKS::AccessEntry") if "CapacityBlockEnd" in k} == set()
    assert (
        template.find_resources(
            "AWS::Events::Rule", {"Properties": {"ScheduleExpression": "rate(5 minutes)"}}
        )
        == {}
    )


def test_the_construct_refuses_bad_blocks():
    import aws_cdk as cdk
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import aws_eks_v2 as eks

    from eks_ultraserver.constructs.capacity_block_end import CapacityBlockEndHandler

    stack = cdk.Stack(cdk.App())
    with pytest.raises(ConfigurationError) as err:
        CapacityBlockEndHandler(
            stack,
            "H",
            cluster=cast(eks.ICluster, None),  # refused before it is used
            vpc=ec2.Vpc(stack, "V"),
            blocks=[
                WatchedBlock("a", "cr-1", "x=y"),
                WatchedBlock("b", RID, "no selector"),
                WatchedBlock("c", RID, "k=v"),
            ],
        )
    text = str(err.value)
    assert "blocks[0].capacity_reservation_id: 'cr-1'" in text
    assert "blocks[1].label_selector: 'no selector' is not a 'key=value' label selector" in text
    assert f"blocks[2]: {RID!r} is listed twice" in text
