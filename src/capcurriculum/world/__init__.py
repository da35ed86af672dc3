"""The tiny profile's synthetic world: a miniature DOCCI (scenes, captions, ground truth) and math sets.

See build.build_world for the files it writes; DESIGN.md sections 2 and 9 for why it looks this way.
"""

from .build import build_world
from .describe import describe_scene
from .render import render_scene, save_jpeg
from .scene import SPLITS, Scene, WorldConfig, WorldObject, position_name, sample_scene
from .tasks import perception_questions, text_math, vis_math

__all__ = [
    "SPLITS",
    "Scene",
    "WorldConfig",
    "WorldObject",
    "build_world",
    "describe_scene",
    "perception_questions",
    "position_name",
    "render_scene",
    "sample_scene",
    "save_jpeg",
    "text_math",
    "vis_math",
]
