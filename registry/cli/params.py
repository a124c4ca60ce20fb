"""Click types for user ids, adapter and alias names and tags: the registry's own rules
(registry/names.py), checked before anything is sent."""

from __future__ import annotations

import click

from registry import names


class Identifier(click.ParamType):
    def __init__(self, kind, name: str) -> None:
        self.kind = kind
        self.name = name

    def convert(self, value, param, ctx) -> str:
        problem = names.problem(self.kind, value)
        if problem is not None:
            self.fail(problem, param, ctx)
        return value


USER_ID = Identifier(names.UserId, "user id")
ADAPTER_NAME = Identifier(names.AdapterName, "adapter name")
ALIAS_NAME = Identifier(names.AliasName, "alias name")
TAG = Identifier(names.Tag, "tag")
