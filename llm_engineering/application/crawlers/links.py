"""Link normalisation: one spelling per page, so a crawl, an archive import and a feed store one document.

Documents are keyed by link in the warehouse. The same page reaches the project spelled in many ways: Medium's
feeds add `?source=rss-...`, LinkedIn's export writes `urn%3Ali%3Ashare%3A...` where a browser shows
`urn:li:share:...`, newsletters add `utm_*` parameters, a platform link may carry a trailing slash or a
regional host (`uk.linkedin.com`). `normalize_link` removes only what never selects different content:

- scheme and host in lower case, default ports and `#fragments` dropped;
- tracking parameters dropped everywhere (`utm_*`, `fbclid`, `gclid`, `mc_cid`, `mc_eid`, `trk`, `trkInfo`);
- on Medium, Substack and LinkedIn (https-only platforms with known URL schemes): `http` becomes `https`, every
  query parameter that is not content (`source`, `r`, `s`, `sk` stays: a friend link's key) is dropped, a
  trailing slash is dropped, and any LinkedIn host becomes `www.linkedin.com`;
- path escapes of characters that need none (`%3A` → `:`) are decoded.

Links that are not http(s) (git URLs, local repository paths, `note://` links of imported notes) are returned
stripped and otherwise unchanged. Generic blogs keep their path exactly as given (`/post/` and `/post` may be
different pages on an unknown server).
"""

from __future__ import annotations

import re
import string
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

TRACKING_PARAMETERS = frozenset({"fbclid", "gclid", "mc_cid", "mc_eid", "trk", "trkinfo", "_hsenc", "_hsmi"})
PLATFORM_DOMAINS = ("medium.com", "substack.com", "linkedin.com")
# Query parameters on those platforms that select content (everything else there is tracking or referral).
PLATFORM_CONTENT_PARAMETERS = frozenset({"sk"})
DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters a path segment may hold unescaped (RFC 3986 pchar); their escapes are decoded. '/', '?', '#', '%'
# and everything else keep their escapes (decoding them would change what the path means).
_DECODABLE = frozenset(string.ascii_letters + string.digits + "-._~:@!$&'()*+,;=")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def _is_platform_host(host: str) -> bool:
    return any(host == domain or host.endswith(f".{domain}") for domain in PLATFORM_DOMAINS)


def _clean_path(path: str) -> str:
    def decode(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _DECODABLE else match.group(0).upper()

    return _ESCAPE.sub(decode, path)


def normalize_link(link: str) -> str:
    """The canonical spelling of a web link (see the module docstring); other links come back stripped."""
    link = (link or "").strip()
    parts = urlsplit(link)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return link
    host = parts.hostname.lower().rstrip(".")
    platform = _is_platform_host(host)
    if platform:
        scheme = "https"
        if host == "linkedin.com" or host.endswith(".linkedin.com"):
            host = "www.linkedin.com"
    try:
        port = parts.port
    except ValueError:  # a malformed port: leave the link for the fetcher to reject
        return link
    netloc = host if port in (None, DEFAULT_PORTS.get(parts.scheme.lower())) or platform else f"{host}:{port}"
    path = _clean_path(parts.path) or "/"
    query = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        lowered = key.lower()
        if lowered.startswith("utm_") or lowered in TRACKING_PARAMETERS:
            continue
        if platform and lowered not in PLATFORM_CONTENT_PARAMETERS:
            continue
        query.append((key, value))
    if platform and len(path) > 1:
        path = path.rstrip("/") or "/"
    return urlunsplit((scheme, netloc, path, urlencode(query), ""))
