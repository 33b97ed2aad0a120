"""expiring_within: which certificates need renewing soon."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509

from certs import Authority, expiring_within, issue_agent_with_generated_key


def test_only_certificates_expiring_inside_the_window_are_listed_soonest_first(
    authority: Authority, now: datetime, wg_key: str
) -> None:
    def agent(days: int) -> x509.Certificate:
        return issue_agent_with_generated_key(
            authority, "a@corp.example", wg_key, now, lifetime=timedelta(days=days)
        ).cert

    two, five, thirty = agent(2), agent(5), agent(30)
    assert expiring_within([thirty, five, two], 7, now) == [two, five]
    assert expiring_within([thirty, five, two], 1, now) == []
    assert expiring_within([two], 7, now + timedelta(days=3)) == []  # already expired: not "expiring"
