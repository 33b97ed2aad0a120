"""Turning what a person typed into safe LDAP: checks first, then escaping for filters and DNs.

Every value placed in a search filter goes through ldap3's `escape_filter_chars` (RFC 4515 §3) and every value
placed in a DN through `escape_rdn` (RFC 4514 §2.4), so `*`, `(`, `)`, `\\` and NUL are data, never syntax.
"""

from string import hexdigits

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn

from gateway.directory import errors

MAX_LOGIN_LENGTH = 256


def check_login(login: str) -> str:
    """Refuse a login name that can never be valid before any network traffic; return it trimmed."""
    login = login.strip()
    if not login or len(login) > MAX_LOGIN_LENGTH or any(ord(ch) < 0x20 or ch == "\x7f" for ch in login):
        raise errors.MalformedLogin("login is empty, too long or contains control characters")
    if is_dn(login):
        raise errors.MalformedLogin("sign in with your user name, not a distinguished name")
    return login


def check_password(password: str) -> None:
    """Refuse a password that must never reach a bind."""
    if not password:
        # An empty password is an unauthenticated bind (RFC 4513 §5.1.2), which servers answer with success.
        raise errors.EmptyPassword("empty password refused before binding")
    if "\x00" in password:
        # C servers may cut the password at the NUL and check only its prefix.
        raise errors.WrongPassword("password contains a NUL byte")


def check_credentials(login: str, password: str) -> str:
    """Both checks above (password first: an empty one is refused even for an unknown name); the trimmed login."""
    check_password(password)
    return check_login(login)


def equality_filter(attribute: str, value: str, object_class: str) -> str:
    """`(&(objectClass=<class>)(<attribute>=<value>))` with the value escaped."""
    return f"(&(objectClass={object_class})({attribute}={escape_filter_chars(value)}))"


def dn_from_template(template: str, user: str) -> str:
    """Fill `{user}` of a DN template such as 'uid={user},ou=people,dc=example,dc=org' with an escaped value."""
    return template.replace("{user}", escape_rdn(user))


def is_dn(text: str) -> bool:
    """True when the text parses as a distinguished name rather than a login name."""
    if "=" not in text:
        return False
    try:
        parse_dn(text, strip=True)
    except LDAPInvalidDnError:
        return False
    return True


def _unescaped(value: str) -> str:
    """An RDN value with its escapes undone: `\\5C` and `\\\\` are both a backslash (RFC 4514 §3)."""
    out = bytearray()
    i = 0
    while i < len(value):
        pair = value[i + 1 : i + 3]
        if value[i] == "\\" and len(pair) == 2 and all(c in hexdigits for c in pair):
            out.append(int(pair, 16))
            i += 3
        elif value[i] == "\\" and i + 1 < len(value):
            out += value[i + 1].encode()
            i += 2
        else:
            out += value[i].encode()
            i += 1
    return out.decode("utf-8", errors="replace")


def normalized_dn(dn: str) -> tuple[tuple[str, str], ...]:
    """A DN folded for comparison: escapes undone, types and values case-folded, spaces around separators gone."""
    return tuple((attr.casefold(), _unescaped(value).casefold()) for attr, value, _sep in parse_dn(dn, strip=True))
