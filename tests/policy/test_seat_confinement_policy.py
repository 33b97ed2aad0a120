"""An X11 app's `backends` (where its seat may connect) and `limits` (its seat's cgroup) in the policy."""

import ipaddress

import pytest

from policy import PolicyError, SeatLimits, X11App, dump_policy, load_policy
from policy.values import Destination

APP = """\
version: 1
apps:
  - id: crm
    title: CRM
    backend: x11
    command: [python, -m, crm]
{extra}groups: {{}}
"""


def _crm(extra: str) -> X11App:
    app = load_policy(APP.format(extra=extra)).app("crm")
    assert isinstance(app, X11App)
    return app


def test_an_app_without_backends_or_limits_may_reach_nothing_and_gets_the_default_limits() -> None:
    app = _crm("")
    assert app.backends == ()
    assert app.limits == SeatLimits(pids=256, memory_mib=1024, cpu_percent=100)


def test_backends_and_limits_are_read_and_written_back_the_same() -> None:
    text = APP.format(
        extra="    backends: [10.20.0.5/32 5432/tcp, 10.30.0.0/24]\n"
        "    limits: {pids: 64, memory_mib: 512, cpu_percent: 50}\n"
    )
    document = load_policy(text)
    app = document.app("crm")
    assert isinstance(app, X11App)
    assert app.backends == (
        Destination(ipaddress.ip_network("10.20.0.5/32"), "tcp", 5432),
        Destination(ipaddress.ip_network("10.30.0.0/24")),
    )
    assert app.limits == SeatLimits(pids=64, memory_mib=512, cpu_percent=50)
    assert load_policy(dump_policy(document)) == document


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("    limits: {pids: 4}\n", "greater than or equal to 32"),
        ("    limits: {memory_mib: 0}\n", "greater than or equal to 128"),
        ("    limits: {cpu: 2}\n", "unknown key 'cpu'"),
        ("    backends: [10.20.0.5 5432]\n", "bad protocol"),
    ],
)
def test_bad_backends_or_limits_are_refused_with_the_reason(extra: str, reason: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(APP.format(extra=extra))
    assert reason in str(caught.value)
