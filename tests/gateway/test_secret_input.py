"""`sohogw` takes secrets from a file or standard input, never as arguments (anyone may read /proc/PID/cmdline)."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import cli
from gateway.directory import BuiltinDirectory
from gateway.settings import get_settings


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("SOHOGW_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_user_add_reads_the_password_from_standard_input(data_dir: Path) -> None:
    result = CliRunner().invoke(
        cli, ["user", "add", "li.wei", "--group", "SOHO-Agents", "--password-file", "-"], "S3cret pass\n"
    )
    assert result.exit_code == 0, result.output
    directory = BuiltinDirectory(get_settings().directory_settings)
    assert directory.authenticate("li.wei", "S3cret pass").groups


def test_user_add_reads_the_password_from_a_file(data_dir: Path) -> None:
    secret = data_dir / "password"
    secret.write_text("from-a-file\n")
    result = CliRunner().invoke(cli, ["user", "add", "zhang", "--password-file", str(secret)])
    assert result.exit_code == 0, result.output
    BuiltinDirectory(get_settings().directory_settings).authenticate("zhang", "from-a-file")


def test_a_password_given_as_an_argument_is_refused_and_no_account_is_made(data_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["user", "add", "wang", "--password", "in-argv"])
    assert result.exit_code == 2 and "--password" in result.output
    assert not get_settings().directory_settings.builtin_file.exists()


def test_an_empty_password_is_refused(data_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["user", "add", "wang", "--password-file", "-"], "\n")
    assert result.exit_code != 0 and "needs a password" in result.output
