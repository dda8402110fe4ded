"""The one spelling of a mint URL, used at the contract edge and everywhere after it.

A mint URL arrives in wallet events, settings, requests and the web API. Were each place to spell
it its own way, one mint would show up as several in metrics and analytics and an allow-list check
could be dodged by case. So every URL is normalised once, where it enters, by `normalise_mint_url`:

- scheme and host lowercased (they are case-insensitive), a default port dropped;
- surrounding whitespace and trailing slashes dropped; the path keeps its case (a mint may live
  under a case-sensitive path prefix);
- user info, a query or a fragment is refused: no mint URL has them, and they are the usual way
  to make one URL look like another.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


class MintUrlError(ValueError):
    """Not a usable mint URL. The message never repeats the URL (it may be hostile input)."""


def normalise_mint_url(url: str) -> str:
    """The canonical spelling of `url`, or MintUrlError."""
    return _normalise(url)


@lru_cache(maxsize=1024)  # a few mints, one spelling each, in every event: parse each once
def _normalise(url: str) -> str:
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise MintUrlError("mint_url is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or " " in text:
        raise MintUrlError("mint_url must be an http(s) URL with a host")
    if "@" in parts.netloc or parts.query or parts.fragment or text.endswith(("?", "#")):
        raise MintUrlError("mint_url must not carry user info, a query or a fragment")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


def normalise_or_strip(url: str) -> str:
    """The canonical spelling; a URL that has none is returned stripped (a lookup with it then
    finds nothing on the allow-list, and a stored value keeps a readable form)."""
    try:
        return normalise_mint_url(url)
    except MintUrlError:
        return url.strip()


def is_loopback(url: str) -> bool:
    """True if the (normalised) URL names this machine: 127.0.0.0/8, ::1 or localhost."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_insecure(url: str) -> bool:
    """Plain http to another machine: anyone on the path could answer UNSPENT for everything."""
    return url.startswith("http://") and not is_loopback(url)
