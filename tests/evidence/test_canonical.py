"""Canonical JSON (RFC 8785, restricted to null/bool/int/str/list/dict): exact bytes for the
RFC's own examples, key order by UTF-16 code units, the RFC's string escapes, refusal of every
value a custody entry must not hold (floats, unsafe integers, lone surrogates, non-string keys,
bytes, sets, other objects), refusal by parse_canonical of valid JSON that is not canonical and
of invalid UTF-8, and properties over arbitrary values: round trip, independence from key
insertion order, agreement with a reference serializer written from the RFC, and that no single
flipped bit can ever parse back to the same value.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evidence.canonical import (
    MAX_SAFE_INTEGER,
    CanonicalJsonError,
    canonical_json,
    parse_canonical,
)

# --- a reference serializer written straight from RFC 8785 (no json module involved) ----------

_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _ref_string(value: str) -> str:
    out = ['"']
    for char in value:
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif ord(char) < 0x20:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _utf16_units(key: str) -> list[int]:
    units: list[int] = []
    for char in key:
        code = ord(char)
        if code < 0x10000:
            units.append(code)
        else:
            code -= 0x10000
            units.extend((0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)))
    return units


def _ref_canonical(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _ref_string(value)
    if isinstance(value, list):
        return "[" + ",".join(_ref_canonical(item) for item in value) + "]"
    assert isinstance(value, dict)
    keys = sorted(value, key=_utf16_units)
    return "{" + ",".join(_ref_string(k) + ":" + _ref_canonical(value[k]) for k in keys) + "}"


def _same(a: Any, b: Any) -> bool:
    """Equality that does not confuse True with 1 or False with 0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _shuffled(value: Any, rnd: random.Random) -> Any:
    """The same value with every object's keys inserted in a random order."""
    if isinstance(value, list):
        return [_shuffled(item, rnd) for item in value]
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: _shuffled(v, rnd) for k, v in items}
    return value


# --- strategies ---------------------------------------------------------------------------------

# Characters whose UTF-16 order differs from their code-point order, plus plain ones.
_TRICKY = "a\x00\x1f\x7f\u00e9\ud7ff\ue000\ufb33\uffff\U00010000\U0001f600\U0010ffff"

keys = st.one_of(st.text(max_size=8), st.text(alphabet=st.sampled_from(_TRICKY), max_size=3))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER),
    st.sampled_from([0, -1, 1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]),
    st.text(),  # any code point except surrogates
    st.text(alphabet=st.sampled_from(_TRICKY + '"\\/\b\f\n\r\t\x0b\u2028'), max_size=6),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(keys, children, max_size=5),
    ),
    max_leaves=20,
)


# --- concrete RFC 8785 cases --------------------------------------------------------------------


def test_rfc8785_sorting_example() -> None:
    # RFC 8785 section 3.2.3: property sorting by UTF-16 code units.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    expected = (
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
        '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    )
    assert canonical_json(value) == expected.encode("utf-8")


def test_astral_key_sorts_before_private_use_key_as_utf16_says() -> None:
    # U+1F600 is D83D DE00 in UTF-16, which sorts before E000 although 0x1F600 > 0xE000.
    value = {"\ue000": 1, "\U0001f600": 2}
    assert canonical_json(value) == '{"\U0001f600":2,"\ue000":1}'.encode()
    assert canonical_json({"\U0001f600": 2, "\ue000": 1}) == canonical_json(value)
    # Code-point order would be the other way round; make sure that is what we are testing.
    assert sorted(value) == ["\ue000", "\U0001f600"]


def test_rfc8785_string_escaping_example() -> None:
    # RFC 8785 section 3.2.2.2 (the string of its sample input).
    value = json.loads(r'''"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/"''')
    assert value == "\u20ac$\x0f\nA'B\"\\\\\"/"
    assert canonical_json(value) == '"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"'.encode()


