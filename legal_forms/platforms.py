"""The platform registry: typed, validated view of platforms.toml, and URL recognition.

`load_registry()` reads and checks the data file each time it is called (a few milliseconds);
callers that need it often keep the `Registry` they got. A fact the sources do not give is the
string "unknown" in the file and `None` (numbers) or "unknown" (text) here.

`Registry.recognise(url)` is pure and cheap: capture and deconfliction call it on every URL, so it
never raises and gives up on anything it does not understand.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn, cast
from urllib.parse import parse_qs, urlsplit

from legal_forms.errors import RegistryInvalid, UnknownPlatform

UNKNOWN = "unknown"
SCHEMA_VERSION = 1
DATA_FILE = "platforms.toml"

SOURCE_KINDS = frozenset({"official", "archive", "secondary"})
IDENTIFIER_KINDS = frozenset(
    {
        "username",
        "user_id",
        "phone",
        "email",
        "video_id",
        "gamertag",
        "profile_url",
        "full_name_and_email",
        "url",
    }
)

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_LANGUAGE = re.compile(r"^[a-z]{2}$")


# --- the data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    url: str
    title: str
    checked: date
    kind: str
    note: str | None = None


@dataclass(frozen=True)
class LegalEntity:
    name: str
    address: str
    role: str


@dataclass(frozen=True)
class EEvidence:
    """Addressee under Regulation (EU) 2023/1543 / Directive (EU) 2023/1544, where published."""

    addressee: str
    notes: str


@dataclass(frozen=True)
class Identifier:
    service: str
    kind: str
    description: str
    example: str | None = None


@dataclass(frozen=True)
class Preservation:
    days: int | None
    extension_days: int | None
    max_extensions: int | None
    rule: str

    @property
    def summary(self) -> str:
        if self.days is None:
            return UNKNOWN
        text = f"{self.days} days"
        if self.extension_days is not None:
            times = "" if self.max_extensions is None else f" x{self.max_extensions}"
            text += f", +{self.extension_days}{times}"
        return text


@dataclass(frozen=True)
class Channel:
    name: str
    url: str
    email: str | None = None
    notes: str | None = None


@dataclass(frozen=True)
class Emergency:
    channel: str
    url: str


@dataclass(frozen=True)
class Platform:
    name: str
    display_name: str
    operator: str
    operator_group: str | None
    aliases: tuple[str, ...]
    services: tuple[str, ...]
    hosts: tuple[str, ...]
    languages: tuple[str, ...]
    direct_foreign_requests: str
    content_requires: str
    dsa_contact: str | None
    notes: tuple[str, ...]
    eu_entity: LegalEntity
    non_eu_entities: tuple[LegalEntity, ...]
    e_evidence: EEvidence
    identifiers: tuple[Identifier, ...]
    preservation: Preservation
    channel: Channel
    emergency: Emergency
    sources: tuple[Source, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping of every field (dates as ISO strings)."""
        return cast(dict[str, Any], _jsonable(self))


@dataclass(frozen=True)
class Recognition:
    """What a URL says about itself: the platform and, where the pattern allows, who and what.

    `identifier_kind` is one of username, user_id, phone (E.164 with "+"), group, invite_code,
    channel_id, profile_url, company. `identifier` is taken from the URL as written (no case
    folding); `short_link` marks a redirector (t.co, vm.tiktok.com ...) whose target may be
    elsewhere, so only the followed URL says what it is.
    """

    platform: str
    identifier_kind: str | None = None
    identifier: str | None = None
    content_kind: str | None = None
    content_id: str | None = None
    short_link: bool = False


