"""eks-ultraserver: EKS on EC2 P6e-GB200 UltraServers as CDK and cdk8s code.

The public names are imported lazily, so that ``python -m eks_ultraserver`` (the
command-line tool) does not pay for importing aws-cdk-lib.

Layout: the repository's ``constructs/`` and ``charts/`` folders are the subpackages
``eks_ultraserver.constructs`` and ``eks_ultraserver.charts`` (see ``pyproject.toml``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # shared model
    "ConfigurationError": "eks_ultraserver.model",
    "UltraServerType": "eks_ultraserver.model",
    "EfaLayout": "eks_ultraserver.model",
    "InstanceStorePolicy": "eks_ultraserver.model",
    "Taint": "eks_ultraserver.model",
    "GPU_TAINT": "eks_ultraserver.model",
    # AWS side
    "UltraServerNodeGroup": "eks_ultraserver.constructs.nodegroup",
    "EfaSecurityGroup": "eks_ultraserver.constructs.efa",
    "UltraServerEnvironment": "eks_ultraserver.constructs.environment",
    "UltraServerStack": "eks_ultraserver.constructs.stack",
    "GpuPlatformAddons": "eks_ultraserver.constructs.addons",
    "CapacityBlockNotifications": "eks_ultraserver.constructs.notifications",
    "ReservedGpuNodeGroup": "eks_ultraserver.constructs.reserved",
    "Karpenter": "eks_ultraserver.constructs.karpenter",
    # Kubernetes side (cdk8s)
    "ComputeDomain": "eks_ultraserver.charts.compute_domain",
    "MpiJob": "eks_ultraserver.charts.mpijob",
    # configuration
    "EnvironmentConfig": "eks_ultraserver.config",
    "UltraServerSpec": "eks_ultraserver.config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'eks_ultraserver' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from eks_ultraserver.charts.compute_domain import ComputeDomain
    from eks_ultraserver.charts.mpijob import MpiJob
    from eks_ultraserver.config import EnvironmentConfig, UltraServerSpec
    from eks_ultraserver.constructs.addons import GpuPlatformAddons
    from eks_ultraserver.constructs.efa import EfaSecurityGroup
    from eks_ultraserver.constructs.environment import UltraServerEnvironment
    from eks_ultraserver.constructs.karpenter import Karpenter
    from eks_ultraserver.constructs.nodegroup import UltraServerNodeGroup
    from eks_ultraserver.constructs.notifications import CapacityBlockNotifications
    from eks_ultraserver.constructs.reserved import ReservedGpuNodeGroup
    from eks_ultraserver.constructs.stack import UltraServerStack
    from eks_ultraserver.model import (
        GPU_TAINT,
        ConfigurationError,
        EfaLayout,
        InstanceStorePolicy,
        Taint,
        UltraServerType,
    )
