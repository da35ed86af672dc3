"""The mapping of GRPOSettings onto TRL's GRPOConfig."""

import pytest

from capcurriculum.settings.grpo import GRPOSettings
from capcurriculum.training.trl_config import to_trl_config, trl_batch_layout


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
