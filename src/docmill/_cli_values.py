"""
Option and argument values converted without pydantic.

Typer 0.29 converts every value through a pydantic ``TypeAdapter`` that it
builds on first use: importing pydantic and building the adapters costs a
one-file ``docmill extract`` more than all of its extraction work
(docs/design.md, "Start-up of the CLI"). docmill's commands take plain
values (text, whole numbers, decimals, paths, lists of them), which need no
schema. ``PlainCommand`` converts those values itself when the result is
certain to be the one Typer's own conversion gives, and hands everything
else, every value in doubt and every invalid one, to Typer, so that what is
accepted, what it becomes and the message for a bad value stay Typer's. One
deliberate difference: an empty path is refused, where Typer makes it the
current directory (`--data-dir "$UNSET"`).

The command classes here also settle how help reads on every command:
usage lines, flags, and option help quoting the settings' descriptions.

The hook rests on Typer internals (the lazily built ``_runtime_param`` of
``typer.core._TyperParameter``, and its ``type_descriptor``). Where they are
missing, a parameter is left to Typer as it is; a test then fails because a
one-file ``docmill extract`` imports pydantic again, which is how a Typer
upgrade that breaks the hook gets noticed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args, get_origin

from typer.core import TyperCommand, TyperGroup

# Numbers are converted here only in their plainest spelling (a sign, ASCII
# digits, a point), which every reading converts alike: pydantic's lax
# parsing also takes spaces, underscores and "3.0" for an int, and those go
# to Typer. The length bound keeps int() clear of its limit on long strings.
_MAX_DIGITS = 18


def _unsigned(value: str) -> str:
    return value[1:] if value[:1] in ("+", "-") else value


# ParameterInfo attributes that change a conversion, with the values under
# which the plain conversions below are Typer's. A parameter with any other
# value, or without the attribute, is Typer's to convert.
_PLAIN_INFO: dict[str, Any] = {
    "parser": None,
    "min": None,
    "max": None,
    "clamp": False,
    "allow_dash": False,
    "path_type": None,
    "resolve_path": False,
    "exists": False,
    "file_okay": True,
    "dir_okay": True,
    "writable": False,
    "readable": True,
}


class _Unsure(Exception):
    """The plain conversion cannot vouch for this value: Typer decides."""


def _to_bool(value: Any) -> bool:
    # Flags arrive as bools; text such as an environment variable's does not.
    if type(value) is not bool:
        raise _Unsure
    return value


def _to_str(value: Any) -> str:
    if type(value) is not str:
        raise _Unsure
    return value


def _to_int(value: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is not str:
        raise _Unsure
    digits = _unsigned(value)
    if not (digits.isascii() and digits.isdigit() and len(digits) <= _MAX_DIGITS):
        raise _Unsure
    return int(value)


def _to_float(value: Any) -> float:
    if type(value) is float:
        return value
    if type(value) is not str:
        raise _Unsure
    whole, _point, fraction = _unsigned(value).partition(".")
    digits = whole + fraction
    if not (digits.isascii() and digits.isdigit() and len(digits) <= _MAX_DIGITS):
        raise _Unsure
    return float(value)


def _to_path(value: Any) -> Path:
    # Typer makes the Path, then stats it: a path that exists must be
    # readable, and a NUL makes os.stat raise; both are left to Typer.
    if type(value) is not str or "\x00" in value:
        raise _Unsure
    if not value:
        # Path("") is the current directory: `--data-dir "$UNSET"` would
        # have run against whatever database is there.
        import typer

        raise typer.BadParameter("must not be empty; give . for the current directory")
    path = Path(value)
    try:
        os.stat(path)
    except OSError:
        return path
    if not os.access(path, os.R_OK):
        raise _Unsure
    return path


_CONVERSIONS: dict[Any, Callable[[Any], Any]] = {
    bool: _to_bool,
    str: _to_str,
    int: _to_int,
    float: _to_float,
    Path: _to_path,
}


class _PlainValue:
    """What Typer's runtime conversion of one parameter does, for plain values."""

    def __init__(self, convert: Callable[[Any], Any], many: bool) -> None:
        self.convert = convert
        self.many = many
        self.typer: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:
            return () if self.many else None
        try:
            if not self.many:
                return self.convert(value)
            if not isinstance(value, (list, tuple)):
                raise _Unsure
            return [self.convert(item) for item in value]
        except _Unsure:
            return self._typers(param).coerce(value, param=param, ctx=ctx)

    def _typers(self, param: Any) -> Any:
        """Typer's own conversion of this parameter, built the way it builds it."""
        if self.typer is None:
            param._runtime_param = None
            try:
                self.typer = param.get_runtime_param()
            finally:
                param._runtime_param = self
        return self.typer


