"""Checks on URLs a client gives us, so that they cannot reach inside our network.

A URL is checked when it is given and again, after DNS resolution, right
before it is used (and on every redirect), for a clear error. The connection
itself resolves the name once more, so the HTTP client for these URLs
(``GatewayContext.client_urls_http``) checks the addresses it is about to
connect to as well (``PublicAddressResolver``): a DNS answer that changes
between the check and the connection (DNS rebinding) cannot reach a private
address either.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class UrlRefused(ValueError):
    pass


def check_url_syntax(url: str) -> str:
    """The URL's host, if it is an absolute http(s) URL; raises UrlRefused otherwise."""
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in url):
        raise UrlRefused("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # parsing the port validates it
    except ValueError as exc:
        raise UrlRefused(f"is not a valid URL ({exc})") from None
    if port == 0:  # valid syntax, but nothing listens there: refused now, not retried
        raise UrlRefused("has port 0, where no server can listen")
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("must be an http or https URL")
    if not parts.hostname:
        raise UrlRefused("has no host")
    if parts.username or parts.password:
        raise UrlRefused("must not carry credentials")
    return parts.hostname


def _resolves_privately(host: str) -> str:
    return f"host {host!r} resolves to a loopback, private or link-local address"


class AddressRefused(OSError):
    """A host name resolved, as it was being connected to, to an address that is not public."""

    def __init__(self, host: str) -> None:
        super().__init__(_resolves_privately(host))


def refused_address(exc: BaseException) -> AddressRefused | None:
    """The ``AddressRefused`` behind an HTTP client's connection error, if that was its cause."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, AddressRefused):
            return cause
        cause = cause.__cause__
    return None


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_url_target(url: str, *, allow_private: bool) -> None:
    """Refuse a URL whose host resolves to loopback, private, link-local or metadata space."""
    host = check_url_syntax(url)
    if allow_private:
        return
    port = urlsplit(url).port or 443
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UrlRefused(f"host {host!r} does not resolve") from None
    for info in infos:
        if not is_public(str(info[4][0])):
            raise UrlRefused(_resolves_privately(host))
