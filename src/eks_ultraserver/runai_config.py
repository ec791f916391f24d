"""``runai``: the optional NVIDIA Run:ai cluster component (constructs/runai.py, docs/runai.md).

A self-validating frozen value object (``model.SelfValidating``), like the others of
``settings.py``: built in Python it raises one ``ConfigurationError`` naming its fields; read
from cdk.json (:func:`read_runai`, called by ``config.read_environment``) its problems name
the context keys (``runai.controlPlaneUrl``, ...) and join every other key's problems.

The client secret is never a value here: only the ARN of the AWS Secrets Manager secret
that holds it (see docs/runai.md, "The client secret"). Part of the shared model: imports
neither aws_cdk nor cdk8s.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from eks_ultraserver.context import read_object
from eks_ultraserver.model import INVALID, Naming, Problems, SelfValidating

__all__ = [
    "EXAMPLE_RUNAI",
    "RUNAI_CONTEXT_KEY",
    "SECRET_ARN_RE",
    "RunAiConfig",
    "partition_of_region",
    "read_runai",
    "secret_arn_partition",
]

#: The cdk.json context key.
RUNAI_CONTEXT_KEY = "runai"

#: ``runai`` as an example ``-c`` value.
EXAMPLE_RUNAI = (
    '{"controlPlaneUrl":"https://example.run.ai","clusterUid":"9f55255e-11ed-47c7-acef-fc4054768dbc",'
    '"clientSecretArn":"arn:aws:secretsmanager:us-east-1:123456789012:secret:runai-client-AbCdEf",'
    '"clusterUrl":"https://runai.example.com"}'
)

#: A Secrets Manager secret ARN (Secrets Manager user guide, "Resources": the name may end
#: with the six random characters Secrets Manager appends; a partial ARN omits them).
SECRET_ARN_RE = re.compile(
    r"^arn:(?P<partition>aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b):secretsmanager:"
    r"(?P<region>[a-z]{2}(-gov|-iso|-isob)?-[a-z]+-\d):(?P<account>\d{12}):secret:"
    r"(?P<name>[A-Za-z0-9/_+=.@-]{1,512})$"
)
#: A JSON key of the secret's SecretString: no ``:`` or braces (they end the dynamic
#: reference's fields, CloudFormation user guide "dynamic-references-secretsmanager").
_JSON_KEY_RE = re.compile(r"^[A-Za-z0-9_.@/+=-]{1,256}$")
#: A Helm chart version such as ``3.0.24``.
_CHART_VERSION_RE = re.compile(r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")


def partition_of_region(region: str) -> str:
    """The AWS partition of a Region name (``cn-north-1`` -> ``aws-cn``)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("us-iso-"):
        return "aws-iso"
    if region.startswith("us-isob-"):
        return "aws-iso-b"
    return "aws"


def secret_arn_partition(arn: str) -> str | None:
    """The partition of a Secrets Manager secret ARN, or ``None`` if it is not one."""
    found = SECRET_ARN_RE.match(arn)
    return found["partition"] if found else None


