"""The guide's seven training cards. Type ids, ports, config keys and defaults follow the guide exactly."""

from __future__ import annotations

import weakref
from typing import Literal

from pydantic import Field

from cardloop.batches import SHUFFLE_RULE, RowBatches, batch_info, count_batches, epoch_order
from cardloop.cards.bounds import MAX_INT64, MAX_SEED, MIN_SEED
from cardloop.cards.data import check_numeric, split_columns
from cardloop.cards.losses import LABEL_SMOOTHING, SMOOTH_L1_BETA, LossType, loss_function
from cardloop.cards.optimizers import InitOptimizerConfig, make_optimizer
from cardloop.models import model_device
from cardloop.cards.spec import CardConfig, CardContext, NoConfig, Port, card
from cardloop.errors import CardError
from cardloop.kinds import BATCH, DATAFRAME, INFO, LOSS, MODEL, OPTIMIZER, SCALAR, TENSOR
from cardloop.values import OPTIMIZER_STEPS_ATTR as STEPS_ATTR

# --- training_prepare_batch -------------------------------------------------------------------------


class PrepareBatchConfig(CardConfig):
    batch_index: int = Field(default=0, ge=0, le=MAX_INT64, description="Which batch to retrieve.")
    batch_size: int = Field(default=32, gt=0, le=MAX_INT64, description="Size of each batch.")
    target_columns: list[str] | None = Field(
        default=None, description="Override the target columns recorded by the data card.")
    shuffle: bool = Field(default=False, description="Take the batch from the epoch's shuffled order, "
                                                     "DataLoader's with generator seed seed + epoch.")
    seed: int = Field(default=0, ge=MIN_SEED, le=MAX_SEED, description="Shuffle seed; epoch e uses seed + e.")
    epoch: int = Field(default=0, ge=0, le=MAX_INT64, description="Which epoch's order to take the batch from.")


# Frames are immutable values, so their tensor form, and its batches for each batch size, are worked out once
# per frame and target choice.
_frame_tensors: dict[tuple[int, tuple[str, ...] | None], FrameTensors] = {}
SHUFFLED_KEPT = 2  # epochs' shuffled rows kept per frame: an epoch's cards, or two loops with their own seeds


class FrameTensors(RowBatches):
    """A frame's features X and targets y as row-major float32 tensors (the frame's order), and their batches;
    and the rows in the shuffled order of an epoch, gathered once for all the batches of that epoch."""

    def __init__(self, frame, override: list[str] | None):
        self.features, self.targets = split_columns(frame, override)
        check_numeric(frame, self.features + self.targets, "the dataset")
        super().__init__(*(_float32_rows(frame, columns) for columns in (self.features, self.targets)))
        self._shuffled: dict[int, RowBatches] = {}  # by the epoch's generator seed

    def epoch(self, seed: int | None) -> RowBatches:
        """An epoch's rows: the frame's order (`seed` None), or the shuffled order of the epoch whose generator
        is seeded with `seed` (batches.epoch_order)."""
        if seed is None:
            return self
        rows = self._shuffled.get(seed)
        if rows is None or rows.changed():  # not gathered yet, or a card changed a batch of it in place
            self._shuffled.pop(seed, None)
            if len(self._shuffled) >= SHUFFLED_KEPT:
                del self._shuffled[next(iter(self._shuffled))]
            rows = self._shuffled[seed] = self.gathered(epoch_order(self.rows, seed))
        return rows


def _float32_rows(frame, columns: list[str]):
    """The columns as a row-major float32 tensor from torch's allocator, written in one copy."""
    import numpy as np
    import torch

    tensor = torch.empty((len(frame), len(columns)), dtype=torch.float32)
    np.copyto(tensor.numpy(), frame[columns].to_numpy(dtype=np.float32))
    return tensor


