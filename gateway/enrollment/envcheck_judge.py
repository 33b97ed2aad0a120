"""Judging a home line: the browser's figures checked against what the server itself saw, then the thresholds.

Pure functions. The server knows the bytes it served and received and how long that took on its side, and when each
round-trip probe arrived; the browser knows what it timed. Each figure judged is the less favourable of the two, and
a browser claiming more bytes than the server moved is a contradiction that fails the check.
"""

import itertools
import statistics
from dataclasses import dataclass
from typing import Any

from gateway.enrollment.settings import EnvcheckThresholds

CHECKLIST_QUESTIONS = ("quiet_room", "no_noise", "dedicated_line")
PC_CLASSES = ("meets", "below", "unknown")


@dataclass(frozen=True)
class ServerView:
    download_bytes: int
    download_seconds: float
    upload_bytes: int
    upload_seconds: float
    ping_arrivals: list[float]


def mbps(byte_count: int, seconds: float) -> float | None:
    return byte_count * 8 / seconds / 1_000_000 if seconds > 0 and byte_count > 0 else None


def jitter(samples: list[float]) -> float | None:
    """Mean absolute difference of consecutive samples (the smoothing-free form of RFC 3550's interarrival jitter)."""
    if len(samples) < 2:
        return None
    return statistics.fmean(abs(b - a) for a, b in itertools.pairwise(samples))


def server_round_trips_ms(arrivals: list[float]) -> list[float]:
    """The probes are sent one after the other, so the gap between two arrivals is a round trip plus the
    browser's own turn-around: an upper bound the browser's figure must not exceed by much."""
    return [(b - a) * 1000 for a, b in itertools.pairwise(arrivals)]


def _number(report: dict[str, Any], key: str) -> float | None:
    value = report.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value)


def _section(report: dict[str, Any], key: str) -> dict[str, Any]:
    value = report.get(key)
    return value if isinstance(value, dict) else {}


def _worse(browser: float | None, server: float | None, higher_is_better: bool) -> float | None:
    known = [v for v in (browser, server) if v is not None]
    if not known:
        return None
    return min(known) if higher_is_better else max(known)


def _threshold(value: float | None, limit: float, at_least: bool) -> dict[str, Any]:
    passed = value is not None and (value >= limit if at_least else value < limit)
    return {"value": None if value is None else round(value, 3), "threshold": limit, "passed": passed}


def judge(report: dict[str, Any], server: ServerView, thresholds: EnvcheckThresholds) -> dict[str, Any]:
    """The stored result: browser figures, server figures, the judged figures, a pass/fail per threshold."""
    round_trips = server_round_trips_ms(server.ping_arrivals)
    seen: dict[str, Any] = {
        "download_bytes": server.download_bytes,
        "download_seconds": round(server.download_seconds, 6),
        "download_mbps": mbps(server.download_bytes, server.download_seconds),
        "upload_bytes": server.upload_bytes,
        "upload_seconds": round(server.upload_seconds, 6),
        "upload_mbps": mbps(server.upload_bytes, server.upload_seconds),
        "round_trips": len(round_trips),
        "latency_ms": statistics.median(round_trips) if round_trips else None,
        "jitter_ms": jitter(round_trips),
    }
    problems = []
    for direction in ("download", "upload"):
        claimed = _number(report, f"{direction}_bytes") or 0
        if claimed > seen[f"{direction}_bytes"]:
            problems.append(f"the browser reports {direction}ing more bytes than the server moved")
        if seen[f"{direction}_bytes"] == 0:
            problems.append(f"the server saw no {direction}")
    checks = {
        "download": _threshold(
            _worse(_number(report, "download_mbps"), seen["download_mbps"], True), thresholds.min_download_mbps, True
        ),
        "upload": _threshold(
            _worse(_number(report, "upload_mbps"), seen["upload_mbps"], True), thresholds.min_upload_mbps, True
        ),
        "latency": _threshold(
            _worse(_number(report, "latency_ms"), seen["latency_ms"], False), thresholds.max_latency_ms, False
        ),
        "jitter": _threshold(
            _worse(_number(report, "jitter_ms"), seen["jitter_ms"], False), thresholds.max_jitter_ms, False
        ),
    }
    answers = _section(report, "checklist")
    checklist: dict[str, Any] = {q: answers.get(q) is True for q in CHECKLIST_QUESTIONS}
    pc_class = answers.get("pc_class")
    checklist["pc_class"] = pc_class if pc_class in PC_CLASSES else "unknown"
    checks["checklist"] = {"passed": all(checklist[q] for q in CHECKLIST_QUESTIONS) and pc_class == "meets"}
    checks["consistent"] = {"passed": not problems}
    return {
        "browser": {k: report.get(k) for k in ("download_mbps", "upload_mbps", "latency_ms", "jitter_ms",
                                               "download_bytes", "upload_bytes", "samples_ms")},
        "device": _device(report),
        "server": seen,
        "checklist": checklist,
        "checks": checks,
        "problems": problems,
        "passed": all(check["passed"] for check in checks.values()),
    }  # fmt: skip


def _device(report: dict[str, Any]) -> dict[str, Any]:
    """What the browser says about itself; kept short, it is the applicant's own machine."""
    device = _section(report, "device")
    text = {k: str(device.get(k, ""))[:300] for k in ("user_agent", "platform", "screen")}
    numbers = {k: device.get(k) for k in ("cores", "memory_gb") if isinstance(device.get(k), int | float)}
    return {**text, **numbers}


def failed_checks(result: dict[str, Any]) -> list[str]:
    return [name for name, check in result["checks"].items() if not check["passed"]]
