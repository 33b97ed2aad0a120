"""Declarative per-group policy: evaluation, explanation and compilation to backend parameters.

Pure: imports nothing of the gateway, knows neither the database nor the server.
"""

from policy.document import DEFAULT_POLICY_FILE, dump_policy, load_default_policy, load_policy
from policy.effective import EffectivePolicy, GroupShift
from policy.errors import PolicyError, Problem
from policy.evaluate import evaluate
from policy.groups import group_key, names_without_dn
from policy.guacamole import compile_guacamole
from policy.network import NetworkScope, compile_network_scope
from policy.rules import DisplayRules
from policy.schema import GroupPolicy, GuacamoleApp, PolicyDocument, Role, SeatLimits, X11App
from policy.shifts import ShiftStatus, in_shift
from policy.teams import SupervisedTeams, supervised_teams
from policy.x11 import X11SeatParams, compile_x11

__all__ = [
    "DEFAULT_POLICY_FILE",
    "DisplayRules",
    "EffectivePolicy",
    "GroupPolicy",
    "GroupShift",
    "GuacamoleApp",
    "NetworkScope",
    "PolicyDocument",
    "PolicyError",
    "Problem",
    "Role",
    "SeatLimits",
    "ShiftStatus",
    "SupervisedTeams",
    "X11App",
    "X11SeatParams",
    "compile_guacamole",
    "compile_network_scope",
    "compile_x11",
    "dump_policy",
    "evaluate",
    "group_key",
    "in_shift",
    "load_default_policy",
    "load_policy",
    "names_without_dn",
    "supervised_teams",
]
