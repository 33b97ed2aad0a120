"""How several groups merge, and the explanation each value carries."""

from datetime import datetime, timedelta

import pytest

from policy import PolicyError, evaluate
from tests.policy.documents import NOON, policy

TWO_GROUPS = """
Agents:
  roles: [agent]
  apps: [console]
  display: {clipboard_in: true, printing: true}
  idle_timeout: 20m
  network_scope: [10.77.0.1/32 443/tcp]
QA:
  roles: [supervisor]
  apps: [billing]
  display: {clipboard_out: true, printing: true, drive: true}
  display_exceptions: [drive]
  idle_timeout: 5m
  max_session: 4h
  recording: true
  network_scope: [10.77.0.0/24, 10.20.0.10/32 3389/tcp]
"""


def test_a_group_alone_gives_its_own_rules_with_default_off_named() -> None:
    effective = evaluate(policy(TWO_GROUPS), ["Agents"], NOON)
    assert effective.display.clipboard_in is True
    assert effective.display.clipboard_out is False
    assert effective.explain("clipboard_out") == "Agents: default off"
    assert effective.explain("clipboard_in") == "Agents: on"


def test_data_loss_rule_is_off_when_any_group_forbids_it() -> None:
    effective = evaluate(policy(TWO_GROUPS), ["Agents", "QA"], NOON)
    assert (effective.display.clipboard_in, effective.display.clipboard_out) == (False, False)
    assert effective.explain("clipboard_out") == ("off, the most restrictive group wins: Agents: default off; QA: on")


def test_data_loss_rule_allowed_by_every_group_is_on() -> None:
    effective = evaluate(policy(TWO_GROUPS), ["Agents", "QA"], NOON)
    assert effective.display.printing is True
    assert effective.explain("printing") == "Agents: on; QA: on"


def test_group_marked_as_exception_overrides_the_restrictive_group() -> None:
    effective = evaluate(policy(TWO_GROUPS), ["Agents", "QA"], NOON)
    assert effective.display.drive is True
    assert effective.explain("drive") == "on by exception of QA: Agents: default off; QA: on"


def test_timeouts_take_the_shortest_and_fall_back_to_built_in_defaults() -> None:
    effective = evaluate(policy(TWO_GROUPS), ["Agents", "QA"], NOON)
    assert effective.idle_timeout == timedelta(minutes=5)
    assert effective.explain("idle_timeout") == "QA: 5m, the shortest of Agents: 20m, QA: 5m"
    agents_only = evaluate(policy(TWO_GROUPS), ["Agents"], NOON)
    assert agents_only.max_session == timedelta(hours=8)
    assert agents_only.explain("max_session") == "built-in default 8h"


def test_apps_roles_and_requirements_are_unions() -> None:
    effective = evaluate(policy(TWO_GROUPS), ["QA", "Agents"], NOON)
    assert [app.id for app in effective.apps] == ["console", "billing"]
    assert effective.roles == {"agent", "supervisor"}
    assert effective.require_totp is True
    assert effective.explain("require_totp") == "required by role supervisor"
    assert effective.explain("roles") == "agent from Agents; supervisor from QA"


def test_network_scope_is_a_union_without_destinations_already_covered() -> None:
    effective = evaluate(policy(TWO_GROUPS), ["Agents", "QA"], NOON)
    assert [str(item) for item in effective.network_scope] == ["10.20.0.10/32 3389/tcp", "10.77.0.0/24"]
    assert effective.explain("network_scope") == "10.20.0.10/32 3389/tcp from QA; 10.77.0.0/24 from QA"


def test_destination_for_one_protocol_covers_its_ports_but_not_other_protocols() -> None:
    document = policy(
        """
        A:
          network_scope: [10.0.0.0/16 tcp, 10.0.1.0/24 443/tcp, 10.0.1.0/24 53/udp, 10.0.0.0/8 icmp]
        """
    )
    effective = evaluate(document, ["A"], NOON)
    assert [str(item) for item in effective.network_scope] == [
        "10.0.0.0/8 icmp",
        "10.0.0.0/16 tcp",
        "10.0.1.0/24 53/udp",
    ]


def test_network_scope_is_default_deny() -> None:
    effective = evaluate(policy("Plain:\n  roles: [agent]\n"), ["Plain"], NOON)
    assert effective.network_scope == ()
    assert effective.explain("network_scope") == "default deny: no group opens a destination"


def test_person_in_no_policy_group_gets_nothing_and_still_needs_a_certificate() -> None:
    effective = evaluate(policy(TWO_GROUPS), ["Domain Users"], NOON)
    assert (effective.apps, effective.roles, effective.network_scope) == ((), frozenset(), ())
    assert effective.require_client_certificate is True
    assert effective.explain("clipboard_in") == "no policy group applies: default off"
    assert effective.view_only_supervision is False


def test_group_names_match_case_insensitively_as_in_active_directory() -> None:
    effective = evaluate(policy(TWO_GROUPS), ["agents"], NOON)
    assert effective.groups == ("Agents",)


def test_role_without_certificate_requirement_does_not_lift_another_roles_requirement() -> None:
    document = policy("HR:\n  roles: [hr]\nAgents:\n  roles: [agent]\n")
    assert evaluate(document, ["HR"], NOON).require_client_certificate is False
    both = evaluate(document, ["HR", "Agents"], NOON)
    assert both.require_client_certificate is True
    assert both.explain("require_client_certificate") == "required by role agent"


def test_watermark_recording_and_notice_turn_on_when_any_group_asks() -> None:
    document = policy(
        """
        A:
          watermark: {enabled: true, template: "A {user}"}
          supervision: {notify_agent_when_watched: false}
        B:
          watermark: {enabled: true, template: "B {user}"}
          recording: true
          supervision: {allow_viewing: false, notify_agent_when_watched: true}
        """
    )
    effective = evaluate(document, ["B", "A"], NOON)
    assert effective.watermark_template == "A {user}"
    assert (effective.recording, effective.notify_agent_when_watched) == (True, True)
    assert effective.view_only_supervision is False
    assert effective.explain("view_only_supervision") == "off: refused by B"
    assert evaluate(document, ["A"], NOON).notify_agent_when_watched is False


def test_evaluation_does_not_depend_on_the_order_of_the_persons_groups() -> None:
    document = policy(TWO_GROUPS)
    assert evaluate(document, ["Agents", "QA"], NOON) == evaluate(document, ["QA", "Agents", "QA"], NOON)


def test_explaining_an_unknown_value_names_the_known_ones() -> None:
    effective = evaluate(policy(TWO_GROUPS), ["Agents"], NOON)
    with pytest.raises(KeyError, match="clipboard_in"):
        effective.explain("clipboard")


def test_naive_time_is_refused() -> None:
    with pytest.raises(PolicyError, match="time-zone-aware"):
        evaluate(policy(TWO_GROUPS), ["Agents"], datetime(2026, 11, 25, 12))
