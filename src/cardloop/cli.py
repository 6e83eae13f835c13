"""The `cardloop` command line: run, validate, cards, runs, show, export, sweep, sweeps, sweep-show, serve."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from rich.console import Console

from cardloop.engine.executors import executors_help
from cardloop.errors import CardFailed, CardloopError, InvalidOption, PipelineInvalid

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="PyTorch training loops as graphs of cards.")
PIPED_WIDTH = 4096  # columns of a console that writes to a pipe or a file: in effect, no wrapping


def _console(stderr: bool = False) -> Console:
    """A Rich console. Writing to a pipe or a file (`cardloop runs | grep failed`, a CI log), it neither wraps
    nor cuts tables and sentences at Rich's default 80 columns: a row stays one line, its words whole. A
    COLUMNS setting still decides."""
    console = Console(stderr=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPED_WIDTH
    return console


console = _console()
errors = _console(stderr=True)

StoreOption = typer.Option(None, "--store", help="Store root (default: $CARDLOOP_STORE or ./.cardloop).")
CardsOption = typer.Option(None, "--cards", help="A Python file of extra card types (repeatable).")
DebugOption = typer.Option(False, "--debug", help="Show Python tracebacks.")
ArtifactsOption = typer.Option(None, "--artifacts", metavar="URL", help="Keep the store's artifacts at this URL "
                               "(s3://bucket/prefix), its run records in --store.")
RayAddressOption = typer.Option(None, "--ray-address", metavar="ADDRESS",
                                help="The Ray cluster --executor ray joins (default: a Ray it starts on this machine).")


@contextmanager
def friendly_errors(debug: bool, store: Optional[Path] = None) -> Iterator[None]:
    """Turn cardloop errors into sentences and exit codes: 2 for an invalid pipeline, 1 otherwise. A file-system
    or SQLite error is one too: a sentence about the `store` (default: the default store root), or the file."""
    try:
        yield
    except PipelineInvalid as exc:
        if debug:
            raise
        errors.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    except CardloopError as exc:
        if debug:
            raise
        errors.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    except Exception as exc:
        from cardloop.store.root import file_problem

        problem = file_problem(exc, store)
        if debug or problem is None:
            raise
        errors.print(f"[red]error:[/red] {problem}", highlight=False)
        raise typer.Exit(1) from None


def _load_cards(cards: Optional[List[Path]]) -> None:
    from cardloop.cards.registry import load_card_file

    for path in cards or ():
        load_card_file(path)


@app.command()
def run(
    pipeline: Path = typer.Argument(..., help="Pipeline file (YAML or JSON)."),
    store: Optional[Path] = StoreOption,
    executor: str = typer.Option("local", help=f"Where cards run: {executors_help()}."),
    ray_address: Optional[str] = RayAddressOption,
    persist: str = typer.Option("checkpoint", help="What to keep: checkpoint (default) or all."),
    threads: Optional[int] = typer.Option(None, help="Torch CPU threads (default: torch's)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Run every card, even those the store already has."),
    only: Optional[str] = typer.Option(None, "--only", metavar="CARD",
                                       help="Run just this card, from the stored outputs of the cards above it."),
    until: Optional[str] = typer.Option(None, "--until", metavar="CARD", help="Run up to and including this card."),
    from_card: Optional[str] = typer.Option(None, "--from", metavar="CARD",
                                            help="Re-run this card and every card after it."),
    cards: Optional[List[Path]] = CardsOption,
    artifacts: Optional[str] = ArtifactsOption,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    debug: bool = DebugOption,
) -> None:
    """Run a pipeline and record it in the store."""
    from cardloop.cli_display import RunProgress, print_run_summary
    from cardloop.engine.run import run as run_pipeline

    with friendly_errors(debug, store):
        progress = RunProgress(console, enabled=not quiet)
        try:
            with progress:
                result = run_pipeline(pipeline, executor=executor, store=store, persist=persist, cards=cards,
                                      threads=threads, progress=progress.on_event, cache=not no_cache,
                                      only=only, until=until, from_card=from_card, ray_address=ray_address,
                                      artifacts=artifacts)
        except CardFailed as failure:
            result = getattr(failure, "result", None)
            if result is not None:
                errors.print(f"run {result.run_id} failed; inspect it with `cardloop show {result.run_id}`")
            raise
        except KeyboardInterrupt:
            done = progress.last_done or "no card"
            errors.print(f"[yellow]interrupted[/yellow] after {done}: what the run stored is kept; run the same "
                         "command again to resume from it", highlight=False)
            raise typer.Exit(130) from None
        print_run_summary(console, result)


@app.command()
def validate(
    pipeline: Path = typer.Argument(..., help="Pipeline file (YAML or JSON)."),
    cards: Optional[List[Path]] = CardsOption,
    debug: bool = DebugOption,
) -> None:
    """Check a pipeline without running it; lists every problem at once."""
    from cardloop.pipeline.fileformat import load_pipeline
    from cardloop.pipeline.validate import check_pipeline

    with friendly_errors(debug):
        _load_cards(cards)
        loaded = load_pipeline(pipeline)
        check_pipeline(loaded, source=str(pipeline))
        console.print(f"[green]ok[/green]: '{loaded.name}' is valid ({len(loaded.cards)} cards)")


@app.command("cards")
def list_cards(
    as_json: bool = typer.Option(False, "--json", help="The whole catalogue as JSON (ports, kinds, config schema)."),
    cards: Optional[List[Path]] = CardsOption,
    debug: bool = DebugOption,
) -> None:
    """List the card types."""
    from cardloop.cards.registry import default_registry
    from cardloop.cli_display import print_card_types

    with friendly_errors(debug):
        _load_cards(cards)
        registry = default_registry()
        if as_json:
            sys.stdout.write(json.dumps(registry.catalogue(), indent=2) + "\n")
        else:
            print_card_types(console, registry)


@app.command()
def runs(
    store: Optional[Path] = StoreOption,
    limit: int = typer.Option(20, help="How many runs, newest first."),
    debug: bool = DebugOption,
) -> None:
    """List recorded runs."""
    from cardloop.cli_display import open_records, print_runs

    with friendly_errors(debug, store):
        print_runs(console, open_records(store).list_runs(limit))


@app.command()
def show(
    run_id: str = typer.Argument(..., metavar="RUN", help="Run id (or a unique prefix)."),
    card: Optional[str] = typer.Argument(None, help="A card id: show its stored outputs."),
    store: Optional[Path] = StoreOption,
    debug: bool = DebugOption,
) -> None:
    """Show a run: card statuses, timings and output summaries; or one card's outputs."""
    from cardloop.cli_display import print_card, print_run

    with friendly_errors(debug, store):
        if card is None:
            print_run(console, store, run_id)
        else:
            print_card(console, store, run_id, card)


