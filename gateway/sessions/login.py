"""A login, as data flowing through: certificate → directory → policy → second factor → a home session.

Every refusal is counted for throttling and audited with its own reason; the person sees a message they can act
on (in their language, by the reason code). Directory calls block; routes run this in a worker thread.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from ldap3.core.exceptions import LDAPInvalidDnError
from sqlmodel import Session

from certs.authority import Authority
from certs.errors import CertificateError
from certs.identity import CertificateIdentity
from certs.revocation import HttpRevocationChecker
from gateway.audit.service import AuditEntry, record
from gateway.db import engine_of, session_scope
from gateway.directory import Account, Directory, DirectoryUser, group_identifiers
from gateway.directory.errors import AccountNotFound, DirectoryError, LoginRefused
from gateway.directory.logins import check_password, normalized_dn
from gateway.errors import GatewayError
from gateway.events import nudge_after_commit
from gateway.pki.trust import VerifiedClient, verify_client
from gateway.policies.service import AssumedPolicy, assumed_policy, effective_policy
from gateway.sessions import recovery_codes, throttle, totp
from gateway.sessions.certificate_refusal import certificate_refusal
from gateway.sessions.errors import LoginFailed, SecondFactorRefused, TooManyAttempts
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import (
    SESSION_STARTED,
    audit_opening,
    end_replaced_sessions,
    new_home_session,
    open_session,
    open_session_under,
    rotate_token,
)
from policy import EffectivePolicy, in_shift


@dataclass(frozen=True)
class LoginRequest:
    login: str
    password: str
    source_ip: str
    user_agent: str = ""
    client_cert: x509.Certificate | None = None
    presented_chain: tuple[x509.Certificate, ...] = ()


LegacyAdoption = Callable[[Session, HomeSession, DirectoryUser, datetime], None]
"""Adopts, at a person's sign-in, the rows migrations could not give a person (audited; a no-op once none is left)."""


@dataclass(frozen=True)
class LoginServices:
    """What a login needs from outside the database."""

    directory: Directory
    authority: Authority | None
    revocation: HttpRevocationChecker
    limits: throttle.ThrottleLimits
    node: str
    adopt_legacy: LegacyAdoption
    """Gives the person the rows migrations left under ``legacy:<name>`` (`gateway.adoption.adopt_legacy_rows`,
    passed in by the app: it walks other domains' tables, which this one does not import)."""


@dataclass(frozen=True)
class LoginResult:
    session: HomeSession
    token: str
    effective: EffectivePolicy

    @property
    def needs_second_factor(self) -> bool:
        return self.session.state is SessionState.PENDING_SECOND_FACTOR


@dataclass
class _Attempt:
    """One sign-in on its way through the steps, and what each refusal of it records: the name as typed, whether a
    certificate came, its serial once checked, and the person once the account is found."""

    db: Session
    services: LoginServices
    request: LoginRequest
    now: datetime
    detail: dict[str, object]
    account: Account | None = None

    def refuse(self, error: LoginFailed, **detail: object) -> NoReturn:
        """Count the failure (alert rules), audit it with the person beside the name, and raise it. The failure is
        counted on the account's own name once it is found, so every spelling of one person adds to one count."""
        request = self.request
        name = self.account.name if self.account else request.login
        throttle.record_failure(self.db, name, request.source_ip, self.now, error.reason)
        record(
            self.db,
            actor=(self.account.name if self.account else request.login)[:255],
            source=request.source_ip,
            action="session.login",
            outcome=error.reason,
            detail={**self.detail, **detail, "person": self.account.person_id if self.account else None},
        )
        raise error

    def directory_failed(self, error: DirectoryError) -> NoReturn:
        """The directory could not answer: reported and audited, not counted against the person."""
        record(
            self.db,
            actor=self.request.login[:255],
            source=self.request.source_ip,
            action="session.login",
            outcome=error.audit_reason,
            detail={**self.detail, "problem": str(error)},
        )
        raise LoginFailed(error.user_message, error.audit_reason, error.http_status) from None


