"""Results of the AWS checks: severities, findings, and how times are shown."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


class Severity(enum.StrEnum):
    """How much a finding matters. Ordered: ``OK < NOTE < WARNING < BLOCKING``."""

    #: Checked and fine.
    OK = "ok"
    #: Could not be checked, or worth knowing; never fails the run.
    NOTE = "note"
    #: Deploying works, but something will likely hurt (fails the run with ``--strict``).
    WARNING = "warning"
    #: Deploying now would fail or waste the reservation: exit status 1.
    BLOCKING = "blocking"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


@dataclass(frozen=True, kw_only=True, slots=True)
class Finding:
    """One result of one check. Warnings and blocking findings always say what to do."""

    #: What was checked: ``"us-1 cr-0123456789abcdef0"``, ``"Kubernetes 1.35"``, ``"AMI"``.
    subject: str
    #: The check's short name, e.g. ``"state"``, ``"zone"``, ``"interconnect"``.
    check: str
    severity: Severity
    #: What was found.
    message: str
    #: What to do about it (required for warnings and blocking findings).
    fix: str = ""

    def __post_init__(self) -> None:
        if self.severity in (Severity.WARNING, Severity.BLOCKING) and not self.fix:
            raise ValueError(f"finding {self.subject}/{self.check}: a {self.severity} needs a fix")

    def to_json(self) -> dict[str, str]:
        out = {
            "subject": self.subject,
            "check": self.check,
            "severity": self.severity.value,
            "message": self.message,
        }
        if self.fix:
            out["fix"] = self.fix
        return out


def worst(findings: Iterable[Finding]) -> Severity:
    """The most serious severity among ``findings`` (``OK`` when there are none)."""
    return max((f.severity for f in findings), key=lambda s: s.rank, default=Severity.OK)


def format_duration(delta: timedelta) -> str:
    """``timedelta(days=1, hours=2, minutes=3)`` -> ``"1d 2h 3m"`` (never negative)."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    parts.append(f"{minutes}m")
    return " ".join(parts)


def iso_time(value: datetime | None) -> str:
    return value.isoformat(timespec="minutes") if value else "?"
