"""Settings that would open a door are refused at start-up, with a message naming the setting and never its value."""

from pathlib import Path

import pytest

from gateway.settings import CONFIG_ENV, SettingsError, load_settings


def _config(tmp_path: Path, text: str, mode: int, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "sohogw.toml"
    path.write_text(text)
    path.chmod(mode)
    monkeypatch.setenv(CONFIG_ENV, str(path))
    return path


def test_world_readable_config_file_holding_a_secret_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, '[ca]\npassphrase = "the-ca-passphrase"\n[supervision.mail]\nhost = "smtp"\n', 0o644, monkeypatch)
    with pytest.raises(SettingsError, match=r"holds secrets \(ca.passphrase\) and is readable by every") as refused:
        load_settings(data_dir=tmp_path)
    assert "the-ca-passphrase" not in str(refused.value)


def test_nested_secret_in_a_world_readable_config_file_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, '[supervision.mail]\npassword = "smtp-password"\n', 0o604, monkeypatch)
    with pytest.raises(SettingsError, match=r"supervision.mail.password"):
        load_settings(data_dir=tmp_path)


def test_private_config_file_with_secrets_and_public_one_without_are_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, '[ca]\npassphrase = "the-ca-passphrase"\n', 0o640, monkeypatch)
    assert load_settings(data_dir=tmp_path).ca.read_passphrase() == "the-ca-passphrase"
    _config(tmp_path, '[ca]\norganization = "Corp"\n', 0o644, monkeypatch)
    assert load_settings(data_dir=tmp_path).ca.organization == "Corp"


@pytest.mark.parametrize("secret", ["", "short"])
def test_empty_or_short_platform_secret_is_refused(tmp_path: Path, secret: str) -> None:
    with pytest.raises(SettingsError, match=r"supervision.platform_secret .*at least 16 characters"):
        load_settings(data_dir=tmp_path, supervision={"platform_secret": secret})


def test_proxy_trusted_by_its_address_is_refused_with_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"trusted_proxies is gone: .*portal.proxy_secret"):
        load_settings(data_dir=tmp_path, portal={"trusted_proxies": ["127.0.0.1/32"]})


def test_short_proxy_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"portal.proxy_secret .*at least 32 characters"):
        load_settings(data_dir=tmp_path, portal={"proxy_secret": "guessable"})


def test_proxy_secret_without_the_proxys_addresses_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"proxy_secret needs proxy_addresses"):
        load_settings(data_dir=tmp_path, portal={"proxy_secret": "x" * 32})
