"""The largest integers the built-in cards' config fields take: what torch and numpy accept, checked when a
pipeline is validated, so that a value that would overflow while running is an error naming card and field."""

#: Sizes, counts and indices (batch_size, layer widths, epochs, ...): torch and numpy hold them as int64.
MAX_INT64 = 2**63 - 1
#: torch.manual_seed takes an integer in [-2**63, 2**64); numpy.random.default_rng a non-negative one.
MIN_SEED, MAX_SEED = -(2**63), 2**64 - 1
#: Passes of training_loop: it lists the batch of every step before the first step, so that a count of passes
#: anywhere near MAX_INT64 would fill the memory instead of training.
MAX_EPOCHS = 1_000_000