def plain_value(param: Any) -> _PlainValue | None:
    """The plain conversion for ``param``; None when it is Typer's to convert."""
    if getattr(param, "_runtime_param", False) is not None:
        return None
    if not callable(getattr(param, "get_runtime_param", None)):
        return None
    descriptor: Any = getattr(param, "type_descriptor", None)
    info = getattr(descriptor, "parameter_info", None)
    if info is None or getattr(descriptor, "file_annotation", True) is not None:
        return None
    if any(
        getattr(info, name, _Unsure) != plain for name, plain in _PLAIN_INFO.items()
    ):
        return None
    annotation = getattr(descriptor, "annotation", None)
    many = bool(param.multiple) or param.nargs == -1
    if get_origin(annotation) is list:
        if not many:
            return None
        (annotation,) = get_args(annotation)
    elif many or param.nargs != 1:
        return None
    convert = _CONVERSIONS.get(annotation)
    if convert is None:
        return None
    return _PlainValue(convert, many)


def _install(command: Any, ctx: Any) -> None:
    # get_params, not params: the --help option is one too, and converted.
    for param in command.get_params(ctx):
        value = plain_value(param)
        if value is not None:
            param._runtime_param = value


def _usage_pieces(param: Any, ctx: Any) -> list[str]:
    # Typer 0.29 writes a required argument as {paths}..., a spelling of its
    # own; docmill's usage lines keep Click's, PATHS... and [PATHS]..., which
    # the README and most shell tools' help use.
    if param.param_type_name != "argument":
        pieces: list[str] = param.get_usage_pieces(ctx)
        return pieces
    name = param.metavar or param.name.upper()
    if not param.required:
        name = f"[{name}]"
    if param.nargs != 1:
        name += "..."
    return [name]


def _untype_flags(command: Any, ctx: Any) -> None:
    # Typer 0.29's rich help gives a flag a value type (--wait <bool>), as
    # if it took a value; its plain help, like Click's, shows none. A metavar
    # is what that help shows instead of the type.
    for param in command.get_params(ctx):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


class PlainCommand(TyperCommand):
    """
    A Typer command that converts plain values without pydantic.

    It also writes its usage line's arguments as Click does (``PATHS...``),
    and shows no value type for a flag.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _install(self, ctx)
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            pieces.extend(_usage_pieces(param, ctx))
        return pieces

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _untype_flags(self, ctx)
        super().format_help(ctx, formatter)


class PlainGroup(TyperGroup):
    """
    A Typer group that converts its own plain values without pydantic, and
    shows no value type for a flag.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _install(self, ctx)
        return super().parse_args(ctx, args)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _untype_flags(self, ctx)
        super().format_help(ctx, formatter)


# Help text placeholder -> the settings field whose description it stands for.
_HELP_FIELDS: dict[str, str] = {}


def settings_help(field: str) -> str:
    """
    Help for an option that sets the ``Settings`` field ``field``: its
    description and variable, once a ``SettingsHelp`` command shows it.
    """
    text = f"(env: DOCMILL_{field.upper()})"
    _HELP_FIELDS[text] = field
    return text


class SettingsHelp(PlainCommand):
    """
    A command whose option help quotes the descriptions of ``Settings`` fields.

    The descriptions are filled in when help is shown rather than when the
    command is declared, so running a command does not import
    pydantic-settings and build ``Settings`` just to describe its options.
    """

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from docmill.settings import Settings

        for param in self.params:
            field = _HELP_FIELDS.get(getattr(param, "help", None) or "")
            if field is not None:
                description = Settings.model_fields[field].description or ""
                param.help = f"{description} {param.help}"  # type: ignore[attr-defined]
        super().format_help(ctx, formatter)
