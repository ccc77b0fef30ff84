"""Deconfliction: tell two cases that hold the same URL or account whom to call, nothing more.

Every flagged target registers selectors: an HMAC-SHA256, keyed with a server secret, of its
normalised URL and of each platform account it names (platform + identifier kind + value, from
the target's account and from what the platform registry recognises in its URL). When a new
selector's digest equals one held by another case, a `DeconflictionHit` is recorded and both
cases see it, naming only the other case's owning unit and contact: never its reference, title,
targets or content. A takedown is held while a hit on its target is unresolved; a hit is
resolved once someone from each case has recorded that they agree (who, when, and a note).

The secret keeps a copy of the selectors table from being a list of URLs: without it no one can
test a guessed URL against the digests. It comes from `EVIDENCE_DECONFLICTION_SECRET`, else from
`keys/deconfliction.key` in the data home, which `evidence init` makes; `open_runtime` loads it
and refuses to start without one. Sessions made without a runtime (tests) use `TEST_SECRET`.

Deployments spanning units, the point of all this: every instance whose cases should meet
must share the SAME secret (set EVIDENCE_DECONFLICTION_SECRET to one value everywhere instead of
relying on each home's own key file) and the SAME database. Instances with different secrets
or databases never see each other's hits, and say nothing about it. Changing the secret makes
every selector registered before the change unmatchable.

Normalisation (`normalise_url`) ignores scheme, host case, `www.`, userinfo, default ports,
fragments, tracking parameters, parameter order, dot segments, repeated and trailing slashes,
and, for platforms in the registry, their mobile hosts (m., mobile., mbasic. ...) and alternate
domains (twitter.com = x.com, fb.com = facebook.com ...). The registry is read from
`legal_forms` through the interface in `evidence.platforms`: the core imports no other package.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_to_bytes, urlencode, urlsplit

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from evidence import custody
from evidence.errors import (
    AccessDenied,
    ConfigurationError,
    Conflict,
    InvalidInput,
    NotFound,
    NotInitialised,
)
from evidence.models import (
    Account,
    Case,
    DeconflictionAgreement,
    DeconflictionHit,
    Selector,
    Target,
    User,
    utcnow,
)
from evidence.pagination import DEFAULT_LIMIT, Page, paginate
from evidence.platforms import PlatformRegistry as Registry
from evidence.platforms import platform_registry
from evidence.settings import KEY_FOLDER, Settings

KEY_FILE = "deconfliction.key"
SECRET_INFO_KEY = "evidence.deconfliction.secret"  # noqa: S105 - a dict key
MIN_SECRET_LENGTH = 32
# Known to everyone, so it protects nothing: used only by sessions no runtime made (tests).
TEST_SECRET = b"evidence-locker test deconfliction secret, not for use"
MAX_URL_LENGTH = 8192

URL = "url"
ACCOUNT = "account"

# Query parameters that say who shared a link or how it was reached, never what it shows.
TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "mc_cid", "mc_eid",
    "igshid", "igsh", "si", "mibextid", "ref_src", "ref_url", "_rdr", "__tn__", "rdid",
    "share_url", "sfnsn", "_ga", "_gl", "hl", "locale",
})
TRACKING_PREFIXES = ("utm_", "__cft__", "__xts__")
# X/Twitter's share links add ?s=20&t=... ; elsewhere `t` may be a video time, so only there.
PLATFORM_TRACKING = {"x": frozenset({"s", "t"})}
# Subdomains serving the same pages as the platform's main host.
MIRROR_LABELS = frozenset({"www", "m", "mobile", "mbasic", "touch", "mtouch", "web", "lm"})
# Domains of one platform that serve the same URL space; each pair must share a registry
# platform (checked when used, and by the tests). Short-link hosts are not here: t.co/x is not
# x.com/x.
SAME_SITE = {
    "twitter.com": "x.com",
    "fb.com": "facebook.com",
    "instagr.am": "instagram.com",
    "telegram.me": "t.me",
    "telegram.dog": "t.me",
    "youtube-nocookie.com": "youtube.com",
}
_CASE_FOLDED_KINDS = frozenset({"username"})
_SAFE_PATH = "/:@!$&'()*+,;=-._~"
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f]")


# --- the secret --------------------------------------------------------------------------------


def key_path(settings: Settings) -> Path:
    return settings.home_path / KEY_FOLDER / KEY_FILE


def load_secret(settings: Settings) -> bytes:
    """The configured secret: the setting, else the home's key file; refuses when neither is."""
    if settings.deconfliction_secret is not None:
        value = settings.deconfliction_secret.get_secret_value().encode()
        if len(value) < MIN_SECRET_LENGTH:
            raise ConfigurationError(
                f"EVIDENCE_DECONFLICTION_SECRET must be at least {MIN_SECRET_LENGTH} characters"
            )
        if value == TEST_SECRET:
            raise ConfigurationError("EVIDENCE_DECONFLICTION_SECRET is the tests' placeholder")
        return value
    path = key_path(settings)
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise NotInitialised(
            f"no deconfliction secret: set EVIDENCE_DECONFLICTION_SECRET or run "
            f"`evidence init --home {settings.home_path}` to make {path}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the deconfliction key {path}: {exc}") from exc
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigurationError(f"{path} must hold at least {MIN_SECRET_LENGTH} bytes in hex")
    return secret