def check_batch_index(field: str, index: int, rows: int, size: int, drop_last: bool = False) -> int:
    """The number of batches of `size` in `rows` rows (without a short last one under `drop_last`); a batch
    index (config `field`) past them is the user's mistake, named with what would be valid."""
    num_batches = count_batches(rows, size, drop_last)
    if index >= num_batches:
        dropped = ", leaving out the short last one (drop_last)" if drop_last and rows % size else ""
        valid = f"0 to {num_batches - 1}" if num_batches else f"none; choose a batch_size of at most {rows}"
        raise CardError(f"config field '{field}' is {index}, but {rows} rows in batches of "
                        f"{size} make {num_batches} batches{dropped} (valid: {valid})")
    return num_batches


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch `epoch`'s generator, seed + epoch; past torch.manual_seed's range it is the user's
    mistake, named."""
    if seed + epoch > MAX_SEED:
        raise CardError(f"config field 'seed' is {seed}, and seed + epoch ({seed + epoch}) is past the largest seed "
                        f"torch.manual_seed takes ({MAX_SEED}); choose a smaller seed")
    return seed + epoch


def epoch_rows(frame, override: list[str] | None, seed: int | None) -> RowBatches:
    """An epoch's rows (FrameTensors.epoch) of a frame, found again each time: rebuilt if a batch was changed."""
    return frame_tensors(frame, override).epoch(seed)


def frame_tensors(frame, override: list[str] | None) -> FrameTensors:
    """The tensor form of a frame, cached while the frame lives (and rebuilt if a batch was changed)."""
    key = (id(frame), tuple(override) if override else None)
    cached = _frame_tensors.get(key)
    if cached is not None and not cached.changed():
        return cached
    if cached is None:
        weakref.finalize(frame, _frame_tensors.pop, key, None)
    cached = _frame_tensors[key] = FrameTensors(frame, override)
    return cached


@card(
    "training_prepare_batch",
    title="Prepare Batch",
    category="training",
    description="Rows [i*batch_size, (i+1)*batch_size) of the frame, in its order, as float32 X and y tensors; "
                "with shuffle, of the epoch's shuffled order. " + SHUFFLE_RULE,
    inputs=[Port("train_dataset", DATAFRAME, "Training dataset (DataFrame).")],
    outputs=[Port("batch_data", BATCH, "Batch tensors X and y."), Port("batch_info", INFO, "Batch metadata.")],
    config=PrepareBatchConfig,
)
def prepare_batch(config: PrepareBatchConfig, train_dataset) -> dict:
    seed = epoch_seed(config.seed, config.epoch) if config.shuffle else None
    tensors = frame_tensors(train_dataset, config.target_columns)
    index, size, rows = config.batch_index, config.batch_size, tensors.rows
    num_batches = check_batch_index("batch_index", index, rows, size)
    info = batch_info(index, size, rows, num_batches, epoch=config.epoch, shuffled=config.shuffle,
                      features=tensors.features, targets=tensors.targets)
    return {"batch_data": tensors.epoch(seed).batch(index, size), "batch_info": info}


# --- training_init_optimizer ------------------------------------------------------------------------


@card(
    "training_init_optimizer",
    title="Initialize Optimizer",
    category="training",
    description="A PyTorch optimizer bound to the model's parameters: all of them, or those its name patterns "
                "select, in parameter groups with their own settings if asked (docs/optimizers.md).",
    inputs=[Port("model", MODEL, "Model to optimize.")],
    outputs=[Port("optimizer", OPTIMIZER, "Initialized optimizer (training state bound to the model).")],
    config=InitOptimizerConfig,
)
def init_optimizer(config: InitOptimizerConfig, model, ctx: CardContext) -> dict:
    return {"optimizer": make_optimizer(config, model, ctx.card_id)}


# --- training_zero_grad -----------------------------------------------------------------------------


@card(
    "training_zero_grad",
    title="Zero Gradients",
    category="training",
    description="Clear the gradients of the optimizer's parameters (to None, PyTorch's default).",
    inputs=[Port("optimizer", OPTIMIZER, "Optimizer with gradients to clear.")],
    outputs=[Port("optimizer", OPTIMIZER, "Optimizer with zeroed gradients.", state_of="optimizer")],
    config=NoConfig,
    mutates_state=True,
)
def zero_grad(config: NoConfig, optimizer) -> dict:
    optimizer.zero_grad(set_to_none=True)
    return {"optimizer": optimizer}


