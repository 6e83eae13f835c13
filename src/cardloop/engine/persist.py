"""Persist policies: which card outputs a run keeps in the artifact store.

`all` keeps every output of every card and a snapshot of the training state after every card that
changes it: the guide's behaviour, where any card can be inspected or re-run from what it saw.

`checkpoint` (the default) keeps what a user needs to inspect a run and resume it, at a cost below 5 % of
throughput: every output that no card reads (the results, such as an evaluation's metrics), infos and
scalars whole in the run records, the loss of every step as a metric, and snapshots of the training state at
most every `checkpoint_seconds` and at the end of the run. Values that cards read (tables, batches,
predictions, losses) are summarized, not written: they are recomputed from their lineage when needed, as
their source files' hashes are part of every cache key.
"""

from __future__ import annotations

from dataclasses import dataclass

from cardloop.errors import InvalidOption
from cardloop.kinds import INFO, SCALAR, STATE_KINDS

POLICIES = ("checkpoint", "all")
DEFAULT_POLICY = "checkpoint"
SUMMARIZED_KINDS = frozenset({INFO, SCALAR})


@dataclass(frozen=True)
class PersistPolicy:
    name: str
    checkpoint_seconds: float = 60.0

    @classmethod
    def named(cls, name: str, checkpoint_seconds: float = 60.0) -> "PersistPolicy":
        if name not in POLICIES:
            raise InvalidOption(f"unknown persist policy '{name}'; valid policies: {', '.join(POLICIES)}")
        return cls(name, checkpoint_seconds)

    def keeps_value(self, kind: str, consumed: bool) -> bool:
        """Whether a (non-state) output of this kind is written as an artifact. Infos and scalars always
        live whole in the run records; under `checkpoint` they are not also written as files."""
        if kind in STATE_KINDS:
            return False
        if self.name == "all":
            return True
        return kind not in SUMMARIZED_KINDS and not consumed

    def snapshots_every_state_change(self) -> bool:
        return self.name == "all"
