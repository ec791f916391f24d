"""``eks-ultraserver status`` against stubbed EC2/EKS and a local fake Kubernetes API.

GIVEN a cdk.json with one UltraServer (u-p6e-gb200x36: 9 nodes, efaLayout per-gpu: 4 EFA
devices per node), a Capacity Block answered by botocore's Stubber and a fake API server
on 127.0.0.1 (stdlib http.server) answering node lists by label selector and
ComputeDomains, WHEN the command runs, THEN it shows one row per UltraServer and exits 0
when all is fine, 1 when something needs attention, 2 on usage errors.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.session
import pytest
from botocore.credentials import Credentials

from eks_ultraserver import cli
from eks_ultraserver.commands import common, kube

import aws_stubs as s

NAME = "us-1"
CLUSTER = "gb200"
CLIQUE = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0.1"
CONTEXT = {
    "ultraServers": [{"capacityReservationId": s.RID, "type": "u-p6e-gb200x36", "name": NAME}],
    "availabilityZone": s.ZONE,
    "kubernetesVersion": "1.35",
    "region": s.REGION,
}


# --------------------------------------------------------------------------------------
# A fake Kubernetes API server
# --------------------------------------------------------------------------------------


def node(index: int, *, ready: bool = True, clique: str | None = CLIQUE, efa: int = 4) -> dict[str, Any]:
    labels = {"eks-ultraserver.io/ultraserver": NAME, "kubernetes.io/arch": "arm64"}
    if clique is not None:
        labels["nvidia.com/gpu.clique"] = clique
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": f"ip-10-0-0-{index}.ec2.internal", "labels": labels},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "allocatable": {"nvidia.com/gpu": "4", "vpc.amazonaws.com/efa": str(efa)},
        },
    }


def compute_domain(name: str, status: str = "Ready", nodes: tuple[int, ...] = (0, 1)) -> dict[str, Any]:
    return {
        "apiVersion": "resource.nvidia.com/v1beta1",
        "kind": "ComputeDomain",
        "metadata": {"name": name, "namespace": "training"},
        "spec": {"numNodes": len(nodes)},
        "status": {
            "status": status,
            "nodes": [
                {"name": f"ip-10-0-0-{i}.ec2.internal", "ipAddress": f"10.0.0.{i}", "cliqueID": CLIQUE}
                for i in nodes
            ],
        },
    }


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if key not in labels or (value and labels[key] != value):
            return False
    return True


class FakeKubernetes:
    """Answers ``GET /api/v1/nodes?labelSelector=`` and the ComputeDomain list; records
    every request's path and Authorization header."""

    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = [node(i) for i in range(9)]
        #: ``None``: the ComputeDomain resource type is not installed (404).
        self.compute_domains: list[dict[str, Any]] | None = [compute_domain("job-a")]
        self.requests: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                fake.requests.append((self.path, self.headers.get("Authorization", "")))
                query = parse_qs(url.query)
                if url.path == "/api/v1/nodes":
                    selector = query.get("labelSelector", [""])[0]
                    items = [n for n in fake.nodes if _matches(n["metadata"]["labels"], selector)]
                    self._send(200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": items})
                elif url.path == "/apis/resource.nvidia.com/v1beta1/computedomains":
                    if fake.compute_domains is None:
                        self._send(
                            404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
                        )
                    else:
                        self._send(200, {"kind": "ComputeDomainList", "items": fake.compute_domains})
                else:
                    self._send(
                        404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
                    )

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def kubeconfig(self, path) -> str:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "tester", "user": {"token": "test-token"}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}}],
                    "current-context": "fake",
                }
            )
        )
        return str(path)


@pytest.fixture
def fake_k8s() -> Iterator[FakeKubernetes]:
    fake = FakeKubernetes()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def app_dir(tmp_path, monkeypatch):
    (tmp_path / "cdk.json").write_text(json.dumps({"app": "python app.py", "context": CONTEXT}))
    monkeypatch.chdir(tmp_path)
    return tmp_path


class TokenSession(s.FakeSession):
    """A FakeSession with credentials (to sign the token) and an STS client."""

    def get_credentials(self) -> Credentials:
        return Credentials("AKIDEXAMPLE", "secret")


def run_status(monkeypatch, capsys, fake, tmp_path, *args, reservation=None, clients=None):
    """Runs ``status --kubeconfig`` with EC2 stubbed; returns (code, stdout, stderr)."""
    ec2, ec2_stub = s.stubbed("ec2")
    ec2_stub.add_response(
        "describe_capacity_reservations",
        {"CapacityReservations": [reservation or s.reservation(TotalInstanceCount=9)]},
        {"CapacityReservationIds": [s.RID]},
    )
    all_clients = {"ec2": ec2, **(clients or {})}
    monkeypatch.setattr(common, "create_session", lambda **_: TokenSession(all_clients))
    if not clients:
        args = ("--kubeconfig", fake.kubeconfig(tmp_path / "kubeconfig"), *args)
    with ec2_stub:
        code = cli.main(["status", *args])
        ec2_stub.assert_no_pending_responses()
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------


