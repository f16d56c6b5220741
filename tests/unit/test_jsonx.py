"""The journal's JSON: exact integers of any size, key order kept, bad input refused."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors import jsonx

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_values)
def test_round_trip_is_exact_and_agrees_with_the_standard_library(value: object) -> None:
    text = jsonx.dumps(value)
    assert jsonx.loads(text) == value
    assert jsonx.loads(jsonx.dumpb(value)) == value
    assert json.loads(text) == value


def test_integers_beyond_64_bits_stay_integers() -> None:
    big = {"atoms": 10**30, "debit": -(2**70), "edge": 2**64}
    assert jsonx.loads(jsonx.dumps(big)) == big
    assert all(type(v) is int for v in jsonx.loads(jsonx.dumps(big)).values())


def test_keys_keep_their_order() -> None:
    assert jsonx.dumps({"b": 1, "a": 2}) == '{"b":1,"a":2}'


def test_malformed_input_raises() -> None:
    with pytest.raises(msgspec.DecodeError):
        jsonx.loads('{"a": ')
