"""Team scope: which agents a supervisor sees, from the policy's team groups and both people's groups."""

import pytest

from policy import PolicyError, load_policy, supervised_teams

NORTH, SOUTH = "CN=Team-North,OU=Teams,DC=corp,DC=example", "CN=Team-South,OU=Teams,DC=corp,DC=example"
SUP_NORTH, SUP_SOUTH = "CN=Sup-North,OU=Groups,DC=corp,DC=example", "CN=Sup-South,OU=Groups,DC=corp,DC=example"
QA = "CN=QA,OU=Groups,DC=corp,DC=example"
SCOPED = f"""
version: 1
team_scope:
  teams:
    "{NORTH}": ["{SUP_NORTH}"]
    "{SOUTH}": ["{SUP_SOUTH}", "{SUP_NORTH}"]
  all_teams: ["{QA}"]
"""


def test_a_supervisor_sees_only_the_teams_their_groups_are_mapped_to() -> None:
    document = load_policy(SCOPED.replace(f', "{SUP_NORTH}"]', "]"))
    south_only = supervised_teams(document, [SUP_SOUTH.upper()])  # DNs compare as AD compares them
    assert south_only.covers([SOUTH]) and not south_only.covers([NORTH]) and not south_only.covers([])
    assert south_only.reason == f"{SOUTH} by {SUP_SOUTH}"


def test_a_supervisor_of_two_teams_sees_both_and_a_qa_group_sees_everyone() -> None:
    document = load_policy(SCOPED)
    both = supervised_teams(document, [SUP_NORTH])
    assert both.covers([NORTH]) and both.covers(["CN=Other", SOUTH]) and not both.covers(["CN=Other"])
    qa = supervised_teams(document, [QA])
    assert qa.every_team and qa.covers(["CN=Other"]) and qa.reason == f"every team, by {QA}"


def test_a_supervisor_in_no_mapped_group_sees_nobody() -> None:
    nobody = supervised_teams(load_policy(SCOPED), ["CN=Sup-North,OU=Elsewhere,DC=corp,DC=example"])
    assert not nobody.every_team and not nobody.covers([NORTH]) and nobody.reason == "no team"


def test_without_team_scope_every_supervisor_sees_every_agent() -> None:
    everyone = supervised_teams(load_policy("version: 1\n"), [SUP_SOUTH])
    assert everyone.every_team and everyone.covers([NORTH])
    assert everyone.reason == "the policy sets no team scope: every team"


def test_a_misspelt_team_scope_key_is_refused_with_its_position() -> None:
    with pytest.raises(PolicyError) as refused:
        load_policy(SCOPED.replace("all_teams", "all_team"))
    assert [(p.line, p.path, p.reason) for p in refused.value.problems] == [
        (7, "team_scope.all_team", "unknown key 'all_team'")
    ]
