"""Scalar values of a policy document: durations, wall-clock times, network destinations.

Each parses from the short text an admin writes ("15m", "08:00", "10.77.0.1/32 443/tcp") and
serialises back to the same canonical text, so `dump_policy` round-trips.
"""

import ipaddress
import re
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Annotated, Literal

from pydantic import BeforeValidator, PlainSerializer

_DURATION = re.compile(r"(\d+)([dhms])")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: object) -> timedelta:
    """Read "15m", "8h", "1h30m": a bare number is refused because its unit would be a guess."""
    if isinstance(value, timedelta):
        return value
    text = value.strip() if isinstance(value, str) else ""
    if not text or _DURATION.sub("", text) != "":
        raise ValueError(f"bad duration {value!r}: write a number with a unit s, m, h or d, e.g. '15m' or '8h'")
    seconds = sum(int(count) * _UNIT_SECONDS[unit] for count, unit in _DURATION.findall(text))
    if seconds <= 0:
        raise ValueError(f"bad duration {value!r}: it must be longer than zero")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest text `parse_duration` reads back as the same duration."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in _UNIT_SECONDS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_clock_time(value: object) -> time:
    """Read "HH:MM" local wall-clock time."""
    if isinstance(value, time):
        return value
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"bad time {value!r}: write local time as 'HH:MM' between 00:00 and 23:59")
    return time(int(match[1]), int(match[2]))


Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration)]
ClockTime = Annotated[time, BeforeValidator(parse_clock_time), PlainSerializer(lambda t: t.strftime("%H:%M"))]

Protocol = Literal["tcp", "udp", "icmp"]
PROTOCOLS: tuple[Protocol, ...] = ("tcp", "udp", "icmp")


@dataclass(frozen=True, slots=True, order=True)
class Destination:
    """A network the seat's tunnel may reach: all of it, one protocol on it, or one port of tcp or udp."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    protocol: Protocol | None = None
    """None: every protocol (tcp, udp and icmp)."""
    port: int | None = None
    """None: every port of the protocol."""

    def __str__(self) -> str:
        if self.port is not None:
            return f"{self.network} {self.port}/{self.protocol}"
        return f"{self.network} {self.protocol}" if self.protocol else str(self.network)

    def covers(self, other: "Destination") -> bool:
        """True when every packet `other` allows is already allowed by this destination."""
        if self.network.version != other.network.version or not other.network.subnet_of(self.network):  # type: ignore[arg-type]
            return False
        if self.protocol is None:
            return True
        return self.protocol == other.protocol and self.port in (None, other.port)


_USAGE = "write 'CIDR', 'CIDR PROTO' or 'CIDR PORT/PROTO', e.g. '10.77.0.1/32 443/tcp'"


def parse_destination(value: object) -> Destination:
    """Read "CIDR", "CIDR icmp" or "CIDR 443/tcp"; a bare address means that one host."""
    if isinstance(value, Destination):
        return value
    parts = value.split() if isinstance(value, str) else []
    if len(parts) not in (1, 2):
        raise ValueError(f"bad destination {value!r}: {_USAGE}")
    try:
        network = ipaddress.ip_network(parts[0], strict=True)
    except ValueError as error:
        raise ValueError(f"bad CIDR {parts[0]!r} in destination {value!r}: {error}{_suggest(parts[0])}") from None
    if len(parts) == 1:
        return Destination(network)
    port_text, _, protocol_text = parts[1].rpartition("/")
    protocol = next((name for name in PROTOCOLS if name == protocol_text), None)
    if protocol is None:
        raise ValueError(f"bad protocol {protocol_text!r} in destination {value!r}: use tcp, udp or icmp")
    if not port_text:
        return Destination(network, protocol)
    if protocol == "icmp" or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"bad port {parts[1]!r} in destination {value!r}: write 'PORT/tcp' or 'PORT/udp', 1-65535")
    return Destination(network, protocol, int(port_text))


def _suggest(text: str) -> str:
    """Point at the network an address with host bits set probably meant."""
    try:
        return f"; did you mean {ipaddress.ip_network(text, strict=False)}?"
    except ValueError:
        return ""


NetworkDestination = Annotated[Destination, BeforeValidator(parse_destination), PlainSerializer(str)]


def sha256_fingerprint(text: str) -> str:
    """A certificate's SHA-256 fingerprint as FreeRDP compares it: ``sha256:`` and 32 lower-case hex pairs with
    colons. Accepts the same with or without colons, any case (``openssl x509 -fingerprint -sha256`` prints
    ``SHA256 Fingerprint=AB:CD:…``; give the part after ``=`` with the ``sha256:`` prefix)."""
    prefix, _, digest = text.strip().partition(":")
    hexdigits = digest.replace(":", "").lower()
    if prefix.lower() != "sha256" or len(hexdigits) != 64 or any(c not in "0123456789abcdef" for c in hexdigits):
        raise ValueError(f"{text!r} is not a SHA-256 fingerprint like sha256:ab:cd:… (32 hex pairs)")
    return "sha256:" + ":".join(hexdigits[i : i + 2] for i in range(0, 64, 2))
