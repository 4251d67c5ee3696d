"""What hl_jax's programs share: user errors in one line.

A user error (a flag value out of range, a missing or malformed input file, a
workdir without a whole checkpoint) ends a program with ONE line on stderr,

  hl_jax.predict: error: <what, where, how to fix>

and exit status 2 for flags and usage, 1 for inputs (--verbosity=1 adds the
traceback, as for launch.py). Anything else is a bug and keeps its traceback.
A program ends with

  if __name__ == "__main__":
    _define_flags()          # flags, with cli.check(...) for their ranges
    cli.run(main, "hl_jax.predict")

and `cli.run` refuses arguments that are not flags before `main` runs.

Flag ranges are absl validators, so a bad value is refused while flags are
parsed, before any input is read: zero, negative or non-finite numbers are
never replaced by a default.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Callable, NoReturn, Sequence

from absl import app
from absl import flags
from absl import logging

# Exceptions that mean "your input is wrong" in hl_jax's libraries: each one's
# message names the file, key, line or flag at fault.
USER_ERRORS = (ValueError, KeyError, OSError)


def message(error: BaseException) -> str:
  """The error's text as one line (a KeyError's without repr's quotes)."""
  text = error.args[0] if isinstance(error, KeyError) and error.args else error
  lines = [line.strip() for line in str(text).splitlines() if line.strip()]
  return " ".join(lines) or type(error).__name__


def fail(program: str, error: BaseException | str, status: int = 1) -> NoReturn:
  """Prints `<program>: error: <message>` to stderr and exits with `status`."""
  text = error if isinstance(error, str) else message(error)
  sys.stderr.write(f"{program}: error: {text}\n")
  sys.stderr.flush()
  raise SystemExit(status)


def positive(value: float) -> bool:
  """Finite and > 0."""
  return math.isfinite(value) and value > 0


def non_negative(value: float) -> bool:
  """Finite and >= 0."""
  return math.isfinite(value) and value >= 0


def check(name: str, wants: str, ok: Callable[[Any], bool]) -> None:
  """Makes flag --`name` refuse, when parsed, a value `ok` rejects (None passes).

  Args:
    name: a defined flag.
    wants: what a good value is, for the message ("a finite number > 0").
    ok: the test of a value.
  """
  flags.register_validator(
      name, lambda value: value is None or ok(value), message=f"must be {wants}"
  )


def run(
    main: Callable[[Sequence[str]], Any],
    program: str,
    user_errors: tuple[type[BaseException], ...] = (),
) -> None:
  """`app.run(main)`, turning flag errors, arguments and user errors into one line.

  Args:
    main: the program's main(argv).
    program: its name in messages ("hl_jax.predict").
    user_errors: exception types beyond USER_ERRORS that are user errors.
  """

  def parse(argv: Sequence[str]) -> list[str]:
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      fail(program, e, 2)

  def guarded(argv: Sequence[str]) -> Any:
    try:
      if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; flags take the form --name=value")
      return main(argv)
    except (app.UsageError,) + USER_ERRORS + tuple(user_errors) as e:
      if logging.get_verbosity() >= 1:
        raise
      fail(program, e, 2 if isinstance(e, app.UsageError) else 1)

  app.run(guarded, flags_parser=parse)