@app.command()
def export(
    run_id: str = typer.Argument(..., metavar="RUN", help="Run id (or a unique prefix)."),
    card: str = typer.Argument(..., help="Card id; or a loop block (epochs) or body card (epochs.batches.fwd) "
                                         "whose per-iteration records to write."),
    port: str = typer.Argument(..., metavar="PORT | FILE", help="Output port; for a block or body card, where to "
                                                                "write (a folder for a block, a .csv for a body "
                                                                "card)."),
    file: Optional[Path] = typer.Argument(None, help="Where to write an output: .safetensors for a model or tensor, "
                                                     ".parquet or .csv for a table, .json for an info or scalar."),
    store: Optional[Path] = StoreOption,
    cards: Optional[List[Path]] = typer.Option(None, "--cards", help="A card file whose model class the output "
                                                                      "needs to be rebuilt (repeatable)."),
    debug: bool = DebugOption,
) -> None:
    """Write a stored output to a file (a model as safetensors, a table as Parquet or CSV); or what a loop block's
    body cards did in every iteration, as CSV."""
    from cardloop.export import export_iterations, export_output

    with friendly_errors(debug, store):
        _load_cards(cards)
        if file is None:
            written = export_iterations(run_id, card, Path(port), store=store)
            console.print(f"wrote {', '.join(map(str, written))}", highlight=False)
        else:
            console.print(f"wrote {export_output(run_id, card, port, file, store=store)}")


