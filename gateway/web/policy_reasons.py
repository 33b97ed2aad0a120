"""The policy library explains each value in fixed English phrases around the names of groups, apps and roles
(``policy/merge.py``, ``policy/evaluate.py``); the explain page shows them in the reader's language by replacing
those phrases with the catalog's (``policy.phrase.*``), longest first, leaving the names as they are."""

from gateway.web.i18n import DEFAULT, translate

PHRASES = (
    ("no policy group applies", "no_group_applies"),
    ("no group sets shifts: any time", "any_time"),
    ("no group publishes an app", "no_app_published"),
    ("no group turns it on", "no_group_turns_on"),
    ("no group grants a role", "no_role_granted"),
    ("no group records", "no_group_records"),
    (" during customer calls", "during_customer_calls"),
    ("every app", "every_app"),
    ("default deny: no group opens a destination", "default_deny"),
    ("on by exception of", "on_by_exception"),
    ("the shortest of", "shortest_of"),
    ("built-in default", "builtin_default"),
    ("not required by role", "not_required_by_role"),
    ("required by role", "required_by_role"),
    ("turned on by", "turned_on_by"),
    ("allowed by", "allowed_by"),
    ("refused by", "refused_by"),
    ("asked by", "asked_by"),
    ("recorded by", "recorded_by"),
    ("default off", "default_off"),
    ("no app", "no_app"),
    ("no role", "no_role"),
    (" from ", "from"),
    ("on:", "on"),
    ("off:", "off_colon"),
    (": off", "colon_off"),
    (": on", "colon_on"),
)
"""Longest and most specific first, so a short phrase never splits a longer one."""


def explained(reason: str, language: str) -> str:
    """``reason`` with the policy library's phrases in ``language`` (English unchanged)."""
    if language == DEFAULT:
        return reason
    for phrase, key in PHRASES:
        reason = reason.replace(phrase, translate(language, f"policy.phrase.{key}"))
    return reason