def attach_secret(target: Session | sessionmaker[Session], secret: bytes) -> None:
    """Give every session of a factory (or one session) the secret selectors are keyed with."""
    if isinstance(target, Session):
        target.info[SECRET_INFO_KEY] = secret
    else:
        info = dict(target.kw.get("info") or {})
        info[SECRET_INFO_KEY] = secret
        target.configure(info=info)


def secret_for(session: Session) -> bytes:
    secret = session.info.get(SECRET_INFO_KEY)
    return secret if isinstance(secret, bytes) else TEST_SECRET


# --- normalisation -----------------------------------------------------------------------------


def _registry() -> Registry:
    return platform_registry()


def _platform_of(host: str, registry: Registry) -> str | None:
    platform = registry.platform_for_host(host)
    return None if platform is None else platform.name


def canonical_host(host: str, registry: Registry | None = None) -> str:
    """The host as every alternate spelling of it is folded to (see the module docstring)."""
    registry = registry or _registry()
    host = host.lower().rstrip(".")
    with contextlib.suppress(UnicodeError):
        host = host.encode("idna").decode("ascii")
    if host.startswith("www.") and host.count(".") >= 2:
        host = host[4:]
    platform = _platform_of(host, registry)
    if platform is None:
        return host
    while True:
        label, _, rest = host.partition(".")
        if label not in MIRROR_LABELS or "." not in rest:
            break
        if _platform_of(rest, registry) != platform:
            break
        host = rest
    same = SAME_SITE.get(host)
    if same is not None and _platform_of(same, registry) == platform:
        host = same
    return host


def _remove_dot_segments(path: str) -> str:
    out: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if out:
                out.pop()
        elif segment not in (".", ""):
            out.append(segment)
    return "/" + "/".join(out) if out else ""


