"""Pipelines: the model, the version-1 file format and validation. Torch-free."""

from cardloop.pipeline.model import Card, OutputRef, Pipeline

__all__ = ["Card", "OutputRef", "Pipeline"]
