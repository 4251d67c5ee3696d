"""TaoHighlight as a model family (hl_jax.core.families): configs/taohighlight.py."""

from hl_jax.core import families
from hl_jax.taohighlight import schema
from hl_jax.taohighlight import scoring
from hl_jax.taohighlight import trainer

FAMILY = families.Family(
    name="taohighlight",
    schema=schema.SCHEMA,
    checks=schema.CHECKS,
    resumable=schema.RESUMABLE,
    added=schema.ADDED,
    irrelevant=schema.irrelevant,
    make_trainer=trainer.Trainer,
    num_input_shards=lambda config: 1,
    load_scorer=scoring.load_scorer,
)
