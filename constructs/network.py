"""``UltraServerNetwork``: the VPC and the zone subnets of an ``UltraServerEnvironment``.

- A new VPC (10.0.0.0/16, two regular AZs: public subnets with NAT, private subnets for
  the control plane and system nodes, REJECT flow logs to CloudWatch Logs, a gateway
  endpoint for S3 and interface endpoints for ECR and STS that keep image pulls off NAT),
  or an existing one with the user's UltraServer subnets.
- A private subnet in the reservations' zone for the UltraServers. That zone may be a Local
  Zone (the AWS blog uses ``us-east-1-dfw-2a``), where ``ec2.Vpc`` never places subnets by
  itself, so the subnet is added explicitly, routed through the VPC's NAT gateway (NAT
  gateways and interface endpoints cannot live in a Local Zone; their traffic crosses to
  the parent Region) and through the S3 gateway endpoint.
- One private subnet per other zone that holds reserved capacity (new VPC only), in
  10.0.128.0/18: a /21 per zone, its slot fixed by the zone's last letter.
- The UltraServer subnet's size is checked against the fleet (:func:`subnet_size_problems`):
  10.0.192.0/18 unless ``ultraserver_subnet_cidr`` says otherwise; a CIDR outside the VPC's
  10.0.0.0/16 (e.g. 10.1.0.0/16) is added to the VPC as a secondary CIDR block first.

Not a ``Construct``: an object that adds its resources to the scope it is given (the
environment), so that their construct paths, and so their logical ids
(``EnvironmentVpc…``, ``EnvironmentUltraServerSubnet…``), are the ones they had when the
environment built them itself. A construct of its own would add a level to each path, so
change each logical id, and CloudFormation would replace the VPC of every deployed stack.
The environment's cdk-nag rules also recognise its own VPC by the VPC's scope
(constructs/nag.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs

from constructs import Construct
from eks_ultraserver.model import ConfigurationError, Problems

#: CIDR of a new VPC.
VPC_CIDR = "10.0.0.0/16"
#: Default CIDR of the new UltraServer subnet.
ULTRASERVER_SUBNET_CIDR = "10.0.192.0/18"
#: Parts of ``VPC_CIDR`` an UltraServer subnet must not overlap: the VPC's own public and
#: private subnets (``ec2.Vpc`` allocates them from 10.0.0.0 up: two /24, two /20) and the
#: reserved-capacity subnets (10.0.128.0/18).
_TAKEN_IN_VPC = (ipaddress.IPv4Network("10.0.0.0/18"), ipaddress.IPv4Network("10.0.128.0/18"))
#: Where a secondary CIDR block of a VPC whose primary block is in 10.0.0.0/8 may come from
#: (VPC user guide, "IPv4 CIDR block association restrictions": not 172.16.0.0/12,
#: 192.168.0.0/16 or 198.19.0.0/16 then; 100.64.0.0/10 is allowed). Publicly routable
#: ranges are allowed by AWS too, but not offered here for private nodes.
_SECONDARY_RANGES = (ipaddress.IPv4Network("10.0.0.0/8"), ipaddress.IPv4Network("100.64.0.0/10"))
#: Addresses AWS reserves in every subnet (the first four and the last; VPC user guide,
#: subnet-sizing).
SUBNET_RESERVED_ADDRESSES = 5


def usable_addresses(cidr: str) -> int:
    """Addresses of the subnet ``cidr`` that instances can get."""
    return ipaddress.IPv4Network(cidr).num_addresses - SUBNET_RESERVED_ADDRESSES


def is_secondary_cidr(cidr: str) -> bool:
    """``cidr`` lies outside ``VPC_CIDR``: the VPC needs it as a secondary CIDR block."""
    return not ipaddress.IPv4Network(cidr).subnet_of(ipaddress.IPv4Network(VPC_CIDR))


def subnet_cidr_problems(cidr: str, problems: Problems, *, key: str = "ultraserver_subnet_cidr") -> None:
    """Where a new UltraServer subnet may go: /16 to /28 (the sizes EC2 allows), inside
    ``VPC_CIDR`` clear of the VPC's other subnets, or outside it in a range a secondary
    CIDR block of this VPC may take."""
    try:
        net = ipaddress.IPv4Network(cidr, strict=True)
    except ValueError:
        problems.add(f"{key}: {cidr!r} is not an IPv4 CIDR block such as '10.1.0.0/16'")
        return
    if not 16 <= net.prefixlen <= 28:
        problems.add(f"{key}: {cidr!r} is a /{net.prefixlen}; a subnet is /16 to /28")
    elif not is_secondary_cidr(cidr):
        if any(net.overlaps(taken) for taken in _TAKEN_IN_VPC):
            problems.add(
                f"{key}: {cidr!r} overlaps the VPC's own subnets (10.0.0.0/18) or the "
                "reserved-capacity subnets (10.0.128.0/18); inside 10.0.0.0/16 use 10.0.64.0/18 "
                "or 10.0.192.0/18 (or part of one), or a block outside it such as 10.1.0.0/16"
            )
    elif not any(net.subnet_of(r) for r in _SECONDARY_RANGES):
        problems.add(
            f"{key}: {cidr!r} cannot be a secondary CIDR block of a VPC whose primary block is "
            f"{VPC_CIDR}; use a block in 10.0.0.0/8 (e.g. 10.1.0.0/16) or 100.64.0.0/10"
        )


def subnet_size_problems(
    cidr: str,
    *,
    nodes: int,
    addresses_per_node: int,
    lower: tuple[str, int] | None,
    problems: Problems,
    key: str = "ultraserver_subnet_cidr",
    larger: str | None = None,
) -> None:
    """Refuses a fleet whose nodes cannot all get their addresses in the subnet ``cidr``.

    ``nodes``: the nodes in the subnet (18 per u-p6e-gb200x72, 9 per x36, and reserved
    capacity in the same zone); ``addresses_per_node``: what each holds under the VPC CNI's
    settings (``VpcCniConfig.addresses_per_node``: its own address and its pods'; efa-only
    interfaces take none); ``lower``: VPC CNI settings that need fewer (their ``vpcCni``
    text and addresses per node), to suggest; ``key``: what the problem names; ``larger``:
    the other fixes (default: a larger ``ultraServerSubnetCidr`` or your own VPC)."""
    have = usable_addresses(cidr)
    need = nodes * addresses_per_node
    if need <= have:
        return
    fixes = []
    if lower is not None:
        text, per_node = lower
        fixes.append(
            f"fewer addresses per node with vpcCni (vpc_cni) {text}: {per_node} each, room for "
            f"{have // per_node:,} nodes here (aws-node rolls; no node group is replaced)"
        )
    if larger is not None:
        fixes.append(larger)
    else:
        if ipaddress.IPv4Network(cidr).prefixlen > 16:  # a /16 is the largest subnet
            fixes.append(
                "a larger ultraServerSubnetCidr (ultraserver_subnet_cidr): a block outside "
                "10.0.0.0/16 such as 10.1.0.0/16 (65,531 addresses) becomes a secondary CIDR of the "
                "VPC (a new CIDR replaces the subnet and every UltraServer node group in it)"
            )
        fixes.append(
            "or your own VPC and subnets (vpcId + ultraServerSubnetIds) for more nodes than one /16 holds"
        )
    problems.add(
        f"{key}: {nodes:,} nodes need about {need:,} addresses "
        f"({addresses_per_node} per node under the VPC CNI settings), more than the {have:,} "
        f"usable addresses of {cidr}; use " + "; ".join(fixes)
    )


def is_local_zone(zone: str) -> bool:
    """``us-east-1-dfw-2a`` is a Local Zone; ``us-east-1a`` is a regular AZ."""
    return zone.count("-") > 2


def reserved_subnet_slot(zone: str) -> int:
    """Slot 0-7 of a reserved-capacity subnet in 10.0.128.0/18 (/21 each), from the zone's
    last letter: stable whatever other zones are configured."""
    return (ord(zone[-1]) - ord("a")) % 8


def reserved_subnet_cidr(zone: str) -> str:
    """The /21 of the reserved-capacity subnet in ``zone``."""
    return f"10.0.{128 + 8 * reserved_subnet_slot(zone)}.0/21"


def network_problems(
    *,
    availability_zone: str,
    vpc: ec2.IVpc | None,
    ultraserver_subnets: Sequence[ec2.ISubnet] | None,
    nat_gateways: int = 1,
    reserved_zones: Iterable[str | None] = (),
    burst_zone: str | None = None,
    problems: Problems,
) -> None:
    """Adds the problems of the network's arguments to ``problems``.

    ``reserved_zones``: the zone of each reservation of the reserved capacity (``None``:
    the UltraServers' zone), named ``reservedCapacity[i]`` as in cdk.json; ``burst_zone``:
    the burst pool's zone (``burstCapacity.availabilityZone``; ``None``: no zone of its
    own). With an existing VPC every one must be the UltraServers' zone (the VPC gets no
    new subnets); two other zones must not share a subnet slot.
    """
    if vpc is not None and not ultraserver_subnets:
        problems.add(
            "ultraserver_subnets: required with an existing vpc; give subnets in "
            f"{availability_zone!r} routed to a NAT gateway"
        )
    if not (1 <= nat_gateways <= 2):
        problems.add(f"nat_gateways: {nat_gateways!r} is out of range; use 1 or 2")
    slots: dict[int, str] = {}
    named = [(f"reservedCapacity[{i}]", z) for i, z in enumerate(reserved_zones)]
    if burst_zone is not None:
        named.append(("burstCapacity", burst_zone))
    for where, given in named:
        zone = given or availability_zone
        if zone == availability_zone:
            continue
        if vpc is not None:
            problems.add(
                f"{where}.availabilityZone: {zone!r} differs from the "
                f"UltraServers' zone {availability_zone!r}; with an existing VPC, reserved "
                "capacity must share the UltraServers' subnets (or use your own "
                "ReservedGpuNodeGroup with your subnets)"
            )
            continue
        slot = reserved_subnet_slot(zone)
        other = slots.get(slot)
        if other is not None and other != zone:
            problems.add(
                f"{where}.availabilityZone: {zone!r} and {other!r} end in the "
                "same letter and would share a subnet range; put these reservations in "
                "one zone or use your own ReservedGpuNodeGroup with your subnets"
            )
        slots[slot] = zone


class UltraServerNetwork:
    """The VPC and zone subnets of an UltraServer environment, added to ``scope``.

    All arguments after ``scope`` are keyword-only.

    :param scope: the construct the network's resources are added to (their construct ids
        are ``Vpc``, ``FlowLogGroup``, ``UltraServerSubnet`` and ``ReservedSubnet-<zone>``).
    :param availability_zone: the UltraServers' zone (a Local Zone or a regular AZ).
    :param vpc: an existing VPC. Default: a new VPC (``VPC_CIDR``, two regular AZs).
    :param ultraserver_subnets: existing subnets in ``availability_zone`` for the
        UltraServers; required with ``vpc``. Default (new VPC): a new private subnet
        ``ultraserver_subnet_cidr`` in that zone.
    :param ultraserver_subnet_cidr: CIDR of the new UltraServer subnet: inside
        ``VPC_CIDR`` clear of the other subnets, or outside it in 10.0.0.0/8 or
        100.64.0.0/10, then added to the VPC as a secondary CIDR block
        (``UltraServerCidrBlock``). Default 10.0.192.0/18.
    :param nat_gateways: NAT gateways of a new VPC: 1 or 2 (AZ-level resilience). Default 1.
    :param vpc_endpoints: add the S3 (gateway), ECR and STS (interface) endpoints to a new
        VPC. Default ``True``.

    Attributes: ``vpc``, ``ultraserver_subnets``, ``zone_subnets`` (the reserved-capacity
    subnets added so far, by zone); :meth:`reserved_subnets` gives (and adds) the subnets
    of a zone.
    """

    def __init__(
        self,
        scope: Construct,
        *,
        availability_zone: str,
        vpc: ec2.IVpc | None = None,
        ultraserver_subnets: Sequence[ec2.ISubnet] | None = None,
        ultraserver_subnet_cidr: str = ULTRASERVER_SUBNET_CIDR,
        nat_gateways: int = 1,
        vpc_endpoints: bool = True,
    ) -> None:
        problems = Problems()
        network_problems(
            availability_zone=availability_zone,
            vpc=vpc,
            ultraserver_subnets=ultraserver_subnets,
            nat_gateways=nat_gateways,
            problems=problems,
        )
        if vpc is None:
            subnet_cidr_problems(ultraserver_subnet_cidr, problems)
        problems.raise_if_any("UltraServerNetwork")
        self._scope = scope
        self.availability_zone = availability_zone
        self.zone_subnets: dict[str, ec2.ISubnet] = {}
        #: Route tables of the zone subnets, which the S3 gateway endpoint serves too.
        self._zone_route_tables: list[str] = []
        self._new_vpc: ec2.Vpc | None = None
        #: The secondary CIDR block of the UltraServer subnet, when it has one.
        self.ultraserver_cidr_block: ec2.CfnVPCCidrBlock | None = None
        if vpc is None:
            self._new_vpc = self._vpc(nat_gateways=nat_gateways, vpc_endpoints=vpc_endpoints)
            self.vpc: ec2.IVpc = self._new_vpc
            if is_secondary_cidr(ultraserver_subnet_cidr):
                self.ultraserver_cidr_block = ec2.CfnVPCCidrBlock(
                    scope,
                    "UltraServerCidrBlock",
                    vpc_id=self._new_vpc.vpc_id,
                    cidr_block=ultraserver_subnet_cidr,
                )
            subnet = self._zone_subnet(
                self._new_vpc, "UltraServerSubnet", availability_zone, ultraserver_subnet_cidr
            )
            if self.ultraserver_cidr_block is not None:
                subnet.node.add_dependency(self.ultraserver_cidr_block)
            self.ultraserver_subnets: list[ec2.ISubnet] = [subnet]
        else:
            self.vpc = vpc
            self.ultraserver_subnets = list(ultraserver_subnets or [])

    def reserved_subnets(self, zone: str) -> list[ec2.ISubnet]:
        """Subnets for reserved capacity in ``zone``: the UltraServers' own when it is their
        zone, else one new private subnet per zone (``ReservedSubnet-<zone>``, in the
        zone's slot of 10.0.128.0/18), added on first use; new VPC only."""
        if zone == self.availability_zone:
            return self.ultraserver_subnets
        subnet = self.zone_subnets.get(zone)
        if subnet is None:
            if self._new_vpc is None:
                raise ConfigurationError(
                    [
                        f"zone: {zone!r} differs from the UltraServers' zone "
                        f"{self.availability_zone!r}, and an existing VPC gets no new subnets; "
                        "give your own subnets in that zone to the reserved capacity"
                    ],
                    subject="UltraServerNetwork",
                )
            subnet = self._zone_subnet(
                self._new_vpc, f"ReservedSubnet-{zone}", zone, reserved_subnet_cidr(zone)
            )
            self.zone_subnets[zone] = subnet
        return [subnet]

    def _vpc(self, *, nat_gateways: int, vpc_endpoints: bool) -> ec2.Vpc:
        vpc = ec2.Vpc(
            self._scope,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(VPC_CIDR),
            max_azs=2,
            nat_gateways=nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="Private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20
                ),
            ],
            flow_logs={
                "FlowLog": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                        logs.LogGroup(self._scope, "FlowLogGroup", retention=logs.RetentionDays.ONE_MONTH)
                    ),
                    traffic_type=ec2.FlowLogTrafficType.REJECT,
                )
            },
        )
        if vpc_endpoints:
            vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
            for name, service in (
                ("EcrApi", ec2.InterfaceVpcEndpointAwsService.ECR),
                ("EcrDocker", ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER),
                ("Sts", ec2.InterfaceVpcEndpointAwsService.STS),
            ):
                vpc.add_interface_endpoint(
                    name,
                    service=service,
                    subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
                    private_dns_enabled=True,
                )
        return vpc

    def _zone_subnet(self, vpc: ec2.Vpc, id: str, zone: str, cidr: str) -> ec2.ISubnet:
        """A private subnet in a reservation's zone (Local Zone or regular AZ), with a
        default route through the VPC's first NAT gateway and the S3 gateway endpoint."""
        subnet = ec2.PrivateSubnet(
            self._scope,
            id,
            availability_zone=zone,
            cidr_block=cidr,
            vpc_id=vpc.vpc_id,
            map_public_ip_on_launch=False,
        )
        nat = next(
            (c for c in vpc.public_subnets[0].node.children if isinstance(c, ec2.CfnNatGateway)),
            None,
        )
        if nat is not None:
            subnet.add_route(
                "DefaultRoute",
                router_id=nat.ref,
                router_type=ec2.RouterType.NAT_GATEWAY,
                enables_internet_connectivity=True,
            )
        # cfn-lint W3010 (hard-coded zone) is right in general and wrong here: a Capacity
        # Block or ODCR lives in one named zone, so its subnet must name it.
        cfn_subnet = subnet.node.default_child
        if isinstance(cfn_subnet, cdk.CfnResource):
            cfn_subnet.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3010"]}})
        cdk.Tags.of(subnet).add(
            "eks-ultraserver:subnet", "ultraservers" if id == "UltraServerSubnet" else "reserved"
        )
        if is_local_zone(zone):
            cdk.Tags.of(subnet).add("eks-ultraserver:local-zone", zone)
        # Route S3 through the gateway endpoint from this subnet too (and the ones before).
        self._zone_route_tables.append(subnet.route_table.route_table_id)
        for child in vpc.node.children:
            if isinstance(child, ec2.GatewayVpcEndpoint):
                cfn = child.node.default_child
                if isinstance(cfn, ec2.CfnVPCEndpoint):
                    cfn.add_property_override(
                        "RouteTableIds",
                        [s.route_table.route_table_id for s in vpc.private_subnets] + self._zone_route_tables,
                    )
        return subnet
