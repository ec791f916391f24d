"""The accelerated instance types reserved capacity can run, with their EFA layouts.

Part of the shared model (imports neither aws_cdk nor cdk8s). The table is read-only:
to use another instance type, build an extended table with :func:`with_instance_types`
and pass it to the reader (``EnvironmentConfig.from_context(get, instance_types=...)``) or
to the spec (``ReservedCapacitySpec(..., instance_types=...)``); or hand a
``GpuInstanceType`` to ``ReservedGpuNodeGroup`` directly.

EFA interface layouts: EC2 user guide, "Maximize network bandwidth on Amazon EC2 instances
with multiple network cards" (efa-acc-inst-types): the primary interface (card 0, device 0)
is always ENA (``interface``); if card 0 supports EFA, an ``efa-only`` interface goes at card
0, device index 1; every other card gets an ``efa-only`` interface at device index 0. The
page's per-type sections ("Save IP addresses" use case) give exactly that for p5/p5e
(32 cards), p6-b200 (8 cards) and p6-b300 (17 cards, card 0 ENA only).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from eks_ultraserver.model import INSTANCE_TYPE as _ULTRASERVER_INSTANCE_TYPE
from eks_ultraserver.model import ConfigurationError, Problems
from eks_ultraserver.patterns import INSTANCE_TYPE_RE, matches

__all__ = [
    "INSTANCE_TYPES",
    "ULTRASERVER_FAMILY",
    "ULTRASERVER_INSTANCE_TYPE",
    "Architecture",
    "EfaInterface",
    "GpuInstanceType",
    "gpu_instance_type",
    "with_instance_types",
]

#: The instance type and family of the UltraServers: Karpenter must never provision them.
ULTRASERVER_INSTANCE_TYPE = _ULTRASERVER_INSTANCE_TYPE
ULTRASERVER_FAMILY = ULTRASERVER_INSTANCE_TYPE.split(".")[0]


class Architecture(enum.StrEnum):
    X86_64 = "x86_64"
    ARM64 = "arm64"

    @property
    def ami_type(self) -> str:
        """The EKS managed node group AMI type with the NVIDIA driver for this architecture."""
        return {"x86_64": "AL2023_x86_64_NVIDIA", "arm64": "AL2023_ARM_64_NVIDIA"}[self.value]

    @property
    def kubernetes_arch(self) -> str:
        return {"x86_64": "amd64", "arm64": "arm64"}[self.value]


@dataclass(frozen=True, kw_only=True, slots=True)
class EfaInterface:
    """One ``efa-only`` interface of a launch template: network card and device index."""

    card: int
    device_index: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class GpuInstanceType:
    """An accelerated instance type a reserved node group can run, with its documented EFA
    layout. Add your own with :func:`with_instance_types`.

    :param name: the EC2 instance type, e.g. ``p5.48xlarge``.
    :param architecture: ``x86_64`` or ``arm64``; picks the AMI type.
    :param gpus: GPUs per instance (``nvidia.com/gpu`` a node advertises).
    :param vcpus: vCPUs per instance (what the vCPU quotas count).
    :param network_cards: network cards of the instance type.
    :param efa: the ``efa-only`` interfaces to create (card, device index), besides the
        primary ENA interface on card 0, device 0. Empty for no EFA.
    :param source: where the layout is documented.
    """

    name: str
    architecture: Architecture
    gpus: int
    vcpus: int
    network_cards: int
    efa: tuple[EfaInterface, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ConfigurationError(problems, subject=f"GpuInstanceType {self.name!r}")

    def problems(self) -> list[str]:
        out = []
        if not matches(INSTANCE_TYPE_RE, self.name):
            out.append(f"name: {self.name!r} is not an EC2 instance type like 'p5.48xlarge'")
        if self.name == ULTRASERVER_INSTANCE_TYPE:
            out.append(f"name: {self.name!r} runs only inside UltraServers; use ultraServers")
        architecture: object = self.architecture
        if not isinstance(architecture, Architecture):
            out.append(f"architecture: {architecture!r} is not an Architecture")
        for attr in ("gpus", "vcpus", "network_cards"):
            value = getattr(self, attr)
            if not isinstance(value, int) or value < 1:
                out.append(f"{attr}: {value!r} is not a positive integer")
        seen = set()
        interfaces: tuple[object, ...] = tuple(self.efa)
        for i, iface in enumerate(interfaces):
            if not isinstance(iface, EfaInterface):
                out.append(f"efa[{i}]: {iface!r} is not an EfaInterface")
                continue
            if isinstance(self.network_cards, int) and not 0 <= iface.card < self.network_cards:
                out.append(f"efa[{i}].card: {iface.card} is not a card of {self.network_cards}")
            if (iface.card, iface.device_index) == (0, 0):
                out.append(f"efa[{i}]: card 0, device 0 is the primary interface, which is never efa-only")
            if iface.card in seen:
                out.append(f"efa[{i}]: card {iface.card} already has an efa-only interface (one per card)")
            seen.add(iface.card)
        return out

    @property
    def family(self) -> str:
        return self.name.split(".")[0]

    @property
    def ami_type(self) -> str:
        return self.architecture.ami_type

    @property
    def efa_devices(self) -> int:
        """``vpc.amazonaws.com/efa`` devices a node of this type advertises."""
        return len(self.efa)


def _save_ip_layout(cards: int, *, card0_efa: bool) -> tuple[EfaInterface, ...]:
    """The EC2 page's "Save IP addresses" use case: efa-only at card 0 device 1 (when card 0
    supports EFA), then efa-only at device 0 on every other card."""
    out = [EfaInterface(card=0, device_index=1)] if card0_efa else []
    out += [EfaInterface(card=c) for c in range(1, cards)]
    return tuple(out)


_EC2_PAGE = "EC2 user guide, efa-acc-inst-types"

#: Instance types with a documented EFA layout, read-only. For another type, build an
#: extended table with :func:`with_instance_types` and pass it where it is needed.
INSTANCE_TYPES: Mapping[str, GpuInstanceType] = MappingProxyType(
    {
        t.name: t
        for t in (
            # "p5.48xlarge and p5e.48xlarge instances support 32 network cards": ENA primary,
            # efa-only on card 0 device 1 and on cards 1-31 device 0 (32 EFA devices).
            GpuInstanceType(
                name="p5.48xlarge",
                architecture=Architecture.X86_64,
                gpus=8,
                vcpus=192,
                network_cards=32,
                efa=_save_ip_layout(32, card0_efa=True),
                source=f"{_EC2_PAGE}, P5 and P5e, use case 1",
            ),
            GpuInstanceType(
                name="p5e.48xlarge",
                architecture=Architecture.X86_64,
                gpus=8,
                vcpus=192,
                network_cards=32,
                efa=_save_ip_layout(32, card0_efa=True),
                source=f"{_EC2_PAGE}, P5 and P5e, use case 1",
            ),
            # 16 network cards and 16 EFA interfaces (DescribeInstanceTypes: MaximumNetworkCards,
            # EfaInfo.MaximumEfaInterfaces); the page has no P5en section, so its basic
            # configuration applies: efa-only on card 0 device 1, then cards 1-15 device 0.
            GpuInstanceType(
                name="p5en.48xlarge",
                architecture=Architecture.X86_64,
                gpus=8,
                vcpus=192,
                network_cards=16,
                efa=_save_ip_layout(16, card0_efa=True),
                source=f"{_EC2_PAGE}, basic configuration (16 cards from DescribeInstanceTypes)",
            ),
            # "8 GPUs and 8 network cards": ENA primary, efa-only on card 0 device 1 and on
            # cards 1-7 device 0.
            GpuInstanceType(
                name="p6-b200.48xlarge",
                architecture=Architecture.X86_64,
                gpus=8,
                vcpus=192,
                network_cards=8,
                efa=_save_ip_layout(8, card0_efa=True),
                source=f"{_EC2_PAGE}, P6-B200, use case 1",
            ),
            # "8 GPUs and 17 network cards, where the primary network card supports only an ENA
            # network interface": efa-only on cards 1-16 device 0.
            GpuInstanceType(
                name="p6-b300.48xlarge",
                architecture=Architecture.X86_64,
                gpus=8,
                vcpus=192,
                network_cards=17,
                efa=_save_ip_layout(17, card0_efa=False),
                source=f"{_EC2_PAGE}, P6-B300, use case 1",
            ),
        )
    }
)


def with_instance_types(
    *specs: GpuInstanceType, table: Mapping[str, GpuInstanceType] = INSTANCE_TYPES
) -> Mapping[str, GpuInstanceType]:
    """A new read-only table: ``table`` (default :data:`INSTANCE_TYPES`) with ``specs``
    added (a spec of the same name replaces the entry). ``table`` is left as it was."""
    return MappingProxyType({**table, **{s.name: s for s in specs}})


def gpu_instance_type(
    value: str | GpuInstanceType,
    where: str,
    problems: Problems,
    table: Mapping[str, GpuInstanceType] = INSTANCE_TYPES,
) -> GpuInstanceType | None:
    """The ``table`` entry for an instance type name (or the object itself); records a
    problem naming ``where`` and returns None when there is none."""
    if isinstance(value, GpuInstanceType):
        return value
    spec = table.get(value) if isinstance(value, str) else None
    if spec is None:
        if value == ULTRASERVER_INSTANCE_TYPE:
            problems.add(
                f"{where}: {value!r} runs only inside UltraServers; list its Capacity Blocks in "
                "ultraServers instead"
            )
        else:
            problems.add(
                f"{where}: {value!r} has no EFA layout in the instance-type table "
                "(eks_ultraserver.capacity.INSTANCE_TYPES); "
                f"use one of {', '.join(sorted(table))}, or pass a table extended with "
                "with_instance_types(GpuInstanceType(...)) (instance_types=)"
            )
    return spec
