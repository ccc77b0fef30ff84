"""The platform registry: the shipped data file, its validation, URL recognition and the CLI."""

from __future__ import annotations

import json
import time
import tomllib
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from legal_forms.cli import platforms
from legal_forms.errors import RegistryInvalid, UnknownPlatform
from legal_forms.platforms import (
    UNKNOWN,
    Recognition,
    Registry,
    load_registry,
    parse_registry,
)

REQUIRED = (
    "facebook",
    "instagram",
    "whatsapp",
    "x",
    "tiktok",
    "telegram",
    "google",
    "snap",
    "microsoft",
    "generic",
)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


def shipped_document() -> dict[str, Any]:
    raw = resources.files("legal_forms").joinpath("platforms.toml").read_text("utf-8")
    return tomllib.loads(raw)


# --- the shipped data ------------------------------------------------------------------------


def test_registry_loads_with_the_required_platforms(registry: Registry) -> None:
    assert set(REQUIRED) <= set(registry.names)
    assert len(registry) == len(registry.names)


def test_every_entry_has_dated_sources(registry: Registry) -> None:
    for platform in registry:
        assert platform.sources, platform.name
        for source in platform.sources:
            assert isinstance(source.checked, date), platform.name
            assert date(2026, 1, 1) <= source.checked <= date(2030, 1, 1), platform.name
            assert source.url.startswith(("https://", "http://")), platform.name
            assert source.kind in {"official", "archive", "secondary"}


def test_every_entry_with_an_unknown_says_why(registry: Registry) -> None:
    for platform in registry:
        if platform.preservation.days is None or UNKNOWN in (
            platform.channel.name,
            platform.eu_entity.address,
            platform.e_evidence.addressee,
        ):
            assert platform.notes, platform.name


def test_facts_that_the_sources_state(registry: Registry) -> None:
    facebook = registry.get("facebook")
    assert facebook.eu_entity.name == "Meta Platforms Ireland Ltd."
    assert facebook.preservation.days == 90
    assert facebook.channel.url == "https://www.facebook.com/records"
    tiktok = registry.get("tiktok")
    assert (tiktok.preservation.days, tiktok.preservation.extension_days) == (90, 90)
    assert tiktok.preservation.max_extensions == 1
    assert tiktok.languages == ("en",)
    x = registry.get("x")
    assert x.eu_entity.name == "Twitter International Unlimited Company"
    snap = registry.get("snap")
    assert snap.preservation.days == 365  # the courtesy period for non-US authorities
    assert {i.kind for i in snap.identifiers} >= {"username", "user_id"}
    # Nothing published: the registry must say unknown rather than guess.
    assert registry.get("telegram").preservation.days is None
    assert registry.get("whatsapp").preservation.days is None
    assert registry.get("google").preservation.days is None


def test_no_e_evidence_addressee_is_invented(registry: Registry) -> None:
    for platform in registry:
        if platform.e_evidence.addressee == UNKNOWN:
            assert platform.e_evidence.notes


def test_hosts_do_not_overlap_between_platforms(registry: Registry) -> None:
    seen: dict[str, str] = {}
    for platform in registry:
        for host in platform.hosts:
            assert host not in seen, (host, platform.name, seen.get(host))
            seen[host] = platform.name


def test_generic_has_no_hosts(registry: Registry) -> None:
    assert registry.get("generic").hosts == ()


# --- look-up by name -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        ("facebook", "facebook"),
        ("Facebook", "facebook"),
        ("  INSTAGRAM ", "instagram"),
        ("twitter", "x"),
        ("X", "x"),
        ("youtube", "google"),
        ("gmail", "google"),
        ("snapchat", "snap"),
        ("tg", "telegram"),
        ("skype", "microsoft"),
        ("messenger", "facebook"),
    ],
)
def test_get_by_name_or_alias(registry: Registry, asked: str, expected: str) -> None:
    assert registry.get(asked).name == expected


def test_operator_group_is_not_a_platform(registry: Registry) -> None:
    with pytest.raises(UnknownPlatform, match="facebook, instagram, whatsapp"):
        registry.get("meta")
    assert {p.name for p in registry.group("Meta")} == {"facebook", "instagram", "whatsapp"}
    assert registry.group("nobody") == ()


def test_unknown_name_lists_the_known_ones(registry: Registry) -> None:
    with pytest.raises(UnknownPlatform) as caught:
        registry.get("myspace")
    assert "myspace" in str(caught.value)
    assert "telegram" in str(caught.value)
    assert caught.value.status_code == 404


# --- URL recognition ---------------------------------------------------------------------------

R = Recognition

