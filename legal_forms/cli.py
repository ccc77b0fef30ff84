"""`evidence platforms ...`: read the platform registry. Needs no data home and no database."""

from __future__ import annotations

import json

import click

from legal_forms.errors import RegistryInvalid, UnknownPlatform
from legal_forms.platforms import LegalEntity, Platform, Registry, load_registry

_LIST_COLUMNS = ("name", "display name", "EU entity", "preservation", "channel")
_MAX_CELL = 40


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


@request.command("route")
@click.option("--platform", "platform_name", required=True, help="Platform name or alias.")
@click.option("--issuing-country", default=None, help="ISO 3166-1 alpha-2 code, e.g. DE.")
@click.option("--case", "case_ref", default=None, help="Case reference (used by the service).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def request_route(platform_name: str, issuing_country: str | None, case_ref: str | None,
                  as_json: bool) -> None:
    """Suggest which kinds of request fit a platform, with the reason for each."""
    from legal_forms.instruments.routing import route

    try:
        platform = _registry().get(platform_name)
    except UnknownPlatform as exc:
        raise click.ClickException(exc.message) from exc
    suggestions = route(platform, issuing_country)
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in suggestions], indent=2, ensure_ascii=False))
        return
    for s in suggestions:
        click.echo(f"{s.timing:<12} {s.kind:<30} {s.reason}")