def test_all_good_exits_0_with_one_row_per_ultraserver(app_dir, monkeypatch, capsys, fake_k8s):
    code, out, err = run_status(monkeypatch, capsys, fake_k8s, app_dir)
    assert code == 0, out + err
    header, row = [line for line in out.splitlines() if line.startswith(("ULTRASERVER", NAME))]
    assert header.split() == [
        "ULTRASERVER", "RESERVATION", "BLOCK", "TIME", "LEFT", "NODES", "CLIQUES", "EFA/NODE", "COMPUTEDOMAINS",
    ]  # fmt: skip
    assert row.split()[:5] == [NAME, s.RID, "active", "4d", "23h"]
    assert "9/9" in row and "1 OK" in row and "4 (of 4)" in row and row.endswith("1/1")
    assert out.startswith(f"Cluster of kubeconfig context fake in {s.REGION}, ")
    assert "All fine." in out and "Needs attention" not in out
    assert "... asking EC2 and Kubernetes about us-1 [1/1]" in err
    # The nodes were asked for by the UltraServer's label, with the kubeconfig's token.
    paths = [p for p, _ in fake_k8s.requests]
    assert "/api/v1/nodes?labelSelector=eks-ultraserver.io%2Fultraserver%3Dus-1" in paths
    assert {auth for _, auth in fake_k8s.requests} == {"Bearer test-token"}


def test_a_missing_node_while_the_block_is_active_exits_1(app_dir, monkeypatch, capsys, fake_k8s):
    fake_k8s.nodes = fake_k8s.nodes[:8]
    fake_k8s.nodes.append(node(8, ready=False))
    del fake_k8s.nodes[0]
    code, out, _ = run_status(monkeypatch, capsys, fake_k8s, app_dir)
    assert code == 1
    assert "7/9" in out
    assert "WARNING: us-1 cr-0123456789abcdef1, nodes: 7 of 9 nodes Ready while the block is active" in out
    assert "not Ready: ip-10-0-0-8.ec2.internal" in out
    assert "need attention (exit 1)" in out


def test_nodes_missing_before_the_block_starts_are_fine(app_dir, monkeypatch, capsys, fake_k8s):
    fake_k8s.nodes = []
    fake_k8s.compute_domains = []
    t = s.now()
    scheduled = s.reservation(
        TotalInstanceCount=9,
        State="scheduled",
        StartDate=t + timedelta(hours=3),
        EndDate=t + timedelta(days=2),
    )
    code, out, _ = run_status(monkeypatch, capsys, fake_k8s, app_dir, reservation=scheduled)
    assert code == 0, out
    row = next(line for line in out.splitlines() if line.startswith(NAME))
    assert "scheduled" in row and "starts in 2h 59m" in row and "0/9" in row


def test_two_cliques_exit_1(app_dir, monkeypatch, capsys, fake_k8s):
    for n in fake_k8s.nodes[6:]:
        n["metadata"]["labels"]["nvidia.com/gpu.clique"] = "another-cluster-uuid.2"
    code, out, _ = run_status(monkeypatch, capsys, fake_k8s, app_dir)
    assert code == 1
    row = next(line for line in out.splitlines() if line.startswith(NAME))
    assert row.split()[7] == "2"
    assert f"the nodes are in 2 NVLink cliques ({CLIQUE} (6 nodes), another-cluster-uuid.2 (3 nodes))" in out


def test_fewer_efa_devices_than_the_layout_exits_1(app_dir, monkeypatch, capsys, fake_k8s):
    fake_k8s.nodes[3] = node(3, efa=0)
    code, out, _ = run_status(monkeypatch, capsys, fake_k8s, app_dir)
    assert code == 1
    assert "0..4 (of 4)" in out
    assert (
        "1 node(s) have fewer than 4 vpc.amazonaws.com/efa allocatable: ip-10-0-0-3.ec2.internal (0)" in out
    )


def test_efa_is_not_checked_with_dranet(app_dir, monkeypatch, capsys, fake_k8s):
    fake_k8s.nodes = [node(i, efa=0) for i in range(9)]
    code, out, _ = run_status(monkeypatch, capsys, fake_k8s, app_dir, "-c", "efaMode=dranet")
    assert code == 0, out
    row = next(line for line in out.splitlines() if line.startswith(NAME))
    assert " 0 " in row and "(of" not in row


