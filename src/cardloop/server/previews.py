"""What the editor shows of a card's outputs after a run: heads of tables, statistics of tensors, values."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def card_outputs(store: Path, run_id: str, card_id: str) -> dict[str, Any]:
    """Each output port of a card in a run: its kind, whether it is stored, and a JSON preview."""
    from cardloop.store.outputs import RunOutputs

    outputs = RunOutputs(run_id, store)
    ports = outputs.ports(card_id)
    found: dict[str, Any] = {}
    for port, output in ports.items():
        preview = outputs.summary(card_id, port)
        stored = preview is not None
        if not stored:
            preview = output.get("summary")
        found[port] = {"kind": output["kind"], "stored": stored, "state": output.get("state"), "preview": preview}
    return {"run_id": outputs.run.run_id, "card_id": card_id, "outputs": found}
