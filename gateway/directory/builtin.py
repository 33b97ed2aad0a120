"""The built-in directory of the embedded default: users and groups in one JSON file, argon2 password hashes.

File shape: {"users": {"zhang.wei": {"password_hash": "$argon2id$...", "display_name": "...", "mail": "...",
"phone": "...", "disabled": false, "groups": ["agents"]}}}. A user's DN is their login; groups are plain names.
The login (the file's key) is the person's stable id: the file has no rename, and a sign-in in another case or
with the user's ``upn`` finds the same key (two keys that differ only in case are refused as ambiguous).
Writes go to a temp file then `os.replace`, so a crash never leaves half a file.
"""

import json
import os
import tempfile
import threading
from contextlib import suppress
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.directory import errors
from gateway.directory.interface import Account, DirectoryUser, Group
from gateway.directory.logins import check_credentials, check_login, check_password
from gateway.directory.settings import DirectorySettings
from gateway.directory.states import AccountState

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
"""argon2id at OWASP's minimum (Password Storage Cheat Sheet: 19 MiB, 2 passes, 1 lane). argon2-cffi's default
(RFC 9106's second recommendation: 64 MiB, 3 passes, 4 lanes) took 146 ms a check on a quiet machine here, most of
the sign-in's server time, and 520–550 ms under load against 59–72 ms for this one. Sign-ins are throttled per
person and per address, so the cost guards the file against offline guessing, where OWASP's minimum is the bar. A
hash made with other parameters still verifies and is made again with these at the person's next right password
(`_rehash_if_outdated`)."""
# Verified against when the login does not exist, so both answers take the same time.
_DUMMY_HASH = _hasher.hash("not a real password")
PERSON_ID_PREFIX = "builtin:"


def password_hash(password: str) -> str:
    """What the built-in directory's file stores for `password` (an argon2id hash with its parameters)."""
    return _hasher.hash(password)


def person_id(login: str) -> str:
    """The built-in directory's id of a person: its key, marked so it never equals an AD or OpenLDAP id."""
    return PERSON_ID_PREFIX + login


def _upn_folded(record: dict[str, Any]) -> tuple[str, ...]:
    upn = record.get("upn")
    return (upn.casefold(),) if upn else ()