CASES: list[tuple[str, Recognition | None]] = [
    # Instagram
    ("https://www.instagram.com/some.user/", R("instagram", "username", "some.user")),
    ("instagram.com/some_user", R("instagram", "username", "some_user")),
    (
        "https://www.instagram.com/p/CxYz123AbC/",
        R("instagram", content_kind="post", content_id="CxYz123AbC"),
    ),
    (
        "https://www.instagram.com/reel/Cab_cd-12/",
        R("instagram", content_kind="reel", content_id="Cab_cd-12"),
    ),
    (
        "https://www.instagram.com/stories/some.user/3141592653589/",
        R("instagram", "username", "some.user", "story", "3141592653589"),
    ),
    ("https://www.instagram.com/explore/", R("instagram")),
    ("https://instagr.am/some.user", R("instagram", "username", "some.user")),
    # Facebook
    ("https://www.facebook.com/profile.php?id=1000123", R("facebook", "user_id", "1000123")),
    ("https://m.facebook.com/profile.php?id=1000123&sk=about", R("facebook", "user_id", "1000123")),
    ("https://www.facebook.com/some.name", R("facebook", "username", "some.name")),
    (
        "https://web.facebook.com/some.name/posts/pfbid0abc",
        R("facebook", "username", "some.name", "post", "pfbid0abc"),
    ),
    (
        "https://www.facebook.com/people/Some-Name/100089123456789/",
        R("facebook", "user_id", "100089123456789"),
    ),
    (
        "https://fb.com/groups/smugglers.ads/posts/998877",
        R("facebook", "group", "smugglers.ads", "post", "998877"),
    ),
    (
        "https://www.facebook.com/watch/?v=4455667788",
        R("facebook", content_kind="video", content_id="4455667788"),
    ),
    ("https://www.facebook.com/marketplace/item/123", R("facebook")),
    ("https://www.facebook.com/login.php", R("facebook")),
    ("https://fb.watch/abcDEF12/", R("facebook", short_link=True)),
    # WhatsApp
    ("https://wa.me/491701234567", R("whatsapp", "phone", "+491701234567")),
    (
        "https://api.whatsapp.com/send?phone=447700900123&text=hi",
        R("whatsapp", "phone", "+447700900123"),
    ),
    ("https://chat.whatsapp.com/AbCdEf123456", R("whatsapp", "invite_code", "AbCdEf123456")),
    ("https://wa.me/0123", R("whatsapp")),
    ("https://wa.me/message/ABCDEF", R("whatsapp", short_link=True)),
    # X
    ("https://x.com/handle/status/123", R("x", "username", "handle", "post", "123")),
    ("https://mobile.twitter.com/some_handle", R("x", "username", "some_handle")),
    (
        "https://twitter.com/i/web/status/1234567890",
        R("x", content_kind="post", content_id="1234567890"),
    ),
    ("https://twitter.com/intent/user?user_id=783214", R("x", "user_id", "783214")),
    ("https://x.com/home", R("x")),
    ("https://x.com/this_handle_is_far_too_long", R("x")),
    ("https://t.co/AbC123", R("x", short_link=True)),
    # TikTok
    ("https://www.tiktok.com/@user/video/123", R("tiktok", "username", "user", "video", "123")),
    ("https://www.tiktok.com/@some.user_1", R("tiktok", "username", "some.user_1")),
    ("https://vm.tiktok.com/ZMabc123/", R("tiktok", short_link=True)),
    # Telegram
    ("https://t.me/somechannel", R("telegram", "username", "somechannel")),
    ("https://t.me/somechannel/42", R("telegram", "username", "somechannel", "message", "42")),
    ("https://telegram.me/s/somechannel", R("telegram", "username", "somechannel")),
    ("https://t.me/+AbCdEfGh123", R("telegram", "invite_code", "AbCdEfGh123")),
    ("https://t.me/joinchat/AbCdEfGh123", R("telegram", "invite_code", "AbCdEfGh123")),
    ("https://t.me/c/1234567890/15", R("telegram", "channel_id", "1234567890", "message", "15")),
    ("https://t.me/share/url?url=x", R("telegram")),
    ("https://telegram.org/faq", R("telegram")),
    # Google / YouTube
    (
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        R("google", content_kind="video", content_id="dQw4w9WgXcQ"),
    ),
    ("https://youtu.be/dQw4w9WgXcQ", R("google", content_kind="video", content_id="dQw4w9WgXcQ")),
    (
        "https://m.youtube.com/shorts/dQw4w9WgXcQ",
        R("google", content_kind="video", content_id="dQw4w9WgXcQ"),
    ),
    ("https://www.youtube.com/@SomeChannel", R("google", "username", "SomeChannel")),
    (
        "https://www.youtube.com/channel/UCabcdefghijklmnopqrstuv",
        R("google", "channel_id", "UCabcdefghijklmnopqrstuv"),
    ),
    ("https://drive.google.com/file/d/abc/view", R("google")),
    # Snapchat, LinkedIn, Microsoft
    ("https://www.snapchat.com/add/milliemanillie", R("snap", "username", "milliemanillie")),
    ("https://t.snapchat.com/AbCd", R("snap", short_link=True)),
    (
        "https://www.linkedin.com/in/some-member/",
        R("linkedin", "profile_url", "https://www.linkedin.com/in/some-member"),
    ),
    ("https://outlook.live.com/mail/", R("microsoft")),
    # Odd but fine: trailing dot, port, upper case host, credentials that point elsewhere
    ("https://WWW.INSTAGRAM.COM./some.user", R("instagram", "username", "some.user")),
    ("http://t.me:443/somechannel", R("telegram", "username", "somechannel")),
    ("https://evil.example@instagram.com/some.user", R("instagram", "username", "some.user")),
    # Not a platform
    ("https://example.com/some.user", None),
    ("https://instagram.com.evil.example/some.user", None),
    ("https://notinstagram.com/some.user", None),
    ("https://x.co/handle", None),
    ("", None),
    ("not a url", None),
    ("/relative/path", None),
    # Hostile
    ("javascript:alert(document.domain)", None),
    ("javascript://instagram.com/%0aalert(1)", None),
    ("data:text/html,<script>alert(1)</script>", None),
    ("mailto:someone@instagram.com", None),
    ("file:///etc/passwd", None),
    ("ftp://t.me/somechannel", None),
    ("https://t.me/some\nchannel", None),
    ("https://[::1", None),
    ("https://instagram.com/" + "a" * 10_000, None),
    ("https://" + "a." * 2000 + "instagram.com/x", None),
    ("http://\x00instagram.com/x", None),
]


