"""gs:// workdirs and data against a local GCS emulator (tests/gcs_emulator.py).

One test per client the project's gs:// paths go through: etils.epath (via
gcsfs) for files, tensorstore for arrays, Orbax for checkpoints (both of those),
array_record and TFDS + Grain for data. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import sys

from etils import epath
import fsspec
import jax
import numpy as np
import pytest

import gcs_emulator

gcs_server = gcs_emulator.gcs_server  # The fixtures, by the names tests ask for.
gcs_bucket = gcs_emulator.gcs_bucket


def test_clients_resolve_to_the_emulator(gcs_server):  # pylint: disable=redefined-outer-name
  from google.auth import credentials  # pylint: disable=g-import-not-at-top
  from google.cloud import storage  # pylint: disable=g-import-not-at-top

  fs = fsspec.filesystem("gs")
  assert (fs.base, fs.credentials.token) == (f"{gcs_server.endpoint}/storage/v1/", "anon")
  client = storage.Client()  # Orbax's bucket queries
  assert client.api_endpoint == gcs_server.endpoint
  assert isinstance(client._credentials, credentials.AnonymousCredentials)  # pylint: disable=protected-access


def test_epath_round_trip(gcs_server, gcs_bucket):  # pylint: disable=redefined-outer-name
  run = epath.Path(gcs_bucket) / "run"
  run.mkdir(parents=True, exist_ok=True)
  assert not run.exists()  # GCS has no folders: one exists once a file is in it
  (run / "config.json").write_text('{"lr": 0.1}')
  assert run.is_dir() and (run / "config.json").is_file()
  assert (run / "config.json").read_text() == '{"lr": 0.1}'
  bucket = gcs_bucket.removeprefix("gs://")
  assert f"POST /upload/storage/v1/b/{bucket}/o" in "\n".join(gcs_server.request_lines())

  (run / "metrics").mkdir()
  (run / "metrics" / "train.jsonl").write_text("1\n")
  assert sorted(p.name for p in run.iterdir()) == ["config.json", "metrics"]
  assert [p.name for p in run.glob("*.json")] == ["config.json"]
  assert [os.fspath(p) for p in run.glob("*/*.jsonl")] == [f"{gcs_bucket}/run/metrics/train.jsonl"]

  # The write-then-rename pattern. On GCS a rename is copy + delete, not atomic.
  (run / "config.json.tmp").write_text('{"lr": 0.2}')
  (run / "config.json.tmp").replace(run / "config.json")
  assert (run / "config.json").read_text() == '{"lr": 0.2}'
  assert not (run / "config.json.tmp").exists()
  (run / "other.json").write_text("{}")
  with pytest.raises(FileExistsError):
    (run / "other.json").rename(run / "config.json")
  (run / "other.json").rename(run / "renamed.json")
  assert sorted(p.name for p in run.iterdir()) == ["config.json", "metrics", "renamed.json"]

  (run / "renamed.json").unlink()
  assert not (run / "renamed.json").exists()
  run.rmtree()
  assert not run.exists()
  assert list(epath.Path(gcs_bucket).iterdir()) == []


def test_append_mode_overwrites_on_gcs(gcs_bucket):  # pylint: disable=redefined-outer-name
  # GCS objects are immutable: gcsfs turns "a" into "w" with a warning, so a
  # history file must be rewritten whole, never appended to.
  history = epath.Path(gcs_bucket) / "history.jsonl"
  for line in ("1\n", "2\n"):
    with pytest.warns(UserWarning, match="Append mode"), history.open("a") as f:
      f.write(line)
  assert history.read_text() == "2\n"


def test_exclusive_create_refuses_a_second_writer(gcs_bucket):  # pylint: disable=redefined-outer-name
  # A lock file: create-if-absent is an upload with ifGenerationMatch=0.
  fs = fsspec.filesystem("gs")
  lock = f"{gcs_bucket}/run/lock"
  fs.pipe(lock, b"host 0", mode="create")
  with pytest.raises(FileExistsError):
    fs.pipe(lock, b"host 1", mode="create")
  assert epath.Path(lock).read_bytes() == b"host 0"


def test_a_subprocess_inherits_the_emulator_and_is_seen(gcs_bucket):  # pylint: disable=redefined-outer-name
  run = epath.Path(gcs_bucket) / "run"
  (run / "host0.txt").write_text("0")
  assert [p.name for p in run.iterdir()] == ["host0.txt"]
  write = "import sys; from etils import epath; epath.Path(sys.argv[1]).write_text('1')"
  subprocess.run(
      [sys.executable, "-c", write, os.fspath(run / "host1.txt")], check=True, timeout=120
  )
  # With gcsfs's listings cache on, this process would not see the new file.
  assert (run / "host1.txt").read_text() == "1"
  assert sorted(p.name for p in run.iterdir()) == ["host0.txt", "host1.txt"]


def test_tensorstore_gcs_kvstore_and_zarr(gcs_bucket):  # pylint: disable=redefined-outer-name
  ts = pytest.importorskip("tensorstore")
  kv = ts.KvStore.open(f"{gcs_bucket}/kv/").result()
  kv.write("a", b"alpha").result()
  assert kv.read("a").result().value == b"alpha"
  assert kv.list().result() == [b"a"]
  values = np.arange(6, dtype=np.float32).reshape(2, 3)
  spec = {"driver": "zarr", "kvstore": f"{gcs_bucket}/zarr/"}
  created = ts.open(
      {**spec, "metadata": {"shape": [2, 3], "chunks": [1, 3], "dtype": "<f4"}}, create=True
  ).result()
  created.write(values).result()
  np.testing.assert_array_equal(ts.open(spec).result().read().result(), values)
  # The same bucket, seen through epath: tensorstore talked to the emulator.
  assert epath.Path(gcs_bucket, "kv", "a").read_bytes() == b"alpha"
  assert sorted(p.name for p in epath.Path(gcs_bucket, "zarr").iterdir()) == [
      ".zarray",
      "0.0",
      "1.0",
  ]


def test_orbax_checkpoint_manager(gcs_bucket):  # pylint: disable=redefined-outer-name
  ocp = pytest.importorskip("orbax.checkpoint")
  directory = epath.Path(gcs_bucket) / "run" / "checkpoints"
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  rows = 2 * jax.device_count()

  def state(step):
    w = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3) * step
    return {"w": jax.device_put(w, sharding), "step": step}

  manager = ocp.CheckpointManager(
      directory,
      options=ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=True),
  )
  for step in (1, 2, 3):
    manager.save(step, args=ocp.args.StandardSave(state(step)))
  manager.wait_until_finished()
  assert manager.all_steps() == [2, 3]
  target = jax.tree.map(ocp.utils.to_shape_dtype_struct, state(0))
  restored = manager.restore(3, args=ocp.args.StandardRestore(target))
  manager.close()
  np.testing.assert_array_equal(restored["w"], np.asarray(state(3)["w"]))
  assert restored["w"].sharding == sharding
  assert restored["step"] == 3
  # Step folders and metadata through epath; GCS has no atomic rename, so a
  # commit marker finalizes a step; the arrays went through tensorstore (OCDBT).
  assert sorted(p.name for p in directory.iterdir()) == ["2", "3"]
  assert (directory / "3" / "commit_success.txt").exists()
  assert (directory / "3" / "default" / "manifest.ocdbt").exists()
  assert ocp.CheckpointManager(directory).all_steps() == [2, 3]


def _write_array_record(path, records):
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top

  writer = array_record_module.ArrayRecordWriter(os.fspath(path), "group_size:1")
  for record in records:
    writer.write(record)
  writer.close()


def test_array_record_reads_gs_but_writes_local_only(gcs_bucket, tmp_path):  # pylint: disable=redefined-outer-name
  pytest.importorskip("array_record")
  from array_record.python import array_record_data_source  # pylint: disable=g-import-not-at-top

  local = tmp_path / "x.array_record"
  _write_array_record(local, [b"r0", b"r1", b"r2"])
  remote = epath.Path(gcs_bucket) / "data" / "x.array_record"
  remote.write_bytes(local.read_bytes())
  source = array_record_data_source.ArrayRecordDataSource([os.fspath(remote)])
  assert len(source) == 3
  assert [source[i] for i in (2, 0)] == [b"r2", b"r0"]
  with pytest.raises(RuntimeError, match="gs://"):
    _write_array_record(f"{gcs_bucket}/data/y.array_record", [b"r"])


def test_tfds_data_source_on_gs_read_by_grain(gcs_bucket, tmp_path):  # pylint: disable=redefined-outer-name
  tfds = pytest.importorskip("tensorflow_datasets")
  grain = pytest.importorskip("grain")

  class GcsToy(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self,
          features=tfds.features.FeaturesDict(
              {"x": tfds.features.Tensor(shape=(None, 3), dtype=np.float32), "i": np.int64}
          ),
      )

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples(6)}

    def _generate_examples(self, n):
      for i in range(n):
        yield i, {"x": np.full((i + 1, 3), i, np.float32), "i": i}

  # The array_record writer cannot open gs://: build locally, then upload.
  builder = GcsToy(data_dir=tmp_path, file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  fsspec.filesystem("gs").put(
      os.fspath(tmp_path / "gcs_toy"), f"{gcs_bucket}/data/gcs_toy", recursive=True
  )

  source = GcsToy(data_dir=f"{gcs_bucket}/data").as_data_source(split="train")
  examples = [source[k] for k in range(len(source))]  # in TFDS's shuffled order
  assert sorted(int(ex["i"]) for ex in examples) == list(range(6))
  for ex in examples:
    np.testing.assert_array_equal(ex["x"], np.full((ex["i"] + 1, 3), ex["i"], np.float32))
  from_directory = tfds.builder_from_directory(f"{gcs_bucket}/data/gcs_toy/1.0.0")
  assert len(from_directory.as_data_source(split="train")) == 6
  batches = list(grain.MapDataset.source(source).map(lambda ex: int(ex["i"])).batch(3))
  assert [list(b) for b in batches] == [
      [int(ex["i"]) for ex in examples[:3]],
      [int(ex["i"]) for ex in examples[3:]],
  ]


def outside_connections(strace_log: str) -> list[str]:
  """The non-loopback IP addresses in `strace -e trace=connect,sendto,sendmsg` output."""
  found = re.findall(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"', strace_log)
  addresses = [v4 or v6 for v4, v6 in found]
  return [a for a in addresses if not ipaddress.ip_address(a).is_loopback]


def test_outside_connections_parses_strace_lines():
  log = (
      'connect(3, {sa_family=AF_INET, sin_port=htons(4443), sin_addr=inet_addr("127.0.0.1")}, 16) = 0\n'
      'connect(5, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.2")}, 16) = 0\n'
      "connect(6, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), "
      'inet_pton(AF_INET6, "2001:db8::1", &sin6_addr), sin6_scope_id=0}, 28) = -1\n'
      'connect(7, {sa_family=AF_UNIX, sun_path="/run/x.sock"}, 110) = 0\n'
  )
  assert outside_connections(log) == ["10.0.0.2", "2001:db8::1"]


_TRAFFIC = """
import sys
from array_record.python import array_record_data_source
from etils import epath
import jax.numpy as jnp
import orbax.checkpoint as ocp
run = epath.Path(sys.argv[1])
(run / "config.json").write_text("{}")
assert (run / "config.json").read_text() == "{}"
manager = ocp.CheckpointManager(run / "checkpoints", options=ocp.CheckpointManagerOptions(max_to_keep=1))
for step in (1, 2):
  manager.save(step, args=ocp.args.StandardSave({"w": jnp.full(4, step, jnp.float32)}))
