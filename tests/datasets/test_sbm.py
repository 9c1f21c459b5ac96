from __future__ import annotations

import numpy as np
import pytest

from daskpml.datasets import make_sbm


@pytest.mark.parametrize("shuffle", [False, True])
def test_sbm_structure(shuffle):
    n, k = 20_000, 5
    A, labels = make_sbm(n, k, in_degree=12, out_degree=3, shuffle=shuffle, chunks=3000, random_state=7)
    M, lab = A.to_scipy(), labels.compute()
    assert M.shape == (n, n) and abs(M - M.T).max() == 0 and M.diagonal().sum() == 0
    assert set(np.unique(M.data)) == {1.0}
    assert np.bincount(lab).tolist() == [n // k] * k
    rows, cols = M.nonzero()
    inside = lab[rows] == lab[cols]
    assert inside.sum() / n == pytest.approx(12, rel=0.03)      # mean in-community degree
    assert (~inside).sum() / n == pytest.approx(3, rel=0.05)    # mean cross-community degree
    contiguous = np.all(np.diff(lab) >= 0)
    assert contiguous != shuffle


def test_sbm_is_deterministic_across_schedulers(client):
    A1, l1 = make_sbm(3000, 3, chunks=700, shuffle=True, random_state=1)
    A2, l2 = make_sbm(3000, 3, chunks=700, shuffle=True, random_state=1)
    assert abs(A1.to_scipy() - A2.compute(scheduler="sync")).max() == 0
    np.testing.assert_array_equal(l1.compute(), l2.compute(scheduler="sync"))


def test_sbm_disassortative():
    A, labels = make_sbm(6000, 2, in_degree=1, out_degree=6, chunks=1000, random_state=2)
    M, lab = A.to_scipy(), labels.compute()
    rows, cols = M.nonzero()
    assert (lab[rows] != lab[cols]).mean() == pytest.approx(6 / 7, abs=0.02)


def test_sbm_bad_parameters():
    with pytest.raises(ValueError, match="probabilities above 1"):
        make_sbm(10, 5, in_degree=8)
    with pytest.raises(ValueError, match="n_clusters"):
        make_sbm(10, 0)
    with pytest.raises(ValueError, match=">= 0"):
        make_sbm(100, 2, out_degree=-1)
