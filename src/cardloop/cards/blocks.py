"""The `loop` block's entry in the catalogue: its settings (the editor's side panel reads them from here). A
block's ports are its own and its body runs in the engine (docs/blocks.md, engine/blocks.py)."""

from __future__ import annotations

from cardloop.cards.spec import card
from cardloop.pipeline.blocks import LoopConfig
from cardloop.pipeline.model import BLOCK_TYPE


@card(
    BLOCK_TYPE,
    title="Loop",
    category="blocks",
    description="A block: runs the cards of its body once, `times` times, once per item of the iterator on its "
                "`over` input, or `until` a body output is true; its ports are declared by its inputs, carried "
                "values and body outputs.",
    config=LoopConfig,
)
def loop(config: LoopConfig) -> dict:
    raise RuntimeError("a loop block runs its body in the engine, never this function")
