"""The server's batch checks (sync/central/verify.py), property-based."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.central.verify import BatchRejected, verify_chain_of
from tests.sync.central_harness import TERMINAL, make_entries

# Fields whose change the hash must catch, with a way to change each.
_MUTATIONS: dict[str, Any] = {
    "seq": lambda v: v,  # handled apart: changes continuity
    "id": lambda v: v + "x",
    "ts": lambda v: v.replace("11:00", "12:00"),
    "local_date": lambda v: "2026-11-19",
    "kind": lambda v: "void",
    "card": lambda v: "01-000026",
    "amount_gr": lambda v: v + 1,
    "points_earned": lambda v: v + 1,
    "points_redeemed": lambda v: v + 1,
    "discount_gr": lambda v: v + 100,
    "benefits": lambda v: [*v, "B-999"],
    "rules_version": lambda v: v + "!",
    "cashier": lambda v: None,
    "ref": lambda v: 1,
    "sale_id": lambda v: "other",
    "benefit_points": lambda v: {"B-101": 5},
    "balance_after": lambda v: 123,
}


def _raws(n: int, start: int = 1) -> list[dict[str, Any]]:
    return [msgspec.json.decode(msgspec.json.encode(e)) for e in make_entries(n)][start - 1 :]


@given(n=st.integers(1, 12), data=st.data())
@settings(max_examples=60, deadline=None)
def test_any_single_field_change_is_caught(n: int, data: st.DataObject) -> None:
    raws = _raws(n)
    assert verify_chain_of(TERMINAL, raws).last_seq == n
    i = data.draw(st.integers(0, n - 1))
    field = data.draw(st.sampled_from(sorted(set(_MUTATIONS) - {"seq"})))
    raws[i][field] = _MUTATIONS[field](raws[i][field])
    with pytest.raises(BatchRejected) as e:
        verify_chain_of(TERMINAL, raws)
    assert e.value.status == 422
    assert e.value.seq == i + 1


@given(n=st.integers(2, 10), data=st.data())
@settings(max_examples=40, deadline=None)
def test_dropped_swapped_or_duplicated_entries_are_caught(n: int, data: st.DataObject) -> None:
    raws = _raws(n)
    i = data.draw(st.integers(0, n - 2))
    how = data.draw(st.sampled_from(["drop", "swap", "dup"]))
    if how == "drop":
        del raws[i + 1]
        if i + 1 == len(raws):  # dropping the last one leaves a valid shorter chain
            assert verify_chain_of(TERMINAL, raws).last_seq == n - 1
            return
    elif how == "swap":
        raws[i], raws[i + 1] = raws[i + 1], raws[i]
    else:
        raws.insert(i + 1, dict(raws[i]))
    with pytest.raises(BatchRejected) as e:
        verify_chain_of(TERMINAL, raws)
    assert (e.value.status, e.value.error) == (422, "bad_hash")


def test_a_batch_may_start_anywhere_in_the_chain() -> None:
    raws = _raws(10)[4:]
    v = verify_chain_of(TERMINAL, raws)
    assert (v.first_seq, v.last_seq, v.first_prev_hash) == (5, 10, raws[0]["prev_hash"])
    assert v.bodies[0] == msgspec.json.encode(dict(sorted(raws[0].items())))


def test_empty_batch_is_a_bad_request() -> None:
    with pytest.raises(BatchRejected) as e:
        verify_chain_of(TERMINAL, [])
    assert e.value.status == 400
