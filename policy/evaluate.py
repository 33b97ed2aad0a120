"""Evaluate a policy document for one person's AD groups at one moment."""

from collections.abc import Iterable
from datetime import datetime
from types import MappingProxyType
from typing import TypeVar

from policy import merge
from policy.effective import EffectivePolicy, GroupShift
from policy.errors import PolicyError
from policy.groups import group_key
from policy.rules import DisplayRules
from policy.schema import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_SESSION, RULE_NAMES, PolicyDocument

T = TypeVar("T")


class _Reasons(dict[str, str]):
    """Collects each value's reason while the value itself flows on."""

    def keep(self, name: str, pair: tuple[T, str]) -> T:
        self[name] = pair[1]
        return pair[0]


def evaluate(document: PolicyDocument, groups: Iterable[str], now: datetime) -> EffectivePolicy:
    """Merge every policy group the person is in (see docs/policy.md for the rules).

    ``groups`` are the person's group identifiers — DNs, AD SIDs, built-in group names — matched with the
    document's keys as `policy.groups.group_key` says (a CN alone never matches a directory group); groups the
    document does not name contribute nothing. Deterministic: the result depends only on the set of groups, and
    ties (the watermark template) go to the group written first in the document.
    """
    if now.tzinfo is None:
        raise PolicyError("evaluate needs a time-zone-aware 'now'; shifts are compared in UTC")
    member = {group_key(identifier) for identifier in groups}
    applied = [(name, group) for name, group in document.groups.items() if group_key(name) in member]
    reasons = _Reasons()
    explained = reasons.keep
    roles = explained("roles", merge.roles(applied))
    published = {app_id for _, group in applied for app_id in group.apps}
    apps = tuple(app for app in document.apps if app.id in published)
    reasons["apps"] = "; ".join(
        f"{app.id} from {', '.join(name for name, group in applied if app.id in group.apps)}" for app in apps
    ) or ("no group publishes an app" if applied else f"{merge.NO_GROUP}: no app")
    display = DisplayRules(**{rule: explained(rule, merge.display_rule(rule, applied)) for rule in RULE_NAMES})
    watermark_on = explained("watermark", merge.any_group(lambda g: g.watermark.enabled, "turned on", applied))
    template = next((g.watermark.template for _, g in applied if g.watermark.enabled), None)
    recording_apps, calls_only = explained("recording_scope", merge.recording_scope(applied))
    shifts = tuple(GroupShift(name, window) for name, group in applied for window in group.shifts)
    reasons["shifts"] = "; ".join(str(shift) for shift in shifts) or "no group sets shifts: any time"
    return EffectivePolicy(
        groups=tuple(name for name, _ in applied),
        roles=roles,
        apps=apps,
        display=display,
        watermark_template=template if watermark_on else None,
        idle_timeout=explained("idle_timeout", merge.shortest(lambda g: g.idle_timeout, DEFAULT_IDLE_TIMEOUT, applied)),
        max_session=explained("max_session", merge.shortest(lambda g: g.max_session, DEFAULT_MAX_SESSION, applied)),
        shifts=shifts,
        network_scope=explained("network_scope", merge.network_scope(applied)),
        require_client_certificate=explained(
            "require_client_certificate",
            merge.requirement(document, roles, "require_client_certificate", fail_closed=True),
        ),
        require_totp=explained("require_totp", merge.requirement(document, roles, "require_totp", fail_closed=False)),
        recording=explained("recording", merge.any_group(lambda g: g.recording, "recorded", applied)),
        recording_apps=recording_apps,
        recording_customer_calls_only=calls_only,
        view_only_supervision=explained(
            "view_only_supervision", merge.every_group(lambda g: g.supervision.allow_viewing, applied)
        ),
        notify_agent_when_watched=explained(
            "notify_agent_when_watched",
            merge.any_group(lambda g: g.supervision.notify_agent_when_watched, "asked", applied),
        ),
        storage=document.storage,
        evaluated_at=now,
        reasons=MappingProxyType(reasons),  # read-only: one evaluation is kept and shared by every sign-in
    )
