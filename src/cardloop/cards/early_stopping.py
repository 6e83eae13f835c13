"""`training_early_stopping`: Lightning's EarlyStopping as a card, for a loop block's `until` (docs/blocks.md).
Each run takes one value of the monitored metric and the state the previous run left (a carried value), and
says whether to stop."""

from __future__ import annotations

import math
import numbers
from typing import Any, Literal

from pydantic import Field

from cardloop.cards.bounds import MAX_INT64
from cardloop.cards.spec import CardConfig, Port, card
from cardloop.errors import CardError
from cardloop.kinds import INFO, SCALAR

STATE_KEYS = ("best", "best_step", "wait", "step")


class EarlyStoppingConfig(CardConfig):
    patience: int = Field(default=3, ge=1, le=MAX_INT64,
                          description="Stop after this many runs in a row without improvement.")
    min_delta: float = Field(default=0.0, ge=0, allow_inf_nan=False,
                             description="An improvement must beat the best value by more than this.")
    mode: Literal["min", "max"] = Field(default="min", description="Whether a lower or a higher metric is better.")
    check_finite: bool = Field(default=True, description="Stop at once when the metric is NaN or infinite.")


@card(
    "training_early_stopping",
    title="Early Stopping",
    category="training",
    description="Lightning's EarlyStopping: the metric improves when metric + min_delta < best (mode min) or "
                "metric - min_delta > best (mode max), the best starting at +inf (min) or -inf (max); an improvement "
                "makes it the best and sets wait to 0, anything else adds 1 to wait; stop when wait reaches "
                "patience, or at once for a NaN or infinite metric when check_finite is on. Feed `state` with this "
                "card's `state` from the previous iteration (empty at the start).",
    inputs=[Port("metric", SCALAR, "The monitored value of this iteration (a validation loss, say)."),
            Port("state", INFO, "This card's state from the previous iteration; empty at the start.", required=False)],
    outputs=[Port("stop", SCALAR, "True when training should stop."),
             Port("state", INFO, "best, best_step, wait and step: what the next iteration needs."),
             Port("best_value", SCALAR, "The best metric so far (±inf before the first improvement).", metric=True),
             Port("best_step", SCALAR, "The step of the best metric (-1 before the first improvement)."),
             Port("improved", SCALAR, "True when this metric is the new best.")],
    config=EarlyStoppingConfig,
)
def early_stopping(config: EarlyStoppingConfig, metric, state) -> dict:
    current = float(scalar_input(metric, "metric"))
    best, best_step, wait, step = _previous(state, config.mode)
    improved = stop = False
    if config.check_finite and not math.isfinite(current):
        stop = True
    elif (current + config.min_delta < best) if config.mode == "min" else (current - config.min_delta > best):
        improved, best, best_step, wait = True, current, step, 0
    else:
        wait += 1
        stop = wait >= config.patience
    return {"stop": stop, "state": {"best": best, "best_step": best_step, "wait": wait, "step": step},
            "best_value": best, "best_step": best_step, "improved": improved}


def scalar_input(value: Any, port: str) -> bool | float:
    """A scalar input as a Python bool or float (from a number, or a numpy or torch scalar); anything else is the
    user's mistake, named."""
    plain = value
    if hasattr(plain, "item"):  # a numpy or torch scalar, or a one-element array or tensor
        try:
            plain = plain.item()
        except (ValueError, RuntimeError):  # more than one element
            pass
    if isinstance(plain, bool):
        return plain
    if isinstance(plain, numbers.Real):
        return float(plain)
    raise CardError(f"input '{port}' is a {type(value).__name__} ({value!r:.60}); it must be a number")


def _previous(state: dict | None, mode: str) -> tuple[float, int, int, int]:
    """best, best_step, wait and this run's step, from the previous run's state (None: the first run)."""
    if state is None:
        return (math.inf if mode == "min" else -math.inf), -1, 0, 0
    if not isinstance(state, dict) or any(key not in state for key in STATE_KEYS):
        raise CardError(f"input 'state' must be the state output of training_early_stopping from the previous "
                        f"iteration ({', '.join(STATE_KEYS)}), or empty")
    return float(state["best"]), state["best_step"], state["wait"], state["step"] + 1
