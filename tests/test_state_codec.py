"""The stored form of sparse counts (layout 3: one line of cells) and the layouts before it.

* any sparse array and any state survive ``to_dict`` -> JSON -> ``from_dict`` unchanged;
* malformed cell texts raise the documented errors (StateError for states);
* states written by earlier perfkit versions decode to identical states, alone, merged
  with new ones, and read back from SQLite and PostgreSQL stores.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import softmax

from perfkit.exceptions import StateError
from perfkit.metrics import compute_state, evaluate, merge_states, state_from_dict
from perfkit.metrics._sparse import SparseCounts, merge_stored
from perfkit.metrics.state import merge_dicts_to_state
from perfkit.store import BatchRecord, Store

SPARSE_FIELDS = ("hist_pos", "hist_neg", "hist_pred", "pred_joint", "auc_pair_counts")
LAYOUT2 = json.loads((Path(__file__).parent / "data" / "states_layout2.json").read_text())


# ----------------------------------------------------------------------------- the second layout
def _record_dtype(gcode: str, ccode: str) -> np.dtype:
    u = {"B": np.uint8, "H": np.uint16, "I": np.uint32, "Q": np.uint64}
    return np.dtype([("g", u[gcode]), ("c", u[ccode])])


def layout2(s: SparseCounts) -> dict:
    """``s`` in the per-row layout perfkit wrote before layout 3 (the writer of commit 5145125)."""
    bins = s.shape[-1]
    rows = int(np.prod(s.shape[:-1]))
    keys = s.keys.astype(np.int64)
    counts = s.counts.astype(np.int64)
    bounds = np.searchsorted(keys, np.arange(rows + 1) * bins)
    out = []
    for j in range(rows):
        nz = keys[bounds[j]:bounds[j + 1]] - j * bins
        c = counts[bounds[j]:bounds[j + 1]]
        top = int(c.max()) if c.size else 0
        ccode = "B" if top < 2**8 else "H" if top < 2**16 else "I" if top < 2**32 else "Q"
        first = int(nz[0]) if nz.size else 0
        gaps = np.diff(nz, prepend=first)
        gcode = "H" if gaps.size == 0 or int(gaps.max()) < 2**16 else "I"
        rec = np.empty(nz.size, dtype=_record_dtype(gcode, ccode))
        rec["g"] = gaps
        rec["c"] = c
        out.append({"v": 2, "n": int(nz.size), "f": first if nz.size else 0, "g": gcode, "d": ccode,
                    "z": base64.b64encode(rec.tobytes()).decode("ascii")})
    return {"bins": int(bins), "rows": out}


def as_layout2(state_dict: dict) -> dict:
    """A stored state with every sparse field rewritten in the second layout."""
    out = dict(state_dict)
    s = state_from_dict(state_dict)
    for f in SPARSE_FIELDS:
        v = getattr(s, f, None)
        if v is not None and out.get(f) is not None:
            out[f] = layout2(v.reshape(-1) if f == "auc_pair_counts" else v)  # stored as one row
    out["version"] = 1
    return json.loads(json.dumps(out))


# ----------------------------------------------------------------------------- round trips
@st.composite
def sparse_arrays(draw):
    shape = tuple(draw(st.lists(st.integers(1, 40), min_size=1, max_size=3)))
    size = int(np.prod(shape))
    keys = sorted(draw(st.sets(st.integers(0, size - 1), max_size=min(size, 60))))
    big = draw(st.sampled_from([2, 32, 2**8, 2**16, 2**33, 2**60]))
    counts = draw(st.lists(st.integers(0, big - 1), min_size=len(keys), max_size=len(keys)))
    return SparseCounts(shape, np.asarray(keys, dtype=np.int64), np.asarray(counts, dtype=np.int64))


@settings(max_examples=300, deadline=None)
@given(sparse_arrays(), st.integers(1, 4))
def test_any_sparse_array_round_trips(s, copies):
    d = json.loads(json.dumps(s.to_dict()))
    assert d["v"] == 3 and d["nnz"] == s.nnz and 1 <= d["q"] <= 4
    back = SparseCounts.from_dict(d, s.shape)
    assert back.equals(s) and back.shape == s.shape
    merged = merge_stored([d] * copies, s.shape)
    np.testing.assert_array_equal(np.asarray(merged), copies * np.asarray(s))
    if s.counts.size == 0 or int(s.counts.max()) < 2**32:  # the second layout's widest counts
        old = json.loads(json.dumps(layout2(s)))
        assert SparseCounts.from_dict(old, s.shape).equals(back)
        np.testing.assert_array_equal(np.asarray(merge_stored([old, d], s.shape)), 2 * np.asarray(s))


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _reference_text(keys: list[int], counts: list[int], q: int) -> str:
    """Layout 3's cell text written out from its definition (``_kernels``' comment above
    ``CELL_ALPHABET``): per cell ``gap << q | code``, numbers in 5-bit groups, least
    significant first, 32 added when another group follows."""
    def number(x: int) -> str:
        out = ""
        while x >= 32:
            out += _ALPHABET[(x & 31) | 32]
            x >>= 5
        return out + _ALPHABET[x]

    mask, prev, text = (1 << q) - 1, -1, ""
    for k, c in zip(keys, counts, strict=True):
        gap = k - prev - 1
        text += number(gap << q | (c - 1)) if 1 <= c <= mask else number(gap << q | mask) + number(c)
        prev = k
    return text


@settings(max_examples=300, deadline=None)
@given(sparse_arrays())
def test_the_cell_text_is_the_documented_format(s):
    d = s.to_dict()
    assert d["z"] == _reference_text(s.keys.tolist(), s.counts.tolist(), d["q"])
    # q is the shortest of 1..4 on the sampled cells (all of them below 512 cells)
    lengths = [len(_reference_text(s.keys.tolist(), s.counts.tolist(), q)) for q in range(1, 5)]
    assert len(d["z"]) == min(lengths)


def _batch(rng, task, n):
    if task == "regression":
        y = rng.normal(size=n)
        return y, y + rng.normal(size=n), None
    k = 2 if task == "binary" else 4
    y = rng.integers(0, k, n)
    proba = softmax(rng.normal(size=(n, k)) * rng.uniform(0.1, 30) + 1.5 * np.eye(k)[y], axis=1)
    pred = proba.argmax(1)
    return y, pred, (proba[:, 1] if k == 2 else proba)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["binary", "multiclass", "regression"]), st.integers(1, 400), st.integers(0, 2**32 - 1),
       st.booleans())
def test_any_state_round_trips(task, n, seed, unlabelled):
    rng = np.random.default_rng(seed)
    s = compute_state(*_batch(rng, task, n), task=task,
                      classes=None if task == "regression" else [0, 1] if task == "binary" else [0, 1, 2, 3])
    if unlabelled:
        s = s.prediction_part()
    d = json.loads(json.dumps(s.to_dict()))
    back = state_from_dict(d)
    assert back.to_dict() == s.to_dict()
    for f in SPARSE_FIELDS:
        if getattr(s, f, None) is not None:
            assert getattr(back, f).equals(getattr(s, f))
    assert merge_dicts_to_state([d, d]).to_dict() == merge_states([s, s]).to_dict()


# ----------------------------------------------------------------------------- malformed text
def _state_dict():
    rng = np.random.default_rng(7)
    return json.loads(json.dumps(compute_state(*_batch(rng, "binary", 300), task="binary").to_dict()))


def _corrupt(how):
    d = _state_dict()
    h = d["hist_pos"]
    z = h["z"]
    if how == "bad character":
        h["z"] = z[:10] + "!" + z[11:]
    elif how == "not ascii":
        h["z"] = z[:10] + "é" + z[11:]
    elif how == "cut inside a number":
        h["z"] = z + "g"  # 32 + 0: another group announced, none follows
    elif how == "cut after a gap":
        h["z"] = z + "B"
    elif how == "fewer cells than declared":
        h["nnz"] += 1
    elif how == "more cells than declared":
        h["nnz"] -= 1
    elif how == "cells beyond the array":
        h["bins"] = 10
    elif how == "number too long":
        h["z"] = "/" * 13 + "A" + z
    elif how == "negative size":
        h["nnz"] = -1
    elif how == "text not a string":
        h["z"] = [z]
    elif how == "bins not an integer":
        h["bins"] = "141314"
    elif how == "missing text":
        del h["z"]
    elif how == "no count bits":
        h["q"] = 0
    elif how == "too many count bits":
        h["q"] = 5
    elif how == "count bits not an integer":
        h["q"] = 1.0
    return d


MALFORMED = ["bad character", "not ascii", "cut inside a number", "cut after a gap", "fewer cells than declared",
             "more cells than declared", "cells beyond the array", "number too long", "negative size",
             "text not a string", "bins not an integer", "missing text", "no count bits", "too many count bits",
             "count bits not an integer"]


@pytest.mark.parametrize("how", MALFORMED)
def test_malformed_cell_text_raises_state_error(how):
    bad = _corrupt(how)
    with pytest.raises(StateError):
        state_from_dict(bad)
    with pytest.raises(StateError):  # the fast merge of stored dicts checks the same
        merge_dicts_to_state([_state_dict(), bad])
    with pytest.raises(StateError):
        merge_dicts_to_state([bad, _state_dict()], for_evaluation=True)


def test_the_unchanged_dict_decodes():  # so every malformed case above fails for its corruption
    d = _state_dict()
    assert state_from_dict(d).n == 300 and merge_dicts_to_state([d, d]).n == 600


def test_counts_that_cannot_be_stored_raise_state_error():
    s = state_from_dict(_state_dict())
    huge = SparseCounts(s.hist_pos.shape, s.hist_pos.keys, np.full(s.hist_pos.nnz, 2**61, dtype=np.int64))
    with pytest.raises(ValueError, match="too large"):
        huge.to_dict()
    with pytest.raises(StateError, match="too large"):
        dataclasses.replace(s, hist_pos=huge).to_dict()
    SparseCounts(huge.shape, huge.keys, huge.counts - 2**60 - 2**59).to_dict()  # just below the limit: stored


# ----------------------------------------------------------------------------- earlier layouts
@pytest.mark.parametrize("name", sorted(LAYOUT2))
def test_states_written_in_the_second_layout_decode_identically(name):
    entry = LAYOUT2[name]
    old = entry["state"]
    s = state_from_dict(old)
    for f, cells in entry["cells"].items():
        v = getattr(s, f)
        assert list(v.shape) == cells["shape"]
        assert v.keys.tolist() == cells["keys"] and v.counts.astype(np.int64).tolist() == cells["counts"]
    new = json.loads(json.dumps(s.to_dict()))
    for k, v in old.items():  # every other field as it was stored
        if k not in SPARSE_FIELDS and k != "version":
            assert new[k] == v, k
    assert state_from_dict(new).to_dict() == s.to_dict()
    # merged with itself and with its new form: stored merge = object merge, in any order
    want = merge_states([s, s, s]).to_dict()
    assert merge_dicts_to_state([old, new, old]).to_dict() == want
    assert merge_dicts_to_state([new, old, new]).to_dict() == want
    assert evaluate(merge_dicts_to_state([old, new])) == evaluate(merge_states([s, s]))


def test_the_second_layout_writer_here_matches_the_fixture():
    """``layout2`` above writes what perfkit wrote (so the property tests use the real layout)."""
    for entry in LAYOUT2.values():
        old = entry["state"]
        assert as_layout2(old) == old


def _record(i, state, model="m"):
    return BatchRecord(model, datetime(2025, 3, 1, tzinfo=UTC) + timedelta(hours=i), state.get("task", "binary"),
                       state, {}, int(state["n"]), batch_id=f"b{i}")


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_stores_holding_second_layout_states_read_identically(store_url, task):
    """A store written by an earlier perfkit (second-layout states), with new states appended
    after an upgrade: every read path gives the states and merges of the decoded states."""
    names = [n for n in sorted(LAYOUT2) if n.startswith(task) and "unlabelled" not in n]
    old = [LAYOUT2[n]["state"] for n in names]
    states = [state_from_dict(d) for d in old]
    new = [s.to_dict() for s in states]
    with Store(store_url) as store:
        for i, d in enumerate(old + new):
            store.append(_record(i, d))
        read = [d for _, d in store.states("m")]
        assert read == old + new  # stored as written
        assert [state_from_dict(d).to_dict() for d in read] == [s.to_dict() for s in states + states]
        want = merge_states(states + states)
        assert store.merged_state(store.records("m")).to_dict() == want.to_dict()
        got = store.merged_state(store.records("m"), for_evaluation=True)
        assert evaluate(got) == evaluate(want)
        assert store.window_state("m") == want.to_dict()
        (_, weekly), = store.window_states("m", "30D")
        assert weekly.to_dict() == want.to_dict()


# ----------------------------------------------------------------------------- chunked merge
def _history(seed, task, count):
    rng = np.random.default_rng(seed)
    classes = None if task == "regression" else [0, 1] if task == "binary" else [0, 1, 2, 3]
    return [json.loads(json.dumps(compute_state(*_batch(rng, task, int(rng.integers(1, 300))), task=task,
                                                classes=classes).to_dict())) for _ in range(count)]


def _chunked(dicts, cuts):
    bounds = [0, *sorted(c % (len(dicts) + 1) for c in cuts), len(dicts)]
    return (dicts[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["binary", "multiclass", "regression"]), st.integers(1, 30), st.integers(0, 2**32 - 1),
       st.lists(st.integers(0, 40), max_size=6), st.booleans(), st.booleans())
def test_chunked_merge_equals_the_merge_of_all(task, count, seed, cuts, for_evaluation, old_layout):
    from perfkit.metrics.state import merge_dict_chunks_to_state

    dicts = _history(seed, task, count)
    if old_layout and task != "regression":  # states of an earlier version among them
        dicts[::2] = [as_layout2(d) for d in dicts[::2]]
    want = merge_dicts_to_state(dicts, for_evaluation=for_evaluation).to_dict()
    got = merge_dict_chunks_to_state(_chunked(dicts, cuts), for_evaluation=for_evaluation).to_dict()
    assert got == want
    assert want == merge_states([state_from_dict(d) for d in dicts]).to_dict() or for_evaluation


def test_chunked_merge_of_a_long_history_uses_both_threads_and_equals_the_merge_of_all():
    """Enough chunks that the pool thread and this one both add some (their sums are joined)."""
    from perfkit.metrics.state import merge_dict_chunks_to_state

    dicts = _history(3, "multiclass", 12) * 40
    want = merge_dicts_to_state(dicts).to_dict()
    assert merge_dict_chunks_to_state([dicts[i:i + 3] for i in range(0, len(dicts), 3)]).to_dict() == want
    assert want == merge_states([state_from_dict(d) for d in dicts]).to_dict()


def test_chunked_merge_covers_what_the_fast_path_does_not():
    """Growing label sets, states without scores, older versions: the same result as the plain merge."""
    from perfkit.metrics.state import merge_dict_chunks_to_state

    rng = np.random.default_rng(9)
    p3 = rng.dirichlet(np.ones(3), 200)
    three = compute_state(rng.integers(0, 3, 200), p3.argmax(1), p3, task="multiclass", classes=[0, 1, 2])
    dicts = _history(4, "multiclass", 6)
    no_scores = json.loads(json.dumps(compute_state([0, 1, 2, 3], [0, 1, 1, 3], task="multiclass",
                                                    classes=[0, 1, 2, 3]).to_dict()))
    for extra in (json.loads(json.dumps(three.to_dict())), no_scores, as_layout2(dicts[0])):
        mixed = [*dicts[:3], extra, *dicts[3:]]
        want = merge_dicts_to_state(mixed).to_dict()
        assert merge_dict_chunks_to_state([mixed[:2], mixed[2:5], mixed[5:]]).to_dict() == want


@pytest.mark.parametrize("how", ["bad character", "cells beyond the array", "text not a string"])
def test_chunked_merge_of_malformed_states_raises_state_error(how):
    from perfkit.metrics.state import merge_dict_chunks_to_state

    good = _state_dict()
    with pytest.raises(StateError):
        merge_dict_chunks_to_state([[good, good], [_corrupt(how), good], [good]])
    with pytest.raises(StateError):
        merge_dict_chunks_to_state([])
    assert merge_dict_chunks_to_state([[good], [], [good]]).n == 600


def test_states_say_their_version_and_newer_ones_are_refused():
    d = _state_dict()
    assert d["version"] == 2 and LAYOUT2["binary_0"]["state"]["version"] == 1
    newer = {**d, "version": 3}
    with pytest.raises(StateError, match="newer"):
        state_from_dict(newer)
    with pytest.raises(StateError, match="newer"):
        merge_dicts_to_state([d, newer])


def test_long_merges_decode_on_two_threads_to_the_same_sum():
    """Texts longer than the two-thread threshold: each thread adds half into its own
    accumulator; the sum equals the one-thread sum and the dense sum."""
    from perfkit.metrics import _threads
    from perfkit.metrics._sparse import _THREAD_TEXT

    rng = np.random.default_rng(12)
    arrays = [SparseCounts.from_dense(np.where(rng.random((3, 40_000)) < 0.5, rng.integers(1, 40, (3, 40_000)), 0))
              for _ in range(40)]
    stored = [a.to_dict() for a in arrays]
    assert sum(len(d["z"]) for d in stored) > _THREAD_TEXT
    assert _threads.pool() is not None  # the machine has two cores or more (else one thread: still equal)
    two = merge_stored(stored, pool=_threads.pool())
    assert two.equals(merge_stored(stored)) and two.equals(SparseCounts.merge_all(arrays))
    bad = [*stored[:3], {**stored[3], "z": stored[3]["z"][:-40] + "!" * 40}, *stored[4:]]
    with pytest.raises(ValueError, match="malformed"):  # a bad text in the pool thread's half
        merge_stored(bad, pool=_threads.pool())