# --- training_forward -------------------------------------------------------------------------------


class ForwardConfig(CardConfig):
    batch_index: int = Field(default=0, ge=0, le=MAX_INT64, description="Batch index for tracking.")


@card(
    "training_forward",
    title="Forward Pass",
    category="training",
    description="Run the model on the batch's X; predictions keep their autograd graph.",
    inputs=[Port("model", MODEL, "Model to run forward pass on."),
            Port("batch_data", BATCH, "Batch data (X and y tensors).")],
    outputs=[Port("predictions", TENSOR, "Model predictions."),
             Port("model", MODEL, "Model state (preserved).", state_of="model")],
    config=ForwardConfig,
    mutates_state=True,
)
def forward(config: ForwardConfig, model, batch_data) -> dict:
    X = batch_data.X
    device = model_device(model)
    if X.device != device:
        X = X.to(device)
    return {"predictions": run_model(model, X), "model": model}


def run_model(model, X):
    """`model(X)`, with a model that cannot take the batch's width reported as the user's mistake it is."""
    try:
        return model(X)
    except RuntimeError as exc:
        if "cannot be multiplied" not in str(exc):
            raise
        raise CardError(f"the batch has {X.shape[-1]} features, which the model cannot take ({exc}); "
                        "set model_define's input_dim to the number of feature columns") from None


# --- training_loss ----------------------------------------------------------------------------------


class LossConfig(CardConfig):
    loss_type: LossType = "mse"
    huber_delta: float = Field(default=1.0, gt=0, description="Delta of the huber loss (PyTorch's default 1.0).")
    label_smoothing: float = LABEL_SMOOTHING
    beta: float = SMOOTH_L1_BETA
    scale: float = Field(default=1.0, gt=0, allow_inf_nan=False,
                         description="The `loss` output is the loss times this (1/k to accumulate k micro-batches); "
                                     "`loss_value` is the unscaled loss, as Lightning logs it.")


@card(
    "training_loss",
    title="Calculate Loss",
    category="training",
    description="Loss between predictions and the batch's targets; `loss` keeps its autograd graph. cross_entropy "
                "and nll take one score per class against one target column of class indices (cross_entropy "
                "also against a column of probabilities per class); the other losses take one prediction per "
                "target column.",
    inputs=[Port("predictions", TENSOR, "Model predictions."),
            Port("batch_data", BATCH, "Batch data containing targets.")],
    outputs=[Port("loss", LOSS, "Loss tensor (with gradients)."),
             Port("loss_value", SCALAR, "Loss value (scalar).", metric=True)],
    config=LossConfig,
)
def loss(config: LossConfig, predictions, batch_data) -> dict:
    y = batch_data.y
    if y.device != predictions.device:
        y = y.to(predictions.device)
    value = loss_function(config)(predictions, y)
    scaled = value if config.scale == 1.0 else value * config.scale  # 1.0: the loss itself, not even a multiply
    return {"loss": scaled, "loss_value": value.item()}


# --- training_backward ------------------------------------------------------------------------------


class BackwardConfig(CardConfig):
    retain_graph: bool = Field(default=False, description="Retain computation graph.")
    track_grad_norm: bool = Field(
        default=False, description="Report the global gradient norm and how many parameters have a gradient in "
                                   "gradients_computed (costs a few percent of a small model's step; Optimizer "
                                   "Step reports the norm for free when clipping).")


def gradient_norm(grads: list) -> float:
    """Global L2 norm of a list of gradients (0.0 when empty), as clip_grad_norm_ computes it."""
    import torch

    if not grads:
        return 0.0
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))).item()


