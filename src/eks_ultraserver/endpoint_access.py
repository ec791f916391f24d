"""The cluster endpoint's access: ``EndpointAccess`` and the rules of the CIDRs allowed to
its public endpoint (``publicAccessCidrs`` / ``public_access_cidrs``).

Part of the shared model: imports neither aws_cdk nor cdk8s. ``settings.py`` checks an
``EnvironmentConfig`` with these rules, ``UltraServerEnvironment`` its arguments. Import
the names from ``eks_ultraserver.config``.
"""

from __future__ import annotations

import enum
import ipaddress

from eks_ultraserver.model import Problems

__all__ = ["OPEN_TO_THE_WORLD", "EndpointAccess", "public_access_cidr_problems"]


class EndpointAccess(enum.StrEnum):
    PRIVATE = "private"
    PUBLIC = "public"
    PUBLIC_AND_PRIVATE = "public-and-private"

    @property
    def public(self) -> bool:
        return self is not EndpointAccess.PRIVATE


#: Ranges whose addresses never reach a public endpoint (RFC 6890 special-purpose IPv4
#: ranges): the EKS user guide (cluster-endpoint, config-cluster-endpoint) says a public
#: access CIDR block cannot include reserved addresses; the VPC reaches the private endpoint.
_NOT_PUBLIC_RANGES = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
#: What an endpoint open to the world looks like in ``publicAccessCidrs``.
OPEN_TO_THE_WORLD = "0.0.0.0/0"


def public_access_cidr_problems(
    cidrs: object,
    *,
    endpoint_access: EndpointAccess | None,
    keys: tuple[str, str],
    problems: Problems,
) -> None:
    """Checks the CIDRs allowed to the public endpoint, adding each problem under the given
    key names (``(cidrs_key, endpoint_access_key)``). ``cidrs`` is ``None`` when not set.

    Shared by the cdk.json reader (camelCase keys) and ``UltraServerEnvironment``
    (argument names). Rules: IPv4 CIDR blocks written as network/prefix, none inside a
    private or reserved range, at least one when given, and only with private access on
    as well: aws_eks_v2 restricts the public endpoint only for ``public-and-private``
    (``EndpointAccess.only_from``), because its kubectl handler then runs in the VPC and
    reaches the private endpoint."""
    key, access_key = keys
    if cidrs is None:
        return
    example = '["203.0.113.0/24"]'
    if isinstance(cidrs, str) or not isinstance(cidrs, (list, tuple)):
        problems.add(f"{key}: {cidrs!r} is not a list of IPv4 CIDR blocks, e.g. {example}")
        return
    if endpoint_access is EndpointAccess.PRIVATE:
        problems.add(
            f"{key}: given, but {access_key} is 'private' (there is no public endpoint); "
            f"remove {key} or use {access_key} 'public-and-private'"
        )
    elif endpoint_access is EndpointAccess.PUBLIC:
        problems.add(
            f"{key}: restricting the public endpoint needs private access too (CDK's kubectl "
            f"handler then reaches the cluster from the VPC); use {access_key} "
            "'public-and-private'"
        )
    if not cidrs and endpoint_access is not EndpointAccess.PRIVATE:
        problems.add(
            f"{key}: the list is empty, so nobody could reach the public endpoint; give at "
            f"least one IPv4 CIDR block, e.g. {example}, or use {access_key} 'private'"
        )
    for i, cidr in enumerate(cidrs):
        where = f"{key}[{i}]"
        if not isinstance(cidr, str) or "/" not in cidr:
            problems.add(
                f"{where}: {cidr!r} is not an IPv4 CIDR block (address/prefix, e.g. "
                "'203.0.113.0/24' or '203.0.113.5/32')"
            )
            continue
        try:
            network = ipaddress.IPv4Network(cidr)
        except ipaddress.AddressValueError:
            problems.add(f"{where}: {cidr!r} is not an IPv4 CIDR block (IPv4 clusters accept only IPv4)")
            continue
        except ValueError:
            try:
                fixed = ipaddress.IPv4Network(cidr, strict=False)
            except ValueError:
                problems.add(f"{where}: {cidr!r} is not an IPv4 CIDR block, e.g. '203.0.113.0/24'")
            else:
                problems.add(f"{where}: {cidr!r} has host bits set; write the network, {str(fixed)!r}")
            continue
        reserved = next((r for r in _NOT_PUBLIC_RANGES if network.subnet_of(r)), None)
        if reserved is not None:
            problems.add(
                f"{where}: {cidr!r} lies in the private or reserved range {reserved}, which never "
                "reaches the public endpoint (EKS refuses reserved addresses); clients in the "
                "VPC use the private endpoint"
            )