class Registry:
    """The platforms, looked up by name, alias or URL host."""

    def __init__(self, platforms: tuple[Platform, ...]) -> None:
        self._platforms = MappingProxyType({p.name: p for p in platforms})
        names: dict[str, str] = {}
        groups: dict[str, list[str]] = {}
        hosts: dict[str, str] = {}
        for platform in platforms:
            names[platform.name] = platform.name
            for alias in platform.aliases:
                names[alias] = platform.name
            if platform.operator_group:
                groups.setdefault(platform.operator_group, []).append(platform.name)
            for host in platform.hosts:
                hosts[host] = platform.name
        self._names = MappingProxyType(names)
        self._groups = MappingProxyType({k: tuple(v) for k, v in groups.items()})
        self._hosts = MappingProxyType(hosts)

    def __iter__(self) -> Iterator[Platform]:
        return iter(self._platforms.values())

    def __len__(self) -> int:
        return len(self._platforms)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._platforms)

    def get(self, name: str) -> Platform:
        """The platform called `name` or one of its aliases, in any case."""
        key = name.strip().lower()
        found = self._names.get(key)
        if found is not None:
            return self._platforms[found]
        if key in self._groups:
            members = ", ".join(self._groups[key])
            raise UnknownPlatform(f"{name!r} operates several platforms; name one of: {members}")
        raise UnknownPlatform(f"unknown platform {name!r}; known: {', '.join(self.names)}")

    def group(self, operator_group: str) -> tuple[Platform, ...]:
        """The platforms of one operator group (e.g. "meta"), empty if there is none."""
        names = self._groups.get(operator_group.strip().lower(), ())
        return tuple(self._platforms[n] for n in names)

    def platform_for_host(self, host: str) -> Platform | None:
        """The platform owning `host` or a parent domain of it."""
        name = self._host_owner(host.lower().rstrip("."))
        return None if name is None else self._platforms[name]

    def recognise(self, url: str) -> Recognition | None:
        """The platform a URL belongs to and what it identifies; None for anything else."""
        parsed = _parse_url(url)
        if parsed is None:
            return None
        host, segments, query = parsed
        name = self._host_owner(host)
        if name is None:
            return None
        parser = _PARSERS.get(name)
        found = parser(host, segments, query) if parser else _Found()
        return Recognition(
            platform=name,
            identifier_kind=found.identifier_kind,
            identifier=found.identifier,
            content_kind=found.content_kind,
            content_id=found.content_id,
            short_link=found.short_link,
        )

    def _host_owner(self, host: str) -> str | None:
        labels = host.split(".")
        if len(labels) > _MAX_LABELS:
            return None
        for start in range(len(labels) - 1):
            owner = self._hosts.get(".".join(labels[start:]))
            if owner is not None:
                return owner
        return None


# --- loading and validation ------------------------------------------------------------------


def load_registry(path: Path | None = None) -> Registry:
    """Read and validate the registry; `path` defaults to the file shipped with the package."""
    if path is None:
        origin = DATA_FILE
        raw = resources.files("legal_forms").joinpath(DATA_FILE).read_bytes()
    else:
        origin = str(path)
        raw = path.read_bytes()
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RegistryInvalid(f"{origin}: not valid TOML: {exc}") from exc
    return parse_registry(document, origin=origin)


def parse_registry(document: Mapping[str, Any], *, origin: str = DATA_FILE) -> Registry:
    """Build a Registry from parsed TOML, failing on the first problem with the entry's name."""
    top = _Table(document, origin)
    top.only({"schema_version", "platforms"})
    if top.integer("schema_version") != SCHEMA_VERSION:
        top.fail(f"schema_version must be {SCHEMA_VERSION}")
    entries = top.table("platforms")
    if not entries.data:
        entries.fail("no platforms")
    platforms = tuple(_platform(name, entries.table(name)) for name in entries.data)
    _check_unique(platforms, origin)
    return Registry(platforms)


_PLATFORM_KEYS = {
    "display_name",
    "operator",
    "operator_group",
    "aliases",
    "services",
    "hosts",
    "languages",
    "direct_foreign_requests",
    "content_requires",
    "dsa_contact",
    "notes",
    "sources",
    "eu_entity",
    "non_eu_entities",
    "e_evidence",
    "identifiers",
    "preservation",
    "channel",
    "emergency",
}


