"""Persist policies: which card outputs a run keeps in the artifact store.

`all` keeps every output of every card and a snapshot of the training state after every card that
changes it: the guide's behaviour, where any card can be inspected or re-run from what it saw.

`checkpoint` (the default) keeps what a user needs to inspect a run and resume it, at a cost below 5 % of
throughput: tables, every output no card consumes (the results), infos and scalars as summaries in the run
records, metrics, and snapshots of the training state at most every `checkpoint_seconds` and at the end of
the run. Per-step batches, predictions and losses are not written; they are cheap to recompute from their
lineage.
"""

from __future__ import annotations

from dataclasses import dataclass

from cardloop.kinds import BATCH, INFO, LOSS, SCALAR, STATE_KINDS, TENSOR

POLICIES = ("checkpoint", "all")
DEFAULT_POLICY = "checkpoint"
TRANSIENT_KINDS = frozenset({BATCH, TENSOR, LOSS})
SUMMARIZED_KINDS = frozenset({INFO, SCALAR})


@dataclass(frozen=True)
class PersistPolicy:
    name: str
    checkpoint_seconds: float = 60.0

    @classmethod
    def named(cls, name: str, checkpoint_seconds: float = 60.0) -> "PersistPolicy":
        if name not in POLICIES:
            raise ValueError(f"unknown persist policy '{name}'; valid policies: {', '.join(POLICIES)}")
        return cls(name, checkpoint_seconds)

    def keeps_value(self, kind: str, consumed: bool) -> bool:
        """Whether a (non-state) output of this kind is written as an artifact. Infos and scalars always
        live whole in the run records; under `checkpoint` they are not also written as files."""
        if kind in STATE_KINDS:
            return False
        if self.name == "all":
            return True
        if kind in SUMMARIZED_KINDS:
            return False
        return not consumed or kind not in TRANSIENT_KINDS

    def snapshots_every_state_change(self) -> bool:
        return self.name == "all"
