"""The FastAPI application: card catalogue, pipelines, validation, runs, outputs and live run events."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator, BaseModel, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from cardloop.engine.executors import executor_entry, executor_names
from cardloop.errors import CardloopError, PathInvalid, PathNotFound, PipelineInvalid, Problem, StoreError
from cardloop.server.jsonsafe import finite_json
from cardloop.server.runs import RunManager, next_batch
from cardloop.server.security import LOCAL_HOSTNAMES, BodyLimit, Guard, HostCheck, confined, origin_ok, token_ok

PIPELINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
DOCS_ASSETS_DIR = Path(__file__).resolve().parent / "docs_assets"  # Swagger UI: scripts/vendor_swagger_ui.sh
EXAMPLES_DIR = Path(__file__).resolve().parents[3] / "examples"


def _registered_executor(name: str) -> str:
    """An executor's name is valid when it is registered (cardloop.engine.executors), when the request comes."""
    names = executor_names()
    if name not in names:
        quoted = [f"'{n}'" for n in names]
        expected = " or ".join(filter(None, (", ".join(quoted[:-1]), quoted[-1])))
        raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
    return name


class RunRequest(BaseModel):
    """Start a run of a pipeline given whole, or of a saved pipeline by name."""

    pipeline: dict[str, Any] | None = None
    name: str | None = None
    executor: Annotated[str, AfterValidator(_registered_executor),
                        Field(json_schema_extra=lambda schema: schema.update(enum=executor_names()))] = "local"
    persist: Literal["checkpoint", "all"] = "checkpoint"
    cache: bool = True
    only: str | None = None
    until: str | None = None
    from_card: str | None = Field(default=None, alias="from")
    threads: int | None = Field(default=None, ge=1, le=256)
    ray_address: str | None = Field(default=None, description="For the ray executor: the cluster to join "
                                    "(HOST:PORT or ray://HOST:PORT); none or blank: a Ray started on this machine")

    model_config = {"populate_by_name": True, "extra": "forbid"}

    @field_validator("ray_address")
    @classmethod
    def _only_for_ray(cls, address: str | None, info: ValidationInfo) -> str | None:
        """A blank address is none; an address with another executor is refused, as `cardloop.run` refuses it."""
        address = (address or "").strip() or None
        executor = info.data.get("executor")
        if address is not None and executor not in (None, "ray"):
            raise PydanticCustomError("ray_address_executor", "ray_address is for the ray executor, not '{executor}': "
                                      "choose executor 'ray' or leave ray_address out", {"executor": executor})
        return address