def _certificate(db: Session, services: LoginServices, request: LoginRequest, now: datetime) -> VerifiedClient:
    if services.authority is None:
        raise LoginFailed("the gateway's certificate authority is not ready", "ca_not_ready", 503)
    assert request.client_cert is not None
    return verify_client(
        db, services.authority, request.client_cert, now, services.revocation, list(request.presented_chain)
    )


def _certificate_detail(cert: x509.Certificate, error: CertificateError) -> dict[str, object]:
    """For the audit row: which certificate was refused and the library's full reason (URLs, errors included)."""
    return {
        "certificate_subject": cert.subject.rfc4514_string()[:255],
        "certificate_issuer": cert.issuer.rfc4514_string()[:255],
        "certificate_serial": f"{cert.serial_number:X}",
        "problem": str(error)[:1000],
    }


def certificate_matches(identity: CertificateIdentity, account: Account) -> bool:
    """The certificate names the account the typed name found.

    UPN first: a certificate carrying a UPN belongs only to the account with that UPN (its own, or on AD the implicit
    ``name@<DNS domain>``), whatever its CN says; only when the directory knows no UPN for the account (a built-in
    user without one, OpenLDAP without ``upn_attribute``) is it judged by its subject. Then an AD CS subject that is
    the account's full DN, or a CN equal to the account name or UPN (case-insensitive)."""
    upns = {upn.casefold() for upn in (account.upn, account.implicit_upn) if upn}
    if identity.upn and upns:
        return identity.upn.casefold() in upns
    if identity.subject and _same_dn(identity.subject, account.dn):
        return True
    names = {n.casefold() for n in (account.sam_account_name, account.name, account.upn) if n}
    return bool(identity.common_name) and identity.common_name.casefold() in names  # type: ignore[union-attr]


def _same_dn(subject: str, dn: str) -> bool:
    """Whether a certificate subject is the directory DN (RDN by RDN, escapes and case folded)."""
    if "=" not in dn:
        return False  # the built-in directory's "DN" is a bare name
    try:
        return normalized_dn(subject) == normalized_dn(dn)
    except LDAPInvalidDnError:
        return False


def _find_account(attempt: _Attempt) -> Account | None:
    """The account any spelling of the typed name belongs to, or None for a name no account has (which never
    reaches a bind: refused as a certificate that is not its own, or without one as anyone whose policy asks for
    one, the answers a known name gets there too)."""
    try:
        check_password(attempt.request.password)
        return attempt.services.directory.find_account(attempt.request.login)
    except AccountNotFound:
        return None
    except LoginRefused as error:
        attempt.refuse(LoginFailed(error.user_message, error.audit_reason))
    except DirectoryError as error:
        attempt.directory_failed(error)


