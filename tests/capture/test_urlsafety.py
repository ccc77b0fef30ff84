"""Tests for the capture SSRF guard (capture.urlsafety).

No DNS is available in CI, so name resolution goes through fake resolvers;
literal IPs must never reach the resolver at all.
"""

from __future__ import annotations

import pytest

from capture.urlsafety import (
    Resolver,
    UrlPolicy,
    UrlRefused,
    check_address,
    check_url,
    is_allowed_address,
)

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"
NO_POLICY = UrlPolicy()
# An address under test, not something bound to.
ANY_V4 = "0.0.0.0"  # noqa: S104


class FakeResolver:
    """Stands in for DNS: records what it was asked and answers ``addresses``."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return list(self.addresses)


fixed = FakeResolver


def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"literal IP URL must not be resolved (asked for {host}:{port})")


def failing(host: str, port: int) -> list[str]:
    raise OSError(-2, "Name or service not known")


# --- refused literal addresses, every category and odd spelling ------------

REFUSED_LITERALS = [
    # loopback, in the spellings browsers accept
    ("http://127.0.0.1/", "loopback", "127.0.0.1"),
    ("http://127.0.0.1:8080/admin", "loopback", "127.0.0.1"),
    ("http://2130706433/", "loopback", "127.0.0.1"),  # decimal
    ("http://0177.0.0.1/", "loopback", "127.0.0.1"),  # octal
    ("http://0x7f.1/", "loopback", "127.0.0.1"),  # hex + short
    ("http://0x7F000001/", "loopback", "127.0.0.1"),
    ("http://127.1/", "loopback", "127.0.0.1"),  # short form
    ("http://127.0.1/", "loopback", "127.0.0.1"),
    ("http://017700000001/", "loopback", "127.0.0.1"),
    ("http://127.0.0.1./", "loopback", "127.0.0.1"),  # trailing dot
    ("http://%31%32%37.0.0.1/", "loopback", "127.0.0.1"),  # percent-encoded host
    ("http://１２７。０。０。１/", "loopback", "127.0.0.1"),  # full-width, IDNA-mapped
    ("http://evil@127.0.0.1/", "loopback", "127.0.0.1"),  # userinfo
    ("http://user:pw@example.com@127.0.0.1/", "loopback", "127.0.0.1"),
    ("http://127.0.0.1\\@example.com/", "loopback", "127.0.0.1"),  # backslash ends authority
    ("http:/\\127.0.0.1/", "loopback", "127.0.0.1"),
    ("http:127.0.0.1/", "loopback", "127.0.0.1"),
    ("HTTP://127.0.0.1/", "loopback", "127.0.0.1"),
    (" \thttp://127.0.\n0.1/", "loopback", "127.0.0.1"),  # stripped whitespace
    ("https://127.0.0.1:443/", "loopback", "127.0.0.1"),
    ("http://[::1]/", "loopback", "::1"),
    ("http://[0:0:0:0:0:0:0:1]:8080/", "loopback", "::1"),
    ("http://[::ffff:127.0.0.1]/", "loopback", "::ffff:7f00:1"),  # IPv4-mapped
    ("http://[::ffff:7f00:1]/", "loopback", "::ffff:7f00:1"),
    ("http://[::127.0.0.1]/", "loopback", "::7f00:1"),  # IPv4-compatible
    ("http://[::ffff:0:7f00:1]/", "loopback", "::ffff:0:7f00:1"),  # IPv4-translated
    ("http://[2002:7f00:1::1]/", "loopback", "2002:7f00:1::1"),  # 6to4
    ("http://[64:ff9b::7f00:1]/", "loopback", "64:ff9b::7f00:1"),  # NAT64
    ("http://[64:ff9b::a00:5]/", "private", "64:ff9b::a00:5"),
    # private (RFC 1918, ULA, site-local)
    ("http://10.0.0.5/", "private", "10.0.0.5"),
    ("http://10.1/", "private", "10.0.0.1"),
    ("http://167772165/", "private", "10.0.0.5"),
    ("http://172.16.0.1/", "private", "172.16.0.1"),
    ("http://172.31.255.255/", "private", "172.31.255.255"),
    ("http://192.168.1.1/", "private", "192.168.1.1"),
    ("http://0xc0.0xa8.1.1/", "private", "192.168.1.1"),
    ("http://[fc00::1]/", "private", "fc00::1"),
    ("http://[fd12:3456::1]/", "private", "fd12:3456::1"),
    ("http://[fec0::1]/", "private", "fec0::1"),
    ("http://[::ffff:192.168.0.1]/", "private", "::ffff:c0a8:1"),
    ("http://[2002:c0a8:101::]/", "private", "2002:c0a8:101::"),
    # link-local
    ("http://169.254.1.1/", "link-local", "169.254.1.1"),
    ("http://[fe80::1]/", "link-local", "fe80::1"),
    # cloud metadata
    ("http://169.254.169.254/latest/meta-data/", "metadata", "169.254.169.254"),
    ("http://0xa9fea9fe/", "metadata", "169.254.169.254"),
    ("http://2852039166/", "metadata", "169.254.169.254"),
    ("http://169.254.43518/", "metadata", "169.254.169.254"),
    ("http://[fd00:ec2::254]/", "metadata", "fd00:ec2::254"),
    ("http://100.100.100.200/", "metadata", "100.100.100.200"),
    ("http://[::ffff:169.254.169.254]/", "metadata", "::ffff:a9fe:a9fe"),
    # carrier-grade NAT
    ("http://100.64.0.1/", "cgnat", "100.64.0.1"),
    ("http://100.127.255.254/", "cgnat", "100.127.255.254"),
    # multicast
    ("http://224.0.0.1/", "multicast", "224.0.0.1"),
    ("http://239.255.255.250/", "multicast", "239.255.255.250"),
    ("http://[ff02::1]/", "multicast", "ff02::1"),
    # unspecified
    ("http://0.0.0.0/", "unspecified", ANY_V4),
    ("http://0/", "unspecified", ANY_V4),
    ("http://0.1.2.3/", "unspecified", "0.1.2.3"),
    ("http://[::]/", "unspecified", "::"),
    # reserved / broadcast
    ("http://255.255.255.255/", "broadcast", "255.255.255.255"),
    ("http://4294967295/", "broadcast", "255.255.255.255"),
    ("http://240.0.0.1/", "reserved", "240.0.0.1"),
    ("http://192.0.2.10/", "reserved", "192.0.2.10"),
    ("http://198.18.0.1/", "reserved", "198.18.0.1"),
    ("http://[2001:db8::1]/", "reserved", "2001:db8::1"),
    ("http://[4000::1]/", "reserved", "4000::1"),
    ("http://[100::1]/", "reserved", "100::1"),
    ("http://[::8.8.8.8]/", "reserved", "::808:808"),  # deprecated compatible form
]


@pytest.mark.parametrize(("url", "category", "address"), REFUSED_LITERALS)
def test_literal_addresses_are_refused_with_the_right_reason(
    url: str, category: str, address: str
) -> None:
    with pytest.raises(UrlRefused) as info:
        check_url(url, NO_POLICY, resolve=no_dns)
    assert info.value.category == category
    assert info.value.address == address
    assert info.value.url == url
    assert str(info.value).startswith(f"refused: {address} is ")


def test_message_names_address_reason_and_host() -> None:
    resolve = fixed("10.0.0.5")
    with pytest.raises(UrlRefused) as info:
        check_url("https://intranet.example/", NO_POLICY, resolve=resolve)
    assert str(info.value) == (
        "refused: 10.0.0.5 is a private address (from host intranet.example)"
    )


def test_embedded_form_message_explains_the_embedding() -> None:
    with pytest.raises(UrlRefused) as info:
        check_url("http://[::ffff:127.0.0.1]/", NO_POLICY, resolve=no_dns)
    assert "IPv4-mapped form of 127.0.0.1, a loopback address" in str(info.value)
    with pytest.raises(UrlRefused) as info:
        check_url("http://0x7f.1/", NO_POLICY, resolve=no_dns)
    assert "(from host 0x7f.1)" in str(info.value)


@pytest.mark.parametrize(
    ("url", "category"),
    [
        ("file:///etc/passwd", "scheme"),
        ("data:text/html,<script>alert(1)</script>", "scheme"),
        ("ftp://ftp.example.com/", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("chrome://settings/", "scheme"),
        ("chrome-extension://abc/x.js", "scheme"),
        ("view-source:http://example.com/", "scheme"),
        ("blob:https://example.com/uuid", "scheme"),
        ("about:blank", "scheme"),
        ("gopher://127.0.0.1:6379/_INFO", "scheme"),
        ("ws://example.com/", "scheme"),
        ("//example.com/", "scheme"),
        ("example.com", "scheme"),
        ("", "scheme"),
        ("http://", "no-host"),
        ("http:///", "no-host"),
        ("http://user@/", "no-host"),
        ("http://:80/", "no-host"),
        ("http://example.com:99999/", "invalid-host"),
        ("http://example.com:8o/", "invalid-host"),
        ("http://[::1/", "invalid-host"),
        ("http://[::1]x/", "invalid-host"),
        ("http://[fe80::1%25eth0]/", "invalid-host"),
        ("http://[not-ipv6]/", "invalid-host"),
        ("http://1.2.3.4.5/", "invalid-host"),
        ("http://256.256.256.256/", "invalid-host"),
        ("http://127.0.0.1.2/", "invalid-host"),
        ("http://4294967296/", "invalid-host"),
        ("http://08.0.0.1/", "invalid-host"),  # 8 is not an octal digit
        ("http://foo.0x/", "invalid-host"),
        ("http://exa mple.com/", "invalid-host"),
        ("http://exa%00mple.com/", "invalid-host"),
        ("http://%ff.example/", "invalid-host"),
    ],
)
def test_non_network_and_malformed_urls_are_refused(url: str, category: str) -> None:
    with pytest.raises(UrlRefused) as info:
        check_url(url, NO_POLICY, resolve=fixed(PUBLIC_V4))
    assert info.value.category == category, str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/",
        "http://LOCALHOST./",
        "http://evil.localhost/",
        "http://a.b.localhost:8/",
    ],
)
def test_localhost_names_are_refused_without_asking_dns(url: str) -> None:
    # Chromium answers these itself, so a public DNS answer would not matter.
    with pytest.raises(UrlRefused) as info:
        check_url(url, NO_POLICY, resolve=fixed(PUBLIC_V4))
    assert info.value.category == "loopback"


# --- allowed public addresses ------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected_host", "expected_port"),
    [
        ("http://example.com/", "example.com", 80),
        ("https://example.com/path?q=1#frag", "example.com", 443),
        ("https://EXAMPLE.com:8443/", "example.com", 8443),
        ("https://example.com./", "example.com.", 443),
        ("https://user:pass@example.com/", "example.com", 443),
        ("https://bücher.example/", "xn--bcher-kva.example", 443),
        ("https://xn--bcher-kva.example/", "xn--bcher-kva.example", 443),
        ("https://example.com\\path", "example.com", 443),
        ("https://127.0.0.1.nip.io/", "127.0.0.1.nip.io", 443),
    ],
)
def test_public_hosts_are_allowed_and_resolved_once(
    url: str, expected_host: str, expected_port: int
) -> None:
    resolve = fixed(PUBLIC_V4, PUBLIC_V6, PUBLIC_V4)
    assert check_url(url, NO_POLICY, resolve=resolve) == [PUBLIC_V4, PUBLIC_V6]
    assert resolve.calls == [(expected_host, expected_port)]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://93.184.216.34/", ["93.184.216.34"]),
        ("http://1572395042/", ["93.184.216.34"]),
        ("http://8.8.8.8:53/", ["8.8.8.8"]),
        ("http://[2606:4700:4700::1111]/", ["2606:4700:4700::1111"]),
        ("http://[::ffff:8.8.8.8]/", ["::ffff:808:808"]),
        ("http://[64:ff9b::808:808]/", ["64:ff9b::808:808"]),
        ("http://172.32.0.1/", ["172.32.0.1"]),  # just outside 172.16/12
        ("http://100.128.0.1/", ["100.128.0.1"]),  # just outside 100.64/10
    ],
)
def test_public_literals_are_allowed_without_dns(url: str, expected: list[str]) -> None:
    assert check_url(url, NO_POLICY, resolve=no_dns) == expected


def test_extra_schemes_can_be_opted_into_for_websockets() -> None:
    resolve = fixed(PUBLIC_V4)
    schemes = ("http", "https", "ws", "wss")
    assert check_url("wss://example.com/socket", NO_POLICY, resolve=resolve, schemes=schemes) == [
        PUBLIC_V4
    ]
    assert resolve.calls == [("example.com", 443)]
    with pytest.raises(UrlRefused) as info:
        check_url("ws://127.0.0.1/", NO_POLICY, resolve=no_dns, schemes=schemes)
    assert info.value.category == "loopback"


# --- DNS answers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "category"),
    [
        ((PUBLIC_V4, "10.0.0.5"), "private"),
        (("10.0.0.5", PUBLIC_V4), "private"),
        ((PUBLIC_V6, "::1"), "loopback"),
        ((PUBLIC_V4, "169.254.169.254"), "metadata"),
        (("fe80::1%eth0",), "link-local"),
        (("::ffff:127.0.0.1",), "loopback"),
        ((ANY_V4,), "unspecified"),
    ],
)
def test_host_resolving_to_any_internal_address_is_refused(
    answers: tuple[str, ...], category: str
) -> None:
    # DNS rebinding answers with a public and a private address at once.
    with pytest.raises(UrlRefused) as info:
        check_url("https://rebind.example/", NO_POLICY, resolve=fixed(*answers))
    assert info.value.category == category
    assert "(from host rebind.example)" in str(info.value)


def raises_unicode_error(host: str, port: int) -> list[str]:
    raise UnicodeError("label too long")


@pytest.mark.parametrize(
    ("resolve", "message"),
    [
        (failing, "cannot resolve host no-such-host.invalid: "),
        (raises_unicode_error, "cannot resolve host no-such-host.invalid: label too long"),
        (fixed(), "cannot resolve host no-such-host.invalid: no addresses"),
        (fixed("not-an-ip"), "resolver returned 'not-an-ip', not an IP address"),
    ],
)
def test_unresolvable_host_is_refused(resolve: Resolver, message: str) -> None:
    with pytest.raises(UrlRefused) as info:
        check_url("https://no-such-host.invalid/", NO_POLICY, resolve=resolve)
    assert info.value.category == "unresolvable"
    assert message in str(info.value)


def test_unresolvable_message_says_cannot_resolve() -> None:
    with pytest.raises(UrlRefused, match=r"^refused: cannot resolve host nowhere\.invalid"):
        check_url("http://nowhere.invalid/", NO_POLICY, resolve=failing)


# --- the allow-list --------------------------------------------------------


def test_policy_from_setting_parses_comma_separated_entries() -> None:
    policy = UrlPolicy.from_setting(" 127.0.0.1, 10.0.0.0/8 ,,Fixtures.Test. ,[::1]")
    assert policy.allow == ("127.0.0.1", "10.0.0.0/8", "Fixtures.Test.", "[::1]")
    assert UrlPolicy.from_setting(None) == UrlPolicy()
    assert UrlPolicy.from_setting("") == UrlPolicy()
    assert UrlPolicy.from_setting(" , ") == UrlPolicy()


@pytest.mark.parametrize("bad", ["127.0.0.1:8080", "10.0.0.0/33", "http://x/", "a b"])
def test_policy_rejects_malformed_entries(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid allow entry"):
        UrlPolicy.from_setting(bad)


def test_allowing_one_address() -> None:
    policy = UrlPolicy.from_setting("127.0.0.1")
    assert check_url("http://127.0.0.1:8000/", policy, resolve=no_dns) == ["127.0.0.1"]
    assert check_url("http://127.1:8000/", policy, resolve=no_dns) == ["127.0.0.1"]
    # the IPv4-mapped form is the same endpoint
    assert check_url("http://[::ffff:127.0.0.1]/", policy, resolve=no_dns) == ["::ffff:7f00:1"]
    with pytest.raises(UrlRefused):
        check_url("http://127.0.0.2/", policy, resolve=no_dns)
    with pytest.raises(UrlRefused):
        check_url("http://[::1]/", policy, resolve=no_dns)
    with pytest.raises(UrlRefused):
        check_url("http://10.0.0.1/", policy, resolve=no_dns)


def test_allowing_a_network() -> None:
    policy = UrlPolicy.from_setting("127.0.0.0/8")
    for url in ("http://127.0.0.1/", "http://127.9.9.9/", "http://2130706434/"):
        assert check_url(url, policy, resolve=no_dns)
    assert check_url("http://fixture.test/", policy, resolve=fixed("127.0.0.53")) == ["127.0.0.53"]
    with pytest.raises(UrlRefused) as info:
        check_url("http://169.254.169.254/", policy, resolve=no_dns)
    assert info.value.category == "metadata"
    # an allowed address does not excuse another, internal, answer
    with pytest.raises(UrlRefused):
        check_url("http://fixture.test/", policy, resolve=fixed("127.0.0.1", "10.0.0.1"))


def test_allowing_a_hostname() -> None:
    policy = UrlPolicy.from_setting("fixtures.test,localhost")
    resolve = fixed("127.0.0.1", "::1")
    assert check_url("http://fixtures.test:8000/", policy, resolve=resolve) == ["127.0.0.1", "::1"]
    assert check_url("http://FIXTURES.test./", policy, resolve=resolve) == ["127.0.0.1", "::1"]
    assert check_url("http://localhost:8000/", policy, resolve=resolve) == ["127.0.0.1", "::1"]
    # only that name: another name, or the address itself, stays refused
    with pytest.raises(UrlRefused):
        check_url("http://other.test/", policy, resolve=resolve)
    with pytest.raises(UrlRefused):
        check_url("http://sub.fixtures.test/", policy, resolve=resolve)
    with pytest.raises(UrlRefused):
        check_url("http://127.0.0.1/", policy, resolve=no_dns)
    with pytest.raises(UrlRefused):
        check_url("http://evil.localhost/", policy, resolve=resolve)
    # the scheme rule still applies to allowed hosts
    with pytest.raises(UrlRefused) as info:
        check_url("ftp://fixtures.test/", policy, resolve=resolve)
    assert info.value.category == "scheme"
    with pytest.raises(UrlRefused) as info:
        check_url("http://fixtures.test/", policy, resolve=failing)
    assert info.value.category == "unresolvable"


def test_allowing_an_idna_hostname() -> None:
    policy = UrlPolicy.from_setting("bücher.test")
    assert check_url("http://xn--bcher-kva.test/", policy, resolve=fixed("10.1.2.3")) == [
        "10.1.2.3"
    ]


# --- after-the-fact check of the remote address -------------------------------


@pytest.mark.parametrize(
    ("ip", "allowed"),
    [
        (PUBLIC_V4, True),
        (PUBLIC_V6, True),
        (f"[{PUBLIC_V6}]", True),
        ("127.0.0.1", False),
        ("10.0.0.5", False),
        ("169.254.169.254", False),
        ("::ffff:10.0.0.5", False),
        ("fe80::1%eth0", False),
        ("", False),
        ("not-an-ip", False),
        ("0x7f.1", False),  # the browser reports canonical addresses only
    ],
)
def test_is_allowed_address(ip: str, allowed: bool) -> None:
    assert is_allowed_address(ip, NO_POLICY) is allowed


def test_is_allowed_address_honours_policy() -> None:
    policy = UrlPolicy.from_setting("127.0.0.0/8,fixtures.test")
    assert is_allowed_address("127.0.0.1", policy)
    assert is_allowed_address("::ffff:127.0.0.1", policy)
    assert not is_allowed_address("::1", policy)
    assert not is_allowed_address("10.0.0.1", policy)
    assert is_allowed_address("10.0.0.1", policy, host="fixtures.test")
    with pytest.raises(UrlRefused, match=r"10\.0\.0\.1 is a private address \(from host x\)"):
        check_address("10.0.0.1", policy, host="x")
