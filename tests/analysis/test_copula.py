"""Normal scores (Gaussian copula): docs/math.md §2."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm, rankdata

from ncib.analysis import normal_scores, normal_scores_train_test

SEEDS = [0, 1, 2]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "transform", [torch.exp, lambda x: x**3 + x, lambda x: 5.0 * x - 2.0, torch.atan]
)
def test_invariant_to_increasing_transform(seed, transform):
    z = torch.randn(300, 4, generator=_gen(seed), dtype=torch.float64)
    assert torch.equal(normal_scores(transform(z)), normal_scores(z))


@pytest.mark.parametrize("seed", SEEDS)
def test_columns_are_normal_quantiles(seed):
    n = 257
    z = torch.randn(n, 5, generator=_gen(seed), dtype=torch.float64) * 3 + 7
    g = normal_scores(z)
    expected = norm.ppf(np.arange(1, n + 1) / (n + 1))  # scipy, independent of torch.ndtri
    for j in range(z.shape[1]):
        np.testing.assert_allclose(np.sort(g[:, j].numpy()), expected, rtol=0, atol=1e-12)
        # and the order is the data's order
        assert torch.equal(torch.argsort(g[:, j]), torch.argsort(z[:, j]))


def test_ties_get_average_ranks_hand_example():
    z = torch.tensor([[3.0], [1.0], [3.0], [2.0], [3.0]], dtype=torch.float64)
    ranks = np.array([4.0, 1.0, 4.0, 2.0, 4.0])  # the three 3s share ranks 3, 4, 5
    np.testing.assert_allclose(normal_scores(z)[:, 0].numpy(), norm.ppf(ranks / 6), atol=1e-15)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ties_match_scipy_average_ranks(seed, dtype):
    # integers in [-4, 4]: many ties, negative values, zeros
    z = torch.randint(-4, 5, (400, 6), generator=_gen(seed)).to(dtype)
    expected = norm.ppf(rankdata(z.numpy(), axis=0, method="average") / 401)
    g = normal_scores(z)
    assert g.dtype == dtype
    np.testing.assert_allclose(g.numpy(), expected, atol=1e-6 if dtype == torch.float32 else 1e-13)


def test_signed_zeros_tie():
    z = torch.tensor([[-0.0], [0.0], [1.0], [-1.0]], dtype=torch.float64)
    g = normal_scores(z)[:, 0]
    assert g[0] == g[1]
    np.testing.assert_allclose(g.numpy(), norm.ppf(np.array([2.5, 2.5, 4, 1]) / 5), atol=1e-15)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_reference_scoring_itself_equals_plain_transform(seed, dtype):
    z = (torch.randn(200, 5, generator=_gen(seed), dtype=torch.float64) * 2).round().to(dtype)
    assert torch.equal(normal_scores(z, reference=z), normal_scores(z))


def test_reference_scoring_hand_example():
    ref = torch.tensor([[1.0], [2.0], [2.0], [4.0]], dtype=torch.float64)
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0], [5.0]], dtype=torch.float64)
    # u(x) = (#{ref < x} + ½·#{ref = x} + ½)/(N_ref + 1), N_ref = 4:
    # 0 -> (0+0+½)/5, 1 -> (0+½+½)/5, 2 -> (1+1+½)/5, 3 -> (3+0+½)/5, 5 -> (4+0+½)/5
    u = np.array([0.1, 0.2, 0.5, 0.7, 0.9])
    np.testing.assert_allclose(
        normal_scores(x, reference=ref)[:, 0].numpy(), norm.ppf(u), atol=1e-15
    )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_reference_scoring_matches_brute_force(seed, dtype):
    g = _gen(seed)
    ref = torch.randint(-3, 4, (150, 4), generator=g).to(dtype) / 2
    x = torch.randn(60, 4, generator=g, dtype=torch.float64).round(decimals=1).to(dtype)
    r, v = ref.numpy()[None, :, :], x.numpy()[:, None, :]
    u = ((r < v).sum(1) + 0.5 * (r == v).sum(1) + 0.5) / (ref.shape[0] + 1)
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    np.testing.assert_allclose(normal_scores(x, reference=ref).numpy(), norm.ppf(u), atol=tol)


@pytest.mark.parametrize("seed", SEEDS)
def test_train_test_equals_separate_calls(seed):
    g = _gen(seed)
    z_train = torch.randn(120, 3, generator=g, dtype=torch.float64).round(decimals=1)
    z_test = torch.randn(40, 3, generator=g, dtype=torch.float64).round(decimals=1)
    tr, te = normal_scores_train_test(z_train, z_test)
    assert torch.equal(tr, normal_scores(z_train))
    assert torch.equal(te, normal_scores(z_test, reference=z_train))


def test_many_column_blocks(monkeypatch):
    """Column blocking (used to bound memory) does not change the result."""
    import ncib.analysis.copula as copula

    z = torch.randn(50, 23, generator=_gen(0), dtype=torch.float64).round(decimals=1)
    full = normal_scores(z)
    monkeypatch.setattr(copula, "_BLOCK_ELEMENTS", 3 * 50)  # 3 columns per block
    assert torch.equal(normal_scores(z), full)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("bad", [math.nan, -math.nan, math.inf, -math.inf])
def test_non_finite_values_are_rejected(bad, dtype):
    z = torch.randn(10, 2, dtype=torch.float64).to(dtype)
    z[3, 1] = bad
    message = "^the features contain NaN or inf; normal scores need finite values$"
    with pytest.raises(ValueError, match=message):
        normal_scores(z)
    with pytest.raises(ValueError, match=message):  # in the values scored only
        normal_scores(z, reference=torch.zeros(5, 2, dtype=dtype))


def _tie_heavy_float32(seed: int, n: int, n_test: int, d: int = 13):
    """float32 columns with every kind of tie: ReLU zeros (signed too), small integers, a
    constant column next to another, and test values below, above and equal to train values."""
    g = _gen(seed)
    z = torch.randn(n + n_test, d, generator=g).relu_()
    z[::5, 1] = -0.0
    z[:, 2] = torch.randint(-3, 4, (n + n_test,), generator=g).float()
    z[:, 3] = 7.0
    z[:, 4] = 7.0  # two constant columns: runs spanning whole rows of a block
    z[:, 5] = torch.randn(n + n_test, generator=g) * 1e-30  # tiny magnitudes, both signs
    z[n:, 6] = z[:n_test, 6]  # test values equal to training values
    z[n : n + 3, 7] = torch.tensor([-1e30, 1e30, 0.0])
    return z[:n].contiguous(), z[n:].contiguous()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("block_columns", [1, 4, 100])
@pytest.mark.parametrize("n_test", [70, 57])  # 57: 200 + 57 = 2⁸ + 1 positions need 9 bits
def test_float32_packed_sort_equals_torch_sort(seed, block_columns, n_test, monkeypatch):
    """The CPU float32 path (keys packed with their positions, sorted by numpy on threads, ties
    fixed up on the tied positions only) is bit-identical to scoring with ``torch.sort`` and
    to scipy's average ranks."""
    import ncib.analysis.copula as copula

    n = 300 if n_test == 70 else 200
    z, z_test = _tie_heavy_float32(seed, n, n_test)
    monkeypatch.setattr(copula, "_BLOCK_ELEMENTS", block_columns * (n + n_test))
    calls = []
    original = copula._sort_rows_numpy
    monkeypatch.setattr(copula, "_sort_rows_numpy", lambda p: calls.append(1) or original(p))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the rows are sorted on two threads
    try:
        packed = normal_scores_train_test(z, z_test)
    finally:
        torch.set_num_threads(threads)
    assert calls, "the packed numpy sort was not used"
    monkeypatch.setattr(copula, "_PACKED_INDEX_BITS", 0)  # forces torch.sort
    calls.clear()
    reference = normal_scores_train_test(z, z_test)
    assert not calls
    assert all(torch.equal(a, b) for a, b in zip(packed, reference, strict=True))
    ranks = rankdata(z.numpy(), axis=0, method="average") / (n + 1)  # signed zeros tie
    np.testing.assert_allclose(packed[0].numpy(), norm.ppf(ranks), atol=1e-6, rtol=0)


