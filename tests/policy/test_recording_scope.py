"""What a recording policy records: which apps, and only during customer calls or the whole seat."""

from policy import compile_guacamole, evaluate
from tests.policy.documents import NOON, policy

GROUPS = """
Agents:
  roles: [agent]
  apps: [console, billing, crm]
CallsOnly:
  recording: true
  recording_scope: {apps: [console], customer_calls_only: true}
BillingAlways:
  recording: true
  recording_scope: {apps: [billing]}
Everything:
  recording: true
"""


def test_a_calls_only_group_records_its_app_only_while_a_call_is_up() -> None:
    effective = evaluate(policy(GROUPS), ["Agents", "CallsOnly"], NOON)
    assert effective.records("console", in_customer_call=True)
    assert not effective.records("console", in_customer_call=False)
    assert not effective.records("billing", in_customer_call=True)
    assert effective.explain("recording_scope") == "CallsOnly: console during customer calls"


def test_groups_widen_each_other_the_wider_recording_wins() -> None:
    effective = evaluate(policy(GROUPS), ["Agents", "CallsOnly", "BillingAlways"], NOON)
    assert effective.recording_apps == frozenset({"console", "billing"})
    assert effective.records("console", in_customer_call=False), "one group records always: no longer calls only"
    assert not effective.records("crm", in_customer_call=True)
    everything = evaluate(policy(GROUPS), ["Agents", "CallsOnly", "Everything"], NOON)
    assert everything.recording_apps is None and everything.records("crm", in_customer_call=False)


def test_no_recording_group_records_nothing() -> None:
    effective = evaluate(policy(GROUPS), ["Agents"], NOON)
    assert not effective.records("console", in_customer_call=True)
    assert effective.explain("recording_scope") == "no group records"


def test_guacamole_parameters_carry_the_recording_only_for_recorded_apps() -> None:
    effective = evaluate(policy(GROUPS), ["Agents", "BillingAlways"], NOON)
    assert "recording-name" in compile_guacamole(effective, "billing", user="li.wei", recording_tag="ab")
    assert "recording-name" not in compile_guacamole(effective, "crm", user="li.wei")
