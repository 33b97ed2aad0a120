"""Number policy with phonenumbers' real metadata; examples come from its own example-number API."""

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from gateway.voice.dialable import check_number, mask
from gateway.voice.errors import NumberRefused
from gateway.voice.settings import VoiceSettings


def example(region: str, kind: int) -> str:
    number = phonenumbers.example_number_for_type(region, kind)
    assert number is not None, f"phonenumbers has no {kind} example for {region}"
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def test_china_mobile_is_accepted_and_normalised_to_e164() -> None:
    accepted = check_number("138 1234 5678", VoiceSettings())
    assert (accepted.e164, accepted.region, accepted.kind) == ("+8613812345678", "CN", "mobile")


def test_china_fixed_line_is_accepted() -> None:
    assert check_number(example("CN", PhoneNumberType.FIXED_LINE), VoiceSettings()).kind == "fixed_line"


@pytest.mark.parametrize(
    ("kind", "words"),
    [(PhoneNumberType.PREMIUM_RATE, "premium-rate"), (PhoneNumberType.SHARED_COST, "shared-cost")],
)
def test_premium_and_shared_cost_numbers_are_refused_even_when_all_types_are_allowed(kind: int, words: str) -> None:
    everything = VoiceSettings(allowed_types=["mobile", "fixed_line", "fixed_line_or_mobile", "toll_free", "voip"])
    with pytest.raises(NumberRefused, match=words):
        check_number(example("CN", kind), everything)


def test_toll_free_is_refused_unless_allowed() -> None:
    toll_free = example("CN", PhoneNumberType.TOLL_FREE)
    with pytest.raises(NumberRefused, match="toll free"):
        check_number(toll_free, VoiceSettings())
    assert check_number(toll_free, VoiceSettings(allowed_types=["toll_free"])).kind == "toll_free"


@pytest.mark.parametrize("short", ["10086", "110", "120"])
def test_short_codes_and_emergency_numbers_are_refused(short: str) -> None:
    with pytest.raises(NumberRefused, match="short codes"):
        check_number(short, VoiceSettings())


@pytest.mark.parametrize("bad", ["+86 138 1234 567", "+86 999 9999 9999", "call me", ""])
def test_numbers_outside_the_numbering_plan_are_refused(bad: str) -> None:
    with pytest.raises(NumberRefused):
        check_number(bad, VoiceSettings())


def test_foreign_numbers_are_refused_unless_their_country_is_allowed() -> None:
    us_mobile = example("US", PhoneNumberType.FIXED_LINE_OR_MOBILE)
    with pytest.raises(NumberRefused, match="numbers in US are not allowed"):
        check_number(us_mobile, VoiceSettings())
    assert check_number(us_mobile, VoiceSettings(allowed_countries=["cn", "us"])).region == "US"


def test_masked_number_keeps_only_prefix_and_last_four_digits() -> None:
    assert mask("+8613812345678") == "+86 138****5678"
    assert "1234" not in mask("+8613812345678")
    assert mask("+861012345678") == "+86 101***5678"
