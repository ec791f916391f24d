"""ComputeDomain: the NVIDIA DRA driver's custom resource for one multi-node NVLink (IMEX) domain.

A ComputeDomain (``resource.nvidia.com/v1beta1``, namespaced) makes the DRA driver start
IMEX daemons on the nodes where the workload's pods land and create a ResourceClaimTemplate
named ``spec.channel.resourceClaimTemplate.name``. Each pod claims that template in
``spec.resourceClaims`` and lists the claim in its container's ``resources.claims``; the
driver then injects ``/dev/nvidia-caps-imex-channels/channel0`` into the container.

Sources: EKS user guide, ml-eks-nvidia-ultraserver ("It is a best practice to create a
ComputeDomain per workload job"); the ComputeDomain CRDs of the two chart lines
(``nvidia-dra-driver-gpu`` 25.8.0 and ``dra-driver-nvidia-gpu`` 0.4.1).

This module imports cdk8s, never aws_cdk.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

import cdk8s

from constructs import Construct
from eks_ultraserver.config import AddonsConfig, DraDriverLine
from eks_ultraserver.model import ConfigurationError, Problems, parse_enum
from eks_ultraserver.patterns import is_dns1123_label, is_dns1123_subdomain
from eks_ultraserver.versions import COMPUTE_DOMAIN_API_VERSION, DRA_DRIVER, DRA_DRIVER_LEGACY

#: Name of the pod-level claim (``spec.resourceClaims[].name``) every workload of this
#: library uses for its ComputeDomain channel, as in the EKS guide.
CHANNEL_CLAIM_NAME = "compute-domain-channel"

#: Where the driver puts the IMEX channel inside a container (one channel in Single mode).
IMEX_CHANNEL_DIR = "/dev/nvidia-caps-imex-channels"

#: Feature gate of the DRA driver that makes ``numNodes: 0`` (elastic) work; Beta and on by
#: default since 25.8 (NGC line) and 0.2 (kubernetes-sigs numbering). With it off, the
#: driver holds every workload pod until ``numNodes`` IMEX daemons have joined.
IMEX_DNS_NAMES_GATE = "IMEXDaemonsWithDNSNames"

#: First NGC chart version that has the gate above (and so accepts ``numNodes: 0``).
_NGC_ELASTIC_SINCE = (25, 8)


class ChannelAllocationMode(enum.StrEnum):
    """``spec.channel.allocationMode`` of a ComputeDomain."""

    #: One IMEX channel per workload container (the driver's default).
    SINGLE = "Single"
    #: Every IMEX channel of the IMEX domain (up to the hardware maximum).
    ALL = "All"


def _version_tuple(version: str) -> tuple[int, ...] | None:
    parts = re.findall(r"\d+", version.split("-", 1)[0])
    return tuple(int(p) for p in parts[:3]) if parts else None


@dataclass(frozen=True, kw_only=True, slots=True)
class DraDriverTarget:
    """What the NVIDIA DRA driver installed in the cluster accepts in a ComputeDomain.

    Build it from the environment's configuration with :meth:`from_addons`.

    :param line: which chart line is installed. Default: ``dra-driver-nvidia-gpu`` (the
        kubernetes-sigs line, 0.4.x), whose CRD makes ``numNodes`` optional.
    :param version: the installed chart version. Default: the version this library pins
        for that line (``versions.DRA_DRIVER`` / ``versions.DRA_DRIVER_LEGACY``).
    :param imex_daemons_with_dns_names: the driver's ``IMEXDaemonsWithDNSNames`` feature
        gate. Default: on, as in every chart version this library pins.
    """

    line: DraDriverLine = DraDriverLine.KUBERNETES_SIGS
    version: str | None = None
    imex_daemons_with_dns_names: bool = True

    @classmethod
    def from_addons(cls, addons: AddonsConfig) -> DraDriverTarget:
        """Reads the line (``draDriverLine``), a version override
        (``addonVersions.draDriver``) and the feature gate
        (``addonValues.draDriver.featureGates.IMEXDaemonsWithDNSNames``)."""
        values = addons.values.get("draDriver") or {}
        gates = values.get("featureGates") or {}
        gate = gates.get(IMEX_DNS_NAMES_GATE, True) if isinstance(gates, dict) else True
        enabled = not (gate is False or (isinstance(gate, str) and gate.lower() == "false"))
        return cls(
            line=addons.dra_driver_line,
            version=addons.versions.get("draDriver"),
            imex_daemons_with_dns_names=enabled,
        )

    @property
    def chart_version(self) -> str:
        """The chart version in use (the pinned one unless overridden)."""
        if self.version:
            return self.version
        return (DRA_DRIVER if self.line is DraDriverLine.KUBERNETES_SIGS else DRA_DRIVER_LEGACY).version

    @property
    def elastic_supported(self) -> bool:
        """Whether ``numNodes: 0`` ("elastic": IMEX daemons start wherever pods land) works.

        The 25.8.0 CRD and the EKS guide both recommend 0 when ``IMEXDaemonsWithDNSNames``
        is on; NGC charts before 25.8 have no such gate and need the exact node count.
        """
        if not self.imex_daemons_with_dns_names:
            return False
        if self.line is DraDriverLine.NGC:
            parsed = _version_tuple(self.chart_version)
            if parsed is not None and parsed[:2] < _NGC_ELASTIC_SINCE:
                return False
        return True

    def describe(self) -> str:
        gate = "" if self.imex_daemons_with_dns_names else f" with {IMEX_DNS_NAMES_GATE}=false"
        return f"{self.line.value} {self.chart_version}{gate}"


def compute_domain_problems(
    *,
    name: object,
    num_nodes: object,
    allocation_mode: object,
    resource_claim_template_name: object,
    dra_driver: DraDriverTarget,
    where: str = "",
) -> list[str]:
    """Every problem of a ComputeDomain's settings; ``where`` prefixes argument names."""
    out: list[str] = []
    if not is_dns1123_label(name):
        out.append(
            f"{where}name: {name!r} is not a DNS-1123 label (at most 63 lowercase letters, "
            "digits and '-', starting and ending with a letter or digit)"
        )
    if not isinstance(num_nodes, int) or isinstance(num_nodes, bool) or num_nodes < 0:
        out.append(f"{where}num_nodes: {num_nodes!r} is not a whole number of nodes (0 or more)")
    elif num_nodes == 0 and not dra_driver.elastic_supported:
        out.append(
            f"{where}num_nodes: 0 (elastic) is not accepted by the DRA driver "
            f"{dra_driver.describe()}, which holds every pod until numNodes IMEX daemons have "
            "joined; give the number of nodes the workload runs on"
        )
    problems = Problems()
    parse_enum(f"{where}allocation_mode", allocation_mode, ChannelAllocationMode, problems)
    out.extend(problems)
    if not is_dns1123_subdomain(resource_claim_template_name):
        out.append(
            f"{where}resource_claim_template_name: {resource_claim_template_name!r} is not a "
            "valid Kubernetes object name (DNS-1123 subdomain: lowercase letters, digits, '-' and '.')"
        )
    return out


