"""The sweeps the editor lists and shows (docs/sweeps.md): each recorded sweep, and one sweep's results table with
every variant's curve of a metric (the loss per step by default), for a view that overlays them."""

from __future__ import annotations

from typing import Any

from cardloop.server.jsonsafe import finite_json


def sweep_summary(found: Any) -> dict[str, Any]:
    """A recorded sweep as the list shows it: its id, pipeline, settings, status, times and variant counts."""
    return {"sweep_id": found.sweep_id, "name": found.name, "settings": found.settings, "status": found.status,
            "started_at": found.started_at, "ended_at": found.ended_at, "variants": len(found.variants),
            "succeeded": sum(v.status == "succeeded" for v in found.variants)}


def sweep_view(records: Any, found: Any, metric: str) -> dict[str, Any]:
    """A sweep: its summary and options, the results table's rows (cardloop.sweep_results), and for each variant
    its settings, run, status, error and `curve`, the values of `metric` in the order its run made them."""
    from cardloop.server.iterations import metric_points
    from cardloop.sweep_results import results_table

    rows = results_table(records.root, found.variants).to_dict("records")
    variants = []
    for variant in found.variants:
        curve = []
        if variant.run_id is not None:
            curve = [point["value"] for point in metric_points(records, records.get_run(variant.run_id),
                                                               metric)["points"]]
        variants.append({"index": variant.index, "settings": variant.settings, "run_id": variant.run_id,
                         "status": variant.status, "error": variant.error, "curve": curve})
    return finite_json({**sweep_summary(found), "options": found.options, "metric": metric, "results": rows,
                        "variants": variants})
