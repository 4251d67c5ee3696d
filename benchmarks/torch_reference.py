r"""hl_jax's train step against the same step written plainly in PyTorch.

  pip install torch==2.13.0   # the `bench` extra; CPU wheel on CPU hosts
  python -m benchmarks.torch_reference --output=/tmp/hl_jax_bench/torch_reference.json

The PyTorch step is the same computation as `trainer.make_train_step`
(hl_jax.less_is_more) for the joint model (`train.weighting` softmax) and for
Ranking-D (ranking_d): m x n (short, long) pairs sampled uniformly
inside the step from a resident [C, D] table (`torch.randint` + indexing, as
`sample_pairs` / `gather_features` do), f = Linear(D, 512) ReLU Dropout
Linear(512, 128) ReLU Dropout Linear(128, 1) on both segments, h the same on
the concatenated [2D] pair, pair weights softmax(h) per group (1/n for
ranking_d), hinge with margin 1, the mean over groups, then AdamW with the
config's learning rate and weight decay (optax's and torch's AdamW are the
same update: decoupled decay times the learning rate, eps 1e-8 outside the
square root). It does not check for non-finite gradients (hl_jax's step does,
with a select over the state), so it does a little less work.

Each batch size is timed for hl_jax (jax.jit), PyTorch eager and PyTorch with
`torch.compile` of the loss (forward and backward through AOTAutograd) and of
the optimizer step; a compile failure is caught and reported. All probes are
sampled round-robin (jax, torch eager, torch compiled, jax, ...) and the
median of `--rounds` samples is reported with the ratio to hl_jax.
"""

from __future__ import annotations

import os
import traceback

from absl import app
from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags
import numpy as np
import torch
from torch import nn

from benchmarks import harness

_CONFIG = config_flags.DEFINE_config_file("config", "configs/joint.py", "Base config.")
_DIM = flags.DEFINE_integer("dim", 1024, "Feature dim D of the random table.")
# train.weighting -> whether the step has h (softmax(h) per group; ranking_d: 1/n).
WEIGHTINGS = {"softmax": True, "ranking_d": False}
_WEIGHTINGS = flags.DEFINE_list(
    "weightings", ["softmax"], f"Pair weightings timed, of {list(WEIGHTINGS)}."
)
_NUM_GROUPS = flags.DEFINE_list(
    "num_groups", ["256", "512", "1024", "2048", "4096"], "Batch sweep: m values."
)
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Round-robin rounds (median taken).")
_MIN_SECONDS = flags.DEFINE_float("min_seconds", 1.5, "Length of one sample.")
_PAUSE = flags.DEFINE_float(
    "pause",
    0.5,
    "Sleep before each sample (s), so " "the other framework's spinning threads go idle.",
)
_COMPILE = flags.DEFINE_bool("compile", True, "Also time torch.compile.")
_OUTPUT = flags.DEFINE_string("output", "", "JSON output path.")


class MLP(nn.Module):
  """Linear -> ReLU -> Dropout per hidden width, then Linear to 1 (flax's MLP)."""

  def __init__(self, dim: int, hidden: tuple[int, ...], dropout: float):
    super().__init__()
    layers, width = [], dim
    for out in hidden:
      layers += [nn.Linear(width, out), nn.ReLU(), nn.Dropout(dropout)]
      width = out
    layers.append(nn.Linear(width, 1))
    self.net = nn.Sequential(*layers)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.net(x)[..., 0]


class TorchStep:
  """The Less-is-More step in PyTorch, on a resident table of tensors."""

  def __init__(self, config: ml_collections.ConfigDict, table, dim: int, compiled: bool):
    torch.manual_seed(config.seed)
    self.m, self.n = config.train.num_groups, config.train.group_size
    self.margin = config.train.margin
    if config.train.weighting not in WEIGHTINGS:
      raise ValueError(
          f"train.weighting {config.train.weighting!r}: the PyTorch step has "
          f"only {list(WEIGHTINGS)}"
      )
    self.joint = WEIGHTINGS[config.train.weighting]
    model = config.model
    self.f = MLP(dim, tuple(model.scorer_hidden), model.dropout)
    modules = [self.f]
    if self.joint:
      self.h = MLP(2 * dim, tuple(model.weigher_hidden), model.dropout)
      modules.append(self.h)
    for module in modules:
      module.train()
    self.params = [p for module in modules for p in module.parameters()]
    self.opt = torch.optim.AdamW(
        self.params,
        lr=config.train.learning_rate,
        weight_decay=config.train.weight_decay,
        betas=(0.9, 0.999),
        eps=1e-8,
    )
    self.features = torch.from_numpy(np.asarray(table.features[0]))
    self.short_index = torch.from_numpy(np.asarray(table.short_index[0])).long()
    self.long_index = torch.from_numpy(np.asarray(table.long_index[0])).long()
    self.num_short = int(table.num_short[0])
    self.num_long = int(table.num_long[0])
    self.loss = self._loss
    self.opt_step = self.opt.step
    if compiled:
      self.loss = torch.compile(self._loss)
      self.opt_step = torch.compile(self.opt.step)

  def _loss(self) -> torch.Tensor:
    shape = (self.m, self.n)
    i = torch.randint(0, self.num_short, shape)
    j = torch.randint(0, self.num_long, shape)
    x_short = self.features[self.short_index[i]]  # [m, n, D]
    x_long = self.features[self.long_index[j]]
    f_short, f_long = self.f(x_short), self.f(x_long)
    pair_loss = torch.relu(self.margin - f_short + f_long)
    if self.joint:
      logits = self.h(torch.cat([x_short, x_long], dim=-1))
      weights = torch.softmax(logits, dim=-1)
    else:
      weights = torch.full_like(pair_loss, 1.0 / self.n)
    return torch.sum(weights * pair_loss, dim=-1).mean()

  def step(self) -> torch.Tensor:
    self.opt.zero_grad(set_to_none=True)
    loss = self.loss()
    loss.backward()
    self.opt_step()
    return loss

  def run(self, k: int) -> None:
    for _ in range(k):
      loss = self.step()
    if not torch.isfinite(loss):
      raise FloatingPointError("non-finite torch loss")