def test_a_not_ready_compute_domain_exits_1(app_dir, monkeypatch, capsys, fake_k8s):
    fake_k8s.compute_domains = [compute_domain("job-a"), compute_domain("job-b", "NotReady", (2, 3))]
    code, out, _ = run_status(monkeypatch, capsys, fake_k8s, app_dir)
    assert code == 1
    assert next(line for line in out.splitlines() if line.startswith(NAME)).endswith("1/2")
    assert (
        "WARNING: us-1 cr-0123456789abcdef1, computedomain: ComputeDomain training/job-b is NotReady" in out
    )
    assert "kubectl -n training describe computedomain job-b" in out


def test_without_the_compute_domain_crd_it_notes_it(app_dir, monkeypatch, capsys, fake_k8s):
    fake_k8s.compute_domains = None
    code, out, _ = run_status(monkeypatch, capsys, fake_k8s, app_dir)
    assert code == 0, out
    assert "NOTE: cluster, computedomains: the ComputeDomain resource type" in out


def test_a_block_ending_soon_exits_1(app_dir, monkeypatch, capsys, fake_k8s):
    ending = s.reservation(TotalInstanceCount=9, EndDate=s.now() + timedelta(minutes=90))
    code, out, _ = run_status(monkeypatch, capsys, fake_k8s, app_dir, reservation=ending)
    assert code == 1
    assert "us-1 cr-0123456789abcdef1, time left: the block ends in 1h 29m" in out
    assert "extend the block" in out
    # ... but not with a lower threshold
    ending = s.reservation(TotalInstanceCount=9, EndDate=s.now() + timedelta(minutes=90))
    code, out, _ = run_status(
        monkeypatch, capsys, fake_k8s, app_dir, "--min-hours-left", "1", reservation=ending
    )
    assert code == 0, out


def test_an_expired_block_is_blocking(app_dir, monkeypatch, capsys, fake_k8s):
    fake_k8s.nodes = []
    t = s.now()
    expired = s.reservation(
        TotalInstanceCount=9, State="expired", StartDate=t - timedelta(days=3), EndDate=t - timedelta(hours=1)
    )
    code, out, _ = run_status(monkeypatch, capsys, fake_k8s, app_dir, reservation=expired)
    assert code == 1
    assert "BLOCKING: us-1 cr-0123456789abcdef1, block: expired" in out


def test_json_shape(app_dir, monkeypatch, capsys, fake_k8s):
    fake_k8s.compute_domains = [compute_domain("job-a"), compute_domain("pending", "NotReady", ())]
    code, out, _ = run_status(monkeypatch, capsys, fake_k8s, app_dir, "--json", "--quiet")
    doc = json.loads(out)
    assert code == 1 and doc["exitCode"] == 1
    assert doc["region"] == s.REGION and doc["computeDomainsInstalled"] is True
    (us,) = doc["ultraServers"]
    assert {k: us[k] for k in ("name", "capacityReservationId", "type", "blockState")} == {
        "name": NAME,
        "capacityReservationId": s.RID,
        "type": "u-p6e-gb200x36",
        "blockState": "active",
    }
    assert (us["nodesExpected"], us["nodesFound"], us["nodesReady"]) == (9, 9, 9)
    assert us["cliques"] == [CLIQUE] and us["oneClique"] is True
    assert us["efaPerNode"] == {"min": 4, "max": 4} and us["efaExpected"] == 4
    assert 4 * 86400 < us["secondsLeft"] <= 5 * 86400
    assert us["computeDomains"][0]["name"] == "job-a" and us["computeDomains"][0]["status"] == "Ready"
    assert [d["name"] for d in doc["otherComputeDomains"]] == ["pending"]
    assert [(f["subject"], f["check"], f["severity"]) for f in doc["findings"]] == [
        ("training/pending", "computedomain", "warning")
    ]


def test_negative_min_hours_left_exits_2(app_dir, monkeypatch, capsys):
    monkeypatch.setattr(common, "create_session", lambda **_: pytest.fail("AWS must not be asked"))
    assert cli.main(["status", "--min-hours-left", "-1"]) == 2
    assert "--min-hours-left: -1.0 is negative" in capsys.readouterr().err


def test_a_bad_kubeconfig_exits_2(app_dir, monkeypatch, capsys, fake_k8s):
    missing = app_dir / "missing"
    (missing).write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    ec2, _ = s.stubbed("ec2")
    monkeypatch.setattr(common, "create_session", lambda **_: s.FakeSession({"ec2": ec2}))
    code = cli.main(["status", "--kubeconfig", str(missing), "--kube-context", "nope"])
    assert code == 2
    assert "kubeconfig" in capsys.readouterr().err


