"""SSRF guard for the capture browser.

A page under capture is hostile by assumption: it can link, redirect or
script the browser towards addresses inside the unit's own network (routers,
intranet servers, cloud metadata endpoints).  The capture worker passes every
request the browser makes, redirects included, through :func:`check_url`
before letting it go out, and checks the remote address the browser reports
for each response with :func:`is_allowed_address` afterwards (the browser
does its own DNS lookup, so a host may re-resolve between the two checks).

Host parsing follows the WHATWG URL standard that Chromium implements, not
:mod:`urllib.parse`, because the two disagree on inputs such as
``http://127.0.0.1\\@example.com/`` and ``http://0x7f.1/``: what matters is
the host the browser will connect to.

Exceptions to the policy come from :class:`UrlPolicy` (built from the
``EVIDENCE_CAPTURE_ALLOW`` setting, which this module never reads itself).
"""

from __future__ import annotations

import ipaddress
import socket
import unicodedata
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

__all__ = [
    "Resolver",
    "UrlPolicy",
    "UrlRefused",
    "check_address",
    "check_url",
    "default_resolver",
    "is_allowed_address",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

DEFAULT_SCHEMES: tuple[str, ...] = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class UrlRefused(Exception):
    """A URL or address the capture browser must not reach.

    ``category`` is a stable machine-readable reason (``"loopback"``,
    ``"private"``, ``"link-local"``, ``"metadata"``, ``"cgnat"``,
    ``"multicast"``, ``"unspecified"``, ``"reserved"``, ``"broadcast"``,
    ``"scheme"``, ``"no-host"``, ``"invalid-host"``, ``"unresolvable"``);
    ``str(exc)`` is the human message shown to the officer.
    """

    def __init__(
        self,
        message: str,
        *,
        category: str,
        url: str | None = None,
        address: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.category = category
        self.url = url
        self.address = address


def _net(text: str) -> IPNetwork:
    return ipaddress.ip_network(text)


# Order matters: the first match names the reason, so the specific entries
# (metadata, broadcast) come before the ranges that contain them.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.170.23",  # AWS EKS pod identity
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity over IPv6
    )
)

_V4_BLOCKED: tuple[tuple[IPNetwork, str, str], ...] = (
    (_net("0.0.0.0/32"), "unspecified", "an unspecified address"),
    (_net("0.0.0.0/8"), "unspecified", "a 'this network' address"),
    (_net("255.255.255.255/32"), "broadcast", "the broadcast address"),
    (_net("127.0.0.0/8"), "loopback", "a loopback address"),
    (_net("10.0.0.0/8"), "private", "a private address"),
    (_net("172.16.0.0/12"), "private", "a private address"),
    (_net("192.168.0.0/16"), "private", "a private address"),
    (_net("100.64.0.0/10"), "cgnat", "a carrier-grade NAT address"),
    (_net("169.254.0.0/16"), "link-local", "a link-local address"),
    (_net("224.0.0.0/4"), "multicast", "a multicast address"),
    (_net("192.0.0.0/24"), "reserved", "an IETF protocol assignment address"),
    (_net("192.0.2.0/24"), "reserved", "a documentation address"),
    (_net("198.51.100.0/24"), "reserved", "a documentation address"),
    (_net("203.0.113.0/24"), "reserved", "a documentation address"),
    (_net("198.18.0.0/15"), "reserved", "a benchmarking address"),
    (_net("192.88.99.0/24"), "reserved", "a 6to4 relay anycast address"),
    (_net("240.0.0.0/4"), "reserved", "a reserved address"),
)

_V6_BLOCKED: tuple[tuple[IPNetwork, str, str], ...] = (
    (_net("::/128"), "unspecified", "an unspecified address"),
    (_net("::1/128"), "loopback", "a loopback address"),
    (_net("64:ff9b:1::/48"), "reserved", "a local-use NAT64 address"),
    (_net("100::/64"), "reserved", "a discard-only address"),
    (_net("2001:db8::/32"), "reserved", "a documentation address"),
    (_net("3fff::/20"), "reserved", "a documentation address"),
    (_net("fc00::/7"), "private", "a private (unique local) address"),
    (_net("fe80::/10"), "link-local", "a link-local address"),
    (_net("fec0::/10"), "private", "a site-local address"),
    (_net("ff00::/8"), "multicast", "a multicast address"),
)

_V6_GLOBAL_UNICAST = _net("2000::/3")
_V4_MAPPED = _net("::ffff:0:0/96")
_V4_TRANSLATED = _net("::ffff:0:0:0/96")
_V4_COMPATIBLE = _net("::/96")
_NAT64 = _net("64:ff9b::/96")
_SIX_TO_FOUR = _net("2002::/16")
_TEREDO = _net("2001::/32")

