"""Fifty parallel wrong passwords for one account, counted where they land: the test and the benchmark share it.

``CountingDirectory`` wraps the real directory object and counts every call that sends a password to it (one bind
each); Samba's own ``badPwdCount`` on the account is the second, independent count.
"""

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from ldap3 import BASE
from sqlalchemy import Engine

from certs.revocation import HttpRevocationChecker
from gateway.adoption import adopt_legacy_rows
from gateway.db import session_scope
from gateway.directory import Account, Directory, DirectoryUser
from gateway.errors import GatewayError
from gateway.policies.service import import_policy
from gateway.sessions.login import LoginRequest, LoginServices, login
from gateway.sessions.throttle import ThrottleLimits
from tests.directory import samba
from tests.directory.samba import SambaDC, group_dn, user_dn

WRONG = "Not-The-Passw0rd"


class CountingDirectory:
    """The real directory, counting the guesses that reach it."""

    def __init__(self, inner: Directory) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.binds = 0

    def _count(self) -> None:
        with self._lock:
            self.binds += 1

    def find_account(self, login: str) -> Account:
        return self._inner.find_account(login)

    def verify(self, account: Account, password: str) -> DirectoryUser:
        self._count()
        return self._inner.verify(account, password)

    def authenticate(self, login: str, password: str) -> DirectoryUser:
        self._count()
        return self._inner.authenticate(login, password)

    def lookup(self, login_or_dn: str) -> DirectoryUser:
        return self._inner.lookup(login_or_dn)

    def add_to_group(self, user_dn: str, group_dn: str) -> None:
        self._inner.add_to_group(user_dn, group_dn)

    def remove_from_group(self, user_dn: str, group_dn: str) -> None:
        self._inner.remove_from_group(user_dn, group_dn)

    def close(self) -> None:
        self._inner.close()


def new_account(dc: SambaDC, group: str = "SOHO-Supervisors") -> str:
    """A fresh account in ``group`` (AD locks an account after its lockout threshold of guesses, so each run needs
    its own). A supervisor may sign in with a password alone, so guesses without a certificate reach the directory
    (`parallel_wrong_passwords` imports the policy that says so); an agent's are refused before any bind."""
    sam = f"guess-{uuid.uuid4().hex[:8]}"
    conn = dc.admin()
    assert conn.add(user_dn(sam), attributes={
        "objectClass": ["user"], "sAMAccountName": sam, "userPrincipalName": f"{sam}@soho.test",
        "unicodePwd": f'"{samba.PASSWORD}"'.encode("utf-16-le"), "userAccountControl": "512",
    }), conn.result  # fmt: skip
    assert conn.modify(group_dn(group), {"member": [("MODIFY_ADD", [user_dn(sam)])]}), conn.result
    conn.unbind()
    return sam


def bad_password_count(dc: SambaDC, sam: str) -> int:
    conn = dc.admin()
    conn.search(user_dn(sam), "(objectClass=*)", BASE, attributes=["badPwdCount"])
    count = int(conn.response[0]["attributes"].get("badPwdCount") or 0)
    conn.unbind()
    return count


@dataclass(frozen=True)
class Outcome:
    binds: int
    """Guesses that reached the directory, as counted by the wrapper."""
    refusals: Counter[str]
    """Audit reason of each of the parallel sign-ins."""


def parallel_wrong_passwords(
    engine: Engine, directory: Directory, sam: str, limits: ThrottleLimits, guesses: int = 50
) -> Outcome:
    """``guesses`` threads released at once, each a whole ``sessions.login`` with a wrong password for ``sam``
    (spelled in turn as the name, upper case and ``SOHO\\\\name``), each from its own address and committing its
    own transaction as a request does."""
    with session_scope(engine) as db:
        import_policy(db, samba.policy_by_dn(), actor="guess-test", source="", now=datetime.now(UTC))
    counting = CountingDirectory(directory)
    services = LoginServices(counting, None, HttpRevocationChecker(), limits, "guess-test", adopt_legacy_rows)
    spellings = [sam, sam.upper(), f"{samba.NETBIOS}\\{sam}"]
    start = threading.Barrier(guesses)

    def guess(i: int) -> str:
        request = LoginRequest(spellings[i % len(spellings)], WRONG, f"198.51.100.{i + 1}")
        start.wait()
        with session_scope(engine) as db:
            try:
                login(db, services, request, datetime.now(UTC))
            except GatewayError as refused:  # LoginFailed, and TooManyAttempts where that is raised on its own
                return str(getattr(refused, "reason", type(refused).__name__))
        return "signed_in"

    with ThreadPoolExecutor(guesses) as pool:
        reasons = Counter(pool.map(guess, range(guesses)))
    return Outcome(counting.binds, reasons)
