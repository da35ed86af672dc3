import pytest

from capcurriculum.models import build_processor, build_tiny_model, tiny_config, train_tokenizer
from capcurriculum.models.init import world_texts
from capcurriculum.world.build import build_world
from capcurriculum.world.scene import WorldConfig


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    cfg = WorldConfig(seed=3, scenes={"pretrain": 24, "train": 4, "test": 8},
                      text_math={"pretrain": 24, "train": 4, "test": 8},
                      vis_math={"pretrain": 24, "train": 4, "test": 8}, perception_per_scene=3)
    build_world(cfg, root / "raw", root / "world", progress=False)
    return root / "raw", root / "world"


@pytest.fixture(scope="session")
def processor(world):
    return build_processor(train_tokenizer(world_texts(*world), vocab_size=400), image_size=96)


@pytest.fixture
def model(processor):
    return build_tiny_model(tiny_config(processor.tokenizer), seed=0)
