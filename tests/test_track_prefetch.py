"""Work the tracking call starts early (bootstrap draws as soon as the confusion matrix is
counted) gives exactly the values evaluated without it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from perfkit import ModelPerformanceTracker
from perfkit.metrics import compute_state, evaluate, registry
from perfkit.metrics.registry import prefetch_dirichlet
from perfkit.metrics.state import confusion_hook


@pytest.fixture(autouse=True)
def _no_pending_draws():
    """Draws started and never evaluated (a call refused after its state) may be left over
    from other tests; they are harmless (a bounded cache of a pure function's results)."""
    registry._DRAWS.clear()
    yield
    registry._DRAWS.clear()


def _batch(seed: int, n: int, k: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    proba = softmax(rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y], axis=1)
    return y, proba.argmax(axis=1), proba


@pytest.mark.parametrize(("k", "n"), [(2, 300), (5, 40), (5, 10_000), (7, 3000)])
def test_prefetched_draws_give_the_same_report(k, n):
    y, pred, proba = _batch(k + n, n, k)
    seen = []
    with confusion_hook(lambda cm: (seen.append(cm.copy()), prefetch_dirichlet(cm))):
        state = compute_state(y, pred, proba if k > 2 else proba[:, 1])
    assert len(seen) == 1 and np.array_equal(seen[0], state.confusion)
    assert registry._DRAWS  # started
    fast = evaluate(state)
    assert not registry._DRAWS  # taken by the evaluation
    plain = evaluate(compute_state(y, pred, proba if k > 2 else proba[:, 1]))
    assert fast.to_dict() == plain.to_dict()
    # other draws (another seed or size) are not taken from a prefetch of the defaults
    with confusion_hook(prefetch_dirichlet):
        state = compute_state(y, pred, proba if k > 2 else proba[:, 1])
    assert evaluate(state, seed=3).to_dict() == evaluate(compute_state(y, pred, proba if k > 2 else proba[:, 1]),
                                                          seed=3).to_dict()


def test_tracker_values_equal_plain_evaluation(tmp_path):
    t = ModelPerformanceTracker(store=tmp_path / "p.db", model="m")
    for seed in range(3):
        y, pred, proba = _batch(seed, 10_000, 5)
        r = t.track_performance(y, pred, proba)
        assert r.metrics.to_dict() == evaluate(compute_state(y, pred, proba)).to_dict()
        stored = t.store.get("m", r.batch_id)
        assert {k: stored.metrics[k]["ci_upper"] for k in r.metrics} == {k: v.ci_upper for k, v in r.metrics.items()}
    assert not registry._DRAWS
    t.close()


def test_hook_is_per_thread_and_restored():
    y, pred, proba = _batch(1, 200, 3)
    calls = []
    with confusion_hook(calls.append):
        with confusion_hook(lambda cm: calls.append("inner")):
            compute_state(y, pred, proba)
        compute_state(y, pred, proba)
        compute_state(None, pred, proba)  # no labels: no confusion matrix
    compute_state(y, pred, proba)
    assert calls[0] == "inner" and len(calls) == 2 and np.array_equal(calls[1], compute_state(y, pred, proba).confusion)


def _child_tracks(path: str) -> None:
    t = ModelPerformanceTracker(store=path, model="m")
    y, pred, proba = _batch(9, 10_000, 5)
    r = t.track_performance(y, pred, proba)
    assert r.metrics.to_dict() == evaluate(compute_state(y, pred, proba)).to_dict()
    t.close()


def test_forked_child_tracks_with_its_own_worker_threads(tmp_path):
    """A child forked after the parent used the worker threads (state pass, bootstrap draws,
    reader) has none of them: it must start its own, not wait for the parent's forever."""
    import multiprocessing

    path = str(tmp_path / "f.db")
    t = ModelPerformanceTracker(store=path, model="m")
    y, pred, proba = _batch(8, 10_000, 5)
    t.track_performance(y, pred, proba)
    with confusion_hook(prefetch_dirichlet):  # a pending prefetch the child must not wait for
        compute_state(*_batch(9, 10_000, 5))
    child = multiprocessing.get_context("fork").Process(target=_child_tracks, args=(path,))
    child.start()
    child.join(120)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail("the forked child hung")
    assert child.exitcode == 0
    t.close()