def test_shape_errors():
    flat, good = torch.randn(10, dtype=torch.float64), torch.randn(10, 2)
    with pytest.raises(ValueError, match=r"^z must be 2-D \(N, d\), got shape \(10,\)$"):
        normal_scores(flat)
    with pytest.raises(ValueError, match=r"^reference must be 2-D \(N, d\)"):
        normal_scores(good, reference=flat)
    message = r"^reference has 3 columns but z has 2; they must describe the same features$"
    with pytest.raises(ValueError, match=message):
        normal_scores(good, reference=torch.randn(10, 3))
    with pytest.raises(TypeError, match="^z must be a floating-point tensor, got torch.int64$"):
        normal_scores(torch.ones(4, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"^z_train must be 2-D \(N, d\)"):
        normal_scores_train_test(flat, good)
    with pytest.raises(ValueError, match=r"^z_test must be 2-D \(N, d\)"):
        normal_scores_train_test(good, flat)
    with pytest.raises(ValueError, match=r"^z_test has 3 columns but z_train has 2$"):
        normal_scores_train_test(good, torch.randn(5, 3))


def test_scores_against_a_reference_have_the_dtype_of_z():
    z = torch.randn(30, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    scored = normal_scores(z.float(), reference=z)
    assert scored.dtype == torch.float32
    torch.testing.assert_close(scored, normal_scores(z.float(), reference=z.float()))
    train, test = normal_scores_train_test(z[:20].float(), z[20:])  # the dtype of z_train
    assert train.dtype == test.dtype == torch.float32


@pytest.mark.parametrize("rows", [1, 2, 7])
def test_packed_rows_are_sorted_on_several_threads(rows, monkeypatch):
    """The threaded branch of the packed sort (split into consecutive row blocks) sorts every
    row, whatever the thread count (the mutation runs use one thread)."""
    from ncib.analysis.copula import _ONE, _sort_rows_numpy

    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    g = torch.Generator().manual_seed(rows)
    packed = torch.randint(0, 2**40, (rows, 50), generator=g, dtype=torch.int64) + _ONE
    expected = np.sort(packed.numpy(), axis=1)
    _sort_rows_numpy(packed)
    np.testing.assert_array_equal(packed.numpy(), expected)


def test_several_matrices_scored_against_one_reference_in_one_pass():
    """``_score(reference, [a, b])`` (the general form behind both public functions) equals
    scoring a and b separately: each matrix's scores are read from its own slice of a block."""
    from ncib.analysis.copula import _score

    g = _gen(0)
    ref, a, b = (torch.randn(n, 3, generator=g, dtype=torch.float64) for n in (40, 7, 11))
    ref_scores, a_scores, b_scores = _score(ref, [a, b])
    assert torch.equal(ref_scores, normal_scores(ref))
    assert torch.equal(a_scores, normal_scores(a, reference=ref))
    assert torch.equal(b_scores, normal_scores(b, reference=ref))


def test_the_workspace_reuses_a_buffer_of_the_same_dtype_and_size_or_less():
    from ncib.analysis.copula import _Workspace

    ws = _Workspace(torch.device("cpu"))
    a = ws.get("a", (3, 4), torch.float32)
    assert a.shape == (3, 4) and a.dtype == torch.float32
    assert ws.get("a", (2, 6), torch.float32).data_ptr() == a.data_ptr()  # the same size
    assert ws.get("a", (5,), torch.float32).data_ptr() == a.data_ptr()  # smaller
    wider = ws.get(
        "a", (2, 2), torch.int64
    )  # another dtype: a new buffer, never a reinterpretation
    assert wider.dtype == torch.int64 and wider.shape == (2, 2)
    assert ws.get("a", (7, 2), torch.int64).shape == (7, 2)  # larger: grows
    assert ws.get("b", (2, 2), torch.int64).data_ptr() != wider.data_ptr()  # names are separate