@app.command()
def sweep(
    pipeline: Path = typer.Argument(..., help="Pipeline file (YAML or JSON)."),
    set_: List[str] = typer.Option(..., "--set", metavar="CARD.FIELD=V1,V2,...",
                                   help="A config field and its values, read as the items of a YAML list "
                                        "(opt.learning_rate=1e-3,3e-3; 'model.layers=[64,64],[128,128]'); "
                                        "repeatable: the sweep runs every combination."),
    random: Optional[int] = typer.Option(None, "--random", metavar="N", help="Run N variants drawn from the grid."),
    seed: int = typer.Option(0, help="The seed of --random's draw."),
    sort: Optional[str] = typer.Option(None, "--sort", metavar="COLUMN", help="Sort the results by this column "
                                       "(a metric such as evaluate.mse; best first)."),
    parallel: int = typer.Option(1, help="Variants run at once, each in its own process (with --executor ray, each "
                                         "on its own actor of the Ray cluster)."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Write the results table to this CSV file."),
    parquet: Optional[Path] = typer.Option(None, "--parquet", help="Write the results table to this Parquet file."),
    store: Optional[Path] = StoreOption,
    executor: str = typer.Option("local", help=f"Where each variant's cards run: {executors_help()}."),
    ray_address: Optional[str] = RayAddressOption,
    artifacts: Optional[str] = ArtifactsOption,
    persist: str = typer.Option("checkpoint", help="What each variant keeps: checkpoint (default) or all."),
    threads: Optional[int] = typer.Option(None, help="Torch CPU threads per variant (default: the CPUs shared "
                                                     "among the parallel variants)."),
    cards: Optional[List[Path]] = CardsOption,
    debug: bool = DebugOption,
) -> None:
    """Run a pipeline once per combination of settings; print (and write) one row of results per variant.
    Exit code 1 when a variant failed."""
    from cardloop.cli_sweeps import parse_settings
    from cardloop.sweeps import settings_label, sweep as run_sweep

    with friendly_errors(debug, store):
        settings = parse_settings(set_)

        def finished(outcome) -> None:
            run = f" (run {outcome.run_id})" if outcome.run_id else ""
            console.print(f"variant {outcome.index} {outcome.status}: {settings_label(outcome.settings)}{run}",
                          highlight=False)

        try:
            result = run_sweep(pipeline, settings, random=random, seed=seed, store=store, executor=executor,
                               persist=persist, threads=threads, parallel=parallel, cards=cards,
                               ray_address=ray_address, artifacts=artifacts, on_variant=finished)
        except KeyboardInterrupt:
            errors.print("[yellow]interrupted[/yellow]: the sweep is recorded cancelled, and what its variants' runs "
                         "stored is kept; run the same command again to resume from it", highlight=False)
            raise typer.Exit(130) from None
        try:
            table = result.table(sort=sort)
        except InvalidOption:  # a column the results lack: the table unsorted, then the sentence
            _print_sweep_results(result.sweep_id, result.table(), csv, parquet)
            raise
        _print_sweep_results(result.sweep_id, table, csv, parquet)
        if any(outcome.status != "succeeded" for outcome in result.outcomes):
            raise typer.Exit(1)


@app.command()
def sweeps(
    store: Optional[Path] = StoreOption,
    limit: int = typer.Option(20, help="How many sweeps, newest first."),
    debug: bool = DebugOption,
) -> None:
    """List recorded sweeps."""
    from cardloop.cli_display import open_records
    from cardloop.cli_sweeps import print_sweeps

    with friendly_errors(debug, store):
        print_sweeps(console, open_records(store).list_sweeps(limit))


@app.command("sweep-show")
def sweep_show(
    sweep_id: str = typer.Argument(..., metavar="SWEEP", help="Sweep id (or a unique prefix)."),
    sort: Optional[str] = typer.Option(None, "--sort", metavar="COLUMN", help="Sort the results by this column."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Write the results table to this CSV file."),
    parquet: Optional[Path] = typer.Option(None, "--parquet", help="Write the results table to this Parquet file."),
    store: Optional[Path] = StoreOption,
    debug: bool = DebugOption,
) -> None:
    """Show a recorded sweep's results table, one row per variant."""
    from cardloop.cli_display import open_records
    from cardloop.sweep_results import results_table

    with friendly_errors(debug, store):
        records = open_records(store)
        found = records.get_sweep(sweep_id)
        _print_sweep_results(found.sweep_id, results_table(records.root, found.variants, sort=sort), csv, parquet)


def _print_sweep_results(sweep_id: str, table, csv: Optional[Path], parquet: Optional[Path]) -> None:
    from cardloop.cli_sweeps import print_results, write_table

    print_results(console, table, f"sweep {sweep_id}")
    for path in write_table(table, csv, parquet):
        console.print(f"wrote {path}", highlight=False)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind; anything but loopback ('' and 0.0.0.0 listen on "
                                               "every interface) requires a token."),
    port: int = typer.Option(8000, help="Port to listen on."),
    store: Optional[Path] = StoreOption,
    token: Optional[str] = typer.Option(None, help="Token clients must send (generated and printed when the "
                                                   "host is not loopback and none is given)."),
    allow_host: Optional[List[str]] = typer.Option(None, "--allow-host", help="Another host name under which a "
                                                   "loopback server may be reached (repeatable); loopback "
                                                   "addresses and localhost always may."),
    pipelines: Path = typer.Option(Path("pipelines"), help="Folder where the editor saves pipelines."),
    data_root: Path = typer.Option(Path("."), help="Data files that cards may read must lie inside this folder."),
    cards: Optional[List[Path]] = typer.Option(None, "--cards", help="A Python file of extra card types (or model "
                                               "classes) for the editor's catalogue and its runs (repeatable)."),
    debug: bool = DebugOption,
) -> None:
    """Serve the visual editor and the HTTP API."""
    import uvicorn

    from cardloop.server.app import create_app
    from cardloop.server.security import allowed_hosts, is_loopback, new_token
    from cardloop.store.artifacts import default_store_root

    with friendly_errors(debug, store):
        _load_cards([path.resolve() for path in cards or ()])  # before the data root becomes the folder
        if not is_loopback(host) and not token:
            token = new_token()
            console.print(f"serving on {host or 'every interface'}: clients must send the token [bold]{token}[/bold]")
        root = (store if store is not None else default_store_root()).resolve()
        application = create_app(root, pipelines.resolve(), data_root.resolve(), token,
                                  allowed_hosts(host, allow_host or []))
        os.chdir(data_root)  # relative data paths in cards are read from the data root
        address = f"[{host}]" if ":" in host else host or "0.0.0.0"
        shown = f"http://{address}:{port}/" + (f"?token={token}" if token else "")
        console.print(f"cardloop editor at {shown} (API docs at /docs); store {root}")
        uvicorn.run(application, host=host, port=port, log_level="warning")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