def test_rfc8785_sample_without_numbers() -> None:
    value = {"string": "\u20ac$\x0f\nA'B\"\\\\\"/", "literals": [None, True, False]}
    assert canonical_json(value) == (
        '{"literals":[null,true,false],"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    ).encode()


def test_short_escapes_are_exactly_the_rfc_ones() -> None:
    assert canonical_json('"\\\b\f\n\r\t') == b'"\\"\\\\\\b\\f\\n\\r\\t"'


@pytest.mark.parametrize(
    ("char", "escaped"),
    [("\x00", b"\\u0000"), ("\x01", b"\\u0001"), ("\x0b", b"\\u000b"), ("\x1f", b"\\u001f"),
     ("\x1e", b"\\u001e"), ("\x0e", b"\\u000e")],
)
def test_other_control_characters_use_lowercase_u_escapes(char: str, escaped: bytes) -> None:
    assert canonical_json(char) == b'"' + escaped + b'"'


@pytest.mark.parametrize(
    "text",
    ["/", "\x7f", "\u0080", "\u00e9", "\u0645\u0631\u062d\u0628\u0627", "\U0001f600",
     "\u2028\u2029", "\ufeff", "\U0010ffff", "a/b</script>"],
)
def test_slash_del_and_non_ascii_are_written_raw_as_utf8(text: str) -> None:
    assert canonical_json(text) == b'"' + text.encode("utf-8") + b'"'


def test_exact_bytes_for_non_ascii() -> None:
    assert canonical_json("\u00e9") == b'"\xc3\xa9"'
    assert canonical_json("\U0001f600") == b'"\xf0\x9f\x98\x80"'
    assert canonical_json("\u0645\u0631\u062d\u0628\u0627") == (
        b'"\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7"'
    )


def test_no_whitespace_anywhere() -> None:
    value = {"b": [1, 2, {"c": None}], "a": {"d": True, "e": "x y"}, "f": []}
    assert canonical_json(value) == b'{"a":{"d":true,"e":"x y"},"b":[1,2,{"c":null}],"f":[]}'


def test_literals_and_integers() -> None:
    assert canonical_json(None) == b"null"
    assert canonical_json(True) == b"true"
    assert canonical_json(False) == b"false"
    assert canonical_json(0) == b"0"
    assert canonical_json(-17) == b"-17"
    assert canonical_json(MAX_SAFE_INTEGER) == b"9007199254740991"
    assert canonical_json(-MAX_SAFE_INTEGER) == b"-9007199254740991"
    assert canonical_json([True, 1, False, 0]) == b"[true,1,false,0]"
    assert canonical_json({}) == b"{}"
    assert canonical_json([]) == b"[]"
    assert canonical_json("") == b'""'


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [1.0, 0.5, -0.0, float("nan"), float("inf"), [1, 2.5], {"a": 1e3}, {"a": [{"b": 0.1}]}],
)
def test_floats_are_refused(value: Any) -> None:
    with pytest.raises(CanonicalJsonError):
        canonical_json(value)


@pytest.mark.parametrize(
    "value",
    [2**53, -(2**53), 2**63, -(2**64), 10**30, [2**53], {"n": -(2**53)}],
)
def test_integers_beyond_the_safe_range_are_refused(value: Any) -> None:
    with pytest.raises(CanonicalJsonError):
        canonical_json(value)


@pytest.mark.parametrize(
    "value",
    ["\ud800", "\udfff", "a\udc00b", "\ud83d\ude00", ["ok", "\ud800"], {"\ud800": 1},
     {"k": {"\udbff": None}}, {"a": "x\udfffy"}],
)
def test_lone_surrogates_are_refused(value: Any) -> None:
    with pytest.raises(CanonicalJsonError):
        canonical_json(value)


@pytest.mark.parametrize(
    "value",
    [{1: "a"}, {None: 1}, {True: 1}, {1.5: 1}, {b"k": 1}, {(1, 2): 1}, {"a": {2: 3}},
     [{"ok": 1}, {0: 1}]],
)
def test_non_string_keys_are_refused(value: Any) -> None:
    with pytest.raises(CanonicalJsonError):
        canonical_json(value)


@pytest.mark.parametrize(
    "value",
    [b"", b"abc", bytearray(b"abc"), memoryview(b"abc"), ["x", b"abc"], {"blob": b"\x00"}],
    ids=["bytes-empty", "bytes", "bytearray", "memoryview", "bytes-in-list", "bytes-in-dict"],
)
def test_bytes_like_values_are_refused(value: Any) -> None:
    with pytest.raises(CanonicalJsonError):
        canonical_json(value)


@pytest.mark.parametrize(
    "value",
    [{1, 2}, frozenset(), set(), object(), Decimal("1"), complex(1, 2), [{"a"}],
     {"when": object()}, print],
    ids=["set", "frozenset", "empty-set", "object", "decimal", "complex", "set-in-list",
         "object-in-dict", "function"],
)
def test_other_objects_are_refused(value: Any) -> None:
    with pytest.raises(CanonicalJsonError):
        canonical_json(value)


# --- parse_canonical ----------------------------------------------------------------------------


def test_parse_canonical_accepts_canonical_bytes() -> None:
    data = '{"a":[1,true,null,"\u00e9"],"b":{"\U0001f600":-5}}'.encode()
    assert _same(
        parse_canonical(data), {"a": [1, True, None, "\u00e9"], "b": {"\U0001f600": -5}}
    )