@pytest.mark.parametrize(("url", "expected"), CASES, ids=[c[0][:60] for c in CASES])
def test_recognise(registry: Registry, url: str, expected: Recognition | None) -> None:
    assert registry.recognise(url) == expected


def test_recognise_never_raises_on_junk(registry: Registry) -> None:
    junk: list[Any] = [
        None,
        12,
        b"https://t.me/x",
        "https://",
        "https://:80/",
        "http://%",
        "https://t.me/" + "%" * 3000,
        "https://t.me/?" + "a=1&" * 200,
        "\u202ehttps://t.me/x",
        "https://ⅰnstagram.com/x",
        "https://xn--/",
    ]
    for value in junk:
        assert registry.recognise(value) is None or isinstance(
            registry.recognise(value), Recognition
        )


_HOSTS = ["instagram.com", "www.facebook.com", "wa.me", "x.com", "t.co", "www.tiktok.com", "t.me",
          "youtu.be", "www.youtube.com", "www.snapchat.com", "www.linkedin.com", "example.com"]
_SEGMENT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["https://", "http://", "//", "", "javascript:", "HTTPS://"]),
    host=st.sampled_from(_HOSTS) | st.text(max_size=30),
    segments=st.lists(_SEGMENT, max_size=5),
    query=st.text(max_size=60),
)
def test_recognise_never_raises_on_generated_urls(
    registry: Registry, scheme: str, host: str, segments: list[str], query: str
) -> None:
    url = scheme + host + "/" + "/".join(segments) + ("?" + query if query else "")
    result = registry.recognise(url)
    assert result is None or result.platform in registry.names


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_recognise_never_raises_on_any_text(registry: Registry, text: str) -> None:
    result = registry.recognise(text)
    assert result is None or result.platform in registry.names


def test_recognise_is_fast(registry: Registry) -> None:
    urls = [url for url, _ in CASES] * 20
    started = time.perf_counter()
    for url in urls:
        registry.recognise(url)
    per_call = (time.perf_counter() - started) / len(urls)
    assert per_call < 0.001


def test_platform_for_host(registry: Registry) -> None:
    found = registry.platform_for_host("vm.tiktok.com")
    assert found is not None and found.name == "tiktok"
    assert registry.platform_for_host("example.org") is None


# --- validation of the data file ---------------------------------------------------------------


def write(tmp_path: Path, document: dict[str, Any]) -> Path:
    """Write a document as TOML (only the subset the registry uses)."""
    path = tmp_path / "platforms.toml"
    path.write_text(_dump(document), "utf-8")
    return path


