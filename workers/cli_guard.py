"""How every `hotline` command fails: one line, the right exit code, never a traceback."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def guard(*bad_input: type[Exception], label: str = "") -> Callable[[F], F]:
    """Exceptions in `bad_input` -> their message on stderr and exit 2; anything else -> one
    line naming the exception class and exit 1 (HOTLINE_DEBUG=1 shows the traceback)."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = click.get_current_context(silent=True)
            name = ctx.command_path if ctx else "hotline"
            try:
                return fn(*args, **kwargs)
            except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
                raise
            except bad_input as exc:
                click.echo(f"{name}: {label}{exc}", err=True)
                sys.exit(2)
            except KeyboardInterrupt:
                sys.exit(130)
            except Exception as exc:
                if os.environ.get("HOTLINE_DEBUG"):
                    raise
                click.echo(f"{name}: internal error ({exc.__class__.__name__}); set HOTLINE_DEBUG=1 to see details",
                           err=True)
                sys.exit(1)

        return wrapper  # type: ignore[return-value]

    return decorate
