"""Which numbers the gateway may call: parsing and policy with phonenumbers' real metadata, and masking.

Only numbers that reach one person are allowed: premium rate, shared cost, short codes and emergency or other
special-service numbers are refused whatever the settings say, so a stolen account cannot make the PBX dial a
paid line all shift.
"""

from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from gateway.voice.errors import NumberRefused
from gateway.voice.settings import VoiceSettings

_TYPE_NAMES = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
}
NEVER_ALLOWED = frozenset({"premium_rate", "shared_cost", "pager", "voicemail"})


@dataclass(frozen=True, slots=True)
class DialableNumber:
    e164: str
    region: str
    kind: str


def check_number(raw: str, settings: VoiceSettings, default_region: str | None = None) -> DialableNumber:
    """Parse ``raw`` (E.164, or national in ``default_region``) and apply the policy; raise ``NumberRefused``."""
    region = default_region or (settings.allowed_countries[0] if settings.allowed_countries else None)
    text = raw.strip()
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise NumberRefused("this is not a phone number; enter it as +86 138 1234 5678", "not_a_number") from None
    if phonenumbers.is_emergency_number(text, region or "ZZ") or phonenumbers.is_valid_short_number(parsed):
        raise NumberRefused(
            "short codes and special-service numbers cannot take a callback; give your own line", "special_service"
        )
    if not phonenumbers.is_valid_number(parsed):
        raise NumberRefused("this number does not exist in the numbering plan; check the digits", "invalid")
    number_region = phonenumbers.region_code_for_number(parsed) or ""
    kind = _TYPE_NAMES.get(phonenumbers.number_type(parsed), "unknown")
    if kind in NEVER_ALLOWED:
        raise NumberRefused(
            f"{kind.replace('_', '-')} numbers are never called back; give your own line", "never_called"
        )
    if number_region not in settings.allowed_countries:
        allowed = ", ".join(settings.allowed_countries) or "none"
        raise NumberRefused(
            f"numbers in {number_region or 'this region'} are not allowed (allowed: {allowed})", "foreign"
        )
    if kind not in settings.allowed_types:
        raise NumberRefused(
            f"{kind.replace('_', ' ')} numbers are not allowed here; give a mobile or landline", "outside_policy"
        )
    return DialableNumber(phonenumbers.format_number(parsed, PhoneNumberFormat.E164), number_region, kind)


def mask(e164: str) -> str:
    """``+8613812345678`` → ``+86 138****5678``: enough to recognise one's own number, not to dial it."""
    try:
        parsed = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return "****"
    national = phonenumbers.national_significant_number(parsed)
    keep_tail = 4 if len(national) > 7 else 2
    head = national[:3] if len(national) > 7 else ""
    hidden = "*" * (len(national) - len(head) - keep_tail)
    return f"+{parsed.country_code} {head}{hidden}{national[-keep_tail:]}"
