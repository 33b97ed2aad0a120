"""The policy explanation in Chinese: the library's phrases are translated, the names in them are not."""

from datetime import UTC, datetime

from gateway.policies.diff import policy_diff
from gateway.web.policy_reasons import explained
from policy import evaluate, load_default_policy


def test_every_reason_of_the_default_policy_reads_without_english_phrases() -> None:
    effective = evaluate(load_default_policy(), ["SOHO-Agents"], datetime(2026, 12, 6, 9, 0, tzinfo=UTC))
    chinese = {name: explained(reason, "zh-CN") for name, reason in effective.reasons.items()}
    assert chinese["clipboard_out"] == "SOHO-Agents: 默认关闭"
    assert chinese["view_only_supervision"] == "开启： 允许者： SOHO-Agents"
    assert chinese["apps"] == "customer-console 来自 SOHO-Agents"  # the app's and group's names stay
    for name, text in chinese.items():
        words = [w for w in text.replace(",", " ").split() if w.isascii() and w.isalpha() and w.islower()]
        assert words in ([], ["agent"]), (name, text)  # only a role's name may remain in English
    assert explained(effective.reasons["clipboard_out"], "en") == "SOHO-Agents: default off"


def test_the_diff_shows_what_an_import_adds_and_removes() -> None:
    diff = policy_diff("a: 1\nb: 2\nc: 3\n", "a: 1\nb: 5\nc: 3\n")
    assert [(line.kind, line.text) for line in diff if line.kind in {"added", "removed"}] == [
        ("removed", "-b: 2"),
        ("added", "+b: 5"),
    ]
    assert diff[0].kind == "hunk"
    assert policy_diff("same\n", "same\n") == []
