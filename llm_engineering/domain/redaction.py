"""Keep secrets out of what leaves the process: error bodies, logs, command lines and links.

Two strengths: `redact_credentials` masks passwords and keys but keeps the rest (for logs and command-line
errors, where the operator needs the host); `public_message` also drops setting values and URLs (for HTTP
responses: a client learns which setting is wrong, not where the backends live). Besides the patterns, every
value given to `register_secrets` (the process's SecretStr settings, the password of MONGODB_URI) is masked
wherever it appears. `safe_link` lets only http(s) links out.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

# scheme://user:password@host -> scheme://***@host (also user-only userinfo, which may be a token)
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s'\"]+)@")
# key=value / key: value pairs whose key names a secret ("token", not the counts "tokens" / "max_tokens"), and
# whose value is a scalar (a logged dict or list is structure, not a secret)
_SECRET_PAIR = re.compile(
    r"(?i)(?P<key>\b[\w-]*(?:api[_-]?key|password|passwd|secret|token(?!s)|authorization)[\w-]*)"
    r"(?P<sep>\s*[=:]\s*)(?P<quote>['\"]?)(?P<value>(?:Bearer\s+)?[^\s'\",;&{\[][^\s'\",;&]*)"
)
# SETTING_NAME=value (the project's own messages name a setting and show its value)
_SETTING_VALUE = re.compile(r"\b(?P<name>[A-Z][A-Z0-9_]{2,})=(?P<value>'[^']*'|\"[^\"]*\"|[^\s,;)]+)")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\")]+")
# A bearer token on its own (a header dump, an exception message): "Bearer abc.def" -> "Bearer ***"
_BEARER = re.compile(r"(?i)\b(?P<word>bearer)\s+(?!\*\*\*)[A-Za-z0-9._~+/=-]{4,}")

REDACTED = "***"
# Shorter values are not masked by value: "abc" would blank unrelated words (they are still masked by pattern).
_MIN_SECRET_LENGTH = 4
_NOT_SECRETS = {"EMPTY", "none", "None", "null"}
_known_secrets: set[str] = set()
_known_lock = threading.Lock()
_known_pattern: re.Pattern[str] | None = None


def register_secrets(values: Iterable[str | None]) -> None:
    """Mask these exact values wherever they appear (the process's SecretStr settings, URI passwords)."""
    global _known_pattern
    with _known_lock:
        added = {v for v in values if v and len(v) >= _MIN_SECRET_LENGTH and v not in _NOT_SECRETS}
        if added <= _known_secrets:
            return
        _known_secrets.update(added)
        ordered = sorted(_known_secrets, key=len, reverse=True)  # a longer secret that contains a shorter one first
        _known_pattern = re.compile("|".join(re.escape(v) for v in ordered))


def uri_secrets(uri: str | None) -> list[str]:
    """The password and user-info of a URI (raw and percent-decoded), to register as secrets."""
    if not uri:
        return []
    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:
        return []
    found = [password, unquote(password)] if password else []
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    return found + ([userinfo] if userinfo and ":" in userinfo else [])


def safe_link(link: str | None) -> str:
    """The link when it is an http(s) URL with a host, else "" (a `javascript:`, `data:` or `file:` link never
    leaves the service as a link; the title still says what the source is). Credentials in it are masked."""
    if not link:
        return ""
    candidate = link.strip()
    try:
        parts = urlsplit(candidate)
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return ""
    if any(ord(ch) < 0x20 or ch in '"<>` ' for ch in candidate):
        return ""
    return redact_credentials(candidate)


def redact_credentials(text: str) -> str:
    """The text with URL credentials and secret-looking key/value pairs masked."""
    pattern = _known_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    text = _SECRET_PAIR.sub(lambda m: f"{m['key']}{m['sep']}{m['quote']}{REDACTED}", text)
    return _BEARER.sub(lambda m: f"{m['word']} {REDACTED}", text)


def public_message(text: str) -> str:
    """A message safe for an HTTP client: credentials masked, setting values and URLs left out."""
    text = redact_credentials(text)
    text = _SETTING_VALUE.sub(lambda m: m["name"], text)
    return _URL.sub("<url>", text)