@card(
    "training_backward",
    title="Backward Pass",
    category="training",
    description="Back-propagate the loss, accumulating into the model's gradients as PyTorch does.",
    inputs=[Port("loss", LOSS, "Loss tensor.", needs_graph=True),
            Port("model", MODEL, "Model to compute gradients for.")],
    outputs=[Port("model", MODEL, "Model with computed gradients.", state_of="model"),
             Port("gradients_computed", INFO, "Status information.")],
    config=BackwardConfig,
    mutates_state=True,
)
def backward(config: BackwardConfig, loss, model, ctx: CardContext) -> dict:
    if not loss.requires_grad:
        if not any(p.requires_grad for p in model.parameters()):
            raise CardError(f"every parameter of the model is frozen, so the loss from '{ctx.source('loss')}' has no "
                            "autograd graph to back-propagate; unfreeze some with training_freeze (freeze: false)")
        raise CardError(f"the loss from '{ctx.source('loss')}' has no autograd graph (it was reloaded from "
                        "storage or detached), so back-propagating it would compute nothing; run the loss card "
                        "in the same run as this backward card")
    try:
        loss.backward(retain_graph=config.retain_graph)
    except RuntimeError as exc:
        if "second time" not in str(exc):
            raise
        earlier = [card for card, card_type in ctx.earlier_readers.get("loss", ()) if card_type == ctx.card_type]
        names = ", ".join(f"'{card}'" for card in earlier) or "an earlier card"
        raise CardError(f"the loss from '{ctx.source('loss')}' was already back-propagated by {names}, which freed "
                        f"its graph; set retain_graph: true on {names} to back-propagate twice") from None
    info: dict = {"retain_graph": config.retain_graph}
    if config.track_grad_norm:  # walking the parameters costs a small model's step a few percent
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        info["parameters_with_grad"] = len(grads)
        info["grad_norm"] = gradient_norm(grads)
    return {"model": model, "gradients_computed": info}


# --- training_optimizer_step ------------------------------------------------------------------------


class OptimizerStepConfig(CardConfig):
    gradient_clip: float = Field(default=0.0, ge=0, description="Clip the global gradient norm; 0 = no clipping.")




BOUND_ATTR = "_cardloop_bound_to"


def check_bound(optimizer, model) -> None:
    """The optimizer must hold only this model's parameters (docs/design.md §2); a checked pair is remembered."""
    sizes = tuple(len(group["params"]) for group in optimizer.param_groups)
    if getattr(optimizer, BOUND_ATTR, None) == (id(model), sizes):
        return
    model_params = {id(p) for p in model.parameters()}
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            if id(parameter) not in model_params:
                raise CardError("the optimizer is not bound to this model's parameters; connect the optimizer "
                                "made by training_init_optimizer from the same model")
    setattr(optimizer, BOUND_ATTR, (id(model), sizes))


@card(
    "training_optimizer_step",
    title="Optimizer Step",
    category="training",
    description="Clip the global gradient norm if asked, then update the parameters.",
    inputs=[Port("optimizer", OPTIMIZER, "Optimizer."), Port("model", MODEL, "Model with gradients.")],
    outputs=[Port("model", MODEL, "Updated model.", state_of="model"),
             Port("optimizer", OPTIMIZER, "Updated optimizer.", state_of="optimizer"),
             Port("step_info", INFO, "Step information.")],
    config=OptimizerStepConfig,
    mutates_state=True,
)
def optimizer_step(config: OptimizerStepConfig, optimizer, model) -> dict:
    import torch

    check_bound(optimizer, model)
    info: dict = {"gradient_clip": config.gradient_clip, "clipped": False}
    if config.gradient_clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.gradient_clip).item()
        info["grad_norm"] = norm
        info["clipped"] = norm > config.gradient_clip
    optimizer.step()
    steps = getattr(optimizer, STEPS_ATTR, 0) + 1
    setattr(optimizer, STEPS_ATTR, steps)
    info["step"] = steps
    info["learning_rate"] = optimizer.param_groups[0]["lr"]
    return {"model": model, "optimizer": optimizer, "step_info": info}
