"""Team scope: which agents a supervisor may see, from the policy's ``team_scope`` and both people's groups.

A supervisor in a group listed in ``all_teams`` sees everyone (a QA role); otherwise they see the agents in the team
groups their own groups are mapped to. Groups are compared as `policy.groups.group_key` compares them (by DN or SID,
never by a name anyone could copy). A document without ``team_scope`` scopes nobody: every supervisor sees every
agent, as before team scope existed.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from policy.groups import group_key
from policy.schema import PolicyDocument


@dataclass(frozen=True, slots=True)
class SupervisedTeams:
    """The teams one supervisor sees; hashable, so viewers with the same scope can share one encoded wall diff."""

    every_team: bool
    teams: frozenset[str]
    """The team groups' keys (`group_key` form)."""
    reason: str

    def covers(self, agent_groups: Iterable[str]) -> bool:
        """Whether an agent with these group identifiers is in one of the supervised teams."""
        return self.every_team or any(group_key(group) in self.teams for group in agent_groups)


def supervised_teams(document: PolicyDocument, supervisor_groups: Iterable[str]) -> SupervisedTeams:
    """The scope of a supervisor with these group identifiers (DNs, SIDs, built-in names)."""
    scope = document.team_scope
    if scope is None:
        return SupervisedTeams(True, frozenset(), "the policy sets no team scope: every team")
    member = {group_key(group) for group in supervisor_groups}
    everything = [name for name in scope.all_teams if group_key(name) in member]
    if everything:
        return SupervisedTeams(True, frozenset(), f"every team, by {', '.join(everything)}")
    teams = {
        team: [name for name in supervisors if group_key(name) in member] for team, supervisors in scope.teams.items()
    }
    granted = {team: by for team, by in teams.items() if by}
    reason = "; ".join(f"{team} by {', '.join(by)}" for team, by in granted.items()) or "no team"
    return SupervisedTeams(False, frozenset(group_key(team) for team in granted), reason)
