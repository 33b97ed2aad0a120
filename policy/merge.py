"""How each policy value of several groups merges into one, and the sentence that says why.

Each function takes the applying groups in document order as (name, GroupPolicy) pairs and
returns (value, reason). The choices, and why they are the safe ones, are in docs/policy.md.
"""

from collections.abc import Callable, Sequence
from datetime import timedelta

from policy.schema import GroupPolicy, PolicyDocument, Role
from policy.values import Destination, format_duration

Applied = Sequence[tuple[str, GroupPolicy]]
NO_GROUP = "no policy group applies"


def display_rule(rule: str, applied: Applied) -> tuple[bool, str]:
    """Data-loss rules: the most restrictive group wins, unless a group lists the rule as its exception."""
    if not applied:
        return False, f"{NO_GROUP}: default off"
    states = [(name, group.display.get(rule)) for name, group in applied]
    parts = [f"{name}: {'default off' if state is None else 'on' if state else 'off'}" for name, state in states]
    exceptions = [name for name, group in applied if rule in group.display_exceptions]
    if exceptions:
        return True, f"on by exception of {', '.join(exceptions)}: {'; '.join(parts)}"
    if len({state is True for _, state in states}) == 1:
        return all(state is True for _, state in states), "; ".join(parts)
    return False, f"off, the most restrictive group wins: {'; '.join(parts)}"


def shortest(
    field: Callable[[GroupPolicy], timedelta | None], default: timedelta, applied: Applied
) -> tuple[timedelta, str]:
    """Timeouts: the shortest any group sets; the built-in default when none sets one."""
    chosen = [(name, value) for name, group in applied if (value := field(group)) is not None]
    if not chosen:
        prefix = f"{NO_GROUP}: " if not applied else ""
        return default, f"{prefix}built-in default {format_duration(default)}"
    name, value = min(chosen, key=lambda pair: pair[1])
    if len(chosen) == 1:
        return value, f"{name}: {format_duration(value)}"
    others = ", ".join(f"{other}: {format_duration(length)}" for other, length in chosen)
    return value, f"{name}: {format_duration(value)}, the shortest of {others}"


def any_group(flag: Callable[[GroupPolicy], bool], wording: str, applied: Applied) -> tuple[bool, str]:
    """Flags that add protection (watermark, recording, telling the agent): on when any group turns them on."""
    turned_on = [name for name, group in applied if flag(group)]
    if turned_on:
        return True, f"on: {wording} by {', '.join(turned_on)}"
    return False, f"{NO_GROUP}: off" if not applied else "off: no group turns it on"


def recording_scope(applied: Applied) -> tuple[tuple[frozenset[str] | None, bool], str]:
    """What the recording groups record: the union of their apps (one group naming none records every app), and
    only during customer calls when every recording group says so (the wider recording wins: auditing is additive).
    """
    recording = [(name, group.recording_scope) for name, group in applied if group.recording]
    if not recording:
        return (None, False), "no group records"
    apps: frozenset[str] | None = frozenset()
    for _, scope in recording:
        apps = None if apps is None or not scope.apps else apps | frozenset(scope.apps)
    calls_only = all(scope.customer_calls_only for _, scope in recording)
    parts = [
        f"{name}: {', '.join(scope.apps) or 'every app'}{' during customer calls' if scope.customer_calls_only else ''}"
        for name, scope in recording
    ]
    return (apps, calls_only), "; ".join(parts)


def every_group(flag: Callable[[GroupPolicy], bool], applied: Applied) -> tuple[bool, str]:
    """Permissions that give up privacy or control: only when every group allows them."""
    if not applied:
        return False, f"{NO_GROUP}: off"
    refusing = [name for name, group in applied if not flag(group)]
    if refusing:
        return False, f"off: refused by {', '.join(refusing)}"
    return True, f"on: allowed by {', '.join(name for name, _ in applied)}"


def roles(applied: Applied) -> tuple[frozenset[Role], str]:
    """Roles: the union of what the groups grant."""
    granted: dict[Role, list[str]] = {}
    for name, group in applied:
        for role in group.roles:
            granted.setdefault(role, []).append(name)
    if not granted:
        return frozenset(), f"{NO_GROUP}: no role" if not applied else "no group grants a role"
    return frozenset(granted), "; ".join(f"{role} from {', '.join(names)}" for role, names in sorted(granted.items()))


def requirement(document: PolicyDocument, granted: frozenset[Role], field: str, fail_closed: bool) -> tuple[bool, str]:
    """Login requirements: required when any granted role requires it."""
    if not granted:
        state = "required" if fail_closed else "not required"
        return fail_closed, f"no role granted: {state}"
    requiring = sorted(role for role in granted if getattr(document.requirements(role), field))
    if requiring:
        return True, f"required by role {', '.join(requiring)}"
    return False, f"not required by role {', '.join(sorted(granted))}"


def network_scope(applied: Applied) -> tuple[tuple[Destination, ...], str]:
    """Network scope: the union of destinations, minus those another destination already covers."""
    sources: dict[Destination, list[str]] = {}
    for name, group in applied:
        for destination in group.network_scope:
            sources.setdefault(destination, []).append(name)
    kept = sorted(
        (d for d in sources if not any(o != d and o.covers(d) for o in sources)),
        key=lambda d: (d.network.version, d.network, d.protocol or "", d.port or 0),
    )
    if not kept:
        return (), "default deny: no group opens a destination"
    return tuple(kept), "; ".join(f"{d} from {', '.join(sources[d])}" for d in kept)
