"""The labels a page shows a posted form back by (api/ui/labels.py): the form's own where it can
be known, the field's name in words where not."""

from __future__ import annotations

from api.ui.labels import field_label


def test_a_legal_request_field_is_labelled_as_its_kind_labels_it() -> None:
    assert field_label("field.issuing_state", kind="eu-epoc-pr") == "Issuing State"
    assert field_label("field.danger", kind="emergency-disclosure").startswith(
        "Nature of the danger")
    assert field_label("field.validating.email") == "Validating authority: Email"
    assert field_label("field.facts") == "Summary of the facts"


def test_a_field_no_form_labels_is_named_in_words() -> None:
    assert field_label("field.issuing_state") == "Issuing state"  # no kind to ask
    assert field_label("field.issuing_state", kind="no-such-kind") == "Issuing state"
    assert field_label("new_thing.sub_part") == "New thing sub part"
    assert field_label("body") == "Note" and field_label("url") == "URL"
