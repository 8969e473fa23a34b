"""The command line's subcommands: each parses its arguments, calls the library and prints."""

from __future__ import annotations

import argparse
import json


def key_value(text: str) -> tuple[str, object]:
    """argparse type of `-o KEY=VALUE`: the value read as JSON when it parses (numbers, true/false, lists),
    else kept as text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value
