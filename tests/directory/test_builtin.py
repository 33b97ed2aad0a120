"""The built-in directory of the embedded default: a JSON file with argon2 hashes."""

import json
from pathlib import Path

import pytest
from argon2 import PasswordHasher, Type, extract_parameters
from argon2.profiles import RFC_9106_LOW_MEMORY

from gateway.directory import AccountState, BuiltinDirectory, DirectorySettings
from gateway.directory import errors as e
from gateway.directory.builtin import password_hash


@pytest.fixture
def directory(tmp_path: Path) -> BuiltinDirectory:
    settings = DirectorySettings(kind="builtin", builtin_file=tmp_path / "users.json")
    built_in = BuiltinDirectory(settings)
    built_in.add_user("zhang.wei", "Correct-Horse-1", groups=["agents"], display_name="张伟", phone="+86 571 1")
    built_in.add_user("off.duty", "Correct-Horse-1", disabled=True)
    return built_in


def test_right_password_logs_in_with_groups(directory: BuiltinDirectory) -> None:
    user = directory.authenticate("zhang.wei", "Correct-Horse-1")
    assert (user.display_name, [g.name for g in user.groups]) == ("张伟", ["agents"])


def test_password_is_stored_as_argon2_hash(directory: BuiltinDirectory, tmp_path: Path) -> None:
    stored = json.loads((tmp_path / "users.json").read_text())["users"]["zhang.wei"]
    assert stored["password_hash"].startswith("$argon2id$")
    assert "Correct-Horse-1" not in (tmp_path / "users.json").read_text()


@pytest.mark.parametrize(
    ("login", "password", "error"),
    [
        ("zhang.wei", "wrong", e.WrongPassword),
        ("nobody", "Correct-Horse-1", e.AccountNotFound),
        ("off.duty", "Correct-Horse-1", e.AccountDisabled),
        ("zhang.wei", "", e.EmptyPassword),
        ("zhang\x00wei", "Correct-Horse-1", e.MalformedLogin),
    ],
)
def test_refusals(directory: BuiltinDirectory, login: str, password: str, error: type[e.LoginRefused]) -> None:
    with pytest.raises(error):
        directory.authenticate(login, password)


def test_disabled_user_is_reported_by_lookup(directory: BuiltinDirectory) -> None:
    assert directory.lookup("off.duty").state is AccountState.DISABLED


def test_group_changes_persist_in_the_file(directory: BuiltinDirectory, tmp_path: Path) -> None:
    directory.add_to_group("zhang.wei", "hr")
    reopened = BuiltinDirectory(DirectorySettings(kind="builtin", builtin_file=tmp_path / "users.json"))
    assert {g.name for g in reopened.lookup("zhang.wei").groups} == {"agents", "hr"}
    reopened.remove_from_group("zhang.wei", "agents")
    assert {g.name for g in directory.lookup("zhang.wei").groups} == {"hr"}


def test_passwords_are_hashed_at_owasps_argon2id_minimum_or_above(directory: BuiltinDirectory, tmp_path: Path) -> None:
    stored = json.loads((tmp_path / "users.json").read_text())["users"]["zhang.wei"]["password_hash"]
    parameters = extract_parameters(stored)
    assert parameters.type is Type.ID
    assert parameters.memory_cost >= 19 * 1024 and parameters.time_cost >= 2 and parameters.parallelism >= 1


def _write_hash(path: Path, login: str, hashed: str) -> None:
    data = json.loads(path.read_text())
    data["users"][login]["password_hash"] = hashed
    path.write_text(json.dumps(data))


def test_a_hash_with_older_parameters_verifies_and_is_made_again_at_the_right_password(
    directory: BuiltinDirectory, tmp_path: Path
) -> None:
    path = tmp_path / "users.json"
    older = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY).hash("Correct-Horse-1")  # argon2-cffi's old default
    _write_hash(path, "zhang.wei", older)

    with pytest.raises(e.WrongPassword):
        directory.authenticate("zhang.wei", "wrong")
    assert json.loads(path.read_text())["users"]["zhang.wei"]["password_hash"] == older, "a wrong guess changes nothing"

    assert directory.authenticate("zhang.wei", "Correct-Horse-1").login == "zhang.wei"
    renewed = json.loads(path.read_text())["users"]["zhang.wei"]["password_hash"]
    assert renewed != older
    assert extract_parameters(renewed) == extract_parameters(password_hash("anything"))
    assert directory.authenticate("ZHANG.WEI", "Correct-Horse-1").login == "zhang.wei", "the new hash verifies"
    assert json.loads(path.read_text())["users"]["zhang.wei"]["password_hash"] == renewed, "made again only once"


def test_a_person_is_found_by_their_id_and_nobody_by_another(directory: BuiltinDirectory) -> None:
    person_id = directory.find_account("zhang.wei").person_id
    assert directory.lookup_person(person_id).login == "zhang.wei"
    for unknown in ("zhang.wei", person_id + "x", person_id.replace("zhang.wei", "off.duty").upper()):
        with pytest.raises(e.AccountNotFound):
            directory.lookup_person(unknown)