def _dump(document: dict[str, Any]) -> str:
    lines = [f"schema_version = {document['schema_version']}"]
    for name, entry in document["platforms"].items():
        lines.append(f"[platforms.{name}]")
        for key, value in entry.items():
            lines.append(f"{key} = {_value(value)}")
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | date):
        return str(value) if not isinstance(value, date) else value.isoformat()
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def test_shipped_file_round_trips_through_the_test_writer(tmp_path: Path) -> None:
    path = write(tmp_path, shipped_document())
    assert load_registry(path).names == load_registry().names


def test_missing_required_key_names_the_entry(tmp_path: Path) -> None:
    document = shipped_document()
    del document["platforms"]["instagram"]["operator"]
    with pytest.raises(RegistryInvalid, match=r"\[platforms\.instagram\].*'operator'"):
        load_registry(write(tmp_path, document))


def test_source_without_checked_date_fails(tmp_path: Path) -> None:
    document = shipped_document()
    del document["platforms"]["telegram"]["sources"][1]["checked"]
    with pytest.raises(RegistryInvalid, match=r"platforms\.telegram\.sources\[1\].*'checked'"):
        load_registry(write(tmp_path, document))


def test_checked_must_be_a_date_not_a_string() -> None:
    document = shipped_document()
    document["platforms"]["x"]["sources"][0]["checked"] = "2026-11-22"
    with pytest.raises(RegistryInvalid, match=r"platforms\.x\.sources\[0\].*TOML date"):
        parse_registry(document)


def test_entry_without_sources_fails() -> None:
    document = shipped_document()
    document["platforms"]["snap"]["sources"] = []
    with pytest.raises(RegistryInvalid, match=r"\[platforms\.snap\].*source"):
        parse_registry(document)


def test_unknown_values_need_notes() -> None:
    document = shipped_document()
    document["platforms"]["whatsapp"]["notes"] = []
    with pytest.raises(RegistryInvalid, match=r"\[platforms\.whatsapp\].*notes"):
        parse_registry(document)


def test_misspelt_key_is_refused() -> None:
    document = shipped_document()
    document["platforms"]["tiktok"]["preservation"]["dayz"] = 90
    with pytest.raises(RegistryInvalid, match=r"platforms\.tiktok\.preservation.*'dayz'"):
        parse_registry(document)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["platforms"]["x"]["preservation"].update(days="ninety"), "positive integer"),
        (lambda d: d["platforms"]["x"]["identifiers"][0].update(kind="shoe size"), "kind"),
        (lambda d: d["platforms"]["x"]["sources"][0].update(kind="rumour"), "source kind"),
        (lambda d: d["platforms"]["x"].update(hosts=["https://x.com/"]), "host"),
        (lambda d: d["platforms"]["x"].update(languages=["English"]), "languages"),
        (lambda d: d["platforms"]["x"].update(aliases=["instagram"]), "already used"),
        (lambda d: d["platforms"]["x"].update(hosts=["t.me"]), "already belongs"),
        (lambda d: d.update(schema_version=2), "schema_version"),
    ],
)
def test_other_invalid_data_is_refused(change: Any, message: str) -> None:
    document = shipped_document()
    change(document)
    with pytest.raises(RegistryInvalid, match=message):
        parse_registry(document)


def test_broken_toml_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "platforms.toml"
    path.write_text("[platforms.x\n", "utf-8")
    with pytest.raises(RegistryInvalid, match="not valid TOML"):
        load_registry(path)


# --- the CLI -----------------------------------------------------------------------------------


def invoke(*args: str) -> Any:
    return CliRunner().invoke(platforms, list(args))


def test_cli_list() -> None:
    result = invoke("list")
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split()[:2] == ["name", "display"]
    assert {row.split()[0] for row in rows} >= set(REQUIRED)
    assert "Twitter International Unlimited Company" in result.output
    assert "90 days, +90 x1" in result.output


def test_cli_list_json() -> None:
    result = invoke("list", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {p["name"] for p in data} >= set(REQUIRED)
    for entry in data:
        assert all(s["checked"] for s in entry["sources"])


def test_cli_show() -> None:
    result = invoke("show", "Twitter")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("X (formerly Twitter) [x]")
    assert "checked 2026-11-22" in result.output
    assert "https://legalrequests.x.com" in result.output


def test_cli_show_json() -> None:
    result = invoke("show", "telegram", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["name"] == "telegram"
    assert data["preservation"]["days"] is None
    assert data["sources"][0]["checked"] == "2026-11-22"


def test_cli_show_unknown_name() -> None:
    result = invoke("show", "myspace")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "myspace" in lines[0] and "facebook" in lines[0]