_ARTICLE_FORMS = {
    "IPv4-mapped": "an IPv4-mapped",
    "IPv4-translated": "an IPv4-translated",
    "IPv4-compatible": "an IPv4-compatible",
    "NAT64": "a NAT64",
    "6to4": "a 6to4",
    "Teredo": "a Teredo",
}


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """IPv4 addresses that an IPv6 address reaches through a transition mechanism."""
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _V4_MAPPED:
        return [("IPv4-mapped", low32)]
    if ip in _V4_TRANSLATED:
        return [("IPv4-translated", low32)]
    if ip in _V4_COMPATIBLE:
        return [("IPv4-compatible", low32)]
    if ip in _NAT64:
        return [("NAT64", low32)]
    if ip in _SIX_TO_FOUR and ip.sixtofour is not None:
        return [("6to4", ip.sixtofour)]
    if ip in _TEREDO and ip.teredo is not None:
        server, client = ip.teredo
        return [("Teredo", server), ("Teredo", client)]
    return []


def _v4_problem(ip: ipaddress.IPv4Address) -> tuple[str, str] | None:
    if ip in _METADATA:
        return "metadata", "a cloud metadata address"
    for network, category, description in _V4_BLOCKED:
        if ip in network:
            return category, description
    return None


def _address_problem(ip: IPAddress) -> tuple[str, str] | None:
    """(category, description) when ``ip`` must not be reached, else None."""
    if isinstance(ip, ipaddress.IPv4Address):
        return _v4_problem(ip)
    bare = ipaddress.IPv6Address(int(ip))  # drop any %scope so set lookups work
    if bare in _METADATA:
        return "metadata", "a cloud metadata address"
    for network, category, description in _V6_BLOCKED:
        if bare in network:
            return category, description
    for form, v4 in _embedded_ipv4(bare):
        problem = _v4_problem(v4)
        if problem is not None:
            category, description = problem
            return category, f"{_ARTICLE_FORMS[form]} form of {v4}, {description}"
        if form in ("IPv4-compatible", "IPv4-translated"):
            # Deprecated / host-stack-internal forms: no public site uses them.
            return "reserved", f"{_ARTICLE_FORMS[form]} address"
    if bare not in _V6_GLOBAL_UNICAST and not _embedded_ipv4(bare):
        # Nothing outside 2000::/3 is routable public unicast today.
        return "reserved", "a reserved address"
    return None


def _parse_ip(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _normalize_hostname(name: str) -> str:
    """Lower-case ASCII form of a hostname, without a trailing dot."""
    name = name.strip()
    if name.endswith("."):
        name = name[:-1]
    if not name.isascii():
        name = _to_ascii_host(name)
    return name.lower()


@dataclass(frozen=True)
class UrlPolicy:
    """Exceptions to the SSRF guard.

    Each entry of ``allow`` is an IP address (``127.0.0.1``), a network in
    CIDR form (``127.0.0.0/8``) or a hostname (``fixtures.test``).  A
    hostname entry lets that host resolve to anything, which is what a test
    fixture server on the capture host needs; address entries apply whatever
    name led to the address.
    """

    allow: tuple[str, ...] = ()
    _networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)
    _hosts: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for raw in self.allow:
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            try:
                host = _normalize_hostname(entry)
            except ValueError as exc:
                raise ValueError(f"invalid allow entry {raw!r}: {exc}") from None
            if not host or any(ch in _FORBIDDEN_HOST_CHARS for ch in host) or "/" in entry:
                raise ValueError(
                    f"invalid allow entry {raw!r}: expected an IP address, CIDR or hostname"
                )
            hosts.add(host)
        # Frozen dataclass: the derived lookups are set once, here.
        object.__setattr__(self, "_networks", tuple(networks))
        object.__setattr__(self, "_hosts", frozenset(hosts))

    @classmethod
    def from_setting(cls, value: str | None) -> UrlPolicy:
        """Build a policy from a comma-separated setting; None or "" allows nothing extra."""
        if not value:
            return cls()
        return cls(tuple(part.strip() for part in value.split(",") if part.strip()))

    def allows_address(self, ip: IPAddress) -> bool:
        bare: IPAddress = ip
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address):
            bare = ipaddress.IPv6Address(int(ip))
            candidates = [bare]
            # ::ffff:a.b.c.d is the very same endpoint as a.b.c.d.
            if bare.ipv4_mapped is not None:
                candidates.append(bare.ipv4_mapped)
        return any(
            candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self._networks
        )

    def allows_host(self, host: str) -> bool:
        try:
            return _normalize_hostname(host) in self._hosts
        except ValueError:
            return False