class BuiltinDirectory:
    """The `Directory` kept in a local JSON file."""

    def __init__(self, settings: DirectorySettings) -> None:
        if settings.builtin_file is None:
            raise errors.DirectoryMisconfigured("the built-in directory needs builtin_file")
        self._path = Path(settings.builtin_file)
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Any]:
        if not self._path.exists():
            return {"users": {}}
        try:
            data: dict[str, Any] = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise errors.DirectoryMisconfigured(f"cannot read {self._path}: {exc}") from None
        return data

    def _save(self, data: dict[str, Any]) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".directory-")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, ensure_ascii=False, indent=2, sort_keys=True)
        os.replace(tmp, self._path)

    def _user(self, login: str, record: dict[str, Any]) -> DirectoryUser:
        groups = tuple(sorted(Group(name, name) for name in record.get("groups", [])))
        return DirectoryUser(
            dn=login,
            login=login,
            person_id=person_id(login),
            upn=record.get("upn"),
            display_name=record.get("display_name"),
            mail=record.get("mail"),
            phone=record.get("phone"),
            groups=groups,
            state=AccountState.DISABLED if record.get("disabled") else AccountState.ACTIVE,
        )

    def add_user(self, login: str, password: str, groups: list[str] | None = None, **details: str | bool) -> None:
        """Create or replace a user (details: upn, display_name, mail, phone, disabled)."""
        login = check_credentials(login, password)
        with self._lock:
            data = self._load()
            data["users"][login] = {"password_hash": password_hash(password), "groups": groups or [], **details}
            self._save(data)

    def set_disabled(self, login: str, disabled: bool) -> None:
        """Disable or enable an account, keeping its password and groups."""
        with self._lock:
            data = self._load()
            record = data["users"].get(login)
            if record is None:
                raise errors.AccountNotFound("no such user in the built-in directory")
            record["disabled"] = disabled
            self._save(data)

    def _key(self, users: dict[str, Any], login: str) -> str:
        """The file's key for any spelling of a login: the key itself, or its UPN, in any case. A user without a UPN
        has none to match: an empty login matched the one such user (`lookup`, which takes a name as typed)."""
        if login in users:
            return login
        folded = login.casefold()
        keys = [k for k, r in users.items() if folded in (k.casefold(), *_upn_folded(r))]
        if len(keys) != 1:
            raise errors.AccountNotFound(f"{len(keys)} built-in users match the login")
        return keys[0]

    def find_account(self, login: str) -> Account:
        users = self._load()["users"]
        key = self._key(users, check_login(login))
        return Account(person_id=person_id(key), dn=key, name=key, upn=users[key].get("upn"))

    def verify(self, account: Account, password: str) -> DirectoryUser:
        check_password(password)
        record = self._load()["users"].get(account.dn)
        try:
            _hasher.verify(record["password_hash"] if record else _DUMMY_HASH, password)
            matched = record is not None
        except (VerificationError, InvalidHashError):
            matched = False
        if record is None:
            raise errors.AccountNotFound("no such user in the built-in directory")
        if not matched:
            raise errors.WrongPassword("password does not match")
        self._rehash_if_outdated(account.dn, record["password_hash"], password)
        user = self._user(account.dn, record)
        refusal = user.refusal()
        if refusal:
            raise refusal
        return user

    def _rehash_if_outdated(self, login: str, verified_hash: str, password: str) -> None:
        """Store the just-verified password under today's parameters if its hash has others; unchanged if the
        file changed meanwhile (a new password set by an administrator wins)."""
        if not _hasher.check_needs_rehash(verified_hash):
            return
        with self._lock:
            data = self._load()
            record = data["users"].get(login)
            if record is not None and record.get("password_hash") == verified_hash:
                record["password_hash"] = password_hash(password)
                self._save(data)

    def authenticate(self, login: str, password: str) -> DirectoryUser:
        check_password(password)
        try:
            account = self.find_account(login)
        except errors.AccountNotFound:
            self.spend_a_verification(password)
            raise
        return self.verify(account, password)

    @staticmethod
    def spend_a_verification(password: str) -> None:
        """Take as long as a password check, so an unknown name is not told apart from a wrong password by time."""
        with suppress(VerificationError, InvalidHashError):
            _hasher.verify(_DUMMY_HASH, password)

    def lookup(self, login_or_dn: str) -> DirectoryUser:
        users = self._load()["users"]
        key = self._key(users, login_or_dn.strip())
        return self._user(key, users[key])

    def lookup_person(self, person_id: str) -> DirectoryUser:
        """The key is the id here (a built-in user is never renamed): `lookup` of the key ``person_id`` marks."""
        users = self._load()["users"]
        key = person_id.removeprefix(PERSON_ID_PREFIX)
        if not person_id.startswith(PERSON_ID_PREFIX) or key not in users:
            raise errors.AccountNotFound("no built-in user has this id")
        return self._user(key, users[key])

    def _change_group(self, user_dn: str, group_dn: str, add: bool) -> None:
        with self._lock:
            data = self._load()
            record = data["users"].get(user_dn)
            if record is None:
                raise errors.AccountNotFound("no such user in the built-in directory")
            groups = set(record.get("groups", []))
            record["groups"] = sorted(groups | {group_dn} if add else groups - {group_dn})
            self._save(data)

    def add_to_group(self, user_dn: str, group_dn: str) -> None:
        self._change_group(user_dn, group_dn, add=True)

    def remove_from_group(self, user_dn: str, group_dn: str) -> None:
        self._change_group(user_dn, group_dn, add=False)

    def close(self) -> None:
        """Nothing is held open."""