@pytest.mark.parametrize(
    "data",
    [
        # extra whitespace
        b'{"a": 1}', b' {"a":1}', b'{"a":1}\n', b"[1, 2]", b'{ "a":1}', b"[1,\t2]", b'{"a" :1}',
        # unsorted keys (including code-point order where UTF-16 order differs)
        b'{"b":1,"a":2}', '{"\ue000":1,"\U0001f600":2}'.encode(),
        # escapes that are not the canonical form
        b'"\\u00e9"', b'"\\u0041"', b'"\\/"', b'"\\u001F"', b'"\\u000a"', b'"\\u0022"',
        b'"\\ud83d\\ude00"', b'{"\\u0061":1}',
        # duplicate keys
        b'{"a":1,"a":1}', b'{"a":1,"a":2}', b'{"a":{"b":1,"b":1}}',
        # numbers that are not canonical integers
        b"-0", b"01", b"1.0", b"1e2", b"1E2", b"+1", b"NaN", b"Infinity", b"-Infinity",
        b"9007199254740992", b"-9007199254740992",
        # lone surrogate written as an escape
        b'"\\ud800"', b'{"\\udfff":1}',
        # UTF-8 byte order mark, empty input, trailing data
        b'\xef\xbb\xbf{"a":1}', b"", b"1 2", b"nul",
    ],
)
def test_parse_canonical_refuses_non_canonical_json(data: bytes) -> None:
    with pytest.raises(CanonicalJsonError):
        parse_canonical(data)


@pytest.mark.parametrize(
    "data",
    [b'"\xff"', b'"\xc3"', b'"\xc0\xaf"', b'"\xed\xa0\x80"', b'"\xf4\x90\x80\x80"',
     b'{"a\x80":1}', b'"\xe2\x82"', b"\x80"],
    ids=["ff", "truncated", "overlong", "cesu-surrogate", "above-10ffff", "continuation-in-key",
         "truncated-3", "bare-continuation"],
)
def test_parse_canonical_refuses_invalid_utf8(data: bytes) -> None:
    with pytest.raises(CanonicalJsonError):
        parse_canonical(data)


def test_parse_canonical_refuses_a_huge_integer_with_its_own_error() -> None:
    # A tampered entry with a 5000-digit number is not canonical; callers catching
    # CanonicalJsonError must see it as such, not as some other ValueError.
    with pytest.raises(CanonicalJsonError):
        parse_canonical(b"1" * 5000)


def test_parse_canonical_refuses_absurd_nesting_with_its_own_error() -> None:
    # Hostile input must be reported as non-canonical, not crash the verifier.
    with pytest.raises(CanonicalJsonError):
        parse_canonical(b"[" * 5_000 + b"]" * 5_000)


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_round_trip(value: Any) -> None:
    data = canonical_json(value)
    data.decode("utf-8", errors="strict")
    assert _same(parse_canonical(data), value)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_matches_reference_serializer_written_from_the_rfc(value: Any) -> None:
    assert canonical_json(value) == _ref_canonical(value).encode("utf-8")


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_string_is_escaped_as_the_rfc_says(text: str) -> None:
    assert canonical_json(text) == _ref_string(text).encode("utf-8")


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(keys, json_values, max_size=4), st.randoms(use_true_random=False))
def test_key_insertion_order_does_not_matter(value: dict[str, Any], rnd: random.Random) -> None:
    reordered = _shuffled(value, rnd)
    backwards = dict(reversed(list(value.items())))
    assert canonical_json(reordered) == canonical_json(value)
    assert canonical_json(backwards) == canonical_json(value)
    # And the order written is UTF-16 code-unit order.
    written = json.loads(canonical_json(value), object_pairs_hook=lambda pairs: pairs)
    written_keys = [k for k, _ in written]
    assert written_keys == sorted(value, key=_utf16_units)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_reencoding_what_json_loads_reads_gives_the_same_bytes(value: Any) -> None:
    data = canonical_json(value)
    assert canonical_json(json.loads(data)) == data


@settings(max_examples=250, deadline=None)
@given(json_values, st.data())
def test_a_single_flipped_bit_never_parses_to_the_same_value(value: Any, data: Any) -> None:
    original = canonical_json(value)
    bit = data.draw(st.integers(min_value=0, max_value=len(original) * 8 - 1), label="bit")
    tampered = bytearray(original)
    tampered[bit // 8] ^= 1 << (bit % 8)
    try:
        parsed = parse_canonical(bytes(tampered))
    except CanonicalJsonError:
        return
    assert not _same(parsed, value)
    assert canonical_json(parsed) == bytes(tampered)