def normalise_url(url: str, registry: Registry | None = None) -> str:
    """The URL as a selector: equal for every spelling of the same page, scheme omitted.

    Raises InvalidInput for anything that is not an absolute http(s) URL with a host.
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("the URL is empty")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"a URL may be at most {MAX_URL_LENGTH} characters long")
    if _BAD_CHARS.search(url):
        raise InvalidInput("a URL holds no spaces or control characters (a space is written %20)")
    registry = registry or _registry()
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
        pairs = parse_qsl(parts.query, keep_blank_values=True, max_num_fields=256)
    except ValueError as exc:
        raise InvalidInput(f"not a URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        raise InvalidInput("only http and https URLs with a host can be flagged or looked up")
    host = canonical_host(host, registry)
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        netloc += f":{port}"
    path = parts.path
    fragment = parts.fragment
    if fragment.startswith("!/") and path in ("", "/"):
        path = fragment[1:]  # the old hash-bang URLs: twitter.com/#!/name is twitter.com/name
    path = quote(unquote_to_bytes(path), safe=_SAFE_PATH)
    path = _remove_dot_segments(path)
    platform = _platform_of(host, registry)
    dropped = PLATFORM_TRACKING.get(platform or "", frozenset())
    kept = sorted(
        (key, value) for key, value in pairs
        if key.lower() not in TRACKING_PARAMS and key.lower() not in dropped
        and not key.lower().startswith(TRACKING_PREFIXES)
    )
    query = urlencode(kept, quote_via=quote) if kept else ""
    return netloc + path + (f"?{query}" if query else "")


@dataclass(frozen=True)
class SelectorValue:
    kind: str  # url | account
    text: str  # what is hashed: "url:<normalised>" or "account:<platform>:<kind>:<value>"


def _platform_name(name: str, registry: Registry) -> str:
    try:
        return registry.get(name).name
    except NotFound:  # a platform the registry does not know yet: its name as given
        return name.strip().lower()


def selector_values(
    url: str | None, account: Account | None = None, registry: Registry | None = None
) -> list[SelectorValue]:
    """The selectors a target with this URL (and account) registers, without duplicates."""
    registry = registry or _registry()
    values: list[SelectorValue] = []
    if url is not None:
        values.append(SelectorValue(URL, f"url:{normalise_url(url, registry)}"))
        found = registry.recognise(url)
        if found is not None and found.identifier and found.identifier_kind \
                and not found.short_link:
            kind = "id" if found.identifier_kind == "user_id" else found.identifier_kind
            value = found.identifier.lower() if kind in _CASE_FOLDED_KINDS else found.identifier
            values.append(SelectorValue(ACCOUNT, f"account:{found.platform}:{kind}:{value}"))
    if account is not None:
        platform = _platform_name(account.platform, registry)
        if account.platform_account_id is not None:
            values.append(SelectorValue(
                ACCOUNT, f"account:{platform}:id:{account.platform_account_id.strip()}"))
        elif account.handle:
            # Known by its handle alone: the selector its profile URL gives where it shows it.
            handle = account.handle.strip().lstrip("@").lower()
            values.append(SelectorValue(ACCOUNT, f"account:{platform}:username:{handle}"))
    unique: dict[str, SelectorValue] = {}
    for selector in values:
        unique.setdefault(selector.text, selector)
    return list(unique.values())


def digest(secret: bytes, value: SelectorValue) -> str:
    return hmac.new(secret, value.text.encode("utf-8"), hashlib.sha256).hexdigest()


# --- registering and hits ----------------------------------------------------------------------


def contact_of(session: Session, case: Case) -> str:
    """Whom another unit should call about this case: its contact, else whoever opened it."""
    if case.contact:
        return case.contact
    creator = session.get(User, case.created_by_id)
    if creator is None:
        return "unknown"
    return creator.display_name or creator.name


def _who(session: Session, case: Case) -> dict[str, Any]:
    return {"unit": case.owning_unit, "contact": contact_of(session, case)}


def register_target(
    session: Session, actor: User | None, case: Case, target: Target
) -> list[DeconflictionHit]:
    """Register the target's selectors and record a hit for each held by another case.

    Runs in the caller's transaction (the flag's); returns the hits it found. Each hit appends
    a `deconfliction.hit` entry to both cases' custody chains.
    """
    return _register(session, actor, case, target, again=False)


def register_account_id(
    session: Session, actor: User, case: Case, account: Account
) -> list[DeconflictionHit]:
    """Once the account's platform id is recorded (in `case`), each of its targets in every
    case registers the selector the id gives; a hit is recorded where another case holds it
    and the two targets had none yet. In another case's chain the hit is the system's doing."""
    hits: list[DeconflictionHit] = []
    for target in session.scalars(select(Target).where(Target.account_id == account.id)
                                  .order_by(Target.flagged_at, Target.id)).all():
        target_case = case if target.case_id == case.id else session.get(Case, target.case_id)
        assert target_case is not None
        hits += _register(session, actor if target_case is case else None, target_case, target,
                          again=True)
    return hits


def _register(session: Session, actor: User | None, case: Case, target: Target, *,
              again: bool) -> list[DeconflictionHit]:
    """`again`: the target registered before; only the selectors it lacks are added, and a
    hit recorded only with a target it has none with yet."""
    account = None if target.account_id is None else session.get(Account, target.account_id)
    secret = secret_for(session)
    found = {digest(secret, v): v for v in selector_values(target.url, account)}
    if again:
        for known in session.scalars(select(Selector.digest)
                                     .where(Selector.target_id == target.id)):
            found.pop(known, None)
    selectors = [
        Selector(case_id=case.id, target_id=target.id, kind=v.kind, digest=d,
                 owning_unit=case.owning_unit)
        for d, v in found.items()
    ]
    session.add_all(selectors)
    session.flush()
    # No entry of their own: selectors are derived from the URL and account that the
    # target.flagged entry (or account.id_recorded) records. What changes the case, a hit, is
    # recorded below.
    hits: list[DeconflictionHit] = []
    met = _targets_met(session, target) if again else set()
    for selector in selectors:
        held = session.scalars(
            select(Selector)
            .where(Selector.digest == selector.digest, Selector.case_id != case.id)
            .order_by(Selector.created_at, Selector.id)
        ).all()
        for other in held:
            if other.target_id in met:
                continue
            hits.append(_record_hit(session, actor, case, selector, other))
            if again:
                met.add(other.target_id)
    return hits


def _targets_met(session: Session, target: Target) -> set[Any]:
    """The targets of other cases that already have a hit with this one."""
    return {other for first, second in session.execute(
        select(DeconflictionHit.first_target_id, DeconflictionHit.second_target_id)
        .where(or_(DeconflictionHit.first_target_id == target.id,
                   DeconflictionHit.second_target_id == target.id))).all()
            for other in (first, second) if other != target.id}


def _record_hit(
    session: Session, actor: User | None, case: Case, new: Selector, held: Selector
) -> DeconflictionHit:
    other_case = session.get(Case, held.case_id)
    assert other_case is not None
    hit = DeconflictionHit(
        kind=new.kind,
        first_case_id=held.case_id, first_selector_id=held.id, first_target_id=held.target_id,
        second_case_id=case.id, second_selector_id=new.id, second_target_id=new.target_id,
    )
    session.add(hit)
    session.flush()
    custody.append(
        session, actor, action="deconfliction.hit", case=case, object_type="deconfliction_hit",
        object_id=hit.id,
        details={"kind": hit.kind, "target": str(new.target_id),
                 "other": _who(session, other_case)},
    )
    # Recorded in the other case's chain by the system: its members did nothing, and the
    # entry must not tell them more about this case than the hit itself does.
    custody.append(
        session, None, action="deconfliction.hit", case=other_case,
        object_type="deconfliction_hit", object_id=hit.id,
        details={"kind": hit.kind, "target": None if held.target_id is None
                 else str(held.target_id), "other": _who(session, case)},
    )
    return hit


def unresolved_hits(session: Session, target: Target) -> list[DeconflictionHit]:
    return list(session.scalars(
        select(DeconflictionHit)
        .where(or_(DeconflictionHit.first_target_id == target.id,
                   DeconflictionHit.second_target_id == target.id),
               DeconflictionHit.resolved_at.is_(None))
        .order_by(DeconflictionHit.created_at, DeconflictionHit.id)
    ))


def other_case_id(hit: DeconflictionHit, case_id: Any) -> Any:
    return hit.second_case_id if hit.first_case_id == case_id else hit.first_case_id


# --- what a case's members see -----------------------------------------------------------------


@dataclass(frozen=True)
class AgreementView:
    this_case: bool
    user: str
    unit: str | None
    agreed_at: Any
    note: str | None  # only this case's own note; the other case's words stay with it


@dataclass(frozen=True)
class HitView:
    """A hit as one of its cases sees it: its own target, and whom to call in the other."""

    hit: DeconflictionHit
    target_id: Any
    other_unit: str | None
    other_contact: str
    agreements: list[AgreementView]

    @property
    def resolved(self) -> bool:
        return self.hit.resolved_at is not None


def _view(session: Session, case: Case, hit: DeconflictionHit) -> HitView:
    mine = hit.first_case_id == case.id
    other = session.get(Case, other_case_id(hit, case.id))
    assert other is not None
    rows = session.execute(
        select(DeconflictionAgreement, User)
        .join(User, User.id == DeconflictionAgreement.agreed_by_id)
        .where(DeconflictionAgreement.hit_id == hit.id)
        .order_by(DeconflictionAgreement.created_at, DeconflictionAgreement.id)
    ).all()
    agreements = [
        AgreementView(this_case=a.case_id == case.id, user=u.display_name or u.name,
                      unit=u.unit, agreed_at=a.created_at,
                      note=a.note if a.case_id == case.id else None)
        for a, u in rows
    ]
    return HitView(hit=hit, target_id=hit.first_target_id if mine else hit.second_target_id,
                   other_unit=other.owning_unit, other_contact=contact_of(session, other),
                   agreements=agreements)


def _hits_query(case: Case, *, unresolved_only: bool) -> Select[DeconflictionHit]:
    query = select(DeconflictionHit).where(or_(DeconflictionHit.first_case_id == case.id,
                                               DeconflictionHit.second_case_id == case.id))
    if unresolved_only:
        query = query.where(DeconflictionHit.resolved_at.is_(None))
    return query


def page_hits(
    session: Session, case: Case, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None,
    unresolved_only: bool = False,
) -> Page[HitView]:
    """One page of the hits involving the case, oldest first (only unresolved ones with
    `unresolved_only`). The caller has checked the case's access."""
    page = paginate(session, _hits_query(case, unresolved_only=unresolved_only),
                    key=(DeconflictionHit.created_at, DeconflictionHit.id), limit=limit,
                    cursor=cursor)
    return Page([_view(session, case, h) for h in page.items], page.next_cursor)


