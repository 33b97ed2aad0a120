"""Every refusal of a policy document names the line, the column and the reason."""

import pytest

from policy import PolicyError, load_policy

APPS = """\
version: 1
apps:
  - id: customer-console
    title: Customer console
    backend: x11
    command: [python, -m, desktop_broker.apps.customer_console]
groups:
"""
GROUP_LINE = 9  # the first line after "  SOHO-Agents:" below


def _refusal(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        load_policy(text)
    return caught.value


def _group(body: str) -> str:
    return APPS + "  SOHO-Agents:\n" + "".join(f"    {line}\n" for line in body.splitlines())


@pytest.mark.parametrize(
    ("body", "line", "column", "reason"),
    [
        ("colour: red", GROUP_LINE, 5, "unknown key 'colour'"),
        ("idle_timeout: 15x", GROUP_LINE, 5, "bad duration '15x'"),
        ("max_session: 90", GROUP_LINE, 5, "bad duration 90: write a number with a unit"),
        ("idle_timeout: 0m", GROUP_LINE, 5, "it must be longer than zero"),
        ("apps: [customer-console, crm]", GROUP_LINE, 30, "unknown app id 'crm'"),
        ("roles: [agent, king]", GROUP_LINE, 20, "'king' is not accepted here: expected 'agent', 'supervisor'"),
        ("display: {clipbaord_out: true}", GROUP_LINE, 5, "unknown display rule 'clipbaord_out'"),
        ("display: {download: maybe}", GROUP_LINE, 15, "'maybe' is not accepted here"),
        ("display_exceptions: [upload]", GROUP_LINE, 26, "display exception 'upload' needs 'display: {upload: true}'"),
        ("network_scope: [10.0.0.1/24]", GROUP_LINE, 21, "has host bits set; did you mean 10.0.0.0/24?"),
        ("network_scope: [300.1.1.1]", GROUP_LINE, 21, "bad CIDR '300.1.1.1'"),
        ("network_scope: ['10.0.0.1 99999/tcp']", GROUP_LINE, 21, "bad port '99999/tcp'"),
        ("network_scope: ['10.0.0.0/8 22/sctp']", GROUP_LINE, 21, "bad protocol 'sctp'"),
        ("network_scope: ['10.0.0.0/8 8/icmp']", GROUP_LINE, 21, "bad port '8/icmp'"),
        ("network_scope: ['10.0.0.0/8 443 tcp']", GROUP_LINE, 21, "bad destination '10.0.0.0/8 443 tcp'"),
        ("watermark: {template: '{user} {ip}'}", GROUP_LINE, 17, "unknown placeholder {ip}"),
        (
            "shifts:\n  - {time_zone: Mars/Olympus, days: [mon], start: '08:00', end: '17:00'}",
            GROUP_LINE + 1,
            10,
            "unknown time zone 'Mars/Olympus'",
        ),
        (
            "shifts:\n  - time_zone: UTC\n    days: [mon, funday]\n    start: 08:00\n    end: 17:00",
            GROUP_LINE + 2,
            21,
            "'funday' is not accepted here",
        ),
        (
            "shifts:\n  - time_zone: UTC\n    days: [mon]\n    start: 08:00\n    end: 25:00",
            GROUP_LINE + 4,
            9,
            "bad time '25:00'",
        ),
        (
            "shifts:\n  - time_zone: UTC\n    days: [mon]\n    start: 08:00",
            GROUP_LINE + 1,
            9,
            "missing required key 'end'",
        ),
        (
            "shifts:\n  - time_zone: UTC\n    days: [mon]\n    start: 08:00\n    end: 08:00",
            GROUP_LINE + 1,
            9,
            "a shift whose start equals its end is ambiguous",
        ),
    ],
)
def test_bad_group_value_is_refused_with_its_line_and_reason(body: str, line: int, column: int, reason: str) -> None:
    error = _refusal(_group(body))
    assert len(error.problems) == 1, str(error)
    problem = error.problems[0]
    assert (problem.line, problem.column) == (line, column), str(error)
    assert reason in problem.reason
    assert str(error).startswith(f"line {line}, column {column} (groups.SOHO-Agents")


def test_every_problem_is_listed_in_line_order() -> None:
    error = _refusal(_group("idle_timeout: soon\napps: [nowhere]\nroles: [boss]"))
    assert [problem.line for problem in error.problems] == [GROUP_LINE, GROUP_LINE + 1, GROUP_LINE + 2]
    assert str(error).splitlines()[0] == "the policy has 3 problems:"
    assert "line 10, column 12 (groups.SOHO-Agents.apps[0]): unknown app id 'nowhere'" in str(error)


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("version: 2\n", 1, "2 is not accepted here: expected 1"),
        ("versoin: 1\n", 1, "unknown key 'versoin'"),
        ("apps:\n  - id: a\n    title: A\n    backend: x12\n", 2, "does not match any of the expected tags"),
        ("apps:\n  - id: a\n    backend: x11\n    command: [a]\n", 2, "missing required key 'title'"),
        ("apps:\n  - id: a\n    title: A\n    backend: x11\n    command: []\n", 5, "at least 1 item"),
        (
            "apps:\n  - {id: a, title: A, backend: guacamole, protocol: vnc, host: h, remote_app: X}\n",
            2,
            "remote_app only exists for protocol rdp",
        ),
        (
            "apps:\n"
            "  - {id: a, title: A, backend: x11, command: [a]}\n"
            "  - {id: a, title: B, backend: x11, command: [b]}\n",
            3,
            "duplicate app id 'a'",
        ),
        ("roles:\n  janitor: {}\n", 2, "'janitor' is not accepted here"),
        ("groups:\n  A: {}\n  A: {}\n", 3, "duplicate key"),
        ("groups:\n  SOHO-HR: {}\n  soho-hr: {}\n", 3, "group 'soho-hr' is 'SOHO-HR' again"),
        ("groups: [unclosed\n", 2, "not valid YAML"),
        ("", 1, "the policy document is empty"),
        ("- just\n- a list\n", 1, "valid dictionary"),
    ],
)
def test_bad_document_is_refused_with_its_line_and_reason(text: str, line: int, reason: str) -> None:
    error = _refusal(text)
    assert error.problems[0].line == line, str(error)
    assert reason in str(error)


def test_times_written_without_quotes_are_times_not_base_sixty_numbers() -> None:
    document = load_policy(_group("shifts:\n  - {time_zone: UTC, days: [mon], start: 17:00, end: 23:30}"))
    window = document.groups["SOHO-Agents"].shifts[0]
    assert (window.start.hour, window.end.hour, window.end.minute) == (17, 23, 30)


@pytest.mark.parametrize(
    ("app", "reason"),
    [
        ("cert_fingerprints: [md5:00]", "is not a SHA-256 fingerprint"),
        ("cert_fingerprints: ['sha256:" + "ab" * 31 + "']", "is not a SHA-256 fingerprint"),
        ("cert_trust_first_use: true, cert_fingerprints: ['sha256:" + "ab" * 32 + "']", "drop one"),
        # Standard RDP security has no TLS handshake, so no certificate would be checked at all.
        ("cert_fingerprints: ['sha256:" + "ab" * 32 + "'], security: any", "without TLS"),
        ("cert_trust_first_use: true, security: rdp", "without TLS"),
        ("security: any", "without TLS"),
    ],
)
def test_rdp_certificate_options_are_checked(app: str, reason: str) -> None:
    document = f"version: 1\napps:\n  - {{id: a, title: A, backend: guacamole, protocol: rdp, host: h, {app}}}\n"
    with pytest.raises(PolicyError, match=reason):
        load_policy(document)
