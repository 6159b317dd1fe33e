"""The offline linear evaluation (Table 1) on frozen encoders."""

import importlib.resources
from functools import partial

import pytest
import torch
from omegaconf import OmegaConf

from ncib.data import DigitsDataModule
from ncib.linear_eval import member_eval_seed, train_linear_evaluation
from ncib.models import ConvNet, LinearEvaluator
from tests.helpers.builders import tiny_pair


def eval_cfg(**overrides):
    path = importlib.resources.files("ncib.conf") / "linear_eval" / "cached.yaml"
    cfg = OmegaConf.create(path.read_text())
    cfg.merge_with(overrides)
    return cfg


def evaluate(model, **overrides):
    dm = DigitsDataModule(seeds=model.seeds)
    return train_linear_evaluation(
        model, dm, eval_cfg(**overrides), accelerator="cpu", progress=False
    )


def test_frozen_random_encoders_beat_chance_and_stay_untouched():
    model = tiny_pair()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = evaluate(model, epochs=15)
    for m in ("m0", "m1"):
        assert 0.6 < out[f"test_acc/{m}"] <= 1.0, out  # chance is 0.1
    assert out["num_test"] == 360 and out["seeds"] == [0, 1] and out["protocol"] == "cached"
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_both_correct_counts_samples_not_a_product_of_accuracies(monkeypatch):
    # two members that are right on different halves of the test set: each 50% accurate,
    # both right on no sample (a product of accuracies would say 25%)
    import ncib.linear_eval as le

    dm = DigitsDataModule(seeds=[0, 1])
    dm.setup()
    y_test = dm.splits["test"][1]
    half = torch.arange(len(y_test)) < len(y_test) // 2
    wrong = (y_test + 1) % 10
    tests = iter([torch.where(half, y_test, wrong), torch.where(half, wrong, y_test)])
    y_train = dm.splits["train"][1]
    monkeypatch.setattr(
        LinearEvaluator,
        "logits_features",
        lambda self, f: torch.nn.functional.one_hot(
            y_train if len(f) == len(y_train) else next(tests), 10
        ).float(),
    )
    out = le.train_linear_evaluation(
        tiny_pair(), dm, eval_cfg(epochs=1), accelerator="cpu", progress=False
    )
    assert out["test_acc/m0"] == pytest.approx(0.5, abs=0.01) and out[
        "test_acc/m1"
    ] == pytest.approx(0.5, abs=0.01)
    assert out["both_correct"] == 0.0


def test_swapping_the_seed_pair_swaps_table_1_exactly_and_reruns_reproduce_it():
    ab, ba = evaluate(tiny_pair((0, 1)), epochs=3), evaluate(tiny_pair((1, 0)), epochs=3)
    assert ab["test_acc/m0"] == ba["test_acc/m1"] and ab["test_acc/m1"] == ba["test_acc/m0"]
    assert ab["train_acc/m0"] == ba["train_acc/m1"] and ab["both_correct"] == ba["both_correct"]
    assert evaluate(tiny_pair((0, 1)), epochs=3) == ab
    # the evaluation seed is a function of the member's seed, not of its position
    assert member_eval_seed(0, 0) != member_eval_seed(1, 0) != member_eval_seed(1, 1)


def test_augmented_views_run_through_the_encoder():
    out = evaluate(tiny_pair(), epochs=2, views="train")
    assert 0.1 < out["test_acc/m0"] <= 1.0


def test_the_evaluator_keeps_the_encoder_frozen_in_eval_mode():
    enc = ConvNet(1, 8, 4)
    evaluator = LinearEvaluator(
        enc, 10, optimizer=partial(torch.optim.SGD, lr=0.1), inputs="images"
    )
    evaluator.train()
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())
    assert evaluator(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    with pytest.raises(ValueError, match="inputs must be"):
        LinearEvaluator(enc, 10, optimizer=partial(torch.optim.SGD, lr=0.1), inputs="pixels")


def test_accuracies_are_torchmetrics_top_1_and_top_5_shares_of_samples():
    from ncib.linear_eval import accuracies

    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(500, 10, generator=g), torch.randint(0, 10, (500,), generator=g)
    top1, top5 = accuracies(logits, y, 10)
    assert top1 == pytest.approx((logits.argmax(1) == y).float().mean().item())
    ranks = (logits > logits.gather(1, y[:, None])).sum(1)  # classes scored above the label
    assert top5 == pytest.approx((ranks < 5).float().mean().item())
    assert 0.0 < top1 < top5 < 1.0
    assert accuracies(logits[:, :3], y % 3, 3)[1] == 1.0  # K <= 5: every label is in the top 5


def test_table_1_carries_top_5_beside_top_1():
    out = evaluate(tiny_pair(), epochs=3)
    for split in ("train", "test"):
        for m in ("m0", "m1"):
            assert out[f"{split}_acc/{m}"] <= out[f"{split}_top5/{m}"] <= 1.0