@dataclass(frozen=True)
class HitCounts:
    total: int
    unresolved: int


def count_hits(session: Session, case: Case) -> HitCounts:
    """How many hits involve the case, and how many of them are not resolved yet."""
    total, unresolved = session.execute(
        _hits_query(case, unresolved_only=False).with_only_columns(
            func.count(), func.count().filter(DeconflictionHit.resolved_at.is_(None)))
    ).one()
    return HitCounts(total=total, unresolved=unresolved)


def _hit_of_case(session: Session, case: Case, hit_id: Any) -> DeconflictionHit:
    hit = session.get(DeconflictionHit, hit_id)
    if hit is None or case.id not in (hit.first_case_id, hit.second_case_id):
        raise AccessDenied(f"no deconfliction hit {hit_id} in case {case.reference!r}")
    return hit


def hit_of_case(session: Session, case: Case, hit_id: Any) -> HitView:
    return _view(session, case, _hit_of_case(session, case, hit_id))


def agree(session: Session, actor: User, case: Case, hit_id: Any, *, note: str) -> HitView:
    """Record that this case agrees the hit is settled; resolved when the other case agrees too.

    The caller has checked that the actor may write to the case.
    """
    hit = _hit_of_case(session, case, hit_id)
    note = note.strip()
    if not note:
        raise InvalidInput("say what was agreed with the other unit")
    already = session.scalars(
        select(DeconflictionAgreement.id).where(DeconflictionAgreement.hit_id == hit.id,
                                                DeconflictionAgreement.case_id == case.id)
    ).first()
    if already is not None:
        raise Conflict(f"case {case.reference!r} has already agreed to deconfliction hit "
                       f"{hit.id}; the other case's agreement is awaited")
    agreement = DeconflictionAgreement(hit_id=hit.id, case_id=case.id, agreed_by_id=actor.id,
                                       note=note)
    session.add(agreement)
    session.flush()
    custody.append(session, actor, action="deconfliction.agreed", case=case,
                   object_type="deconfliction_hit", object_id=hit.id, details={"note": note})
    count = len(session.scalars(
        select(DeconflictionAgreement.case_id).where(DeconflictionAgreement.hit_id == hit.id)
    ).all())
    if count >= 2:
        hit.resolved_at = utcnow()
        session.flush()
        for case_id in (hit.first_case_id, hit.second_case_id):
            party = session.get(Case, case_id)
            assert party is not None
            custody.append(session, actor, action="deconfliction.resolved", case=party,
                           object_type="deconfliction_hit", object_id=hit.id,
                           details={"kind": hit.kind})
    return _view(session, case, hit)
