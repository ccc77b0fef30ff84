"""A refused generate-request form's problems, said by the form's own labels and placed at the
inputs they are about.

The service (`evidence.requests`) and the instrument's checks (`legal_forms`) say each problem
as every interface shows it (`issuing authority: name is not set ...`, `date_range: ...`) and
say apart what of the input it is about (`evidence.request_input.About`: an authority detail,
the period, an instrument field such as `issuing_state` ...). The form calls the same things
"Issuing authority: Name" or "From (date, UTC)", and one empty input can fail several checks
(the period is both a required field and a rule of preservation). Here each problem is placed
at the input a user fills (an instrument field computed from the settings or the case at the
input that overrides it), said once, and given the input's label. Nothing here reads the
problems' words: a problem reworded stays at its input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from api.ui.labels import REQUEST_CASE_FIELDS, field_label
from evidence.request_input import About, RequestProblem
from legal_forms.instruments import INSTRUMENTS

# The form's inputs that are not `field.*`, and the period's two as one.
PERIOD = ("date_from", "date_to")
TARGETS, CATEGORIES, EXTRA = "targets", "categories", "extra"
DATE_RANGE = "date_range"


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


def _field_input(kind: str, name: str) -> str | None:
    """The form's input behind the instrument field `name`: its own, or the one overriding the
    settings, the case or the period it is computed from."""
    instrument = INSTRUMENTS.get(kind)
    spec = next((f for f in instrument.fields if f.name == name), None) if instrument else None
    if spec is None:
        return None
    source = spec.fill.source
    # A field the user fills, overrides from the case, or gives where the platform registry
    # has nothing (placed there only when the form offers that input).
    if spec.fill.get is None or name in REQUEST_CASE_FIELDS or source is None:
        return f"field.{name}"
    return None if source.part == "field" else _input_of(kind, source)


def _input_of(kind: str, about: About | None) -> str | None:
    """The name of the input a problem about `about` is placed at (DATE_RANGE: the period's
    inputs), or None."""
    if about is None:
        return None
    if about.part == "field":
        return _field_input(kind, about.name)
    if about.part == "authority":
        return f"field.{about.name}"
    if about.part == "case":
        return f"field.{about.name}" if about.name in REQUEST_CASE_FIELDS else None
    if about.part == "period":
        return {"start": "date_from", "end": "date_to"}.get(about.name, DATE_RANGE)
    if about.part == "fields":  # a NAME=VALUE the named inputs cannot give: the free box's
        return EXTRA
    return {"targets": TARGETS, "categories": CATEGORIES}.get(about.part)


def _said(problem: RequestProblem) -> str:
    """What to say of a problem next to its input."""
    about = problem.about
    # A missing value is "needed"; the period, two inputs, keeps its words (which to give).
    if not problem.missing or about is None or about.part == "period":
        return problem.beside
    if about.part == "authority" and about.name.startswith("issuing."):
        return "needed: not in the settings"  # where the issuing authority's details come from
    return "needed"


def _period_inputs(typed: Mapping[str, Any]) -> list[str]:
    """The period's inputs to mark: the empty ones, or both when neither or none is empty."""
    empty = [name for name in PERIOD if not str(typed.get(name) or "").strip()]
    return empty if len(empty) == 1 else list(PERIOD)


def _label(name: str, kind: str) -> str:
    if name == DATE_RANGE:
        return "Records: from and to"
    if name == TARGETS:
        return "Targets"
    if name == CATEGORIES:
        return "Data categories"
    label = field_label(name, kind=kind)
    # As the form shows it, without the hint in brackets of a case or authority detail.
    return label.split(" (")[0] if name.startswith("field.") else label


def _unplaced(problem: RequestProblem, kind: str) -> str:
    """A problem about no input of the form, said as the service says it, an instrument
    field named by its label."""
    about = problem.about
    if about is not None and about.part == "field":
        return f"{_label(f'field.{about.name}', kind)}: {problem.beside}"
    return problem.message


def shown(kind: str, problems: Sequence[RequestProblem], typed: Mapping[str, Any],
          on_form: Sequence[str]) -> Shown:
    """The problems of a refused form, for the form, listed in the order of its inputs;
    `on_form`: the ids of its inputs in that order (a problem about an input the form lacks is
    listed last, without a link)."""
    found: dict[str | None, dict[str, bool]] = {}  # input -> what is said of it -> missing
    for problem in problems:
        name = _input_of(kind, problem.about)
        if name is not None and name != DATE_RANGE and input_id(name) not in on_form:
            name = None
        said = _said(problem) if name is not None else _unplaced(problem, kind)
        messages = found.setdefault(name, {})
        messages[said] = messages.get(said, False) or problem.missing
    out = Shown()
    for name, said_of in found.items():
        # An empty input is only said to be empty (in the fullest of the words that say so):
        # what else its checks say of "nothing" (no EU Member State "(none)") follows from
        # that and goes once it is filled.
        empty = [m for m, missing in said_of.items() if missing]
        for message in [max(empty, key=len)] if empty and name is not None else said_of:
            if name is None:
                out.listed.append({"href": "", "label": "", "message": message})
                continue
            inputs = _period_inputs(typed) if name == DATE_RANGE else [name]
            anchor = input_id(inputs[0])
            out.listed.append({"href": f"#{anchor}", "label": _label(name, kind),
                               "message": message})
            out.beside.setdefault(anchor, []).append(message)
            for each in inputs:
                out.invalid[input_id(each)] = f"problem-{anchor}"
    place = {f"#{id_}": n for n, id_ in enumerate(on_form)}
    out.listed.sort(key=lambda p: place.get(p["href"], len(place)))
    return out
