"""Loss families and penalties against finite differences and closed forms."""

import numpy as np
import pytest

from daskpml.optim import FAMILIES, Layout, Objective, get_family, get_penalty

from _helpers import host, on


def _problem(family, seed=0, n=60, d=4):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    K = 3 if family == "multinomial" else 2
    y = rng.integers(0, K, n).astype(float) if family != "squared" else rng.standard_normal(n)
    return X, y, K


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("penalty", ["l2", "none"])
def test_gradient_matches_finite_differences(backend, family, penalty):
    X, y, K = _problem(family)
    fam = get_family(family)
    layout = Layout(X.shape[1], fam.n_outputs(K), True)
    obj = Objective(on(backend, X), on(backend, y), fam, get_penalty(penalty), 0.3, layout)
    theta = np.random.default_rng(1).standard_normal(layout.size) * 0.5
    f, g = obj.value_grad(theta)
    eps = 1e-6
    fd = np.array([(obj.value_grad(theta + eps * e)[0] - obj.value_grad(theta - eps * e)[0]) / (2 * eps)
                   for e in np.eye(layout.size)])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6)
    assert np.isclose(f, obj.value(theta))


@pytest.mark.parametrize("family", ["squared", "logistic", "multinomial", "squared_hinge"])
def test_hessian_vector_product_matches_gradient_differences(family):
    X, y, K = _problem(family, seed=2)
    fam = get_family(family)
    layout = Layout(X.shape[1], fam.n_outputs(K), True)
    obj = Objective(X, y, fam, get_penalty("l2"), 0.1, layout)
    rng = np.random.default_rng(3)
    theta, v = rng.standard_normal(layout.size) * 0.3, rng.standard_normal(layout.size)
    eps = 1e-6
    fd = (obj.value_grad(theta + eps * v)[1] - obj.value_grad(theta - eps * v)[1]) / (2 * eps)
    np.testing.assert_allclose(obj.hvp(theta, v), fd, rtol=1e-4, atol=1e-6)


def test_logistic_loss_is_stable_for_large_margins():
    fam = get_family("logistic")
    z = np.array([[800.0], [-800.0], [0.0]])
    loss, dz = fam.loss_dz(z, np.array([1.0, 0.0, 1.0]))
    assert np.isfinite(loss) and np.isclose(loss, np.log(2))
    np.testing.assert_allclose(dz[:, 0], [0.0, 0.0, -0.5])


def test_hinge_has_no_hessian_and_says_what_to_use():
    with pytest.raises(TypeError, match="not twice differentiable.*lbfgs"):
        get_family("hinge").hess_dz(None, None, None)


def test_penalties_and_prox():
    w = np.array([-2.0, 0.05, 1.0])
    en = get_penalty("elasticnet", l1_ratio=0.25)
    assert np.isclose(en.value(w), 0.25 * 3.05 + 0.75 * 0.5 * (4 + 0.0025 + 1))
    np.testing.assert_allclose(get_penalty("l1").prox(w, 0.1), [-1.9, 0.0, 0.9])
    assert get_penalty(None).value(w) == 0.0
    with pytest.raises(ValueError, match="unknown penalty 'l3'"):
        get_penalty("l3")
    with pytest.raises(ValueError, match="l1_ratio must be in"):
        get_penalty("elasticnet", l1_ratio=2)
    with pytest.raises(ValueError, match="unknown family 'poisson'; choose one of"):
        get_family("poisson")


def test_dask_objective_equals_in_memory(client):
    import dask.array as da

    X, y, K = _problem("logistic", n=101)
    fam = get_family("logistic")
    layout = Layout(X.shape[1], 1, True)
    theta = np.linspace(-1, 1, layout.size)
    local = Objective(X, y, fam, get_penalty("l2"), 0.2, layout)
    dist = Objective(da.from_array(X, chunks=(17, 4)), da.from_array(y, chunks=17), fam, get_penalty("l2"), 0.2,
                     layout, split_every=2)
    f1, g1 = local.value_grad(theta)
    f2, g2 = dist.value_grad(theta)
    assert np.isclose(f1, f2) and np.allclose(host(g1), host(g2))
    assert dist.comm.rounds == 1 and dist.comm.bytes > 0 and dist.n_chunks == 6
