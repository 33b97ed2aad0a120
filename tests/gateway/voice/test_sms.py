"""The HTTP SMS adapter against a real loopback receiver."""

import pytest
from pydantic import SecretStr

from gateway.notify.sms import HttpSms, SmsNotSent, SmsSettings
from tests.gateway.voice.http_apps import Receiver
from tests.support.server import free_port, serving


def test_message_is_posted_as_json_with_the_configured_fields_and_token() -> None:
    receiver = Receiver()
    with serving(receiver.app) as url:
        settings = SmsSettings(
            url=f"{url}/send",
            to_field="mobile",
            text_field="content",
            extra={"sign": "SOHO"},
            bearer_token=SecretStr("tok-123"),
        )
        HttpSms(settings).send("+8613812345678", "hello")
    headers, _body = receiver.received[0]
    assert receiver.bodies() == [{"mobile": "+8613812345678", "content": "hello", "sign": "SOHO"}]
    assert headers["authorization"] == "Bearer tok-123"


def test_gateway_refusal_is_reported_without_the_text() -> None:
    receiver = Receiver(status=503)
    with serving(receiver.app) as url, pytest.raises(SmsNotSent, match="HTTP 503") as refused:
        HttpSms(SmsSettings(url=url)).send("+8613812345678", "your code is 123456")
    assert "123456" not in refused.value.message


def test_unreachable_or_unconfigured_gateway_is_reported() -> None:
    with pytest.raises(SmsNotSent, match="did not answer"):
        HttpSms(SmsSettings(url=f"http://127.0.0.1:{free_port()}", timeout_seconds=1)).send("+861", "x")
    with pytest.raises(SmsNotSent, match="no SMS gateway is configured"):
        HttpSms(SmsSettings()).send("+861", "x")
