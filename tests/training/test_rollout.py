import pytest
import torch

from capcurriculum.training.base import WorldData
from capcurriculum.training.rollout import completion_logprobs, rollout


@pytest.mark.parametrize("mode, name", [("vis_math", "vis_math"), ("text_math", "text_math")])
def test_update_logprobs_match_the_sampler(world, processor, model, mode, name):
    # The update re-scores the sampled tokens in one forward pass over prompt + completion, with
    # each prompt's image repeated for its G completions. Those log-probs must be the sampler's.
    torch.manual_seed(0)
    with torch.no_grad():
        model.lm_head.weight[processor.tokenizer.eos_token_id] *= 3.0  # some completions stop early
    items = WorldData(*world).items(name, mode, "pretrain", limit=3)
    ro = rollout(model, processor, items, group_size=4, max_new_tokens=12)
    assert ro.completion_ids.shape[0] == 12 and len(ro.texts) == 12
    assert (ro.completion_mask.sum(1) < 12).any(), "no completion stopped: the eos path is not covered"

    # Replay generation token by token with the same sampled tokens and read the sampler's log-probs.
    enc = ro.inputs
    ref = []
    with torch.no_grad():
        logp = completion_logprobs(model, ro)
        for t in range(ro.completion_ids.shape[1]):
            sub = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
            cut = ro.prompt_len + t
            sub["input_ids"] = enc["input_ids"][:, :cut]
            sub["attention_mask"] = enc["attention_mask"][:, :cut].clone()
            sub["attention_mask"][:, ro.prompt_len:] = 1
            if "mm_token_type_ids" in enc:
                sub["mm_token_type_ids"] = enc["mm_token_type_ids"][:, :cut]
            step = torch.log_softmax(model(**sub).logits[:, -1].float(), -1)
            ref.append(step.gather(-1, ro.completion_ids[:, t:t + 1]).squeeze(-1))
    ref = torch.stack(ref, 1)
    m = ro.completion_mask.bool()
    torch.testing.assert_close(logp[m], ref[m], atol=2e-4, rtol=1e-4)
