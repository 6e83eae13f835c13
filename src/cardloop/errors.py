"""Errors a user can act on. Each one is a sentence that names the card, port or field."""

from __future__ import annotations

from dataclasses import dataclass


class CardloopError(Exception):
    """Base class for every error cardloop reports to a user."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a pipeline: where it is and what would be valid."""

    message: str
    card: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        return self.message


class PipelineInvalid(CardloopError):
    """A pipeline that cannot run; carries every problem found, not only the first."""

    SHOWN = 12

    def __init__(self, problems: list[Problem], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        where = f" {source}" if source else ""
        lines = "\n".join(f"  - {p.message}" for p in self.problems[:self.SHOWN])
        more = len(self.problems) - self.SHOWN
        if more > 0:
            lines += f"\n  ... and {more} more"
        super().__init__(f"pipeline{where} is invalid ({len(self.problems)} problem(s)):\n{lines}")


class CardError(CardloopError):
    """Raised by a card's run function for bad input it can explain (a user's mistake)."""


class CardFailed(CardloopError):
    """A card raised while running; names the card and keeps the cause. `changed_state`: the card is known to
    have changed the training state it received before it failed, so that state is no version to keep."""

    def __init__(self, card_id: str, card_type: str, message: str, *, changed_state: bool = False):
        self.card_id = card_id
        self.card_type = card_type
        self.reason = message
        self.changed_state = changed_state
        super().__init__(f"card '{card_id}' ({card_type}) failed: {message}")


class RegistryError(CardloopError):
    """A card type that cannot be registered or found."""


class StoreError(CardloopError):
    """An artifact that is missing, corrupt or cannot be encoded."""


class ArtifactCorrupt(StoreError):
    """A stored artifact that cannot be served: its content no longer matches its hash. A run treats it as
    missing and recomputes it."""


class ArtifactUndecodable(ArtifactCorrupt):
    """A stored artifact that passes its hash check but does not decode (bad tensor offsets, dtypes or shapes,
    names the value does not have, a model recipe larger than its weights): as corrupt as a hash failure."""


class InvalidOption(CardloopError, ValueError):
    """A run option with a value that is not one of the valid ones."""


class PathInvalid(CardloopError, ValueError):
    """Text that is not a card path (`fwd`, `epochs.batches.fwd`, `epochs[3].batches[7].fwd`)."""


class PathNotFound(CardloopError):
    """A card path that names no card, or no iteration, of a run: says which loop ran how many iterations."""
