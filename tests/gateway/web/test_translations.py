"""Every string a page shows exists in English and in Chinese."""

import re
from pathlib import Path

from gateway.directory import errors as directory_errors
from gateway.web.i18n import catalog

TEMPLATES = Path(__file__).resolve().parents[3] / "gateway" / "web" / "templates"
KEY_IN_TEMPLATE = re.compile(r"""\bt\(\s*["']([a-z0-9_.\-]+)["']""")


def test_both_catalogs_have_the_same_keys() -> None:
    english, chinese = set(catalog("en")), set(catalog("zh-CN"))
    assert english - chinese == set(), "missing in zh-CN"
    assert chinese - english == set(), "missing in en"


def test_every_key_a_template_uses_is_translated() -> None:
    found = {key for page in TEMPLATES.glob("*.html") for key in KEY_IN_TEMPLATE.findall(page.read_text())}
    used = {key for key in found if not key.endswith(".")}  # "nav." ~ role: a prefix completed at run time
    assert used, "no t() call found: the pattern is wrong"
    assert used - set(catalog("en")) == set()


def test_every_directory_refusal_has_a_message_in_both_languages() -> None:
    reasons = {
        cls.audit_reason
        for cls in vars(directory_errors).values()
        if isinstance(cls, type) and issubclass(cls, directory_errors.DirectoryError)
    }
    for language in ("en", "zh-CN"):
        assert {f"reason.{reason}" for reason in reasons} - set(catalog(language)) == set()
