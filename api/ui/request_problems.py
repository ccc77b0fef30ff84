"""A refused generate-request form's problems, said by the form's own labels and placed at the
inputs they are about.

The service (`evidence.requests`) and the instrument's checks (`legal_forms`) name a problem by
what every interface takes (`issuing authority: name ...`, `date_range: ...`, an instrument
field such as `issuing_state`), as the API and the command line show it. The form calls the same
things "Issuing authority: Name" or "From (date, UTC)", and one empty input can fail several
checks (the period is both a required field and a rule of preservation). Here each problem is
traced to the input a user fills (an instrument field computed from the settings or the case to
the input that overrides it), said once, and given the input's label.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from api.ui.labels import AUTHORITY_HEADINGS, REQUEST_CASE_FIELDS, field_label
from evidence.requests import AUTHORITY_ATTRS
from legal_forms.instruments import INSTRUMENTS

# Where the form's inputs that are not `field.*` are, by the names the problems use.
PERIOD = ("date_from", "date_to")
TARGETS, CATEGORIES, EXTRA = "targets", "categories", "extra"
_SOURCE = re.compile(r"settings: (issuing|validating) authority(?: (\w+))?|case\.(\w+)"
                     r"|request\.(date_range|categories)|(targets)\[\]")
_REQUIRED = re.compile(r"^required field '.*' is empty$")
_NOT_SET = re.compile(r"^(\w+) is not set \(")


@dataclass
class Shown:
    """What the form shows of its problems: the list at its top (each with the input it links
    to), the words next to each input, and which inputs are marked invalid."""

    listed: list[dict[str, str]] = field(default_factory=list)
    beside: dict[str, list[str]] = field(default_factory=dict)  # anchor id -> messages
    invalid: dict[str, str] = field(default_factory=dict)  # input id -> its message's id

    def context(self) -> dict[str, Any]:
        return {"problems": self.listed, "beside": self.beside, "invalid": self.invalid}


def input_id(name: str) -> str:
    """The id the template gives the input named `name` (`field.issuing.name` -> f-issuing-name)."""
    return name if name in (*PERIOD, EXTRA, TARGETS, CATEGORIES) else \
        "f-" + name.removeprefix("field.").replace(".", "-")


def _authority_input(which: str, what: str) -> tuple[str | None, str]:
    """The input of `{which} authority: {what}` and what to say of it."""
    prefix = f"field.{which}."
    not_set = _NOT_SET.match(what)
    if not_set and not_set.group(1) in AUTHORITY_ATTRS:
        return prefix + not_set.group(1), ("needed: not in the settings" if which == "issuing"
                                           else "needed")
    if what.startswith("role "):
        return prefix + "role", what.removeprefix("role ")
    if what.startswith("unknown time zone"):
        return prefix + "time_zone", what
    return None, what


def _instrument_input(kind: str, name: str) -> str | None:
    """The form's input behind the instrument field `name`: its own, or the one overriding the
    settings, the case or the period it is computed from."""
    instrument = INSTRUMENTS.get(kind)
    spec = next((f for f in instrument.fields if f.name == name), None) if instrument else None
    if spec is None:
        return None
    if spec.fill.get is None or name in REQUEST_CASE_FIELDS:
        return f"field.{name}"
    source = _SOURCE.search(spec.fill.description)
    if source is None:
        return None
    which, attr, case_attr, request_attr, targets = source.groups()
    if which:
        return f"field.{which}.{attr if attr in AUTHORITY_ATTRS else 'name'}"
    if case_attr:
        return f"field.{case_attr}" if case_attr in REQUEST_CASE_FIELDS else None
    if request_attr == "date_range":
        return "date_range"
    return CATEGORIES if request_attr else (TARGETS if targets else None)


def _locate(kind: str, problem: str) -> tuple[str | None, str]:
    """(the input a problem is about, or None, and what to say of it there)."""
    where, sep, what = problem.partition(": ")
    if not sep:
        return None, problem
    which = where.removesuffix(" authority")
    if which in AUTHORITY_HEADINGS and where != which:
        return _authority_input(which, what)
    if where == "records from":
        return "date_from", what
    if where == "records to":
        return "date_to", what
    if where.startswith("other values, line"):
        return EXTRA, f"{where.removeprefix('other values, ')}: {what}"
    if where.startswith("field '"):  # a NAME=VALUE line naming no field of the kind
        return EXTRA, f"{where.removeprefix('field ')}: {what.split(' (see ')[0]}"
    if where in (TARGETS, CATEGORIES):
        return where, what
    if where in ("date_range", "max_penalty_years"):
        return ("date_range" if where == "date_range" else f"field.{where}"), what
    return _instrument_input(kind, where), what


def _period_inputs(typed: Mapping[str, Any]) -> list[str]:
    """The period's inputs to mark: the empty ones, or both when neither or none is empty."""
    empty = [name for name in PERIOD if not str(typed.get(name) or "").strip()]
    return empty if len(empty) == 1 else list(PERIOD)


def _label(name: str, kind: str) -> str:
    if name == "date_range":
        return "Records: from and to"
    if name == TARGETS:
        return "Targets"
    if name == CATEGORIES:
        return "Data categories"
    label = field_label(name, kind=kind)
    # As the form shows it, without the hint in brackets of a case or authority detail.
    return label.split(" (")[0] if name.startswith("field.") else label


def shown(kind: str, problems: list[str], typed: Mapping[str, Any],
          on_form: Sequence[str]) -> Shown:
    """The problems of a refused form, for the form, listed in the order of its inputs;
    `on_form`: the ids of its inputs in that order (a problem about an input the form lacks is
    listed last, without a link)."""
    found: dict[str | None, list[str]] = {}
    for problem in problems:
        name, what = _locate(kind, problem)
        what = "needed" if _REQUIRED.match(what) else what
        if name is not None and input_id(name) not in on_form and name != "date_range":
            name = None
        if name is None:  # said as the service says it, its subject named by the form's label
            where, sep, rest = problem.partition(": ")
            what = f"{_label('field.' + where, kind)}: {rest}" if sep else problem
        messages = found.setdefault(name, [])
        if what not in messages:
            messages.append(what)
    out = Shown()
    for name, messages in found.items():
        if name is not None:
            # An empty input is only said to be empty (in the fullest of the words that say
            # so): what else its checks say of "nothing" (no EU Member State "(none)") follows
            # from that and goes once it is filled.
            empty = [m for m in messages if m.startswith(("needed", "give both"))]
            messages = [max(empty, key=len)] if empty else messages
        for message in messages:
            if name is None:
                out.listed.append({"href": "", "label": "", "message": message})
                continue
            inputs = _period_inputs(typed) if name == "date_range" else [name]
            anchor = input_id(inputs[0])
            out.listed.append({"href": f"#{anchor}", "label": _label(name, kind),
                               "message": message})
            out.beside.setdefault(anchor, []).append(message)
            for each in inputs:
                out.invalid[input_id(each)] = f"problem-{anchor}"
    place = {f"#{id_}": n for n, id_ in enumerate(on_form)}
    out.listed.sort(key=lambda p: place.get(p["href"], len(place)))
    return out