def _reserve(attempt: _Attempt, *, person: Account | None, source: bool) -> list[tuple[str, int]]:
    """Reserve this guess on the person and the source address, or on one of them, before any bind; returns the
    keys reserved on. A full count is audited but not counted again. A name no account has is never reserved on:
    it is refused before any password is tried."""
    limits, request, account = attempt.services.limits, attempt.request, attempt.account
    keys = [(throttle.person_key(person.person_id), limits.per_account)] if person else []
    keys += [(throttle.source_key(request.source_ip), limits.per_source)] if source else []
    minutes = int(limits.window.total_seconds() // 60)
    try:
        throttle.reserve(
            attempt.db, keys, attempt.now, limits, f"too many failed sign-ins; wait {minutes} minutes and try again"
        )
    except TooManyAttempts as error:
        record(
            attempt.db,
            actor=(account.name if account else request.login)[:255],
            source=request.source_ip,
            action="session.login",
            outcome=error.reason,
            detail={**attempt.detail, "person": account.person_id if account else None},
        )
        raise LoginFailed(error.message, error.reason, error.status_code) from None
    return keys


def _matched_certificate(attempt: _Attempt, certificate: x509.Certificate) -> tuple[Account, CertificateIdentity]:
    """The found account and the presented certificate's identity, once chain, validity and revocation hold and the
    certificate names that account; else refused before the password goes anywhere.

    Matched before the bind, so the holder of one valid certificate (their own) can neither try another person's
    password against the directory nor spend that person's attempts or AD's bad-password count. A name no account
    has is refused as a certificate that is not its own, as a known name is: both take a lookup and the certificate
    check and no bind, so neither answer nor time tells the holder whether a name exists (answering it as a wrong
    password would, since a known name's mismatch is said as one). The certificate's own refusals come first and
    never depend on the name. Nothing is reserved on the throttle for these refusals: no password was tried, and a
    count on the person would let anyone with a certificate lock them out."""
    try:
        verified = _certificate(attempt.db, attempt.services, attempt.request, attempt.now)
    except CertificateError as error:
        refusal = certificate_refusal(error, certificate)
        attempt.refuse(
            LoginFailed(refusal.message, refusal.reason, values=refusal.values),
            **_certificate_detail(certificate, error),
        )
    identity = verified.identity
    attempt.detail["certificate_serial"] = f"{identity.serial:X}"
    account = attempt.account
    if account is None or not certificate_matches(identity, account) or not _bound_to(verified, account):
        mismatch = LoginFailed("the certificate belongs to another account", "certificate_mismatch")
        attempt.refuse(mismatch, certificate_upn=identity.upn, certificate_person=verified.person_id)
    return account, identity


def _bound_to(verified: VerifiedClient, account: Account) -> bool:
    """The person our register binds the certificate to is the account's (or it is bound to nobody: a company CA's
    certificate, or one of ours from before binding). Names alone could be another person's: a UPN given to a new
    account after its holder left, or written on a certificate for a colleague's request; the directory id cannot."""
    return verified.person_id is None or verified.person_id == account.person_id


def _bind(attempt: _Attempt, account: Account) -> DirectoryUser:
    """The one bind with the password, to the found account's entry: its state and groups."""
    try:
        return attempt.services.directory.verify(account, attempt.request.password)
    except LoginRefused as error:
        attempt.refuse(LoginFailed(error.user_message, error.audit_reason))
    except DirectoryError as error:
        attempt.directory_failed(error)


def _certificate_missing() -> LoginFailed:
    return LoginFailed("a client certificate is required; import yours into the browser", "certificate_missing")


def _outside_shift(effective: EffectivePolicy, now: datetime) -> LoginFailed | None:
    shift = in_shift(effective, now)
    if shift.restricted and not shift.inside:
        return LoginFailed("you are outside your shift; sign in when it starts", "outside_shift")
    return None


def _refuse_outside_shift(attempt: _Attempt, effective: EffectivePolicy, **detail: object) -> None:
    refusal = _outside_shift(effective, attempt.now)
    if refusal is not None:
        attempt.refuse(refusal, **detail)


def _without_certificate(attempt: _Attempt) -> Account:
    """With no client certificate, refuse before the password goes to the directory whoever's policy asks for one,
    or whose shift has not begun: judged on the groups the service account reads (as re-validation does). A refusal
    after the bind would tell a guesser that the password was right, and spend the person's attempts. Returns the
    account the password may then be tried on.

    A name no account has and an account in no policy group have no role, and the policy requires a certificate of
    a person without a role (it fails closed): they get the answer an agent gets. `_admit` checks again on the
    groups the bind reads."""
    groups: list[str] = []
    if attempt.account is not None:
        try:
            groups = group_identifiers(attempt.services.directory.lookup(attempt.account.dn).groups)
        except AccountNotFound:
            pass  # removed since it was found: no role
        except DirectoryError as error:
            attempt.directory_failed(error)
    # The policy is read on a connection given back at once: the request's session takes none before the person's
    # reservation, which needs one of its own (many sign-ins at once would hold the pool's and wait for more).
    with session_scope(engine_of(attempt.db)) as own:
        effective = effective_policy(own, groups, attempt.now)
    judged = {"judged": "before_password", "roles": sorted(effective.roles)}
    if effective.require_client_certificate or attempt.account is None:
        attempt.refuse(_certificate_missing(), **judged)
    _refuse_outside_shift(attempt, effective, **judged)
    return attempt.account


def _refusal(effective: EffectivePolicy, identity: CertificateIdentity | None, now: datetime) -> LoginFailed | None:
    """What `_admit` refuses a person whose bind read these groups: no role, no certificate where the policy asks for
    one, or outside their shift; None to let them in."""
    if not effective.roles:
        return LoginFailed("your account is not in any SOHO group; ask your supervisor", "no_role")
    if identity is None and effective.require_client_certificate:
        return _certificate_missing()
    return _outside_shift(effective, now)


def _admit(attempt: _Attempt, user: DirectoryUser, identity: CertificateIdentity | None) -> EffectivePolicy:
    """The person's effective policy, once the policy gives them a role, has their certificate if it asks for one,
    and their shift has begun. The certificate was matched before the bind: the words that can follow a right
    password (no role, outside the shift) reach only the holder of the account's own certificate, who needs them;
    without a certificate they were decided before the bind."""
    effective = effective_policy(attempt.db, group_identifiers(user.groups), attempt.now)
    refusal = _refusal(effective, identity, attempt.now)
    if refusal is not None:
        attempt.refuse(refusal)
    return effective


def login(db: Session, services: LoginServices, request: LoginRequest, now: datetime) -> LoginResult:
    """Check everything, in the order that leaks least and costs the directory least; open the session.

    The account is found first (as the service account: no guess), then the certificate is checked and matched to
    it (`_matched_certificate`), then an attempt is reserved on the person and the source address, and only then is
    the password sent, in the one bind: the holder of another certificate can neither test the person's password
    nor lock them out. Without a certificate, the attempt is reserved on the address alone until the policy is
    known to let a password alone in (`_without_certificate`): a caller without the certificate can neither test
    the password of someone who needs one nor lock them out."""
    attempt = _Attempt(
        db, services, request, now, {"login": request.login[:255], "certificate": bool(request.client_cert)}
    )
    attempt.account = _find_account(attempt)
    identity: CertificateIdentity | None = None
    if request.client_cert is None:
        reserved = _reserve(attempt, person=None, source=True)
        account = _without_certificate(attempt)
        reserved += _reserve(attempt, person=account, source=False)
    else:
        account, identity = _matched_certificate(attempt, request.client_cert)
        reserved = _reserve(attempt, person=account, source=True)
    user = _bind(attempt, account)
    # Admitted under the policy version this process read last, the session's statement confirms that version (one
    # round trip fewer); a refusal, or a version changed since, is judged again on the version read now.
    assumed = assumed_policy(group_identifiers(user.groups), now)
    if assumed is not None and _refusal(assumed.effective, identity, now) is None:
        opened = _open_session(attempt, user, assumed.effective, identity, reserved, assumed)
        if opened is not None:
            return opened
    effective = _admit(attempt, user, identity)
    opened = _open_session(attempt, user, effective, identity, reserved, None)
    assert opened is not None  # nothing to confirm: the row is always written
    return opened


def _open_session(
    attempt: _Attempt,
    user: DirectoryUser,
    effective: EffectivePolicy,
    identity: CertificateIdentity | None,
    reserved: list[tuple[str, int]],
    assumed: AssumedPolicy | None,
) -> LoginResult | None:
    """The home session (waiting for the second factor when the policy asks for one), audited; the attempts of the
    right guess (``reserved``) given back with its row. With ``assumed`` (``effective`` is its evaluation), nothing
    is written and None returned when its version is no longer the newest."""
    db, services, request, now = attempt.db, attempt.services, attempt.request, attempt.now
    # Without a second factor the sign-in is complete: the person's count goes too (else at the second factor).
    given_back = throttle.GiveBack(reserved, None if effective.require_totp else user.person_id)
    session = new_home_session(
        id="",
        token_sha256="",
        csrf_token="",
        state=SessionState.PENDING_SECOND_FACTOR if effective.require_totp else SessionState.ACTIVE,
        person_id=user.person_id,
        login=user.login,
        user_dn=user.dn,
        upn=user.upn,
        display_name=user.display_name,
        roles=",".join(sorted(effective.roles)),
        groups=json.dumps([g.name for g in user.groups], ensure_ascii=False),
        policy_groups=json.dumps(group_identifiers(user.groups), ensure_ascii=False),
        cert_serial=f"{identity.serial:X}" if identity else None,
        cert_issuer=identity.issuer if identity else None,
        cert_fingerprint=identity.fingerprint_sha256 if identity else None,
        cert_not_after=identity.not_after if identity else None,
        wireguard_key=identity.wireguard_public_key if identity else None,
        cert_pem=request.client_cert.public_bytes(serialization.Encoding.PEM).decode() if request.client_cert else None,
        source_ip=request.source_ip,
        user_agent=request.user_agent[:512],
        node=services.node,
        created_at=now,
        last_seen_at=now,
        last_checked_at=now,
        idle_timeout_seconds=int(effective.idle_timeout.total_seconds()),
        expires_at=now + min(effective.max_session, _until_certificate_expires(identity, now)),
    )
    if assumed is None:
        token: str | None = open_session(db, session, give_back=given_back)
    else:
        token = open_session_under(db, session, assumed, give_back=given_back)
    if token is None:
        return None
    services.adopt_legacy(db, session, user, now)
    signed_in = AuditEntry(
        actor=user.login,
        source=request.source_ip,
        action="session.login",
        target=session.id,
        outcome="second_factor_pending" if effective.require_totp else "success",
        detail={**attempt.detail, "roles": session.roles, "person": user.person_id},
    )
    audit_opening(db, session, now, then=signed_in, give_back=given_back)
    return LoginResult(session, token, effective)


def _until_certificate_expires(identity: CertificateIdentity | None, now: datetime) -> timedelta:
    """A session never outlives the certificate it was opened with."""
    return identity.not_after - now if identity else timedelta.max


def _take_over(db: Session, session: HomeSession, now: datetime, *, then: AuditEntry) -> None:
    """Once a session is fully active (second factor included): earlier sessions of the person end, audited before
    ``then``, the step's own event. Not before: a password alone must not throw the agent off (nor, see
    `throttle.give_back`, reset the count that limits second-factor guessing)."""
    end_replaced_sessions(db, session, now, then=then)


@dataclass(frozen=True, slots=True)
class SecondFactorPassed:
    """The session's new cookie token, and the recovery codes made if this sign-in enrolled the second factor
    (shown once, on the "enrolled" page; empty otherwise)."""

    token: str
    recovery_codes: list[str]


def complete_second_factor(
    db: Session, session: HomeSession, code: str, *, limits: throttle.ThrottleLimits, now: datetime
) -> SecondFactorPassed:
    """Verify the TOTP or a recovery code (confirming a new enrolment, which makes fresh recovery codes) and
    activate the session under a new cookie."""
    if session.state is not SessionState.PENDING_SECOND_FACTOR:
        raise GatewayError("this session does not wait for a second factor")
    keys = [(throttle.person_key(session.person_id), limits.per_account)]
    try:
        throttle.reserve(db, keys, now, limits, "too many wrong codes; wait a few minutes and sign in again")
    except TooManyAttempts as error:
        record(
            db,
            actor=session.login,
            source=session.source_ip,
            action="session.second_factor",
            target=session.id,
            outcome=error.reason,
            detail={"person": session.person_id},
        )
        raise
    try:
        enrolled_now = totp.verify(db, session, code, now)
    except SecondFactorRefused as error:
        throttle.record_failure(db, session.login, session.source_ip, now, error.reason)
        record(
            db,
            actor=session.login,
            source=session.source_ip,
            action="session.second_factor",
            target=session.id,
            outcome="refused",
            detail={"person": session.person_id},
        )
        raise
    session.state, session.second_factor, session.last_seen_at = SessionState.ACTIVE, True, now
    token = rotate_token(db, session)
    nudge_after_commit(db, SESSION_STARTED, session.id)  # before the audit rows, which send the nudges
    passed = AuditEntry(
        actor=session.login,
        source=session.source_ip,
        action="session.second_factor",
        target=session.id,
        outcome="success",
        detail={"person": session.person_id},
    )
    _take_over(db, session, now, then=passed)
    # After the person's turn and the chain's lock, the order a sign-in's give-back takes the row in (`audit_opening`).
    throttle.forget(db, session.person_id)
    codes = recovery_codes.replace_codes(db, session, now) if enrolled_now else []
    return SecondFactorPassed(token, codes)
