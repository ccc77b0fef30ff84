"""`evidence platforms ...` and `evidence request ...`.

`platforms`, `request fields` and `request route --platform` read the registry only and need no
data home. The other `request` commands work on a case's legal requests through
`evidence.requests`, in the data home, acting as a user (`--as`, `--home`).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import click

from evidence.cli import InputPath, acting_command, state, targets_option
from evidence.errors import InvalidInput, RequestIncomplete
from legal_forms.errors import RegistryInvalid, UnknownPlatform
from legal_forms.platforms import LegalEntity, Platform, Registry, load_registry

_LIST_COLUMNS = ("name", "display name", "EU entity", "preservation", "channel")
_MAX_CELL = 40
FIELD_HINT = ("Give a field with --field NAME=VALUE (issuing.email=..., facts=...) or "
              "--fields FILE; the issuing authority's standing details come from "
              "EVIDENCE_AUTHORITY_* or EVIDENCE_AUTHORITY_FILE.")


def _registry() -> Registry:
    try:
        return load_registry()
    except RegistryInvalid as exc:
        raise click.ClickException(exc.message) from exc


def _cell(text: str) -> str:
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


@click.group(name="platforms")
def platforms() -> None:
    """The platform registry: addressees, identifiers, preservation periods, sources."""


@platforms.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_platforms(as_json: bool) -> None:
    """List every platform in the registry."""
    registry = _registry()
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in registry], indent=2, ensure_ascii=False))
        return
    rows = [
        (p.name, p.display_name, p.eu_entity.name, p.preservation.summary, p.channel.name)
        for p in registry
    ]
    cells = [tuple(_cell(c) for c in row) for row in [_LIST_COLUMNS, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(_LIST_COLUMNS))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@platforms.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def show_platform(name: str, as_json: bool) -> None:
    """Show everything the registry holds about one platform, with its sources."""
    registry = _registry()
    try:
        platform = registry.get(name)
    except UnknownPlatform as exc:
        raise click.ClickException(exc.message) from exc
    if as_json:
        click.echo(json.dumps(platform.to_dict(), indent=2, ensure_ascii=False))
        return
    for line in _describe(platform):
        click.echo(line)


def _entity(entity: LegalEntity) -> str:
    return f"{entity.name}, {entity.address} ({entity.role})"


def _describe(p: Platform) -> list[str]:
    pr = p.preservation
    lines = [
        f"{p.display_name} [{p.name}]",
        f"operator: {p.operator}" + (f" (group: {p.operator_group})" if p.operator_group else ""),
        f"aliases: {', '.join(p.aliases) or '-'}",
        f"services: {', '.join(p.services) or '-'}",
        f"hosts: {', '.join(p.hosts) or '-'}",
        f"EU entity: {_entity(p.eu_entity)}",
        *(f"non-EU entity: {_entity(e)}" for e in p.non_eu_entities),
        f"e-Evidence addressee: {p.e_evidence.addressee} ({p.e_evidence.notes})",
        "identifiers:",
        *(
            f"  - {i.service}: {i.kind}: {i.description}"
            + (f" (e.g. {i.example})" if i.example else "")
            for i in p.identifiers
        ),
        f"preservation: {pr.summary}",
        f"  rule: {pr.rule}",
        f"channel: {p.channel.name} <{p.channel.url}>"
        + (f" email {p.channel.email}" if p.channel.email else ""),
    ]
    if p.channel.notes:
        lines.append(f"  {p.channel.notes}")
    lines += [
        f"emergency: {p.emergency.channel} <{p.emergency.url}>",
        f"languages: {', '.join(p.languages)}",
        f"direct requests from foreign authorities: {p.direct_foreign_requests}",
        f"content requires: {p.content_requires}",
    ]
    if p.dsa_contact:
        lines.append(f"DSA contact: {p.dsa_contact}")
    lines.append("notes:")
    lines += [f"  - {n}" for n in p.notes] or ["  -"]
    lines.append("sources:")
    for s in p.sources:
        lines.append(f"  - [{s.kind}, checked {s.checked.isoformat()}] {s.title}")
        lines.append(f"    {s.url}")
        if s.note:
            lines.append(f"    {s.note}")
    return lines


# --- `evidence request ...` ----------------------------------------------------------------------


@click.group(name="request")
def request() -> None:
    """Legal requests: the fields of each kind and which kinds fit a platform."""


@request.command("fields")
@click.argument("kind")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def request_fields(kind: str, as_json: bool) -> None:
    """List the fields of KIND in the official order: section, name, required, filled from."""
    from legal_forms.instruments import get_instrument
    from legal_forms.instruments.base import UnknownKind

    try:
        inst = get_instrument(kind)
    except UnknownKind as exc:
        raise click.ClickException(exc.message) from exc
    titles = {s.key: s.title for s in inst.sections}
    rows = [{**f.describe(), "section_title": titles[f.section]} for f in inst.ordered_fields()]
    if as_json:
        click.echo(json.dumps({"kind": inst.kind, "title": inst.title, "fields": rows},
                              indent=2, ensure_ascii=False))
        return
    click.echo(f"{inst.title} [{inst.kind}]")
    current = None
    for row in rows:
        if row["section_title"] != current:
            current = row["section_title"]
            click.echo(f"{current}")
        need = "required" if row["required"] else "optional"
        click.echo(f"  {row['name']:<26} {need:<8} {row['label']}")
        click.echo(f"  {'':<26} {'':<8} from: {row['filled_from']}")


@acting_command(request, "route")
@click.option("--platform", "platform_name", default=None,
              help="Platform name or alias (default: the platforms of the case's targets).")
@click.option("--issuing-country", default=None,
              help="ISO 3166-1 alpha-2 code, e.g. DE (default: the case's jurisdiction).")
@click.option("--case", "case_ref", default=None, metavar="REF",
              help="Take the platforms and the issuing country from this case.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def request_route(platform_name: str | None, issuing_country: str | None, case_ref: str | None,
                  as_json: bool) -> None:
    """Suggest which kinds of request fit a platform, with the reason for each."""
    from legal_forms.instruments.routing import route

    registry = _registry()
    names: list[str] = []
    if issuing_country is not None:
        from evidence.countries import country_code

        try:
            issuing_country = country_code(issuing_country, "issuing country")
        except InvalidInput as exc:
            raise click.ClickException(exc.message) from exc
    if case_ref is not None:
        from evidence import cases, requests

        with state().acting() as (session, actor):
            case = cases.get_case(session, actor, case_ref)
            if issuing_country is None and case.jurisdiction:
                issuing_country = case.jurisdiction.split("-")[0]
            if platform_name is None:
                names = requests.case_platforms(session, actor, case, registry)
                if not names:
                    raise click.ClickException(f"case {case_ref} has no target on a known "
                                               "platform; name one with --platform")
    if platform_name is not None:
        names = [platform_name]
    if not names:
        raise click.ClickException("name a platform (--platform) or a case (--case)")
    out: dict[str, list[dict[str, str]]] = {}
    for name in names:
        try:
            platform = registry.get(name)
        except UnknownPlatform as exc:
            raise click.ClickException(exc.message) from exc
        out[platform.name] = [s.to_dict() for s in route(platform, issuing_country)]
    if as_json:
        value: Any = out if case_ref is not None and platform_name is None else next(
            iter(out.values()))
        click.echo(json.dumps(value, indent=2, ensure_ascii=False))
        return
    for name, suggestions in out.items():
        if len(out) > 1 or case_ref is not None:
            click.echo(f"{name} (issuing country {issuing_country or 'unknown'}):")
        for s in suggestions:
            click.echo(f"{s['timing']:<12} {s['kind']:<30} {s['reason']}")


# --- `evidence request ...` on a case's requests (data home needed) -------------------------

CATEGORY_NAMES = ("subscriber", "user_identification", "traffic", "content")


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _moment(text: str | None, *, end_of_day: bool = False) -> datetime | None:
    """An ISO date (taken in UTC) or an ISO date and time with its offset."""
    if text is None:
        return None
    try:
        if len(text.strip()) == 10:
            day = date.fromisoformat(text.strip())
            return datetime.combine(day, time.max if end_of_day else time.min, UTC).replace(
                microsecond=0)
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise click.ClickException(f"{text!r} is not an ISO date or date-time") from exc
    if moment.tzinfo is None:
        raise click.ClickException(f"{text!r} has no time zone: add one (e.g. +02:00 or Z) "
                                   "or give a date, taken in UTC")
    return moment


def _user_fields(pairs: tuple[str, ...], fields_file: Path | None) -> dict[str, str]:
    values: dict[str, str] = {}
    if fields_file is not None:
        try:
            document = json.loads(fields_file.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise click.ClickException(f"{fields_file}: not a readable JSON file: {exc}") from exc
        if not isinstance(document, dict):
            raise click.ClickException(f"{fields_file}: expected a JSON object of NAME: VALUE")
        values.update({str(k): "" if v is None else str(v) for k, v in document.items()})
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise click.ClickException(f"--field {pair!r}: expected NAME=VALUE")
        values[name.strip()] = value
    return values


def _json_path(out: Path) -> Path:
    return out.with_suffix(".json") if out.suffix.lower() == ".pdf" else out.with_name(
        out.name + ".json")


def _check_out(out: Path) -> Path:
    json_path = _json_path(out)
    for path in (out, json_path):
        if path.exists():
            raise click.ClickException(f"{path} exists; documents are never overwritten")
    return json_path


def _write(out: Path, json_path: Path, pdf: bytes, document: bytes) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "xb") as fh:
        fh.write(pdf)
    with open(json_path, "xb") as fh:
        fh.write(document)


def _report(info: dict[str, Any], out: Path, json_path: Path, as_json: bool) -> None:
    if as_json:
        _echo_json({**info, "pdf": str(out), "json": str(json_path)})
        return
    click.echo(f"request {info['reference']} ({info['kind']}, {info['platform']}) generated as "
               f"{info['status']}, id {info['id']}")
    click.echo(f"  PDF  {out}  sha256 {info['pdf_sha256']}")
    click.echo(f"  JSON {json_path}  sha256 {info['json_sha256']}")
    for d in info["deadlines"]:
        click.echo(f"  deadline (if sent now): {d['due']}  {d['name']}")
    for w in info["warnings"]:
        click.echo(f"  warning: {w}")


@acting_command(request, "new")
@click.option("--case", "case_ref", required=True, metavar="REF")
@click.option("--kind", required=True, help="See `evidence request route`.")
@click.option("--platform", "platform_name", required=True, help="Platform name or alias.")
@targets_option
@click.option("--field", "field_pairs", multiple=True, metavar="NAME=VALUE",
              help="A value for this request (repeatable): a field of the kind, "
              "issuing.ATTR / validating.ATTR, or offence_provision, max_penalty_years, facts "
              "to override what the case holds.")
@click.option("--fields", "fields_file", type=InputPath(path_type=Path, dir_okay=False,
                                                       exists=True), metavar="FILE.json",
              help="A JSON object of NAME: VALUE; --field wins over it.")
@click.option("--category", "categories", multiple=True, type=click.Choice(CATEGORY_NAMES),
              help="Data category (repeatable; default for preservation: all four).")
@click.option("--from", "date_from", metavar="DATE", help="Start of the period (ISO; UTC).")
@click.option("--to", "date_to", metavar="DATE", help="End of the period (ISO; UTC).")
@click.option("--notify-user", is_flag=True,
              help="Allow the provider to notify the user (default: ask it not to).")
@click.option("--emergency", is_flag=True, help="An emergency request.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              metavar="FILE", help="Write the PDF here and its JSON beside it (FILE.json).")
@click.option("--json", "as_json", is_flag=True, help="Print the request summary as JSON.")
def request_new(case_ref: str, kind: str, platform_name: str, target_ids: list[uuid.UUID],
                field_pairs: tuple[str, ...], fields_file: Path | None,
                categories: tuple[str, ...], date_from: str | None, date_to: str | None,
                notify_user: bool, emergency: bool, out: Path, as_json: bool) -> None:
    """Fill a request from a case, check it, and store its PDF and JSON as evidence."""
    from evidence import cases, requests

    json_path = _check_out(out)
    values = _user_fields(field_pairs, fields_file)
    cli = state()
    with cli.acting() as (session, actor):
        case = cases.get_case(session, actor, case_ref)
        try:
            made = requests.generate(
                session, actor, case, store=cli.runtime.store, settings=cli.settings,
                kind=kind, platform=platform_name, target_ids=target_ids or None,
                fields=values, categories=list(categories) or None,
                date_from=_moment(date_from), date_to=_moment(date_to, end_of_day=True),
                do_not_notify=not notify_user, emergency=emergency,
            )
        except RequestIncomplete as exc:
            raise click.ClickException(f"{exc.message}\n{FIELD_HINT}") from exc
        info = requests.describe(made.request, case.reference)
    _write(out, json_path, made.pdf, made.json)
    _report(info, out, json_path, as_json)


@acting_command(request, "list")
@click.option("--case", "case_ref", required=True, metavar="REF")
@click.option("--json", "as_json", is_flag=True)
def request_list(case_ref: str, as_json: bool) -> None:
    """The legal requests of a case."""
    from evidence import cases, requests

    with state().acting() as (session, actor):
        case = cases.get_case(session, actor, case_ref)
        rows = [requests.describe(r, case.reference)
                for r in requests.list_requests(session, actor, case)]
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no requests")
    for r in rows:
        click.echo(f"{r['reference']:<28} {r['status']:<12} {r['kind']:<24} {r['platform']:<10}"
                   f" due {r['due_at'] or '--'}  id {r['id']}")


@acting_command(request, "show")
@click.argument("request_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True)
def request_show(request_id: str, as_json: bool) -> None:
    """One request (by id or reference number): status, deadlines, answer."""
    from evidence import requests

    with state().acting() as (session, actor):
        row, case = requests.request_for(session, actor, request_id)
        info = requests.describe(row, case.reference)
    if as_json:
        _echo_json(info)
        return
    for key in ("reference", "id", "case", "kind", "platform", "status", "addressee",
                "issued_at", "approved_at", "sent_at", "acknowledged_at", "answered_at",
                "due_at", "platform_reference", "pdf_sha256", "json_sha256"):
        click.echo(f"{key + ':':<20}{info[key] if info[key] is not None else '--'}")
    click.echo("identifiers:")
    for i in info["identifiers"]:
        click.echo(f"  {i['kind']}: {i['value']}  ({i['source_url']}, captured "
                   f"{i['captured_at']})")
    label = "deadlines (provisional: not sent yet):" if info["deadlines_provisional"] else (
        "deadlines:")
    click.echo(label)
    for d in info["deadlines"]:
        click.echo(f"  {d['due']}  {d['name']}  [{d['basis']}]")
    if info["sent_late"]:
        click.echo(f"sent late: {info['sent_late']['note']}")
    if info["answer"]:
        click.echo(f"answer: {json.dumps(info['answer'], ensure_ascii=False)}")
    for r in info["refusal_reasons"]:
        click.echo(f"refusal: {r['code']}: {r['label']}")


@acting_command(request, "status")
@click.argument("request_id", metavar="ID")
@click.argument("status", type=click.Choice(
    ["approved", "sent", "acknowledged", "fulfilled", "refused", "expired", "withdrawn"]))
@click.option("--reference", "platform_reference", default=None, metavar="PLATFORM_REF",
              help="The platform's reference for the request (with sent, acknowledged, "
                   "fulfilled or refused).")
@click.option("--answer", default=None, metavar="TEXT",
              help="What the platform answered (with sent, acknowledged, fulfilled or refused).")
@click.option("--refusal", "refusal", multiple=True, metavar="CODE",
              help="Refusal reason code (repeatable); see `evidence request refusals`.")
@click.option("--at", "at", default=None, metavar="TIME",
              help="When it happened (ISO date-time with offset; default now).")
@click.option("--reason", default=None, metavar="TEXT",
              help="Why a request not sent yet is withdrawn (needed with withdrawn).")
@click.option("--json", "as_json", is_flag=True)
def request_status(request_id: str, status: str, platform_reference: str | None,
                   answer: str | None, refusal: tuple[str, ...], at: str | None,
                   reason: str | None, as_json: bool) -> None:
    """Record the next step of a request: approved, sent, acknowledged, fulfilled ...; or
    withdrawn, with --reason, for one not sent yet."""
    from evidence import requests

    codes = [c for value in refusal for c in value.split(",") if c.strip()]
    with state().acting() as (session, actor):
        row, case = requests.request_for(session, actor, request_id)
        row = requests.change_status(session, actor, case, row.id, status,
                                     platform_reference=platform_reference, answer=answer,
                                     refusal=codes, at=_moment(at), reason=reason)
        info = requests.describe(row, case.reference)
    if as_json:
        _echo_json(info)
    else:
        click.echo(f"request {info['reference']} is now {info['status']}"
                   + (f"; due {info['due_at']}" if info["due_at"] else ""))
        if info["sent_late"]:
            click.echo(f"recorded as sent late: {info['sent_late']['note']}")


@request.command("refusals")
def request_refusals() -> None:
    """The refusal reason codes (Annex III style) accepted by `request status ... refused`."""
    from evidence.requests import REFUSAL_REASONS

    for code, label in REFUSAL_REASONS.items():
        click.echo(f"{code:<26} {label}")


@acting_command(request, "due")
@click.option("--within", default="14d", show_default=True, metavar="PERIOD",
              help="Look this far ahead: 14d, 36h, 2w.")
@click.option("--json", "as_json", is_flag=True)
def request_due(within: str, as_json: bool) -> None:
    """What expires or needs an extension soon, overdue first, in the cases you see."""
    from evidence import requests

    period = requests.parse_within(within)
    with state().acting() as (session, actor):
        items = [i.to_dict() for i in requests.due(session, actor, within=period)]
    if as_json:
        _echo_json(items)
        return
    if not items:
        click.echo(f"nothing due within {within}")
    for i in items:
        flag = "OVERDUE " if i["overdue"] else ""
        click.echo(f"{flag}{i['due']}  {i['reference']} ({i['platform']}, {i['status']}): "
                   f"{i['deadline']}\n    -> {i['action']}")
        if i["gap"]:
            click.echo(f"    !! not a continuation: {i['gap']}")


@acting_command(request, "extend")
@click.argument("request_id", metavar="ID")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              metavar="FILE", help="Write the PDF here and its JSON beside it.")
@click.option("--json", "as_json", is_flag=True)
def request_extend(request_id: str, out: Path, as_json: bool) -> None:
    """Generate the extension (or renewal) of a sent preservation request from the original."""
    from evidence import requests

    json_path = _check_out(out)
    cli = state()
    with cli.acting() as (session, actor):
        made = requests.extend(session, actor, request_id, store=cli.runtime.store)
        info = requests.describe(made.request, made.case_reference)
    _write(out, json_path, made.pdf, made.json)
    _report(info, out, json_path, as_json)


@acting_command(request, "stats")
@click.option("--json", "as_json", is_flag=True)
def request_stats(as_json: bool) -> None:
    """Per platform: requests by status and median response times, over the cases you see."""
    from evidence import requests

    with state().acting() as (session, actor):
        rows = [s.to_dict() for s in requests.stats(session, actor)]
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no requests")
    for r in rows:
        counts = ", ".join(f"{k} {v}" for k, v in r["by_status"].items())
        median = r["median_response_hours"]
        fulfil = r["median_fulfilment_hours"]
        click.echo(f"{r['platform']:<12} {r['total']:>4} requests ({counts}); median response "
                   f"{'--' if median is None else f'{median:g} h'}, fulfilment "
                   f"{'--' if fulfil is None else f'{fulfil:g} h'}")
