"""Every option of ``promwire serve`` settable from a ``PROMWIRE_*`` environment variable.

:func:`environment_defaults` walks a parser's options and, for each
``--some-option`` whose variable ``PROMWIRE_SOME_OPTION`` is set, makes the
variable's value the option's default (so a flag on the command line still
wins). Values are parsed as the flag would parse them; a switch
(``--access-log``) takes ``1/true/yes/on`` or ``0/false/no/off``; a repeatable
option (``--allowed-host``) takes a comma-separated list. It is generic: a
flag added to the parser before the call gets its variable without more code.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

__all__ = ["ENV_PREFIX", "environment_defaults", "variable_name"]

ENV_PREFIX = "PROMWIRE_"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def variable_name(option: str) -> str:
    """``--tenant-header`` -> ``PROMWIRE_TENANT_HEADER``."""
    return ENV_PREFIX + option.lstrip("-").replace("-", "_").upper()


def _convert(parser: argparse.ArgumentParser, action: argparse.Action, text: str) -> object:
    kind = action.type
    try:
        value = kind(text) if callable(kind) else text
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        parser.error(f"{variable_name(action.option_strings[-1])}: invalid value {text[:60]!r}")
    if action.choices is not None and value not in action.choices:
        parser.error(
            f"{variable_name(action.option_strings[-1])}: {text[:60]!r} is not one of "
            f"{', '.join(map(str, action.choices))}"
        )
    return value


def environment_defaults(
    parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None
) -> None:
    """Set the defaults of ``parser``'s long options from ``PROMWIRE_*`` variables."""
    env = os.environ if environ is None else environ
    for action in parser._actions:  # argparse keeps its options here; no public list
        longs = [s for s in action.option_strings if s.startswith("--")]
        if not longs or action.dest in ("help", "version"):
            continue
        text = env.get(variable_name(longs[-1]))
        if text is None:
            continue
        if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
            word = text.strip().lower()
            if word not in _TRUE + _FALSE:
                parser.error(f"{variable_name(longs[-1])}: use true or false, not {text[:20]!r}")
            on = word in _TRUE
            action.default = on if isinstance(action, argparse._StoreTrueAction) else not on
        elif isinstance(action, argparse._AppendAction):
            items = [item.strip() for item in text.split(",") if item.strip()]
            action.default = [_convert(parser, action, item) for item in items]
        else:
            action.default = _convert(parser, action, text)
        action.help = (action.help or "") + f" [env {variable_name(longs[-1])}]"
