"""User data for EKS AL2023 nodes: a MIME multipart document with a nodeadm NodeConfig.

With no ``ImageId`` in the launch template, EKS picks the AMI from the node group's
``AmiType`` and merges its own bootstrap with the launch template's user data, which must
then be MIME multipart (EKS user guide, launch-templates). nodeadm reads parts whose
``Content-Type`` is ``application/node.eks.aws`` (EKS user guide, ml-eks-nvidia-ultraserver:
``spec.instance.localStorage.strategy: RAID0`` stripes the instance-store NVMe disks for
kubelet and containerd).

Built with the standard library's ``email`` package, with a fixed boundary so that the
synthesized template is byte-for-byte deterministic.
"""

from __future__ import annotations

import json
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import SMTP
from functools import lru_cache

from eks_ultraserver.model import InstanceStorePolicy

NODECONFIG_CONTENT_TYPE = "application/node.eks.aws"
#: Fixed so that two synths give the same template; never occurs in a part's body.
MIME_BOUNDARY = "==EKS-ULTRASERVER-BOUNDARY=="


def node_config(*, instance_store: InstanceStorePolicy) -> dict | None:
    """The nodeadm ``NodeConfig`` object for an instance-store policy, or ``None``."""
    if instance_store is InstanceStorePolicy.NONE:
        return None
    return {
        "apiVersion": "node.eks.aws/v1alpha1",
        "kind": "NodeConfig",
        "spec": {"instance": {"localStorage": {"strategy": instance_store.value}}},
    }


def mime_user_data(node_configs: list[dict]) -> str | None:
    """A MIME multipart document with one ``application/node.eks.aws`` part per object.

    Returns ``None`` when there is nothing to add (EKS then uses its own bootstrap alone).
    JSON is valid YAML, and nodeadm reads both.
    """
    if not node_configs:
        return None
    return _mime(tuple(json.dumps(c, indent=2, sort_keys=True) for c in node_configs))


@lru_cache(maxsize=64)
def _mime(parts: tuple[str, ...]) -> str:
    """The document for already-serialized parts (every node group of an environment has
    the same user data: built once)."""
    message = MIMEMultipart("mixed", boundary=MIME_BOUNDARY, policy=SMTP)
    for body in parts:
        maintype, subtype = NODECONFIG_CONTENT_TYPE.split("/")
        part = MIMENonMultipart(maintype, subtype, policy=SMTP)
        part.set_payload(body + "\n")
        part["Content-Transfer-Encoding"] = "7bit"
        message.attach(part)
    return message.as_string().replace("\r\n", "\n")