class ComputeDomain(Construct):
    """One ComputeDomain custom resource, with the claim snippets its workload needs.

    Create one per job (EKS guide best practice), in the same namespace as the job's pods:
    the ResourceClaimTemplate the driver creates is namespaced.

    :param name: the ComputeDomain's name, a DNS-1123 label.
    :param num_nodes: ``spec.numNodes``: the nodes the workload occupies. ``0`` is
        "elastic" (the driver starts IMEX daemons wherever the pods land); it is refused
        when ``dra_driver`` needs the exact count. Always written, because the NGC line's
        CRD requires the field.
    :param allocation_mode: ``spec.channel.allocationMode``. Default: ``Single`` (one
        channel, ``channel0``, per container).
    :param resource_claim_template_name: the ResourceClaimTemplate the driver creates.
        Default: ``<name>-channel``.
    :param dra_driver: the installed DRA driver. Default: the kubernetes-sigs line at the
        pinned version, feature gates at their defaults.
    :param labels: labels of the ComputeDomain object. Default: none.
    :raises ConfigurationError: listing every problem of the arguments.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        num_nodes: int,
        allocation_mode: ChannelAllocationMode | str = ChannelAllocationMode.SINGLE,
        resource_claim_template_name: str | None = None,
        dra_driver: DraDriverTarget | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        super().__init__(scope, id)
        dra_driver = dra_driver or DraDriverTarget()
        template = (
            resource_claim_template_name if resource_claim_template_name is not None else f"{name}-channel"
        )
        problems = Problems()
        problems.extend(
            compute_domain_problems(
                name=name,
                num_nodes=num_nodes,
                allocation_mode=allocation_mode,
                resource_claim_template_name=template,
                dra_driver=dra_driver,
            )
        )
        problems.raise_if_any(f"ComputeDomain {name!r}")

        self.name: str = name
        self.num_nodes: int = num_nodes
        self.allocation_mode = ChannelAllocationMode(allocation_mode)
        self.resource_claim_template_name: str = template
        self.dra_driver = dra_driver
        self.api_object = cdk8s.ApiObject(
            self,
            "Resource",
            api_version=COMPUTE_DOMAIN_API_VERSION,
            kind="ComputeDomain",
            metadata=cdk8s.ApiObjectMetadata(name=name, labels=dict(labels or {}) or None),
        )
        self.api_object.add_json_patch(
            cdk8s.JsonPatch.add(
                "/spec",
                {
                    "numNodes": num_nodes,
                    "channel": {
                        "allocationMode": self.allocation_mode.value,
                        "resourceClaimTemplate": {"name": template},
                    },
                },
            )
        )

    def pod_resource_claim(self) -> dict[str, str]:
        """The entry for the pod's ``spec.resourceClaims``."""
        return {"name": CHANNEL_CLAIM_NAME, "resourceClaimTemplateName": self.resource_claim_template_name}

    @staticmethod
    def container_claim() -> dict[str, str]:
        """The entry for a container's ``resources.claims``."""
        return {"name": CHANNEL_CLAIM_NAME}


__all__ = [
    "CHANNEL_CLAIM_NAME",
    "IMEX_CHANNEL_DIR",
    "ChannelAllocationMode",
    "ComputeDomain",
    "ConfigurationError",
    "DraDriverTarget",
    "compute_domain_problems",
]
