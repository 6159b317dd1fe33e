"""Synthetic data for the analysis tests (float64, seeded)."""

from __future__ import annotations

import math

import pytest
import torch


def simplex_vertices(k: int) -> torch.Tensor:
    """``(k, k-1)`` vertices of a regular simplex centred at 0 with unit norms."""
    centred = torch.eye(k, dtype=torch.float64) - 1.0 / k
    u, _, _ = torch.linalg.svd(centred)
    basis = u[:, : k - 1]  # orthonormal basis of the centred subspace
    return centred @ basis * math.sqrt(k / (k - 1))


def random_orthonormal(d: int, m: int, g: torch.Generator) -> torch.Tensor:
    """``(d, m)`` matrix with orthonormal columns."""
    q, _ = torch.linalg.qr(torch.randn(d, m, generator=g, dtype=torch.float64))
    return q


def collapsed_pair(
    seed: int, n: int = 600, n_test: int = 200, d: int = 16, k: int = 4, noise: float = 0.05
):
    """Two members sharing a simplex of class means plus one shared per-sample factor.

    Member 1 = member 0 times a random invertible map plus independent noise, so the K leading
    canonical correlations (K−1 class directions + the shared factor) are close to 1.
    Returns ``((z0, z1), (z0_test, z1_test), y, y_test)``.
    """
    g = torch.Generator().manual_seed(seed)
    total = n + n_test
    y = torch.arange(total) % k
    y = y[torch.randperm(total, generator=g)]
    means = 3.0 * simplex_vertices(k) @ random_orthonormal(d, k - 1, g).T + 1.0
    shared = random_orthonormal(d, 1, g)[:, 0]
    factor = torch.randn(total, 1, generator=g, dtype=torch.float64)
    z0 = (
        means[y] + factor * shared + noise * torch.randn(total, d, generator=g, dtype=torch.float64)
    )
    mix = torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d) + torch.eye(d)
    z1 = z0 @ mix + noise * torch.randn(total, d, generator=g, dtype=torch.float64)
    return (z0[:n], z1[:n]), (z0[n:], z1[n:]), y[:n], y[n:]


@pytest.fixture
def make_collapsed_pair():
    return collapsed_pair


@pytest.fixture(autouse=True)
def _one_intra_op_thread():
    """Run the (tiny) analysis tests on one thread: on a busy shared 2-core machine, OpenMP
    barriers make small matmuls and LAPACK calls 10–100× slower with two threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
