"""TrainSwitches: read once from the config, a combination that cannot run refused naming its key."""

from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from capcurriculum.config import ConfigError
from capcurriculum.training.switches import TrainSwitches


def test_the_switches_are_the_configs_and_the_nodes_resolved_precision_wins(model):
    cfg = OmegaConf.create({"train": {"completion_forward": "lean", "compile": True, "precision": "auto",
                                      "gradient_checkpointing": False}})
    assert TrainSwitches.of(cfg, model) == TrainSwitches(lean=True, compile=True, precision="auto")
    assert TrainSwitches.of(cfg, model, "bf16").precision == "bf16"
    plain = OmegaConf.create({"train": {"completion_forward": "transformers", "compile": False, "precision": "fp32",
                                        "gradient_checkpointing": True}})
    assert TrainSwitches.of(plain, model) == TrainSwitches(gradient_checkpointing=True)


def test_a_switch_left_out_is_named_not_defaulted(model):
    # models/lean.py once read "transformers" when the key was absent, while the YAML said lean
    with pytest.raises(ConfigError, match=r"^train\.completion_forward: missing"):
        TrainSwitches.of(OmegaConf.create({"train": {"compile": False}}), model)
    with pytest.raises(ConfigError, match=r"^train\.gradient_checkpointing: missing"):
        TrainSwitches.of(OmegaConf.create({"train": {"completion_forward": "lean", "compile": False,
                                                     "precision": "fp32"}}), model)


def test_lean_refuses_a_model_it_does_not_reproduce():
    other = SimpleNamespace(config=SimpleNamespace(model_type="llava", text_config=SimpleNamespace()))
    with pytest.raises(ConfigError, match="^train.completion_forward: .*llava"):
        TrainSwitches.of(OmegaConf.create({"train": {"completion_forward": "lean"}}), other)
    assert not TrainSwitches.of(OmegaConf.create({"train": {"completion_forward": "transformers", "compile": False,
                                                            "precision": "fp32", "gradient_checkpointing": False}}),
                                other).lean


@pytest.mark.parametrize("switches, match", [
    ({"compile": True}, "^train.compile: .*completion_forward: lean"),
    ({"lean": True, "gradient_checkpointing": True}, "^train.gradient_checkpointing: .*completion_forward: transformers"),
    ({"precision": "fp16"}, r"^train\.precision"),
])
def test_a_combination_that_cannot_run_is_refused(switches, match):
    with pytest.raises(ConfigError, match=match):
        TrainSwitches(**switches)
