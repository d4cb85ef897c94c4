"""Which hosts the crawlers may reach: public internet addresses only, unless a setting allows more.

A crawler fetches whatever link it is given, and follows redirects. Without a guard, a link (or a redirect from
a public page) to `http://169.254.169.254/` reads a cloud machine's credentials, and `http://127.0.0.1:…` or
`10.x` reach services that were never meant to be public (server-side request forgery). Every target — the link
and each redirect hop — is resolved and refused when any address it resolves to is loopback, private,
link-local, multicast or reserved, unless CRAWLER_ALLOW_PRIVATE_NETWORKS is true or the address lies in
CRAWLER_ALLOWED_NETWORKS (CIDRs, e.g. 127.0.0.0/8 for tests that serve pages locally).

Limits (stated, not hidden): the check resolves the name just before the request, so a DNS answer that changes
between the check and the connection (DNS rebinding) is not caught; a browser-rendered page may still load
subresources from private addresses (its own URL and final URL are checked, its scripts' requests are not).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from llm_engineering.domain.errors import CrawlError

WEB_SCHEMES = ("http", "https")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _is_internal(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


@dataclass
class NetworkPolicy:
    allow_private: bool = False
    allowed_networks: list[IPNetwork] = field(default_factory=list)

    @classmethod
    def from_settings(cls, allow_private: bool, allowed_networks: str) -> NetworkPolicy:
        networks = []
        for item in (part.strip() for part in allowed_networks.split(",")):
            if item:
                try:
                    networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError as exc:
                    from llm_engineering.domain.errors import ConfigurationError

                    raise ConfigurationError(f"CRAWLER_ALLOWED_NETWORKS: {item!r} is not a CIDR network") from exc
        return cls(allow_private=allow_private, allowed_networks=networks)

    def _allowed(self, address: IPAddress) -> bool:
        return not _is_internal(address) or any(address in network for network in self.allowed_networks)

    def check(self, url: str, link: str | None = None) -> None:
        """Raise `CrawlError` (naming `link`, the link the user gave) unless `url` may be fetched."""
        link = link or url
        parts = urlsplit(url)
        if parts.scheme.lower() not in WEB_SCHEMES:
            raise CrawlError(link, f"refused {url}: only http(s) pages are crawled")
        host = parts.hostname
        if not host:
            raise CrawlError(link, f"refused {url}: no host")
        if self.allow_private:
            return
        try:
            infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80))
        except socket.gaierror as exc:
            raise CrawlError(link, f"cannot resolve {host}: {exc.strerror or exc}") from exc
        for *_, sockaddr in infos:
            address = ipaddress.ip_address(sockaddr[0].split("%")[0])
            if not self._allowed(address):
                hop = "" if url == link else f" (a redirect to {url})"
                raise CrawlError(
                    link,
                    f"refused{hop}: {host} resolves to {address}, a private, loopback or link-local address; "
                    "set CRAWLER_ALLOW_PRIVATE_NETWORKS=true (or list the network in CRAWLER_ALLOWED_NETWORKS) "
                    "to crawl it",
                )
