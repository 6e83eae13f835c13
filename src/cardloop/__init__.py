"""cardloop: PyTorch training loops as graphs of cards.

    import cardloop
    result = cardloop.run("examples/basic_training_loop.yaml")
    model = result.outputs["step13"]["model"]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cardloop.cards.spec import CardConfig, CardContext, Port, card
    from cardloop.errors import CardError, CardFailed, CardloopError, PipelineInvalid
    from cardloop.pipeline.fileformat import load_pipeline
    from cardloop.pipeline.model import Card, OutputRef, Pipeline

__version__ = "0.1.0"

#: Where each name exported here lives. They are imported on first use, so that a command that needs none of them
#: (`cardloop runs`, `show RUN`) does not pay for pydantic and the card SDK.
_EXPORTS = {
    **dict.fromkeys(("CardConfig", "CardContext", "Port", "card"), "cardloop.cards.spec"),
    **dict.fromkeys(("CardError", "CardFailed", "CardloopError", "PipelineInvalid"), "cardloop.errors"),
    "load_pipeline": "cardloop.pipeline.fileformat",
    **dict.fromkeys(("Card", "OutputRef", "Pipeline"), "cardloop.pipeline.model"),
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cardloop' has no attribute '{name}'")
    value = globals()[name] = getattr(importlib.import_module(_EXPORTS[name]), name)
    return value


def run(pipeline_or_path, **options):
    """Run a pipeline; see `cardloop.engine.run.run` for the options."""
    from cardloop.engine.run import run as run_pipeline

    return run_pipeline(pipeline_or_path, **options)


def sweep(pipeline_or_path, set, **options):  # noqa: A002 - the name users write: sweep(p, set={...})
    """Run a pipeline once per variant of the settings `set`; see `cardloop.sweeps.sweep` for the options."""
    from cardloop.sweeps import sweep as run_sweep

    return run_sweep(pipeline_or_path, set, **options)


def load_output(run_id: str, card_id: str, port: str, *, store=None, device: str = "cpu"):
    """A stored output of a run as a live value; see `cardloop.store.outputs.load_output`."""
    from cardloop.store.outputs import load_output as load

    return load(run_id, card_id, port, store=store, device=device)


def validate(pipeline_or_path) -> list:
    """Every problem of a pipeline (empty when it can run); imports no torch."""
    from cardloop.pipeline.fileformat import load_pipeline
    from cardloop.pipeline.model import Pipeline
    from cardloop.pipeline.validate import validate_pipeline

    pipeline = load_pipeline(pipeline_or_path) if not isinstance(pipeline_or_path, Pipeline) else pipeline_or_path
    return validate_pipeline(pipeline)


__all__ = ["Card", "CardConfig", "CardContext", "CardError", "CardFailed", "CardloopError", "OutputRef",
           "Pipeline", "PipelineInvalid", "Port", "card", "load_output", "load_pipeline", "run", "sweep", "validate"]
