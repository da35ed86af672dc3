import pytest
import torch

from capcurriculum.sampling.batching import IGNORE, encode_sft
from capcurriculum.sampling.world_data import WorldData
from capcurriculum.training.pretrain import (
    MixtureSampler,
    PretrainConfig,
    accumulate_grad,
    pretrain,
    vision_param_groups,
)

MIX = {"caption": 1.0, "perc_image": 1.0, "perc_caption": 1.0, "text_math": 1.0, "vis_math": 1.0}


def test_per_mode_sub_batches_give_the_full_batch_gradient(world, processor, model):
    # Splitting a batch by mode (to avoid padding to the longest caption) must not change the
    # objective: the mean loss over every response token of the batch.
    items = MixtureSampler(WorldData(*world).pools(), MIX, seed=0).batch(10)
    assert len({it.mode for it in items}) > 1
    torch.manual_seed(0)
    model.zero_grad()
    grouped_loss = accumulate_grad(model, processor, items)
    grouped = [p.grad.clone() for p in model.parameters() if p.grad is not None]

    model.zero_grad()
    enc = encode_sft(processor, items)
    full_loss = model(**enc).loss
    full_loss.backward()
    full = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    assert grouped_loss.item() == pytest.approx(full_loss.item(), rel=1e-4)
    for g, f in zip(grouped, full):
        torch.testing.assert_close(g, f, rtol=1e-3, atol=1e-6)
    assert int((enc["labels"] != IGNORE).sum()) > 0


def test_pretraining_lowers_the_loss_and_keeps_the_tower_at_its_own_rate(world, processor, model):
    sampler = MixtureSampler(WorldData(*world).pools(), MIX, seed=0)
    cfg = PretrainConfig(steps=30, batch_size=8, lr=3e-3, vision_lr_scale=0.1, warmup_steps=3, mixture=MIX)
    groups = vision_param_groups(model, cfg.lr, cfg.vision_lr_scale, cfg.weight_decay)
    assert [g["lr"] for g in groups] == [3e-3, pytest.approx(3e-4), 3e-3]  # language model, tower, mergers
    history = pretrain(model, processor, sampler, cfg, log_every=5)
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]


def test_a_merger_scale_of_zero_freezes_the_mergers_and_trains_the_rest(world, processor, model):
    sampler = MixtureSampler(WorldData(*world).pools(), MIX, seed=0)
    cfg = PretrainConfig(steps=3, batch_size=4, lr=3e-3, vision_lr_scale=0.1, merger_lr_scale=0.0, warmup_steps=1,
                         mixture=MIX)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    pretrain(model, processor, sampler, cfg, log_every=1)
    after = dict(model.named_parameters())
    mergers = [n for n in before if ".visual." in f".{n}" and "merger" in n]
    tower = [n for n in before if ".visual." in f".{n}" and "merger" not in n]
    assert mergers and tower
    assert all(torch.equal(before[n], after[n]) and not after[n].requires_grad for n in mergers)
    assert any(not torch.equal(before[n], after[n]) for n in tower)
    assert not torch.equal(before["lm_head.weight"], after["lm_head.weight"])


def test_a_mixture_naming_a_missing_pool_is_refused(world):
    with pytest.raises(ValueError, match="no data for captions"):
        MixtureSampler(WorldData(*world).pools(), {"captions": 1.0}, seed=0)


def test_bad_pretrain_values_name_the_field():
    with pytest.raises(ValueError, match="pretrain.batch_size"):
        PretrainConfig(steps=1, batch_size=0, lr=1e-3, mixture=MIX)
    with pytest.raises(ValueError, match="merger_lr_scale"):
        PretrainConfig(steps=1, batch_size=1, lr=1e-3, merger_lr_scale=-1.0, mixture=MIX)


def test_checkpoints_are_the_run_at_their_step_and_leave_the_final_model_unchanged(world, processor):
    """The lineage filters are base@policy's pre-training at earlier steps: saving them must hand on the weights of
    exactly that step and touch no random stream, so the policy is the same model with or without its filters."""
    from capcurriculum.models import build_tiny_model, tiny_config

    cfg = PretrainConfig(steps=4, batch_size=4, lr=3e-3, warmup_steps=1, mixture=MIX)

    def run(checkpoints=()):
        torch.manual_seed(0)
        model = build_tiny_model(tiny_config(processor.tokenizer), seed=0)
        saved, logged = {}, {}
        copy = lambda: {n: p.detach().clone() for n, p in model.state_dict().items()}  # noqa: E731
        pretrain(model, processor, MixtureSampler(WorldData(*world).pools(), MIX, seed=0), cfg, log_every=1,
                 on_log=lambda step, row: logged.__setitem__(step, copy()),
                 checkpoints=checkpoints, on_checkpoint=lambda step: saved.__setitem__(step, copy()))
        return copy(), saved, logged

    final, saved, logged = run(checkpoints=[2])
    plain, none_saved, _ = run()
    assert list(saved) == [2] and not none_saved
    assert all(torch.equal(saved[2][n], logged[2][n]) for n in final)        # the weights after step 2
    assert any(not torch.equal(saved[2][n], final[n]) for n in final)        # not the final ones
    assert all(torch.equal(final[n], plain[n]) for n in final)               # and the run is unchanged
    with pytest.raises(ValueError, match=r"checkpoints \[5\]: need on_checkpoint and steps in 1..4"):
        pretrain(build_tiny_model(tiny_config(processor.tokenizer), seed=0), processor,
                 MixtureSampler(WorldData(*world).pools(), MIX, seed=0), cfg, checkpoints=[5],
                 on_checkpoint=lambda step: None)
