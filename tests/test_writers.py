"""Metric writers write files only; library INFO chatter stays out of the log."""

import json
import logging

import pytest

from hl_jax.core import writers


def test_chief_writes_jsonl_and_tensorboard_and_logs_nothing(tmp_path, caplog):
  writer = writers.create_writer(str(tmp_path), is_chief=True)
  with caplog.at_level(logging.INFO):
    writer.write_scalars(5, {"train/loss": 1.5})
    writer.flush()
  writer.close()
  rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert [(r["step"], r["train/loss"]) for r in rows] == [(5, 1.5)]
  assert list((tmp_path / "tensorboard").iterdir())
  assert "train/loss" not in caplog.text  # The trainer's own line is the log.


def test_other_hosts_write_nothing(tmp_path, caplog):
  writer = writers.create_writer(str(tmp_path / "workdir"), is_chief=False)
  with caplog.at_level(logging.INFO):
    writer.write_scalars(5, {"train/loss": 1.5})
    writer.write_hparams({"seed": 0})
    writer.flush()
  writer.close()
  assert not (tmp_path / "workdir").exists()
  assert not caplog.text


def _record(level, pathname, message, name="absl"):
  return logging.LogRecord(name, level, pathname, 1, message, None, None)


@pytest.mark.parametrize(
    "record, shown",
    [
        (_record(logging.INFO, "/x/tensorflow_datasets/core/writer.py", "Done writing"), False),
        (_record(logging.INFO, "/x/apache_beam/runners/x.py", "Running"), False),
        (_record(logging.INFO, "/x/orbax/checkpoint/x.py", "Saving"), False),
        (_record(logging.WARNING, "/x/tensorflow_datasets/core/x.py", "Disk full"), True),
        (
            _record(
                logging.INFO,
                "/x/jax/_src/xla_bridge.py",
                "Unable to initialize backend 'tpu': INTERNAL: Failed to open libtpu.so",
                name="jax._src.xla_bridge",
            ),
            False,
        ),
        (
            _record(
                logging.INFO,
                "/x/jax/_src/xla_bridge.py",
                "Unable to initialize backend 'cuda': no devices",
                name="jax._src.xla_bridge",
            ),
            True,
        ),
        (_record(logging.INFO, "/repo/hl_jax/less_is_more/trainer.py", "step 5/20 loss 1.0"), True),
    ],
)
def test_quiet_filter(record, shown):
  assert writers._QuietLibraries().filter(record) == shown  # pylint: disable=protected-access