def check_address(ip: str, policy: UrlPolicy, *, host: str | None = None) -> None:
    """Raise :class:`UrlRefused` unless ``ip`` may be contacted under ``policy``.

    ``host`` is the name that led to the address, used both for the message
    and for hostname entries of the policy.
    """
    parsed = _parse_ip(ip)
    origin = f" (from host {host})" if host is not None else ""
    if parsed is None:
        raise UrlRefused(
            f"refused: {ip!r} is not an IP address{origin}",
            category="invalid-host",
            address=ip,
        )
    if host is not None and policy.allows_host(host):
        return
    if policy.allows_address(parsed):
        return
    problem = _address_problem(parsed)
    if problem is not None:
        category, description = problem
        raise UrlRefused(
            f"refused: {parsed} is {description}{origin}",
            category=category,
            address=str(parsed),
        )


def is_allowed_address(ip: str, policy: UrlPolicy, *, host: str | None = None) -> bool:
    """True when ``ip`` (e.g. the remote address of a response) may be contacted."""
    try:
        check_address(ip, policy, host=host)
    except UrlRefused:
        return False
    return True


def default_resolver(host: str, port: int) -> list[str]:
    """Resolve with the system resolver, as the browser would."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


# --- WHATWG URL host parsing -------------------------------------------------

_FORBIDDEN_HOST_CHARS = frozenset(
    "\x00\t\n\r #/:<>?@[\\]^|%\x7f" + "".join(chr(c) for c in range(0x20))
)
_TAB_NEWLINE = str.maketrans("", "", "\t\n\r")
_C0_AND_SPACE = "".join(chr(c) for c in range(0x21))


class _HostError(ValueError):
    pass


def _to_ascii_host(host: str) -> str:
    # UTS 46 maps full-width digits and ideographic full stops to ASCII, so
    # "１２７。０。０。１" is 127.0.0.1 to the browser; NFKC + casefold + the
    # stdlib IDNA codec reproduce that mapping closely enough to find literals.
    mapped = unicodedata.normalize("NFKC", host).casefold()
    try:
        return mapped.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise _HostError(f"invalid internationalised hostname {host!r}") from exc


def _parse_ipv4_number(part: str) -> int | None:
    radix = 10
    if part[:2] in ("0x", "0X"):
        radix, part = 16, part[2:]
    elif len(part) > 1 and part.startswith("0"):
        radix, part = 8, part[1:]
    if part == "":
        return 0
    digits = {10: "0123456789", 8: "01234567", 16: "0123456789abcdefABCDEF"}[radix]
    if any(ch not in digits for ch in part):
        return None
    return int(part, radix)


def _ends_in_number(host: str) -> bool:
    parts = host.split(".")
    if parts[-1] == "":
        if len(parts) == 1:
            return False
        parts.pop()
    last = parts[-1]
    if last and all(ch in "0123456789" for ch in last):
        return True
    return last != "" and _parse_ipv4_number(last) is not None


def _parse_ipv4_host(host: str) -> ipaddress.IPv4Address:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) > 4 or any(part == "" for part in parts):
        raise _HostError(f"{host!r} is not a valid IPv4 address")
    numbers: list[int] = []
    for part in parts:
        number = _parse_ipv4_number(part)
        if number is None:
            raise _HostError(f"{host!r} is not a valid IPv4 address")
        numbers.append(number)
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise _HostError(f"{host!r} is out of range for an IPv4 address")
    value = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        value += number * 256 ** (3 - index)
    return ipaddress.IPv4Address(value)


def _parse_host(raw: str) -> tuple[str, IPAddress | None]:
    """Host as the browser sees it: (ASCII hostname, literal IP or None)."""
    if raw.startswith("["):
        if not raw.endswith("]"):
            raise _HostError(f"unterminated IPv6 literal {raw!r}")
        if "%" in raw:
            raise _HostError(f"zone identifiers are not allowed in URLs: {raw!r}")
        try:
            # No zone ids: the URL standard rejects "%" inside brackets.
            v6 = ipaddress.IPv6Address(raw[1:-1])
        except ValueError as exc:
            raise _HostError(f"{raw!r} is not a valid IPv6 address") from exc
        return str(v6), v6
    try:
        decoded = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _HostError(f"hostname {raw!r} is not valid UTF-8") from exc
    host = decoded.lower() if decoded.isascii() else _to_ascii_host(decoded)
    if not host or host == ".":
        raise _HostError("empty hostname")
    bad = sorted({ch for ch in host if ch in _FORBIDDEN_HOST_CHARS})
    if bad:
        raise _HostError(f"hostname {host!r} contains forbidden characters {bad!r}")
    if _ends_in_number(host):
        v4 = _parse_ipv4_host(host)
        return str(v4), v4
    return host, None


def _split_url(url: str, schemes: Collection[str]) -> tuple[str, str, int]:
    """(scheme, raw host, port) of ``url``, or UrlRefused."""
    cleaned = url.strip(_C0_AND_SPACE).translate(_TAB_NEWLINE)
    scheme, sep, rest = cleaned.partition(":")
    scheme = scheme.lower()
    if (
        not sep
        or not scheme
        or not scheme[0].isascii()
        or not scheme[0].isalpha()
        or any(not (ch.isascii() and (ch.isalnum() or ch in "+-.")) for ch in scheme)
    ):
        raise UrlRefused(f"refused: {url!r} is not an absolute URL", category="scheme", url=url)
    if scheme not in schemes:
        raise UrlRefused(
            f"refused: scheme {scheme!r} is not allowed (only {', '.join(sorted(schemes))})",
            category="scheme",
            url=url,
        )
    # For special schemes the browser treats "\" like "/" and ignores any
    # number of slashes before the authority ("http:/\\host" is "http://host").
    rest = rest.replace("\\", "/").lstrip("/")
    end = len(rest)
    for delimiter in "/?#":
        index = rest.find(delimiter)
        if index != -1:
            end = min(end, index)
    authority = rest[:end]
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):
        close = hostport.find("]")
        raw_host = hostport[: close + 1] if close != -1 else hostport
        port_text = hostport[close + 1 :] if close != -1 else ""
        if port_text and not port_text.startswith(":"):
            raise UrlRefused(
                f"refused: malformed host in {url!r}", category="invalid-host", url=url
            )
        port_text = port_text[1:]
    else:
        raw_host, _, port_text = hostport.partition(":")
    if not raw_host:
        raise UrlRefused(f"refused: {url!r} has no host", category="no-host", url=url)
    port = _DEFAULT_PORTS.get(scheme, 0)
    if port_text:
        if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
            raise UrlRefused(
                f"refused: invalid port {port_text!r} in {url!r}",
                category="invalid-host",
                url=url,
            )
        port = int(port_text)
    return scheme, raw_host, port


def _unique(addresses: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for address in addresses:
        seen.setdefault(address, None)
    return list(seen)


def check_url(
    url: str,
    policy: UrlPolicy,
    *,
    resolve: Resolver = default_resolver,
    schemes: Collection[str] = DEFAULT_SCHEMES,
) -> list[str]:
    """Refuse ``url`` unless every address its host resolves to may be contacted.

    Returns the resolved addresses (canonical text form, duplicates removed,
    resolver order kept) so the capture can record the remote IP.  Literal IP
    hosts, in any spelling the browser accepts, are checked without calling
    ``resolve``.  ``schemes`` exists so the worker can vet ``ws``/``wss``
    with the same rules; the default admits only ``http`` and ``https``.

    Raises :class:`UrlRefused` for another scheme, a missing or malformed
    host, a host that cannot be resolved, or any resolved address that is
    not public (one bad address is enough: DNS rebinding answers with both).
    """
    _, raw_host, port = _split_url(url, {s.lower() for s in schemes})
    try:
        host, literal = _parse_host(raw_host)
    except _HostError as exc:
        raise UrlRefused(
            f"refused: invalid host in {url!r}: {exc}", category="invalid-host", url=url
        ) from None

    if literal is not None:
        addresses = [str(literal)]
    else:
        bare_name = host[:-1] if host.endswith(".") else host
        if (bare_name == "localhost" or bare_name.endswith(".localhost")) and not (
            policy.allows_host(host)
        ):
            # Chromium answers *.localhost itself with loopback, without DNS.
            raise UrlRefused(
                f"refused: {host} is a loopback name (from host {host})",
                category="loopback",
                url=url,
            )
        try:
            resolved = resolve(host, port)
        except (OSError, UnicodeError, ValueError) as exc:
            raise UrlRefused(
                f"refused: cannot resolve host {host}: {exc}",
                category="unresolvable",
                url=url,
            ) from None
        addresses = []
        for address in resolved:
            parsed = _parse_ip(address)
            if parsed is None:
                raise UrlRefused(
                    f"refused: resolver returned {address!r}, not an IP address (from host {host})",
                    category="unresolvable",
                    url=url,
                )
            addresses.append(str(parsed))
        if not addresses:
            raise UrlRefused(
                f"refused: cannot resolve host {host}: no addresses",
                category="unresolvable",
                url=url,
            )
        addresses = _unique(addresses)

    # For a literal, name the spelling the page used ("0x7f.1") in the message.
    shown_host = raw_host if literal is not None else host
    for address in addresses:
        try:
            check_address(address, policy, host=shown_host)
        except UrlRefused as exc:
            exc.url = url
            raise
    return addresses