def _https_problem(value: object) -> str | None:
    """Why ``value`` is not an ``https://host[:port][/path]`` URL, or ``None``."""
    if not isinstance(value, str) or not value:
        return "is not a URL"
    parts = urlsplit(value)
    if parts.scheme != "https":
        return "is not an https:// URL"
    if not parts.hostname or parts.username or parts.password or parts.query or parts.fragment:
        return "is not an https:// URL of a host (no user, query or fragment)"
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class RunAiConfig(SelfValidating):
    """``runai``: connect this cluster to an NVIDIA Run:ai control plane.

    The values come from the cluster created in the Run:ai control plane (its install
    command's ``controlPlane.url``, ``cluster.uid``, ``controlPlane.clientSecret`` and
    ``cluster.url``); the client secret itself goes to AWS Secrets Manager, and only its
    ARN comes here.

    Checks itself: both URLs ``https://`` URLs of a host; the cluster UID a UUID; the
    secret ARN a Secrets Manager secret ARN (the stack's partition is checked by
    ``constructs.runai.RunAi``, which knows the stack); the JSON key, the version and the
    repository well formed; ``install_prometheus`` a boolean.
    """

    CONTEXT_KEYS: ClassVar[Mapping[str, str]] = {
        "control_plane_url": "controlPlaneUrl",
        "cluster_uid": "clusterUid",
        "client_secret_arn": "clientSecretArn",
        "client_secret_key": "clientSecretKey",
        "cluster_url": "clusterUrl",
        "version": "version",
        "repository": "repository",
        "install_prometheus": "installPrometheus",
    }

    #: The Run:ai control plane, e.g. ``https://<tenant>.run.ai`` (``controlPlane.url``).
    control_plane_url: str
    #: The cluster's UUID in the control plane (``cluster.uid``).
    cluster_uid: str
    #: ARN of the Secrets Manager secret that holds the cluster's client secret
    #: (``controlPlane.clientSecret``), in the stack's partition.
    client_secret_arn: str
    #: The JSON key of the client secret in the secret's SecretString. Default: none, the
    #: whole SecretString is the client secret.
    client_secret_key: str | None = None
    #: The URL of this cluster (``cluster.url``): the FQDN the user's ingress controller
    #: serves, with its TLS certificate (docs/runai.md).
    cluster_url: str
    #: The ``runai-cluster`` chart version. Default: ``versions.RUNAI_CLUSTER``.
    version: str | None = None
    #: The chart repository. Default: ``versions.RUNAI_CLUSTER`` (NGC, public). A private
    #: Amazon ECR ``oci://`` repository works too (the kubectl handler logs in to it).
    repository: str | None = None
    #: Install kube-prometheus-stack (the Prometheus Operator Run:ai needs). ``False`` when
    #: the cluster already has one. Default ``True``.
    install_prometheus: bool = True

    @classmethod
    def _checked(cls, fields: dict[str, Any], name: Naming, problems: Problems) -> dict[str, Any]:
        for attr, example in (
            ("control_plane_url", "https://example.run.ai"),
            ("cluster_url", "https://runai.example.com"),
        ):
            value = fields[attr]
            if value is INVALID:
                continue
            if value is None:
                problems.add(f"{name(attr)}: missing; give an https:// URL, e.g. {example!r}")
                continue
            why = _https_problem(value)
            if why:
                problems.add(f"{name(attr)}: {value!r} {why}, e.g. {example!r}")
        uid = fields["cluster_uid"]
        if uid is None:
            problems.add(
                f"{name('cluster_uid')}: missing; give the cluster's UID in the Run:ai control plane"
            )
        elif uid is not INVALID and (not isinstance(uid, str) or not _is_uuid(uid)):
            problems.add(
                f"{name('cluster_uid')}: {uid!r} is not a UUID such as "
                "'9f55255e-11ed-47c7-acef-fc4054768dbc' (the cluster's UID in the Run:ai control plane)"
            )
        arn = fields["client_secret_arn"]
        if arn is None:
            problems.add(
                f"{name('client_secret_arn')}: missing; store the client secret in AWS Secrets Manager "
                "and give the secret's ARN"
            )
        elif arn is not INVALID and (not isinstance(arn, str) or secret_arn_partition(arn) is None):
            problems.add(
                f"{name('client_secret_arn')}: {arn!r} is not an AWS Secrets Manager secret ARN, "
                "e.g. 'arn:aws:secretsmanager:us-east-1:123456789012:secret:runai-client-AbCdEf'; "
                "store the client secret in Secrets Manager and give its ARN, never the secret itself"
            )
        key = fields["client_secret_key"]
        if key is not None and key is not INVALID and not (isinstance(key, str) and _JSON_KEY_RE.match(key)):
            problems.add(
                f"{name('client_secret_key')}: {key!r} is not a JSON key of the secret (letters, "
                "digits, '_', '.', '-', '@', '/', '+', '='); omit it when the whole SecretString is the "
                "client secret"
            )
        version = fields["version"]
        if version not in (None, INVALID) and not (
            isinstance(version, str) and _CHART_VERSION_RE.match(version)
        ):
            problems.add(f"{name('version')}: {version!r} is not a chart version such as '3.0.24'")
        repository = fields["repository"]
        if repository is not None and repository is not INVALID:
            ok = isinstance(repository, str) and urlsplit(repository).scheme in ("https", "oci")
            if not ok or not urlsplit(repository).hostname:
                problems.add(
                    f"{name('repository')}: {repository!r} is not an https:// or oci:// chart repository"
                )
        prometheus = fields["install_prometheus"]
        if prometheus is not INVALID and not isinstance(prometheus, bool):
            problems.add(f"{name('install_prometheus')}: {prometheus!r} is not a boolean (true or false)")
        return fields

    @property
    def client_secret_reference(self) -> str:
        """The CloudFormation dynamic reference to the client secret (CloudFormation user
        guide, "Get a secret or secret value from Secrets Manager"): versionless, so the
        current version (``AWSCURRENT``) is read at each deploy that updates the release."""
        return f"{{{{resolve:secretsmanager:{self.client_secret_arn}:SecretString:{self.client_secret_key or ''}::}}}}"


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower() and len(value) == 36
    except ValueError:
        return False


def read_runai(get: Callable[[str], Any], problems: Problems) -> Any:
    """``runai``: absent -> ``None`` (no Run:ai); an object of known keys -> a
    :class:`RunAiConfig`; else records the problems and returns :data:`model.INVALID`."""
    return read_object(
        RUNAI_CONTEXT_KEY, get(RUNAI_CONTEXT_KEY), RunAiConfig, problems, example=EXAMPLE_RUNAI
    )
