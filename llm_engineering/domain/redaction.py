"""Keep secrets out of what leaves the process: error bodies, logs and command lines.

Two strengths: `redact_credentials` masks passwords and keys but keeps the rest (for logs and command-line
errors, where the operator needs the host); `public_message` also drops setting values and URLs (for HTTP
responses: a client learns which setting is wrong, not where the backends live).
"""

from __future__ import annotations

import re

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

REDACTED = "***"


def redact_credentials(text: str) -> str:
    """The text with URL credentials and secret-looking key/value pairs masked."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    return _SECRET_PAIR.sub(lambda m: f"{m['key']}{m['sep']}{m['quote']}{REDACTED}", text)


def public_message(text: str) -> str:
    """A message safe for an HTTP client: credentials masked, setting values and URLs left out."""
    text = redact_credentials(text)
    text = _SETTING_VALUE.sub(lambda m: m["name"], text)
    return _URL.sub("<url>", text)