manager.wait_until_finished()
restored = manager.restore(2, args=ocp.args.StandardRestore({"w": jnp.zeros(4, jnp.float32)}))
assert manager.all_steps() == [2] and restored["w"].tolist() == [2.0] * 4
manager.close()
assert array_record_data_source.ArrayRecordDataSource([sys.argv[2]])[0] == b"r0"
"""


def test_no_traffic_leaves_loopback(gcs_server, gcs_bucket, tmp_path):  # pylint: disable=redefined-outer-name
  """A full round trip connects and sends only to 127.0.0.0/8 (C++ clients and DNS included)."""
  strace = shutil.which("strace")
  if (
      strace is None
      or subprocess.run([strace, "-o", os.devnull, "true"], check=False).returncode != 0
  ):
    pytest.skip("needs strace with ptrace allowed (apt-get install strace)")
  local = tmp_path / "x.array_record"
  _write_array_record(local, [b"r0"])
  records = epath.Path(gcs_bucket) / "x.array_record"
  records.write_bytes(local.read_bytes())
  log = tmp_path / "connect.log"
  done = subprocess.run(
      [
          strace,
          "-f",
          "-qq",
          "-e",
          "trace=connect,sendto,sendmsg",
          "-o",
          os.fspath(log),
          "timeout",
          "-k",
          "5",
          "240",  # inside strace, so it ends the traced process
          sys.executable,
          "-c",
          _TRAFFIC,
          f"{gcs_bucket}/run",
          os.fspath(records),
      ],
      check=False,
      capture_output=True,
      text=True,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  connects = log.read_text()
  port = gcs_server.endpoint.rsplit(":", 1)[1]
  assert f"sin_port=htons({port})" in connects  # it did talk to the emulator
  assert outside_connections(connects) == []
