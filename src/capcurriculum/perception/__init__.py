"""Perception data: questions written from captions, and the differential filter that keeps the ones that need the image."""
