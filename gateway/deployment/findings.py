"""What a configuration check reports: one finding per check, with a verdict an operator can act on."""

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    OK = "ok"
    SKIPPED = "skipped"
    """Not configured, so nothing to check (e.g. no SMTP server set)."""
    FAILED = "FAILED"
    """A dependency does not answer or refuses: the gateway starts and reports it, that part does not work."""
    UNSAFE = "UNSAFE"
    """The gateway would run but not safely (a readable CA key, a default secret, a directory without TLS):
    ``sohogw serve`` refuses to start."""


@dataclass(frozen=True)
class Finding:
    check: str
    verdict: Verdict
    message: str

    def line(self) -> str:
        """One line: verdict, check name, what was found and what to do."""
        return f"{self.verdict.value:<8} {self.check:<14} {self.message}"


def ok(check: str, message: str) -> Finding:
    return Finding(check, Verdict.OK, message)


def skipped(check: str, message: str) -> Finding:
    return Finding(check, Verdict.SKIPPED, message)


def failed(check: str, message: str) -> Finding:
    return Finding(check, Verdict.FAILED, message)


def unsafe(check: str, message: str) -> Finding:
    return Finding(check, Verdict.UNSAFE, message)