class PipelineJSONRequest(Request):
    """A request whose JSON body is read as a pipeline file's JSON is (`parse_json`): nesting bounded, and what is
    wrong with it a 422 with one problem, as the editor shows a file's."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            from cardloop.pipeline.parsing import parse_json

            try:
                self._json = parse_json(await self.body())
            except PipelineInvalid as exc:
                raise _unprocessable(exc.problems) from None
        return self._json


class PipelineJSONRoute(APIRoute):
    """A route that hands its endpoint a PipelineJSONRequest."""

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()

        async def route(request: Request) -> Any:
            return await handler(PipelineJSONRequest(request.scope, request.receive))

        return route


def create_app(store: Path, pipelines_dir: Path, data_root: Path, token: str | None = None,
               allowed_hosts: frozenset[str] | None = LOCAL_HOSTNAMES) -> FastAPI:
    """The server for one store, one folder of saved pipelines and one data root. It answers requests whose Host
    is a loopback address or one of `allowed_hosts` (None: any host, for a server that requires a token)."""
    app = FastAPI(title="cardloop", version="1", description="Build, run and watch card pipelines.",
                  docs_url=None, redoc_url=None)
    app.router.route_class = PipelineJSONRoute
    app.add_middleware(Guard, token=token)
    app.add_middleware(BodyLimit)
    app.add_middleware(HostCheck, names=allowed_hosts)
    runs = RunManager(store)
    pipelines_dir.mkdir(parents=True, exist_ok=True)

    @app.exception_handler(StoreError)
    def store_unusable(request: Any, error: StoreError) -> JSONResponse:
        """A damaged, read-only or full store: its sentence, not a bare 500."""
        return JSONResponse({"detail": str(error)}, status_code=503)

    def registry():
        from cardloop.cards.registry import default_registry

        return default_registry()

    def parse(data: Any):
        from cardloop.pipeline.fileformat import pipeline_from_dict

        try:
            return pipeline_from_dict(data)
        except PipelineInvalid as exc:
            raise _unprocessable(exc.problems) from None

    def problems_of(pipeline) -> list[Problem]:
        from cardloop.pipeline.validate import validate_pipeline

        problems = validate_pipeline(pipeline, registry())
        if problems:
            return problems
        return data_path_problems(pipeline)

    def data_path_problems(pipeline) -> list[Problem]:
        """Files that cards would read outside the data root, resolved exactly as the cards resolve them."""
        from cardloop.pipeline.validate import parse_config

        found = []
        for card in pipeline.cards:
            card_type = registry().get(card.type)
            if card_type.source_files is None:
                continue
            for file in card_type.source_files(parse_config(card, card_type)):
                if not confined(file, data_root):
                    path = card.config.get("path", str(file))
                    found.append(Problem(f"card '{card.id}' ({card.type}): config field 'path' is '{path}', which "
                                         f"reads {file}, outside the server's data root {data_root}; use a path "
                                         "inside it", card=card.id, field="path"))
        return found

    def records():
        from cardloop.store.records import RunRecords

        return RunRecords(store / "runs.sqlite")

    def saved_path(name: str) -> Path:
        if not PIPELINE_NAME.match(name):
            raise HTTPException(400, f"pipeline name '{name}' is not valid: use letters, digits, '_', '-' and '.'")
        return pipelines_dir / f"{name.removesuffix('.yaml')}.yaml"

    @app.get("/api/cards", summary="The card catalogue: ports, kinds and config JSON Schema of every card type")
    def cards() -> dict:
        from cardloop.kinds import known_kinds

        return {"cards": registry().catalogue(), "kinds": known_kinds()}

    @app.get("/api/pipelines", summary="Saved pipelines")
    def list_pipelines() -> list[dict]:
        return [{"name": p.stem, "modified": p.stat().st_mtime} for p in sorted(pipelines_dir.glob("*.yaml"))]

    @app.get("/api/pipelines/{name}")
    def get_pipeline(name: str) -> dict:
        from cardloop.pipeline.fileformat import load_pipeline

        path = saved_path(name)
        if not path.exists():
            raise HTTPException(404, f"no saved pipeline '{name}'")
        try:
            return load_pipeline(path).to_dict()
        except PipelineInvalid as exc:
            raise _unprocessable(exc.problems) from None

    @app.put("/api/pipelines/{name}", summary="Save a pipeline (a version-1 file in the pipelines folder)")
    def put_pipeline(name: str, body: dict[str, Any]) -> dict:
        pipeline = parse(body)
        pipeline.save(saved_path(name))
        return {"name": name, "problems": [_problem(p) for p in problems_of(pipeline)]}

    @app.delete("/api/pipelines/{name}")
    def delete_pipeline(name: str) -> dict:
        path = saved_path(name)
        if not path.exists():
            raise HTTPException(404, f"no saved pipeline '{name}'")
        path.unlink()
        return {"deleted": name}

    @app.post("/api/validate", summary="Every problem of a pipeline, each naming its card and field")
    def validate(body: dict[str, Any]) -> dict:
        return {"problems": [_problem(p) for p in problems_of(parse(body))]}

    @app.get("/api/examples", summary="Example pipelines")
    def examples() -> list[dict]:
        return [{"name": name, "description": pipeline.description}
                for name, pipeline in _examples().items()]

    @app.get("/api/examples/{name}")
    def example(name: str) -> dict:
        found = _examples().get(name)
        if found is None:
            raise HTTPException(404, f"no example '{name}'; examples: {', '.join(_examples())}")
        return found.to_dict()

    @app.get("/api/executors", summary="The executors a run may use (the run options' `executor`), in order")
    def executors() -> list[dict]:
        return [{"name": name, "summary": executor_entry(name).summary} for name in executor_names()]

    @app.post("/api/runs", status_code=201, summary="Start a run (with an executor and the partial-run options)")
    def start_run(request: RunRequest) -> dict:
        if (request.pipeline is None) == (request.name is None):
            raise HTTPException(422, "give either 'pipeline' or 'name'")
        pipeline = parse(request.pipeline) if request.pipeline is not None else parse(get_pipeline(request.name))
        problems = problems_of(pipeline)
        if problems:
            raise _unprocessable(problems)
        options = {"executor": request.executor, "persist": request.persist, "cache": request.cache,
                   "only": request.only, "until": request.until, "from_card": request.from_card,
                   "threads": request.threads, "ray_address": request.ray_address}
        try:
            active = runs.start(pipeline, options)
        except CardloopError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"run_id": active.run_id, "status": active.status}

    @app.get("/api/runs", summary="Recorded runs, newest first")
    def list_runs(limit: int = 50) -> list[dict]:
        if not (store / "runs.sqlite").exists():
            return []
        return [{"run_id": r.run_id, "name": r.name, "status": r.status, "executor": r.executor,
                 "persist": r.persist, "started_at": r.started_at, "ended_at": r.ended_at}
                for r in records().list_runs(min(max(limit, 1), 500))]

    @app.get("/api/runs/{run_id}", summary="A run: its pipeline, status and every card execution")
    def run_detail(run_id: str) -> dict:
        run = _run(records(), run_id)
        executions = [{"card_id": e.card_id, "position": e.position, "card_type": e.card_type, "status": e.status,
                       "seconds": e.seconds, "error": e.error, "cache_hit": e.cache_hit,
                       "outputs": json.loads(e.outputs)} for e in records().execution_rows(run.run_id)]
        active = runs.active.get(run.run_id)
        return finite_json({"run_id": run.run_id, "name": run.name, "status": run.status, "error": run.error,
                            "executor": run.executor, "persist": run.persist, "pipeline": run.pipeline,
                            "started_at": run.started_at, "ended_at": run.ended_at, "cards": executions,
                            "events": len(active.events) if active else None})

    @app.post("/api/runs/{run_id}/cancel", summary="Stop a run between two cards")
    def cancel_run(run_id: str) -> dict:
        if not runs.cancel(run_id):
            raise HTTPException(409, f"run {run_id} is not running in this server")
        return {"run_id": run_id, "cancelling": True}

    @app.get("/api/runs/{run_id}/metrics", summary="A metric series, e.g. the loss per step, with the values of "
                                                   "loop blocks' body cards in every iteration")
    def metrics(run_id: str, name: str = "loss_value") -> JSONResponse:
        from cardloop.server.iterations import metric_points

        run = _run(records(), run_id)
        return JSONResponse(metric_points(records(), run, name))  # json.dumps: a block's 100,000 points in 0.1 s

    @app.get("/api/sweeps", summary="Recorded sweeps, newest first")
    def list_sweeps(limit: int = 50) -> list[dict]:
        from cardloop.server.sweeps import sweep_summary

        if not (store / "runs.sqlite").exists():
            return []
        return [sweep_summary(found) for found in records().list_sweeps(min(max(limit, 1), 500))]

    @app.get("/api/sweeps/{sweep_id}", summary="A sweep: its results table and each variant's curve of a metric "
                                               "(the loss per step by default)")
    def sweep_detail(sweep_id: str, metric: str = "loss_value") -> dict:
        from cardloop.server.sweeps import sweep_view

        opened = records()
        try:
            found = opened.get_sweep(sweep_id)
        except CardloopError as exc:
            raise HTTPException(404, str(exc)) from None
        return sweep_view(opened, found, metric)

    @app.get("/api/runs/{run_id}/cards/{path}", summary="A card of a run by its path: a card id, a body card over "
                                                        "every iteration (epochs.batches.fwd) or one iteration "
                                                        "(epochs[3].batches[7].fwd, URL-encoded)")
    def card(run_id: str, path: str) -> dict:
        from cardloop.server.iterations import card_view

        run = _run(records(), run_id)
        try:
            return card_view(store, records(), run, path)
        except PathInvalid as exc:
            raise HTTPException(400, str(exc)) from None
        except PathNotFound as exc:
            raise HTTPException(404, str(exc)) from None

    @app.get("/api/runs/{run_id}/cards/{card_id}/outputs", summary="Previews of a card's outputs in a run")
    def outputs(run_id: str, card_id: str) -> dict:
        from cardloop.server.previews import card_outputs

        try:
            return finite_json(card_outputs(store, run_id, card_id))
        except CardloopError as exc:
            raise HTTPException(404, str(exc)) from None

    @app.websocket("/api/runs/{run_id}/events")
    async def events(socket: WebSocket, run_id: str) -> None:
        if token and not token_ok(socket, token):
            await socket.close(code=4401)
            return
        if not origin_ok(socket):
            await socket.close(code=4403)
            return
        try:
            detail = run_detail(run_id)
        except HTTPException:
            await socket.close(code=4404)
            return
        await socket.accept()
        run_id = detail["run_id"]
        active = runs.active.get(run_id)
        if active is None:  # a run from before this server, or finished long ago: its state from the records
            await socket.send_json({"kind": "snapshot", "run": detail})
            await socket.close()
            return
        past, queue = active.subscribe(asyncio.get_running_loop())
        try:
            await socket.send_json({"kind": "snapshot", "run": run_detail(run_id)})
            batch = past  # then lists of events: those so far, then what each wait collects
            while True:
                if batch:
                    await socket.send_json(finite_json(batch))
                if batch and batch[-1].get("kind") == "closed":
                    break
                batch = await next_batch(queue)
            await socket.close()
        except WebSocketDisconnect:
            pass
        finally:
            active.unsubscribe(queue)

    app.mount("/docs-assets", StaticFiles(directory=DOCS_ASSETS_DIR), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI from the package, so that the page works without internet (no validator badge either)."""
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="cardloop API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png",
                                   swagger_ui_parameters={"validatorUrl": None})

    if (WEB_DIR / "index.html").exists():
        app.mount("/assets", StaticFiles(directory=WEB_DIR / "assets"), name="assets")

        @app.get("/", include_in_schema=False)
        def index() -> FileResponse:
            return FileResponse(WEB_DIR / "index.html")
    else:
        @app.get("/", include_in_schema=False)
        def no_editor() -> HTMLResponse:
            return HTMLResponse("<h1>cardloop</h1><p>The editor bundle is not built; the API is at "
                                "<a href='/docs'>/docs</a>.</p>")

    return app


def _problem(problem: Problem) -> dict:
    return {"message": problem.message, "card": problem.card, "field": problem.field}


def _unprocessable(problems: list[Problem]) -> HTTPException:
    return HTTPException(422, {"problems": [_problem(p) for p in problems]})


def _run(records, run_id: str):
    try:
        return records.get_run(run_id)
    except CardloopError as exc:
        raise HTTPException(404, str(exc)) from None


def _examples() -> dict:
    """The pipelines of examples/ that need no card file (cardloop.example_files), and a one-batch loop."""
    from cardloop.example_files import editor_examples
    from cardloop.examples import basic_training_loop

    return {**editor_examples(), "one-batch": basic_training_loop(batches=1, batch_size=32, name="one-batch")}
