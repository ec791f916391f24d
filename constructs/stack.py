"""``UltraServerStack``: the stack ``app.py`` deploys, built from cdk.json context."""

from __future__ import annotations

import aws_cdk as cdk

from constructs import Construct
from eks_ultraserver.config import EXAMPLE_RESERVATION_ID, EnvironmentConfig
from eks_ultraserver.constructs.environment import UltraServerEnvironment


class UltraServerStack(cdk.Stack):
    """One stack holding an ``UltraServerEnvironment`` configured by ``config``."""

    def __init__(self, scope: Construct, id: str, *, config: EnvironmentConfig, **kwargs) -> None:
        super().__init__(
            scope, id, description="EKS on EC2 P6e-GB200 UltraServers (eks-ultraserver)", **kwargs
        )
        self.config = config
        self.ultraserver_environment = UltraServerEnvironment.from_config(self, "Environment", config)
        if config.uses_example_reservation:
            cdk.Annotations.of(self).add_warning_v2(
                "eks-ultraserver:example-reservation",
                f"ultraServers uses the example reservation id {EXAMPLE_RESERVATION_ID}: replace "
                "it with your Capacity Block's id before deploying (cdk.json or "
                '-c ultraServers=\'[{"capacityReservationId":"cr-...","type":"u-p6e-gb200x72"}]\').',
            )
