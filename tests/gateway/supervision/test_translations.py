"""Every supervision string the pages use exists in English and Chinese, and both catalogs hold the same keys."""

import json
import re
from pathlib import Path

from gateway.supervision.models import WorkStatus
from gateway.supervision.rules import CERT_EXPIRING, POLLED_RULES
from gateway.supervision.state import BREAK_REASONS

WEB = Path(__file__).parents[3] / "gateway" / "web"
DYNAMIC = (
    [f"supervision.state.{state}" for state in WorkStatus]
    + [f"supervision.break.{reason}" for reason in BREAK_REASONS]
    + [f"supervision.rule.{rule}" for rule in (*POLLED_RULES, CERT_EXPIRING)]
    + [f"supervision.link.{quality}" for quality in ("good", "down", "none")]
    + ["supervision.reports.agent", "supervision.reports.team", "supervision.wall.home", "supervision.wall.on_site"]
)


def _catalog(language: str) -> dict[str, str]:
    return dict(json.loads((WEB / "locales" / f"{language}.json").read_text(encoding="utf-8")))


def test_every_supervision_key_used_by_the_pages_is_translated() -> None:
    used = set(DYNAMIC)
    for template in (WEB / "templates").glob("supervision_*.html"):
        used |= set(re.findall(r"""t\(["'](supervision\.[a-z_.]+[a-z_])["']""", template.read_text(encoding="utf-8")))
    english, chinese = _catalog("en"), _catalog("zh-CN")
    assert sorted(used - set(english)) == []
    assert sorted(used - set(chinese)) == []


def test_both_catalogs_hold_the_same_supervision_keys() -> None:
    english = {key for key in _catalog("en") if key.startswith("supervision.")}
    chinese = {key for key in _catalog("zh-CN") if key.startswith("supervision.")}
    assert english == chinese and len(english) > 50
