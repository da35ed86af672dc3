"""GRPOSettings: the paper's defaults, errors naming the field, and the mapping onto TRL's GRPOConfig."""

import pytest

from capcurriculum.training.grpo_config import GRPOSettings, to_trl_config, trl_batch_layout


def test_defaults_are_the_papers():
    s = GRPOSettings()
    assert (s.group_size, s.learning_rate, s.kl_coef, s.clip_ratio_low, s.clip_ratio_high, s.clip_ratio_dual) == (
        5, 1e-6, 1e-2, 0.2, 0.3, 3.0)
    assert s.updates_per_rollout == 4 and s.completions_per_update == 640


@pytest.mark.parametrize("kw, key", [({"group_size": 1}, "group_size"), ({"learning_rate": "1e-6"}, "learning_rate"),
                                     ({"clip_ratio_dual": 1.1}, "clip_ratio_dual"), ({"bogus": 1}, "unknown")])
def test_bad_values_name_the_field(kw, key):
    with pytest.raises(ValueError, match=key):
        GRPOSettings.from_dict(kw)


def test_trl_config_carries_the_semantics(tmp_path):
    s = GRPOSettings(rollout_batch_size=8, update_batch_size=4, group_size=4, max_response_length=16)
    cfg = to_trl_config(s, tmp_path, report_to="none", bf16=False, use_cpu=True)
    assert (cfg.num_generations, cfg.beta, cfg.epsilon, cfg.epsilon_high, cfg.delta) == (4, 0.01, 0.2, 0.3, 3.0)
    assert cfg.max_completion_length == 16 and cfg.scale_rewards == "group"
    layout = trl_batch_layout(s)
    assert cfg.steps_per_generation == layout["steps_per_generation"] == 2
    assert cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps == s.completions_per_update
    with pytest.raises(ValueError, match="come.*from GRPOSettings"):
        to_trl_config(s, tmp_path, beta=0.0)
    with pytest.raises(ValueError, match="reference"):
        to_trl_config(GRPOSettings(reference="base"), tmp_path)
