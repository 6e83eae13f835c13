"""Port kinds: what a link carries. Torch-free, so validation and planning stay light."""

from __future__ import annotations

DATAFRAME = "dataframe"
BATCH = "batch"
BATCHES = "batches"
MODEL = "model"
OPTIMIZER = "optimizer"
SCHEDULER = "scheduler"
TENSOR = "tensor"
LOSS = "loss"
SCALAR = "scalar"
INFO = "info"
ANY = "any"

BUILTIN_KINDS: dict[str, str] = {
    DATAFRAME: "a table (pandas DataFrame)",
    BATCH: "a batch of X and y tensors",
    BATCHES: "an epoch's batches in order: a loop block runs once per batch",
    MODEL: "a torch.nn.Module (training state)",
    OPTIMIZER: "a torch.optim.Optimizer bound to a model (training state)",
    SCHEDULER: "a learning-rate scheduler bound to an optimizer (training state)",
    TENSOR: "a tensor such as predictions",
    LOSS: "a loss tensor that can be back-propagated",
    SCALAR: "a number",
    INFO: "a JSON-able dict",
    ANY: "accepts any kind",
}

#: Kinds whose values are training state: mutated in place, versioned by the plan.
STATE_KINDS = frozenset({MODEL, OPTIMIZER, SCHEDULER})
#: Kinds whose values may carry an autograd graph back to the training state.
GRAPH_KINDS = frozenset({LOSS, TENSOR})

_custom_kinds: dict[str, str] = {}


def register_kind(name: str, description: str) -> None:
    """Declare a new port kind for custom cards (its codec is registered with the store)."""
    if not name.isidentifier():
        raise ValueError(f"kind name {name!r} must be an identifier")
    if name in BUILTIN_KINDS:
        raise ValueError(f"kind '{name}' is built in; choose another name for a custom kind")
    _custom_kinds[name] = description


def known_kinds() -> dict[str, str]:
    return {**BUILTIN_KINDS, **_custom_kinds}


def compatible(output_kind: str, input_kind: str) -> bool:
    """A link is legal between equal kinds, or into a port of kind `any`."""
    return input_kind == ANY or output_kind == input_kind
