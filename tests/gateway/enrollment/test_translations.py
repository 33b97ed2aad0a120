"""Every enrollment string the pages use exists in English and Chinese, and both catalogs hold the same keys."""

import json
import re
from pathlib import Path

from gateway.enrollment.envcheck_judge import PC_CLASSES
from gateway.enrollment.models import ApplicationState, DecisionOutcome
from gateway.enrollment.settings import EnrollmentSettings

WEB = Path(__file__).parents[3] / "gateway" / "web"
DYNAMIC = (
    [f"enrollment.state.{state.value}" for state in ApplicationState]
    + [f"enrollment.outcome.{outcome.value}" for outcome in DecisionOutcome]
    + [f"enrollment.stage.{stage}" for stage in EnrollmentSettings().stages]
    + [f"enrollment.envcheck.pc.{pc}" for pc in PC_CLASSES]
    + [
        f"enrollment.envcheck.{check}"
        for check in ("download", "upload", "latency", "jitter", "checklist", "consistent")
    ]
)


def _catalog(language: str) -> dict[str, str]:
    return dict(json.loads((WEB / "locales" / f"{language}.json").read_text(encoding="utf-8")))


def test_every_enrollment_key_used_by_the_pages_is_translated() -> None:
    used = set(DYNAMIC)
    for template in (WEB / "templates").glob("enrollment_*.html"):
        used |= set(re.findall(r"""t\(["'](enrollment\.[a-z_.]+[a-z_])["']""", template.read_text(encoding="utf-8")))
    assert len(used) > 60
    assert sorted(used - set(_catalog("en"))) == []
    assert sorted(used - set(_catalog("zh-CN"))) == []


def test_both_catalogs_hold_the_same_enrollment_keys() -> None:
    english = {key for key in _catalog("en") if key.startswith("enrollment.")}
    chinese = {key for key in _catalog("zh-CN") if key.startswith("enrollment.")}
    assert english == chinese