def test_an_unreachable_api_server_exits_2(app_dir, monkeypatch, capsys, fake_k8s):
    config = fake_k8s.kubeconfig(app_dir / "kubeconfig")
    fake_k8s.server.shutdown()
    fake_k8s.server.server_close()  # nothing listens on the port any more
    ec2, ec2_stub = s.stubbed("ec2")
    ec2_stub.add_response(
        "describe_capacity_reservations", {"CapacityReservations": [s.reservation(TotalInstanceCount=9)]}
    )
    monkeypatch.setattr(common, "create_session", lambda **_: s.FakeSession({"ec2": ec2}))
    with ec2_stub:
        code = cli.main(["status", "--kubeconfig", config, "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("eks-ultraserver: error: Kubernetes list nodes: cannot reach the API server")


# --------------------------------------------------------------------------------------
# Kubernetes from AWS credentials (no kubeconfig): the EKS token
# --------------------------------------------------------------------------------------


def _decode(token: str) -> str:
    body = token.removeprefix(kube.TOKEN_PREFIX)
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def test_the_token_is_a_presigned_sts_url_like_aws_eks_get_token():
    session = boto3.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        region_name=s.REGION,
        botocore_session=botocore.session.Session(),
    )
    token = kube.eks_token(session, CLUSTER, s.REGION)
    assert token.startswith("k8s-aws-v1.")
    body = token.removeprefix("k8s-aws-v1.")
    assert "=" not in body and "+" not in body and "/" not in body  # base64url, unpadded
    url = urlsplit(_decode(token))
    assert (url.scheme, url.netloc, url.path) == ("https", f"sts.{s.REGION}.amazonaws.com", "/")
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["Action"] == "GetCallerIdentity" and query["Version"] == "2011-06-15"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "60"
    assert (
        query["X-Amz-Credential"].startswith("AKIDEXAMPLE/")
        and "/sts/aws4_request" in query["X-Amz-Credential"]
    )
    assert query["X-Amz-SignedHeaders"].split(";") == ["host", "x-k8s-aws-id"]
    assert len(query["X-Amz-Signature"]) == 64


def test_without_kubeconfig_it_connects_with_describe_cluster_and_a_token(
    app_dir, monkeypatch, capsys, fake_k8s
):
    eks, eks_stub = s.stubbed("eks")
    sts, _ = s.stubbed("sts")
    eks_stub.add_response(
        "describe_cluster",
        {
            "cluster": {
                "name": CLUSTER,
                "status": "ACTIVE",
                "endpoint": fake_k8s.url,
                "certificateAuthority": {"data": base64.b64encode(b"not used over http").decode()},
            }
        },
        {"name": CLUSTER},
    )
    with eks_stub:
        code, out, err = run_status(
            monkeypatch,
            capsys,
            fake_k8s,
            app_dir,
            "-c",
            f"clusterName={CLUSTER}",
            clients={"eks": eks, "sts": sts},
        )
        eks_stub.assert_no_pending_responses()
    assert code == 0, out + err
    assert f"Cluster {CLUSTER} in {s.REGION}" in out
    tokens = {auth for _, auth in fake_k8s.requests}
    assert len(tokens) == 1
    (auth,) = tokens
    assert auth.startswith("Bearer k8s-aws-v1.")
    assert "x-k8s-aws-id" in _decode(auth.removeprefix("Bearer "))


def test_the_cluster_name_comes_from_the_stack_output(app_dir, monkeypatch, capsys, fake_k8s):
    eks, eks_stub = s.stubbed("eks")
    sts, _ = s.stubbed("sts")
    cfn, cfn_stub = s.stubbed("cloudformation")
    cfn_stub.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "UltraServerEnvironment",
                    "CreationTime": s.now(),
                    "StackStatus": "UPDATE_COMPLETE",
                    "Outputs": [
                        {
                            "OutputKey": "EnvironmentUpdateKubeconfigCommand0A1B2C3D",
                            "OutputValue": "aws eks ...",
                        },
                        {"OutputKey": "EnvironmentClusterName5E6F7A8B", "OutputValue": "cluster-from-stack"},
                    ],
                }
            ]
        },
        {"StackName": "UltraServerEnvironment"},
    )
    eks_stub.add_response(
        "describe_cluster",
        {"cluster": {"name": "cluster-from-stack", "status": "ACTIVE", "endpoint": fake_k8s.url}},
        {"name": "cluster-from-stack"},
    )
    with eks_stub, cfn_stub:
        code, out, err = run_status(
            monkeypatch, capsys, fake_k8s, app_dir, clients={"eks": eks, "sts": sts, "cloudformation": cfn}
        )
    assert code == 0, out + err
    assert "Cluster cluster-from-stack in" in out
