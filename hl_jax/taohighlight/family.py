"""TaoHighlight as a model family (hl_jax.core.families): configs/taohighlight.py."""

from hl_jax.core import families
from hl_jax.taohighlight import schema
from hl_jax.taohighlight import scoring
from hl_jax.taohighlight import trainer

FAMILY = families.make(
    "taohighlight", schema, make_trainer=trainer.Trainer, load_scorer=scoring.load_scorer
)