def _platform(name: str, t: _Table) -> Platform:
    if not _NAME.match(name):
        t.fail("platform names are lower-case letters, digits, '-' and '_'")
    t.only(_PLATFORM_KEYS)
    notes = t.strings("notes")
    platform = Platform(
        name=name,
        display_name=t.text("display_name"),
        operator=t.text("operator"),
        operator_group=t.optional_text("operator_group"),
        aliases=tuple(a.lower() for a in t.strings("aliases")),
        services=t.strings("services"),
        hosts=_hosts(t),
        languages=_languages(t),
        direct_foreign_requests=t.text("direct_foreign_requests"),
        content_requires=t.text("content_requires"),
        dsa_contact=t.optional_text("dsa_contact"),
        notes=notes,
        eu_entity=_entity(t.table("eu_entity")),
        non_eu_entities=tuple(_entity(e) for e in t.tables("non_eu_entities")),
        e_evidence=_e_evidence(t.table("e_evidence")),
        identifiers=tuple(_identifier(i) for i in t.tables("identifiers")),
        preservation=_preservation(t.table("preservation")),
        channel=_channel(t.table("channel")),
        emergency=_emergency(t.table("emergency")),
        sources=tuple(_source(s) for s in t.tables("sources")),
    )
    if not platform.sources:
        t.fail("needs at least one source")
    if not platform.non_eu_entities:
        t.fail("needs at least one non_eu_entities entry")
    if not platform.identifiers:
        t.fail("needs at least one identifiers entry")
    if not notes and _has_unknown(platform):
        t.fail('has "unknown" values but no notes saying what is missing')
    return platform


def _hosts(t: _Table) -> tuple[str, ...]:
    hosts = t.strings("hosts")
    for host in hosts:
        if not _HOST.match(host):
            t.fail(f"host {host!r} must be a lower-case domain name without scheme or path")
    return hosts


def _languages(t: _Table) -> tuple[str, ...]:
    languages = t.strings("languages")
    if languages != (UNKNOWN,) and not (
        languages and all(_LANGUAGE.match(code) for code in languages)
    ):
        t.fail('languages must be ISO 639-1 codes or ["unknown"]')
    return languages


def _entity(t: _Table) -> LegalEntity:
    t.only({"name", "address", "role"})
    return LegalEntity(name=t.text("name"), address=t.text("address"), role=t.text("role"))


def _e_evidence(t: _Table) -> EEvidence:
    t.only({"addressee", "notes"})
    return EEvidence(addressee=t.text("addressee"), notes=t.text("notes"))


def _identifier(t: _Table) -> Identifier:
    t.only({"service", "kind", "description", "example"})
    kind = t.text("kind")
    if kind not in IDENTIFIER_KINDS:
        t.fail(f"identifier kind {kind!r} is not one of {sorted(IDENTIFIER_KINDS)}")
    return Identifier(
        service=t.text("service"),
        kind=kind,
        description=t.text("description"),
        example=t.optional_text("example"),
    )


def _preservation(t: _Table) -> Preservation:
    t.only({"days", "extension_days", "max_extensions", "rule"})
    return Preservation(
        days=t.count_or_unknown("days"),
        extension_days=t.count_or_unknown("extension_days"),
        max_extensions=t.count_or_unknown("max_extensions"),
        rule=t.text("rule"),
    )


def _channel(t: _Table) -> Channel:
    t.only({"name", "url", "email", "notes"})
    return Channel(
        name=t.text("name"),
        url=t.url_or_unknown("url"),
        email=t.optional_text("email"),
        notes=t.optional_text("notes"),
    )


def _emergency(t: _Table) -> Emergency:
    t.only({"channel", "url"})
    return Emergency(channel=t.text("channel"), url=t.url_or_unknown("url"))


def _source(t: _Table) -> Source:
    t.only({"url", "title", "checked", "kind", "note"})
    url = t.url_or_unknown("url")
    if url == UNKNOWN:
        t.fail("a source needs a real url")
    kind = t.text("kind")
    if kind not in SOURCE_KINDS:
        t.fail(f"source kind {kind!r} is not one of {sorted(SOURCE_KINDS)}")
    return Source(
        url=url,
        title=t.text("title"),
        checked=t.day("checked"),
        kind=kind,
        note=t.optional_text("note"),
    )


def _check_unique(platforms: tuple[Platform, ...], origin: str) -> None:
    names: dict[str, str] = {}
    hosts: dict[str, str] = {}
    for platform in platforms:
        for key in (platform.name, *platform.aliases):
            if key in names:
                raise RegistryInvalid(
                    f"{origin}: [platforms.{platform.name}] name or alias {key!r} "
                    f"already used by {names[key]}"
                )
            names[key] = platform.name
        for host in platform.hosts:
            if host in hosts:
                raise RegistryInvalid(
                    f"{origin}: [platforms.{platform.name}] host {host!r} already belongs "
                    f"to {hosts[host]}"
                )
            hosts[host] = platform.name
    groups = {p.operator_group for p in platforms if p.operator_group}
    clash = groups & names.keys()
    if clash:
        raise RegistryInvalid(f"{origin}: operator group {sorted(clash)[0]!r} is also a name")


