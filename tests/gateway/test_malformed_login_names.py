"""A name no account can have (too long, a control character, empty) is "no such account" where a person names an
account for the gateway to find, not "the directory cannot be asked": the directory was not the problem, the name
was. Found by posting a 300-character login to the enrolment-code and standby forms (503 and "try again in a
minute" before)."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from gateway.db import session_scope
from gateway.directory import BuiltinDirectory, DirectorySettings
from gateway.directory.errors import AccountNotFound
from gateway.enrollment.errors import InvalidApplication
from gateway.enrollment.handoff import find_person
from gateway.errors import NotFound
from gateway.sessions.enrolment_codes import find_account
from gateway.supervision.errors import SurgeRefused
from gateway.supervision.surge import set_standby

NAMES_NO_ACCOUNT_CAN_HAVE = ["x" * 300, "tab\there", " "]


@pytest.fixture
def directory(tmp_path: Path) -> BuiltinDirectory:
    built_in = BuiltinDirectory(DirectorySettings(kind="builtin", builtin_file=tmp_path / "users.json"))
    built_in.add_user("zhang.wei", "Correct-Horse-1", groups=["agents"])
    return built_in


@pytest.mark.parametrize("name", NAMES_NO_ACCOUNT_CAN_HAVE)
def test_an_enrolment_code_for_such_a_name_is_not_found(directory: BuiltinDirectory, name: str) -> None:
    with pytest.raises(NotFound, match="no account is named"):
        find_account(directory, name)


@pytest.mark.parametrize("name", NAMES_NO_ACCOUNT_CAN_HAVE)
def test_an_application_for_such_a_name_names_no_account(directory: BuiltinDirectory, name: str) -> None:
    with pytest.raises(InvalidApplication, match="is not an account in the directory"):
        find_person(directory, name)


@pytest.mark.parametrize("name", NAMES_NO_ACCOUNT_CAN_HAVE)
def test_a_standby_agent_of_such_a_name_is_no_account(directory: BuiltinDirectory, engine: Engine, name: str) -> None:
    with session_scope(engine) as db, pytest.raises(SurgeRefused) as refused:
        set_standby(
            db,
            name,
            "someone@corp.example",
            None,
            supervisor="sup1",
            source="127.0.0.1",
            now=datetime.now(UTC),
            directory=directory,
        )
    assert refused.value.key == "surge_unknown_login"


def test_a_blank_name_is_no_user_of_the_built_in_directory(directory: BuiltinDirectory) -> None:
    """Its one user without a UPN was the user a blank name looked up (an empty name matched the missing UPN): an HR
    application started for a blank login named them."""
    with pytest.raises(AccountNotFound):
        directory.lookup(" ")