def thread_settings() -> dict:
  """Both frameworks' CPU thread pools, for the report."""
  info = torch.__config__.parallel_info().splitlines()
  return {
      "torch_num_threads": torch.get_num_threads(),
      "torch_num_interop_threads": torch.get_num_interop_threads(),
      "torch_parallel_info": [line for line in info if line.strip()],
      "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS", ""),
      "jax_cpu": (
          "XLA:CPU runs each op on its own intra-op thread pool of one "
          "thread per core (no JAX API reports it; XLA_FLAGS="
          f"{os.environ.get('XLA_FLAGS', '')!r})"
      ),
      "sched_affinity_cpus": len(os.sched_getaffinity(0)),
  }


def main(argv):
  del argv
  base, dim = _CONFIG.value, _DIM.value
  n = base.train.group_size
  sweep = [int(m) for m in _NUM_GROUPS.value]
  results = {
      "machine": harness.machine(),
      "torch": torch.__version__,
      "threads": thread_settings(),
      "feature_dim": dim,
      "group_size": n,
      "table_segments": base.input.table_segments,
      "compile_errors": {},
  }
  results["machine"]["torch"] = torch.__version__
  host_table = harness.random_table(base.input.table_segments, dim)
  table = harness.device_table(base, dim, host_table)
  cases = []  # (weighting, m, {impl: probe})
  for weighting in _WEIGHTINGS.value:
    for m in sweep:
      config = harness.weighting_config(base, weighting, m)
      pairs = m * n
      probes = {"hl_jax": harness.step_probe(f"hl_jax {weighting} m={m}", config, table, dim)}
      eager = TorchStep(config, host_table, dim, compiled=False)
      probes["torch eager"] = harness.Probe(f"torch eager {weighting} m={m}", eager.run, pairs)
      if _COMPILE.value:
        try:
          compiled = TorchStep(config, host_table, dim, compiled=True)
          compiled.run(2)  # Compiles here, so a failure is caught here.
          probes["torch.compile"] = harness.Probe(
              f"torch.compile {weighting} m={m}", compiled.run, pairs
          )
        except Exception as e:  # pylint: disable=broad-except
          message = "".join(traceback.format_exception_only(type(e), e)).strip()
          results["compile_errors"][f"{weighting} m={m}"] = message
          logging.warning("torch.compile failed for %s m=%d: %s", weighting, m, message)
      cases.append((weighting, m, probes))
  harness.round_robin(
      [p for _, _, probes in cases for p in probes.values()],
      _ROUNDS.value,
      _MIN_SECONDS.value,
      _PAUSE.value,
  )

  impls = ["hl_jax", "torch eager"] + (["torch.compile"] if _COMPILE.value else [])
  header = " | ".join(f"{i} pairs/s" for i in impls)
  ratios = " | ".join(f"hl_jax / {i}" for i in impls[1:])
  lines = [
      f"| weighting | m x n | {header} | {ratios} |",
      "|---|---|" + "---:|" * (2 * len(impls) - 1),
  ]
  results["cases"] = []
  for weighting, m, probes in cases:
    rates = {name: p.median() for name, p in probes.items()}
    row = {
        "weighting": weighting,
        "num_groups": m,
        "pairs_per_second": rates,
        "samples": {name: p.samples for name, p in probes.items()},
        "hl_jax_over": {name: rates["hl_jax"] / r for name, r in rates.items() if name != "hl_jax"},
        # Sample r of each probe ran back to back: the per-round ratios.
        "hl_jax_over_per_round": {
            name: [a / b for a, b in zip(probes["hl_jax"].samples, p.samples)]
            for name, p in probes.items()
            if name != "hl_jax"
        },
    }
    results["cases"].append(row)
    cells = [f"{rates[i]:,.0f}" if i in rates else "failed" for i in impls]
    ratio_cells = [f"{row['hl_jax_over'][i]:.2f}" if i in rates else "-" for i in impls[1:]]
    lines.append(
        f"| {weighting} | {m} x {n} | {' | '.join(cells)} | " f"{' | '.join(ratio_cells)} |"
    )
  threads = results["threads"]
  print(
      f"\nhl_jax (jax {results['machine']['jax']}) against PyTorch "
      f"{torch.__version__}, D={dim}, hidden {tuple(base.model.scorer_hidden)}, "
      f"table {base.input.table_segments} rows; torch threads "
      f"{threads['torch_num_threads']} (interop "
      f"{threads['torch_num_interop_threads']}), XLA:CPU one thread per core "
      f"({threads['sched_affinity_cpus']}):\n"
  )
  print("\n".join(lines))
  print("\nPer-round ratios (hl_jax sample / the torch sample after it), " "min..max:")
  for row in results["cases"]:
    spans = ", ".join(
        f"{name} {min(r):.2f}..{max(r):.2f}" for name, r in row["hl_jax_over_per_round"].items()
    )
    print(f"- {row['weighting']} m={row['num_groups']}: {spans}")
  for case, error in results["compile_errors"].items():
    print(f"\ntorch.compile failed for {case}: {error}")
  harness.finish(results, _OUTPUT.value)


if __name__ == "__main__":
  app.run(main)
