"""Writing a stored output to a file a user can take elsewhere; and what a loop block's body cards did in every
iteration, as CSV (docs/blocks.md)."""

from __future__ import annotations

import json
from pathlib import Path

from cardloop.errors import CardloopError, PathNotFound
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


def export_iterations(run_id: str, path: str, target: str | Path, *, store: str | Path | None = None) -> list[Path]:
    """Write what body cards did in every iteration of run `run_id`, one CSV row per execution (its iteration path,
    each loop's iteration from 0, status done or skipped, seconds, each metric; empty where skipped): for a body
    card's static path (`epochs.batches.fwd`), the file `target` (.csv); for a top-level block (`epochs`), one
    `<static path>.csv` per body card in the folder `target`. Returns the files written."""
    import csv

    from cardloop.pipeline.paths import parse_path
    from cardloop.store.iterations import body_cards, find_card, iteration_header, iteration_rows, missing_card
    from cardloop.store.records import existing_records
    from cardloop.store.root import default_store_root

    parsed, target = parse_path(path), Path(target)
    if parsed.is_iteration:
        raise CardloopError(f"'{path}' is one iteration; export the records of a block ('{parsed.parts[0]}') or of "
                            f"a body card over every iteration ('{parsed.static}')")
    records = existing_records(Path(store) if store is not None else default_store_root())
    run = records.get_run(run_id)
    if "." in parsed.static:
        if target.suffix.lower() != ".csv":
            raise CardloopError(f"the iterations of body card '{path}' are written as .csv, not "
                                f"'{target.suffix or target.name}'")
        cards = [find_card(body_cards(records, run.run_id, parsed.static) or body_cards(records, run.run_id),
                           parsed.static, run.run_id)]
        files = [target]
    else:
        everything = body_cards(records, run.run_id)
        cards = [card for card in everything if card.block == parsed.static]
        if not cards:
            raise PathNotFound(f"{missing_card(everything, parsed.static, run.run_id)} (to export an output of a card, "
                               "give RUN CARD PORT FILE)")
        if target.suffix.lower() == ".csv":
            raise CardloopError(f"block '{path}' has {len(cards)} body cards, each written as its own CSV: give a "
                                f"folder, not '{target.name}'")
        files = [target / f"{card.path}.csv" for card in cards]
    for card, file in zip(cards, files):
        file.parent.mkdir(parents=True, exist_ok=True)
        with open(file, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(iteration_header(card))
            writer.writerows(iteration_rows(card))
    return files
