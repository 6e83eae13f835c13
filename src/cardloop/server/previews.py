"""What the editor shows of a card's outputs after a run: heads of tables, statistics of tensors, values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cardloop.kinds import STATE_KINDS


def card_outputs(store: Path, run_id: str, card_id: str) -> dict[str, Any]:
    """Each output port of a card in a run: its kind, whether it is stored, and a JSON preview (torch is imported
    only to read what is stored)."""
    from cardloop.store.outputs import RunOutputs

    outputs = RunOutputs(run_id, store)
    ports = outputs.ports(card_id)
    found: dict[str, Any] = {}
    for port, output in ports.items():
        preview, stored = output.get("summary"), bool(output.get("digest"))
        state = output.get("state")
        if stored or (output["kind"] in STATE_KINDS and state and outputs.snapshot_of(card_id, state)):
            from cardloop.store.codecs import codec_for_kind

            preview = codec_for_kind(output["kind"]).summarize(outputs.load(card_id, port))
            stored = True
        found[port] = {"kind": output["kind"], "stored": stored, "state": state, "preview": preview}
    return {"run_id": outputs.run.run_id, "card_id": card_id, "outputs": found}
