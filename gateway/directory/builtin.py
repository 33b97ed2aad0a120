"""The built-in directory of the embedded default: users and groups in one JSON file, argon2 password hashes.

File shape: {"users": {"zhang.wei": {"password_hash": "$argon2id$...", "display_name": "...", "mail": "...",
"phone": "...", "disabled": false, "groups": ["agents"]}}}. A user's DN is their login; groups are plain names.
Writes go to a temp file then `os.replace`, so a crash never leaves half a file.
"""

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.directory import errors
from gateway.directory.interface import DirectoryUser, Group
from gateway.directory.logins import check_credentials
from gateway.directory.settings import DirectorySettings
from gateway.directory.states import AccountState

_hasher = PasswordHasher()
# Verified against when the login does not exist, so both answers take the same time.
_DUMMY_HASH = _hasher.hash("not a real password")


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
            data["users"][login] = {"password_hash": _hasher.hash(password), "groups": groups or [], **details}
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

    def authenticate(self, login: str, password: str) -> DirectoryUser:
        login = check_credentials(login, password)
        record = self._load()["users"].get(login)
        try:
            _hasher.verify(record["password_hash"] if record else _DUMMY_HASH, password)
            matched = record is not None
        except (VerificationError, InvalidHashError):
            matched = False
        if record is None:
            raise errors.AccountNotFound("no such user in the built-in directory")
        if not matched:
            raise errors.WrongPassword("password does not match")
        user = self._user(login, record)
        refusal = user.refusal()
        if refusal:
            raise refusal
        return user

    def lookup(self, login_or_dn: str) -> DirectoryUser:
        record = self._load()["users"].get(login_or_dn)
        if record is None:
            raise errors.AccountNotFound("no such user in the built-in directory")
        return self._user(login_or_dn, record)

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
