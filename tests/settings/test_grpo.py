"""GRPOSettings: the paper's defaults and errors naming the field."""

import pytest

from capcurriculum.settings.grpo import GRPOSettings


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
