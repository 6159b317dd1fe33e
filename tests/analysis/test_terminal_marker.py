"""The terminal-phase marker's quantity, the leave-one-out nearest-class-centre accuracy
(docs/math.md §8), cannot be reached by an encoder at initialisation — unlike the analysis
probe's training accuracy, which a few samples per class against d make trivial."""

from __future__ import annotations

import pytest
import torch

from ncib.analysis import PairAnalysis, fit_logistic_probe, ncc_loo_accuracy
from ncib.report.tables import TERMINAL_ACC as MARKER


def _random_encoder_features(n: int, classes: int, d: int, seed: int):
    """Synthetic 32×32×3 images (uint8 noise, labels unrelated to them) through a randomly
    initialised encoder (a linear layer on the pixels, then ReLU) of width d."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3 * 32 * 32), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % classes
    encoder = torch.nn.Linear(3 * 32 * 32, d)
    with torch.no_grad():
        encoder.weight.copy_(torch.randn(d, 3 * 32 * 32, generator=g) / 32.0)
        encoder.bias.zero_()
        feats = torch.cat(
            [encoder(images[i : i + 8192].float() / 255.0) for i in range(0, n, 8192)]
        )
    return feats.relu(), labels


@pytest.mark.slow
def test_imagenet32_shaped_subset_at_initialisation_is_not_terminal():
    """K = 1,000 classes, the recipe's subset of 100 per class (100,000 rows), d = 2,048
    (``slow``: about a minute on 2 cores)."""
    h, y = _random_encoder_features(100_000, 1000, 2048, seed=0)
    acc = float(ncc_loo_accuracy(h, y, 1000))
    assert acc < 0.01  # chance is 0.001
    assert acc < MARKER


def test_a_fitted_probe_separates_what_the_marker_does_not():
    """The issue's scaled case (K = 100, d = 512, 38 per class): the probe's training accuracy
    is 100 % on features that carry no class information, the leave-one-out NCC is at chance."""
    h, y = _random_encoder_features(3800, 100, 512, seed=1)
    h_test, y_test = _random_encoder_features(1000, 100, 512, seed=2)
    probe = fit_logistic_probe(h, y, h_test, y_test, num_classes=100)
    assert float(probe.train_acc) >= MARKER
    assert float(ncc_loo_accuracy(h, y, 100)) < 0.05


@pytest.mark.parametrize("seed", range(3))
def test_loo_accuracy_of_collapsed_classes_is_one_and_needs_two_per_class(
    make_collapsed_pair, seed
):
    train, test, y, y_test = make_collapsed_pair(seed, k=4, noise=0.01)
    pa = PairAnalysis(train, test, y, y_test, num_classes=4, intervals=None)
    assert float(pa.ncc_loo_accuracy("raw", 0)) == 1.0
    # a class of one sample cannot be right without it; the others stay right
    h = torch.cat([train[0], train[0][:1] + 100.0])
    labels = torch.cat([y, torch.tensor([5])])
    acc = float(ncc_loo_accuracy(h, labels, 6))
    assert acc == pytest.approx(len(y) / (len(y) + 1))


def test_loo_differs_from_the_plain_rule_where_the_sample_pulls_its_centre():
    """Two points per class on a line, 0, 10 (class 0) and 1, 11 (class 1): with itself in its
    centre a point is right half the time; without, its centre is its classmate, 10 away, and
    the other class's centre (5 or 6) is nearer: never right."""
    h = torch.tensor([[0.0], [10.0], [1.0], [11.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    centres = torch.stack([h[y == c].mean(0) for c in range(2)])
    plain = ((h - centres.T).square().argmin(1) == y).double().mean()
    assert float(plain) == 0.5
    assert float(ncc_loo_accuracy(h, y, 2)) == 0.0
