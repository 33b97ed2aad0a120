"""Policy keys name groups by DN (or SID, or a built-in group's name); a copied CN matches nothing."""

from datetime import UTC, datetime

from policy import evaluate, group_key, load_policy

POLICY = load_policy("""\
version: 1
groups:
  "CN=SOHO-SecurityAdmins,OU=Groups,DC=corp,DC=example": {roles: [security_admin]}
  "S-1-5-21-1004336348-1177238915-682003330-1105": {roles: [supervisor]}
  "CN=Ops\\\\, Night,OU=Groups,DC=corp,DC=example": {roles: [agent]}
""")
NOW = datetime(2026, 12, 6, tzinfo=UTC)


def test_a_dn_matches_however_it_is_spaced_and_cased() -> None:
    spelled = "cn=soho-securityadmins , ou=GROUPS,dc=Corp, DC=example"
    assert group_key(spelled) == group_key("CN=SOHO-SecurityAdmins,OU=Groups,DC=corp,DC=example")
    assert evaluate(POLICY, [spelled], NOW).roles == {"security_admin"}


def test_a_group_with_the_same_cn_elsewhere_or_the_bare_cn_grants_nothing() -> None:
    spoofs = ["CN=SOHO-SecurityAdmins,OU=Sandbox,DC=corp,DC=example", "SOHO-SecurityAdmins", "CN=SOHO-SecurityAdmins"]
    assert evaluate(POLICY, spoofs, NOW).roles == frozenset()


def test_an_escaped_comma_stays_inside_its_value_and_a_sid_matches_itself() -> None:
    assert evaluate(POLICY, ["CN=Ops\\, Night,OU=Groups,DC=corp,DC=example"], NOW).roles == {"agent"}
    assert evaluate(POLICY, ["CN=Ops,Night,OU=Groups,DC=corp,DC=example"], NOW).roles == frozenset()
    assert evaluate(POLICY, ["s-1-5-21-1004336348-1177238915-682003330-1105"], NOW).roles == {"supervisor"}
