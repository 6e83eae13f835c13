"""Writing a stored output to a file a user can take elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

from cardloop.errors import CardloopError
from cardloop.kinds import BATCH, DATAFRAME, INFO, LOSS, MODEL, SCALAR, TENSOR

FORMATS = {
    MODEL: (".safetensors",),
    TENSOR: (".safetensors",),
    LOSS: (".safetensors",),
    BATCH: (".safetensors",),
    DATAFRAME: (".parquet", ".csv"),
    INFO: (".json",),
    SCALAR: (".json",),
}


def export_output(run_id: str, card_id: str, port: str, file: str | Path, *, store: str | Path | None = None) -> Path:
    """Write output `port` of `card_id` in run `run_id` to `file`, in the format its extension names."""
    from cardloop.store.outputs import RunOutputs

    outputs = RunOutputs(run_id, store)
    ports = outputs.ports(card_id)
    if port not in ports:
        raise CardloopError(f"card '{card_id}' has no output '{port}'; its outputs: {', '.join(ports)}")
    kind, target = ports[port]["kind"], Path(file)
    allowed = FORMATS.get(kind, ())
    if not allowed:
        raise CardloopError(f"output '{port}' of card '{card_id}' is of kind '{kind}', which has no file format to "
                            "export to; load it in Python with cardloop.load_output")
    if target.suffix.lower() not in allowed:
        valid = ", ".join(allowed)
        raise CardloopError(f"output '{port}' of card '{card_id}' is of kind '{kind}'; write it as {valid}, "
                            f"not '{target.suffix or target.name}'")
    value = outputs.load(card_id, port)
    target.parent.mkdir(parents=True, exist_ok=True)
    if kind == DATAFRAME:
        value.to_parquet(target) if target.suffix.lower() == ".parquet" else value.to_csv(target, index=False)
    elif kind in (INFO, SCALAR):
        target.write_text(json.dumps(value, indent=2, default=str) + "\n")
    else:
        _write_safetensors(kind, value, target)
    return target


def _write_safetensors(kind: str, value, target: Path) -> None:
    from safetensors.torch import save_file

    if kind == MODEL:
        tensors = {name: t.detach().cpu().contiguous() for name, t in value.state_dict().items()}
    elif kind == BATCH:
        tensors = {"X": value.X.detach().cpu().contiguous(), "y": value.y.detach().cpu().contiguous()}
    else:
        tensors = {kind: value.detach().cpu().contiguous()}
    save_file(tensors, str(target))
