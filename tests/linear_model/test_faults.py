"""A worker killed in the middle of fit: same result, no hang."""


import dask.array as da
import numpy as np
import pytest

import daskpml.linear_model as dl
from _helpers import worker_killer


@pytest.mark.distributed
@pytest.mark.timeout(120)
def test_worker_killed_mid_fit_gives_the_same_model(nanny_client):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4000, 6))
    y = (X @ rng.standard_normal(6) + rng.logistic(size=4000) > 0).astype(int)
    reference = dl.LogisticRegression(tol=1e-10).fit(X, y)
    client = nanny_client
    Xd = da.from_array(X, chunks=(500, 6))       # chunks can be recomputed from the graph
    yd = da.from_array(y, chunks=500)
    kill_one, killed = worker_killer(client, at=2)

    # the solver's loop runs on the workers (an SPMD group): the group ends with the worker and
    # restarts on the workers that remain, from the snapshot the client keeps, and says so
    with pytest.warns(RuntimeWarning, match="Restarting from"):
        model = dl.LogisticRegression(tol=1e-10, solver="lbfgs",
                                      solver_kwargs={"callback": kill_one}).fit(Xd, yd)
    assert killed
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, atol=1e-8)
