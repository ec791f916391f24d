"""EFA pieces of a GPU launch template: the interface layout and the EFA security group.

The interface layout follows the EC2 user guide's section for P6e-GB200
(https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-acc-inst-types.html):

- network card 0, device index 0: the primary ENA interface (``interface``); an
  ``efa-only`` interface can never be primary;
- ``efa-only`` interfaces at device index 0 on the odd cards of the chosen layout;
- no ``SubnetId`` on any interface (the managed node group places them);
- every interface carries the EFA security group; the primary also carries the
  cluster security group and any extra groups.

Other tools put ``efa`` on card 0 at device index 1 (terraform-aws-eks) or alternate
``efa``/``efa-only`` by card; the EC2 page rules those out for this instance type.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_ec2 as ec2

from constructs import Construct
from eks_ultraserver.model import EfaLayout


def network_interfaces(
    *, layout: EfaLayout, primary_groups: Sequence[str], efa_groups: Sequence[str]
) -> list[dict]:
    """``LaunchTemplateData.NetworkInterfaces`` for a layout, in CloudFormation casing."""
    return efa_network_interfaces(
        efa=[(card, 0) for card in layout.efa_cards],
        primary_groups=primary_groups,
        efa_groups=efa_groups,
    )


def efa_network_interfaces(
    *,
    efa: Sequence[tuple[int, int]],
    primary_groups: Sequence[str],
    efa_groups: Sequence[str],
) -> list[dict]:
    """The primary ENA interface (card 0, device 0) and one ``efa-only`` interface per
    ``(network card, device index)`` in ``efa``, in CloudFormation casing.

    The layout of each instance type is the EC2 page's (see ``capacity.INSTANCE_TYPES``):
    an efa-only interface on card 0 sits at device index 1, next to the primary.
    """
    interfaces = [
        {
            "NetworkCardIndex": 0,
            "DeviceIndex": 0,
            "InterfaceType": "interface",
            "Groups": list(primary_groups),
            "DeleteOnTermination": True,
            "Description": "primary ENA",
        }
    ]
    for card, device_index in efa:
        interfaces.append(
            {
                "NetworkCardIndex": card,
                "DeviceIndex": device_index,
                "InterfaceType": "efa-only",
                "Groups": list(efa_groups),
                "DeleteOnTermination": True,
                "Description": f"EFA-only, network card {card}"
                + (f", device {device_index}" if device_index else ""),
            }
        )
    return interfaces


class EfaSecurityGroup(Construct):
    """A security group for EFA traffic: all traffic in and out, to itself only.

    EFA requires a security group that allows all inbound and outbound traffic to and from
    the group itself (EC2 user guide, efa-start). Nothing is allowed from anywhere else.
    Share one such group between all UltraServer node groups of a cluster so that EFA
    traffic flows between UltraServers.
    """

    def __init__(self, scope: Construct, id: str, *, vpc: ec2.IVpc, description: str | None = None):
        super().__init__(scope, id)
        self.security_group = ec2.SecurityGroup(
            self,
            "Resource",
            vpc=vpc,
            allow_all_outbound=False,
            description=description or "EFA: all traffic to and from this group only (eks-ultraserver)",
        )
        self.security_group.add_ingress_rule(
            self.security_group, ec2.Port.all_traffic(), "EFA: all traffic from itself"
        )
        self.security_group.add_egress_rule(
            self.security_group, ec2.Port.all_traffic(), "EFA: all traffic to itself"
        )

    @property
    def security_group_id(self) -> str:
        return self.security_group.security_group_id