def _has_unknown(value: object) -> bool:
    if value is None or value == UNKNOWN:
        return True
    if isinstance(value, tuple):
        return any(_has_unknown(v) for v in value)
    if isinstance(value, Source):
        return False
    if hasattr(value, "__dataclass_fields__"):
        return any(
            _has_unknown(getattr(value, f))
            for f in value.__dataclass_fields__
            if f not in _OPTIONAL_FIELDS
        )
    return False


_OPTIONAL_FIELDS = frozenset({"operator_group", "dsa_contact", "example", "email", "notes"})


class _Table:
    """One TOML table with the path that names it in error messages."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def fail(self, problem: str) -> NoReturn:
        raise RegistryInvalid(f"{self.where}: {problem}")

    def _child(self, key: str) -> str:
        if "[" not in self.where:
            return f"{self.where}: [{key}]"
        return f"{self.where[:-1]}.{key}]"

    def only(self, allowed: set[str]) -> None:
        extra = sorted(set(self.data) - allowed)
        if extra:
            self.fail(f"unexpected key {extra[0]!r}")

    def _get(self, key: str) -> Any:
        if key not in self.data:
            self.fail(f"missing required key {key!r}")
        return self.data[key]

    def table(self, key: str) -> _Table:
        value = self._get(key)
        if not isinstance(value, dict):
            self.fail(f"{key!r} must be a table")
        return _Table(value, self._child(key))

    def tables(self, key: str) -> list[_Table]:
        value = self._get(key)
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.fail(f"{key!r} must be a list of tables")
        return [_Table(v, f"{self._child(key)[:-1]}[{i}]]") for i, v in enumerate(value)]

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{key!r} must be a non-empty string")
        return str(value)

    def optional_text(self, key: str) -> str | None:
        return self.text(key) if key in self.data else None

    def strings(self, key: str) -> tuple[str, ...]:
        value = self._get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(f"{key!r} must be a list of non-empty strings")
        return tuple(value)

    def integer(self, key: str) -> int:
        value = self._get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(f"{key!r} must be an integer")
        return int(value)

    def count_or_unknown(self, key: str) -> int | None:
        value = self._get(key)
        if value == UNKNOWN:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            self.fail(f'{key!r} must be a positive integer or "unknown"')
        return int(value)

    def url_or_unknown(self, key: str) -> str:
        value = self.text(key)
        if value != UNKNOWN and not value.startswith(("https://", "http://")):
            self.fail(f'{key!r} must be an http(s) URL or "unknown"')
        return value

    def day(self, key: str) -> date:
        value = self._get(key)
        if isinstance(value, datetime) or not isinstance(value, date):
            self.fail(f"{key!r} must be a TOML date such as 2026-11-22")
        return value


def _jsonable(value: object) -> object:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {f: _jsonable(getattr(value, f)) for f in value.__dataclass_fields__}
    return value


# --- URL recognition -------------------------------------------------------------------------

_MAX_URL = 4096
_MAX_LABELS = 16
_SCHEMELESS = re.compile(r"^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?::\d{1,5})?(?:[/?#]|$)")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_DIGITS = re.compile(r"^[0-9]{1,25}$")


@dataclass(frozen=True)
class _Found:
    identifier_kind: str | None = None
    identifier: str | None = None
    content_kind: str | None = None
    content_id: str | None = None
    short_link: bool = False


_Query = Mapping[str, list[str]]
_Parser = Callable[[str, list[str], _Query], _Found]


def _parse_url(url: object) -> tuple[str, list[str], _Query] | None:
    if not isinstance(url, str) or not url or len(url) > _MAX_URL:
        return None
    text = url.strip()
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        return None
    if "://" not in text:
        if text.startswith("//"):
            text = "https:" + text
        elif _SCHEMELESS.match(text):
            text = "https://" + text
        else:
            return None
    try:
        parts = urlsplit(text)
        host = parts.hostname
        query = parse_qs(parts.query, max_num_fields=64) if parts.query else {}
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    segments = [s for s in parts.path.split("/") if s]
    return host.rstrip("."), segments, query


def _first(query: _Query, key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _token(value: str | None) -> str | None:
    return value if value is not None and _TOKEN.match(value) else None


def _digits(value: str | None) -> str | None:
    return value if value is not None and _DIGITS.match(value) else None


def _on(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


_FB_NAME = re.compile(r"^[A-Za-z0-9.]{5,50}$")
_FB_GROUP = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_FB_RESERVED = frozenset(
    {
        "about", "ads", "bookmarks", "business", "careers", "checkpoint", "dialog", "events",
        "friends", "fundraisers", "gaming", "groups", "hashtag", "help", "home.php", "jobs",
        "l.php", "latest", "legal", "live", "login", "login.php", "marketplace", "media",
        "memories", "messages", "notifications", "pages", "people", "permalink.php", "photo",
        "photo.php", "photos", "places", "plugins", "policies", "policy.php", "privacy", "recover",
        "reel", "reels", "saved", "search", "settings", "share", "sharer", "sharer.php", "stories",
        "story.php", "terms", "tr", "video.php", "videos", "watch"
    }
)


def _facebook(host: str, seg: list[str], query: _Query) -> _Found:
    if _on(host, "fb.watch"):
        return _Found(short_link=True)
    if _on(host, "m.me"):
        name = seg[0] if seg and _FB_NAME.match(seg[0]) else None
        return _Found("username", name) if name else _Found()
    if not seg:
        return _Found()
    head = seg[0].lower()
    if head == "profile.php":
        uid = _digits(_first(query, "id"))
        return _Found("user_id", uid) if uid else _Found()
    if head == "people" and len(seg) >= 3 and _digits(seg[2]):
        return _Found("user_id", seg[2])
    if head in ("permalink.php", "story.php"):
        uid = _digits(_first(query, "id"))
        post = _token(_first(query, "story_fbid"))
        return _Found("user_id" if uid else None, uid, "post" if post else None, post)
    if head == "watch":
        video = _digits(_first(query, "v"))
        return _Found(content_kind="video", content_id=video) if video else _Found()
    if head == "groups" and len(seg) >= 2 and _FB_GROUP.match(seg[1]):
        post = _token(seg[3]) if len(seg) >= 4 and seg[2] in ("posts", "permalink") else None
        return _Found("group", seg[1], "post" if post else None, post)
    if head in ("reel", "reels") and len(seg) >= 2 and _digits(seg[1]):
        return _Found(content_kind="reel", content_id=seg[1])
    if head == "share":
        return _Found(short_link=True)
    if _digits(seg[0]):
        return _Found("user_id", seg[0])
    if head in _FB_RESERVED or not _FB_NAME.match(seg[0]):
        return _Found()
    content: tuple[str | None, str | None] = (None, None)
    if len(seg) >= 3 and seg[1] in ("posts", "videos") and _token(seg[2]):
        content = ("post" if seg[1] == "posts" else "video", seg[2])
    return _Found("username", seg[0], *content)


_IG_NAME = re.compile(r"^[A-Za-z0-9._]{1,30}$")
_IG_CONTENT = {"p": "post", "reel": "reel", "reels": "reel", "tv": "video"}
_IG_RESERVED = frozenset(
    {
        "about", "accounts", "api", "challenge", "developer", "direct", "directory", "download",
        "emails", "explore", "graphql", "help", "invites", "legal", "locations", "lite", "nametag",
        "oauth", "press", "privacy", "qr", "s", "session", "static", "stories", "terms", "topics",
        "web"
    }
)


def _instagram(host: str, seg: list[str], query: _Query) -> _Found:
    if not seg:
        return _Found()
    head = seg[0].lower()
    if head in _IG_CONTENT:
        code = _token(seg[1]) if len(seg) >= 2 else None
        return _Found(content_kind=_IG_CONTENT[head], content_id=code) if code else _Found()
    if head == "stories":
        if len(seg) >= 2 and _IG_NAME.match(seg[1]) and seg[1] != "highlights":
            story = _digits(seg[2]) if len(seg) >= 3 else None
            return _Found("username", seg[1], "story" if story else None, story)
        return _Found()
    if head in _IG_RESERVED or not _IG_NAME.match(seg[0]):
        return _Found()
    if len(seg) >= 3 and seg[1] in _IG_CONTENT and _token(seg[2]):
        return _Found("username", seg[0], _IG_CONTENT[seg[1]], seg[2])
    return _Found("username", seg[0])


_PHONE = re.compile(r"^\+?([1-9][0-9]{6,14})$")


def _phone(value: str | None) -> _Found:
    match = _PHONE.match(value or "")
    return _Found("phone", "+" + match.group(1)) if match else _Found()


def _whatsapp(host: str, seg: list[str], query: _Query) -> _Found:
    if _on(host, "wa.me"):
        if seg and seg[0] in ("message", "qr"):
            return _Found(short_link=True)
        return _phone(seg[0]) if seg else _Found()
    if _on(host, "chat.whatsapp.com"):
        code = _token(seg[0]) if seg else None
        return _Found("invite_code", code) if code else _Found()
    if seg and seg[0] == "send":
        return _phone(_first(query, "phone"))
    if len(seg) >= 2 and seg[0] == "channel" and _token(seg[1]):
        return _Found("channel_id", seg[1])
    return _Found()


_X_HANDLE = re.compile(r"^[A-Za-z0-9_]{1,15}$")
_X_RESERVED = frozenset(
    {
        "about", "account", "communities", "compose", "download", "explore", "hashtag", "help",
        "home", "i", "intent", "jobs", "lists", "login", "logout", "messages", "notifications",
        "premium", "privacy", "rules", "search", "settings", "share", "signup", "topics", "tos"
    }
)


def _x(host: str, seg: list[str], query: _Query) -> _Found:
    if _on(host, "t.co"):
        return _Found(short_link=True)
    if _on(host, "pscp.tv") or _on(host, "periscope.tv"):
        name = seg[0] if seg and _X_HANDLE.match(seg[0]) and seg[0] != "w" else None
        return _Found("username", name) if name else _Found()
    if not seg:
        return _Found()
    head = seg[0].lower()
    if head == "i":
        if len(seg) >= 4 and seg[1] == "web" and seg[2] == "status" and _digits(seg[3]):
            return _Found(content_kind="post", content_id=seg[3])
        if len(seg) >= 3 and seg[1] == "status" and _digits(seg[2]):
            return _Found(content_kind="post", content_id=seg[2])
        if len(seg) >= 3 and seg[1] == "user" and _digits(seg[2]):
            return _Found("user_id", seg[2])
        return _Found()
    if head == "intent":
        uid = _digits(_first(query, "user_id"))
        if uid:
            return _Found("user_id", uid)
        name = _first(query, "screen_name")
        return _Found("username", name) if name and _X_HANDLE.match(name) else _Found()
    if head in _X_RESERVED or not _X_HANDLE.match(seg[0]):
        return _Found()
    if len(seg) >= 3 and seg[1] in ("status", "statuses") and _digits(seg[2]):
        return _Found("username", seg[0], "post", seg[2])
    return _Found("username", seg[0])


_TT_NAME = re.compile(r"^@([A-Za-z0-9._]{2,24})$")


def _tiktok(host: str, seg: list[str], query: _Query) -> _Found:
    if _on(host, "vm.tiktok.com") or _on(host, "vt.tiktok.com") or (seg and seg[0] == "t"):
        return _Found(short_link=True)
    if not seg:
        return _Found()
    match = _TT_NAME.match(seg[0])
    if match:
        if len(seg) >= 3 and seg[1] in ("video", "photo") and _digits(seg[2]):
            return _Found("username", match.group(1), seg[1], seg[2])
        return _Found("username", match.group(1))
    if seg[0] == "embed" and _digits(seg[-1]):
        return _Found(content_kind="video", content_id=seg[-1])
    return _Found()


_TG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{4,31}$")
_TG_RESERVED = frozenset(
    {
        "addemoji", "addlist", "addstickers", "addtheme", "boost", "confirmphone", "contact",
        "invoice", "iv", "joinchat", "login", "proxy", "setlanguage", "share", "socks"
    }
)


def _telegram(host: str, seg: list[str], query: _Query) -> _Found:
    if _on(host, "telegram.org") or not seg:
        return _Found()
    head = seg[0]
    if head.startswith("+"):
        code = _token(head[1:])
        return _Found("invite_code", code) if code else _Found()
    if head == "joinchat":
        code = _token(seg[1]) if len(seg) >= 2 else None
        return _Found("invite_code", code) if code else _Found()
    if head == "c" and len(seg) >= 2 and _digits(seg[1]):
        post = _digits(seg[2]) if len(seg) >= 3 else None
        return _Found("channel_id", seg[1], "message" if post else None, post)
    if head == "s" and len(seg) >= 2:
        seg = seg[1:]
        head = seg[0]
    if head.lower() in _TG_RESERVED or not _TG_NAME.match(head):
        return _Found()
    post = _digits(seg[1]) if len(seg) >= 2 else None
    return _Found("username", head, "message" if post else None, post)


_YT_VIDEO = re.compile(r"^[A-Za-z0-9_-]{11}$")
_YT_CHANNEL = re.compile(r"^UC[A-Za-z0-9_-]{22}$")
_YT_HANDLE = re.compile(r"^@([A-Za-z0-9._-]{3,30})$")
_YT_LEGACY = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def _google(host: str, seg: list[str], query: _Query) -> _Found:
    if _on(host, "youtu.be"):
        video = seg[0] if seg and _YT_VIDEO.match(seg[0]) else None
        return _Found(content_kind="video", content_id=video) if video else _Found()
    if not (_on(host, "youtube.com") or _on(host, "youtube-nocookie.com")) or not seg:
        return _Found()
    head = seg[0]
    if head == "watch":
        video = _first(query, "v")
        if video and _YT_VIDEO.match(video):
            return _Found(content_kind="video", content_id=video)
        return _Found()
    if head in ("shorts", "live", "embed", "v") and len(seg) >= 2 and _YT_VIDEO.match(seg[1]):
        return _Found(content_kind="video", content_id=seg[1])
    if head == "channel" and len(seg) >= 2 and _YT_CHANNEL.match(seg[1]):
        return _Found("channel_id", seg[1])
    if head in ("c", "user") and len(seg) >= 2 and _YT_LEGACY.match(seg[1]):
        return _Found("username", seg[1])
    match = _YT_HANDLE.match(head)
    return _Found("username", match.group(1)) if match else _Found()


_SNAP_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{2,14}$")


def _snap(host: str, seg: list[str], query: _Query) -> _Found:
    if _on(host, "t.snapchat.com"):
        return _Found(short_link=True)
    if not seg:
        return _Found()
    if seg[0] == "add" and len(seg) >= 2 and _SNAP_NAME.match(seg[1]):
        return _Found("username", seg[1])
    if seg[0].startswith("@") and _SNAP_NAME.match(seg[0][1:]):
        return _Found("username", seg[0][1:])
    if seg[0] == "spotlight" and len(seg) >= 2 and _token(seg[1]):
        return _Found(content_kind="spotlight", content_id=seg[1])
    return _Found()


_LI_NAME = re.compile(r"^[A-Za-z0-9_-]{3,100}$")


def _linkedin(host: str, seg: list[str], query: _Query) -> _Found:
    if _on(host, "lnkd.in"):
        return _Found(short_link=True)
    if len(seg) >= 2 and seg[0] == "in" and _LI_NAME.match(seg[1]):
        return _Found("profile_url", f"https://www.linkedin.com/in/{seg[1]}")
    if len(seg) >= 2 and seg[0] == "company" and _LI_NAME.match(seg[1]):
        return _Found("company", seg[1])
    if len(seg) >= 2 and seg[0] == "posts" and _LI_NAME.match(seg[1]):
        return _Found(content_kind="post", content_id=seg[1])
    return _Found()


_PARSERS: Mapping[str, _Parser] = MappingProxyType(
    {
        "facebook": _facebook,
        "instagram": _instagram,
        "whatsapp": _whatsapp,
        "x": _x,
        "tiktok": _tiktok,
        "telegram": _telegram,
        "google": _google,
        "snap": _snap,
        "linkedin": _linkedin,
    }
)
