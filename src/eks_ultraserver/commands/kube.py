"""Kubernetes access for the ``eks-ultraserver`` subcommands, with the official
``kubernetes`` Python client (imported lazily: importing the library stays light).

Two ways in:

- :func:`client_from_kubeconfig`: an existing kubeconfig file and context (what
  ``kubectl`` uses);
- :func:`client_for_eks_cluster`: straight from AWS credentials, the way ``aws eks
  get-token`` does it, with no ``aws`` CLI: the endpoint and CA from
  ``eks:DescribeCluster`` and a bearer token that is a presigned STS
  ``GetCallerIdentity`` URL (:func:`eks_token`).

The token format is the one aws-iam-authenticator defines and EKS accepts ("Amazon EKS
user guide: Grant IAM users access to Kubernetes with EKS access entries"; the
aws-iam-authenticator README, "API Authorization from Outside a Cluster"):
``k8s-aws-v1.`` followed by the unpadded base64url encoding of a SigV4 presigned
``https://sts.<region>.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15`` URL
whose signed headers include ``x-k8s-aws-id: <cluster name>``.
"""

from __future__ import annotations

import atexit
import base64
import os
import tempfile
from typing import Any

#: The token prefix aws-iam-authenticator and EKS expect.
TOKEN_PREFIX = "k8s-aws-v1."
#: The header naming the cluster, signed into the presigned URL.
CLUSTER_ID_HEADER = "x-k8s-aws-id"
#: ``aws eks get-token`` presigns for 60 seconds; EKS accepts the token for 15 minutes
#: after the signing time.
TOKEN_EXPIRES_SECONDS = 60


def eks_token(session: Any, cluster: str, region: str) -> str:
    """A bearer token for the EKS cluster ``cluster``, as ``aws eks get-token`` makes it.

    ``session`` is a ``boto3.Session`` (its credentials sign the URL; nothing is sent).
    """
    from botocore.signers import RequestSigner

    sts = session.client("sts", region_name=region)
    credentials = session.get_credentials()
    if credentials is None:
        from botocore.exceptions import NoCredentialsError

        raise NoCredentialsError()
    signer = RequestSigner(
        sts.meta.service_model.service_id,
        region,
        "sts",
        "v4",
        credentials,
        sts.meta.events,
    )
    request = {
        "method": "GET",
        "url": f"https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
        "body": {},
        "headers": {CLUSTER_ID_HEADER: cluster},
        "context": {},
    }
    url = signer.generate_presigned_url(
        request, region_name=region, expires_in=TOKEN_EXPIRES_SECONDS, operation_name=""
    )
    encoded = base64.urlsafe_b64encode(url.encode("utf-8")).decode("ascii").rstrip("=")
    return TOKEN_PREFIX + encoded


def client_for_eks_cluster(session: Any, eks: Any, cluster: str, region: str) -> Any:
    """A ``kubernetes.client.ApiClient`` for ``cluster``: endpoint and CA from
    ``eks:DescribeCluster``, a token from :func:`eks_token`."""
    from kubernetes import client as k8s

    from eks_ultraserver.aws_checks import call

    described = call("eks:DescribeCluster", eks.describe_cluster, name=cluster)["cluster"]
    endpoint = described.get("endpoint")
    if not endpoint:
        from eks_ultraserver.commands.common import UsageError

        raise UsageError(f"cluster {cluster} has no API endpoint yet (status {described.get('status', '?')})")
    configuration = k8s.Configuration()
    configuration.host = endpoint
    # kubernetes >= 36 reads the bearer token under "BearerToken" (it was "authorization").
    configuration.api_key = {"BearerToken": eks_token(session, cluster, region)}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    ca = (described.get("certificateAuthority") or {}).get("data")
    if ca:
        with tempfile.NamedTemporaryFile("wb", prefix="eks-ca-", suffix=".crt", delete=False) as f:
            f.write(base64.b64decode(ca))
        # urllib3 reads the file when it connects: removed when the command ends.
        atexit.register(os.unlink, f.name)
        configuration.ssl_ca_cert = f.name
    return k8s.ApiClient(configuration)


def client_from_kubeconfig(path: str | None, context: str | None) -> Any:
    """A ``kubernetes.client.ApiClient`` from a kubeconfig file (default: ``KUBECONFIG``,
    else ``~/.kube/config``) and context (default: its current context)."""
    from kubernetes import config

    return config.new_client_from_config(config_file=path, context=context)
