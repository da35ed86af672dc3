"""capcurriculum: capability-dimension curriculum post-training for VLMs."""
__version__ = "0.1.0"
