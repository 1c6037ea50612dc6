"""Every separation setting as options of a command, from the one table
(remote_sep/setting_table.py): ``@setting_options("separate")`` on a Typer command function
adds one option per row and hands the function ``settings`` (row name -> value, only the
options given), which ``jobs.settings.requested_settings`` checks. A new row is a new option
of every command that uses this, with no edit here.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from remote_sep.setting_table import SettingRow, rows_for

PANEL = "Separation settings (default: the host's hosts.yaml, else docs/settings.md)"
Command = TypeVar("Command", bound=Callable[..., Any])


def _option(row: SettingRow) -> Any:
    if row.flag:
        names = f"{row.option}/--no-{row.option[2:]}"
        return Annotated[bool | None, typer.Option(names, help=row.help, rich_help_panel=PANEL,
                                                   show_default=False)]
    return Annotated[row.cli_type | None, typer.Option(
        row.option, help=row.help, metavar=row.metavar, rich_help_panel=PANEL,
        show_default=False)]


def setting_options(command: str) -> Callable[[Command], Command]:
    """Decorator: FUNC(..., settings: dict[str, Any]) becomes a Typer command taking every
    setting row of COMMAND as an option."""
    rows = rows_for(command)

    def decorate(func: Command) -> Command:
        signature = inspect.signature(func, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "settings"]
        clash = {p.name for p in own} & {row.name for row in rows}
        if clash:
            raise TypeError(f"{func.__name__} declares setting options by hand: {clash}")
        added = [inspect.Parameter(row.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                   annotation=_option(row)) for row in rows]

        @functools.wraps(func)
        def command_function(*args: Any, **kwargs: Any) -> Any:
            given = {row.name: kwargs.pop(row.name, None) for row in rows}
            return func(*args, settings={k: v for k, v in given.items() if v is not None},
                        **kwargs)

        parameters = own + added
        command_function.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=_ordered(parameters))
        command_function.__annotations__ = {p.name: p.annotation for p in parameters}
        del command_function.__wrapped__  # typer must read the new signature, not func's
        return command_function  # type: ignore[return-value]
    return decorate


def _ordered(parameters: list[inspect.Parameter]) -> list[inspect.Parameter]:
    """Positional parameters first (a signature allows nothing else), the order kept."""
    positional = [p for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    return positional + [p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]
