"""``PairedSupCon(compile=True)``: the compiled training path trains exactly what the eager one
does, members stay independent, and checkpoints keep the eager ``state_dict`` keys."""

from __future__ import annotations

import pytest
import torch

from ncib.data import DigitsDataModule
from tests.helpers.builders import quiet_trainer, tiny_pair

STEPS = 4


def build(seeds, compile):
    model = tiny_pair(
        seeds,
        feature_dim=16,
        width=4,
        out_dim=8,
        lr=0.2,
        momentum=0.9,
        weight_decay=5e-4,
        warmup_epochs=1,
        compile=compile,
    )
    return model, DigitsDataModule(seeds=seeds, batch_size=64)


def fit(seeds, compile, steps=STEPS):
    model, dm = build(seeds, compile)
    trainer = quiet_trainer(max_epochs=1, max_steps=steps, deterministic=True)
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == steps
    return model


def test_compile_is_lazy_and_keeps_state_dict_keys():
    eager, _ = build([0, 1], compile=False)
    compiled, _ = build([0, 1], compile=True)
    assert compiled.hparams["compile"] is True and compiled.use_compile
    assert list(compiled.state_dict()) == list(eager.state_dict())
    assert not any("_orig_mod" in k for k in compiled.state_dict())


def test_a_copy_compiles_its_own_training_path():
    import copy

    model, _ = build([0, 1], compile=True)
    fn = model._member_loss_fn()  # torch.compile wraps now, compiles on the first call
    assert model._member_loss_fn() is fn
    clone = copy.deepcopy(model)
    assert clone._compiled_member_loss is None  # not the original's, bound to the original
    assert clone._member_loss_fn() is not fn


@pytest.mark.slow
def test_compiled_pair_member_equals_compiled_member_alone_and_eager():
    torch.use_deterministic_algorithms(True)
    try:
        pair = fit([0, 1], compile=True)
        alone = fit([0], compile=True)
        # compiled kernels reorder float sums (up to about 1e-3 of an SGD step here), and a few steps
        # of SupCon at lr 0.2 amplify that to percents: compare with eager after one step
        one_compiled, one_eager = fit([0], compile=True, steps=1), fit([0], compile=False, steps=1)
    finally:
        torch.use_deterministic_algorithms(False)
    assert pair._compiled_member_loss is not None  # the compiled path really ran
    initial = build([0], compile=False)[0].members[0].state_dict()
    m0, solo = (m.members[0].state_dict() for m in (pair, alone))
    one, ref = (m.members[0].state_dict() for m in (one_compiled, one_eager))
    moved = max((solo[k].float() - initial[k].float()).abs().max() for k in solo)
    assert moved > 1e-2  # training really changed the weights
    # checkpoints: the same keys as an eager module, and loadable into one
    assert list(pair.state_dict()) == list(build([0, 1], compile=False)[0].state_dict())
    build([0, 1], compile=False)[0].load_state_dict(pair.state_dict())
    for key in m0:
        torch.testing.assert_close(m0[key], solo[key], atol=1e-6, rtol=0, msg=key)
        step = (ref[key].float() - initial[key].float()).abs().max().item()
        torch.testing.assert_close(
            one[key].float(), ref[key].float(), atol=max(1e-2 * step, 1e-7), rtol=0, msg=key
        )


WORLD = 2


def _ddp_worker(rank, init_file, results):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        g = torch.Generator().manual_seed(rank)
        views, labels = (
            torch.randn(8, 2, 1, 8, 8, generator=g),
            torch.randint(0, 3, (8,), generator=g),
        )
        eager, compiled = build([0], compile=False)[0], build([0], compile=True)[0]
        losses = []
        for model, fn in ((eager, eager.member_loss), (compiled, compiled._member_loss_fn())):
            loss = fn(model.members[0], views, labels)  # gathers the global batch of 16
            loss.backward()
            losses.append(loss.detach())
        diffs = [(losses[0] - losses[1]).abs().item()]
        diffs += [
            (pe.grad - pc.grad).abs().max().item()
            for pe, pc in zip(eager.parameters(), compiled.parameters())
        ]
        results[rank] = (max(diffs), losses[0].item())
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_compiled_member_loss_gathers_like_eager_under_ddp(tmp_path):
    """Dynamo traces the all-gather of ``gather_with_grad`` (gloo, two CPU processes): the
    compiled loss and gradients equal the eager ones on every rank."""
    import torch.multiprocessing as mp

    results = mp.Manager().dict()
    mp.spawn(_ddp_worker, args=(str(tmp_path / "init"), results), nprocs=WORLD)
    (diff0, loss0), (diff1, loss1) = results[0], results[1]
    assert loss0 == pytest.approx(loss1, abs=1e-6)  # both ranks computed the global loss
    assert diff0 < 1e-5 and diff1 < 1e-5
