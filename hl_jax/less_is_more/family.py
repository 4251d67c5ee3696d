"""Less-is-More as a model family (hl_jax.core.families): configs/joint.py and its kin."""

from hl_jax.core import families
from hl_jax.less_is_more import input_pipeline
from hl_jax.less_is_more import schema
from hl_jax.less_is_more import scoring
from hl_jax.less_is_more import trainer

FAMILY = families.make(
    "less_is_more",
    schema,
    make_trainer=trainer.Trainer,
    load_scorer=scoring.load_scorer,
    num_input_shards=input_pipeline.num_shards,
)
