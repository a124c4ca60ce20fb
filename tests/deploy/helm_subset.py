"""Render the chart's Helm templates without `helm`, for tests.

No helm binary is installable here (not in Debian, no PyPI package ships one), so the
chart keeps to a small subset of Go templates, and this module translates exactly that
subset to Jinja2 and renders it. Anything outside the subset raises, which keeps the
chart inside it. The subset, with Go semantics:

- actions `{{ … }}` with `{{-` / `-}}` trimming, comments `{{/* … */}}`;
- `if PIPELINE` / `else` / `end`, `range $v := PIPELINE`, `range $k, $v := PIPELINE`
  (maps iterate in key order, as in Go);
- references `.Values.a.b`, `.Release.Name`, `.Chart.Version` (outside `range` only,
  where `.` is still the root), `$.Values…` anywhere, `$var.field`;
- string and integer literals, functions `not`, `quote`, `toYaml`, `nindent N`,
  `indent N`, `sha256sum`, and pipelines `X | f a` (= `f a X`).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import jinja2
import yaml

ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)
TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\S+')
REF = re.compile(r"^(\$[A-Za-z_]\w*|\$|)((?:\.[A-Za-z_][\w]*)*)$")
FUNCTIONS = {"not", "quote", "toYaml", "nindent", "indent", "sha256sum"}


class Unsupported(ValueError):
    """A template uses something outside the supported subset."""


def _to_yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True).rstrip("\n")


def _quote(value: Any) -> str:
    text = "" if value is None else str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _indent(n: int, text: str) -> str:
    pad = " " * int(n)
    return "\n".join(pad + line for line in str(text).split("\n"))


def _nindent(n: int, text: str) -> str:
    return "\n" + _indent(n, text)


def _sha256sum(text: str) -> str:
    return hashlib.sha256(str(text).encode()).hexdigest()


def _get(base: Any, *fields: str) -> Any:
    """Go's field lookup: a missing map key is nil; a field of nil is an error."""
    value = base
    for i, field in enumerate(fields):
        if not isinstance(value, dict):
            path = ".".join(fields[:i]) or "."
            raise Unsupported(f"{path} is {value!r}: cannot take .{field} of it")
        value = value.get(field)
    return value


def _finalize(value: Any) -> Any:
    if value is None:
        raise Unsupported("a template prints a missing value (helm would print <no value>)")
    return value


def _go_not(value: Any) -> bool:
    return not value


GLOBALS = {
    "f_get": _get,
    "f_not": _go_not,
    "f_quote": _quote,
    "f_toYaml": _to_yaml,
    "f_nindent": _nindent,
    "f_indent": _indent,
    "f_sha256sum": _sha256sum,
}


def _reference(token: str, in_range: bool, local_vars: set[str]) -> str:
    match = REF.match(token)
    if not match or token == "":
        raise Unsupported(f"not a reference: {token!r}")
    var, path = match.groups()
    fields = [f for f in path.split(".") if f]
    if var == "":
        # `.X`: the root outside range; inside range `.` is the element, which we don't use.
        if in_range:
            raise Unsupported(f"{token}: inside range `.` is the element; write $.{path[1:]}")
        if not fields:
            raise Unsupported("bare `.`")
        base = "root"
    elif var == "$":
        base = "root"
    else:
        name = var[1:]
        if name not in local_vars:
            raise Unsupported(f"undefined variable {var}")
        base = "v_" + name
    if not fields:
        return base
    return f"f_get({base}, {', '.join(repr(f) for f in fields)})"


def _operand(token: str, in_range: bool, local_vars: set[str]) -> str:
    if token.startswith('"'):
        return token
    if re.fullmatch(r"-?\d+", token):
        return token
    if token in ("true", "false"):
        return token.capitalize()
    return _reference(token, in_range, local_vars)


def _command(tokens: list[str], piped: str | None, in_range: bool, local_vars: set[str]) -> str:
    head, *args = tokens
    if head in FUNCTIONS:
        operands = [_operand(a, in_range, local_vars) for a in args]
        if piped is not None:
            operands.append(piped)
        return f"f_{head}({', '.join(operands)})"
    if args or piped is not None:
        raise Unsupported(f"unknown function {head!r}")
    return _operand(head, in_range, local_vars)


def _pipeline(text: str, in_range: bool, local_vars: set[str]) -> str:
    if "(" in text or ")" in text:
        raise Unsupported(f"parenthesised expressions: {text!r}")
    value: str | None = None
    for segment in re.split(r"\s\|\s", text):
        tokens = TOKEN.findall(segment)
        if not tokens:
            raise Unsupported(f"empty pipeline segment in {text!r}")
        value = _command(tokens, value, in_range, local_vars)
    assert value is not None
    return value


def translate(source: str) -> str:
    """Go template (the subset above) -> Jinja2 source."""
    out: list[str] = []
    stack: list[tuple[str, list[str]]] = []  # (block kind, variables it declared)
    local_vars: set[str] = set()
    pos = 0
    for match in ACTION.finditer(source):
        literal = source[pos : match.start()]
        if "{%" in literal or "{#" in literal or "{{" in literal:
            raise Unsupported("Jinja syntax in literal text")
        out.append(literal)
        pos = match.end()
        left, body, right = match.groups()
        in_range = any(kind == "for" for kind, _ in stack)
        if body.startswith("/*"):
            if not body.endswith("*/"):
                raise Unsupported("unterminated comment")
            out.append("{#" + left + " " + right + "#}")
            continue
        word = body.split(None, 1)[0] if body else ""
        if word == "if":
            cond = _pipeline(body[2:].strip(), in_range, local_vars)
            out.append(f"{{%{left} if {cond} {right}%}}")
            stack.append(("if", []))
        elif word == "else":
            if body != "else" or not stack or stack[-1][0] != "if":
                raise Unsupported(f"unsupported else: {body!r}")
            out.append(f"{{%{left} else {right}%}}")
        elif word == "range":
            m = re.fullmatch(r"range\s+(\$\w+)(?:\s*,\s*(\$\w+))?\s*:=\s*(.+)", body)
            if not m:
                raise Unsupported(f"range needs `$v :=` or `$k, $v :=`: {body!r}")
            first, second, expr = m.groups()
            seq = _pipeline(expr, in_range, local_vars)
            names = [first[1:]] + ([second[1:]] if second else [])
            if second:
                target = f"v_{names[0]}, v_{names[1]}"
                seq = f"({seq}).items() | sort"
            else:
                target = f"v_{names[0]}"
            out.append(f"{{%{left} for {target} in {seq} {right}%}}")
            local_vars.update(names)
            stack.append(("for", names))
        elif word == "end":
            if body != "end" or not stack:
                raise Unsupported("unbalanced end")
            kind, names = stack.pop()
            local_vars.difference_update(names)
            out.append(f"{{%{left} end{kind} {right}%}}")
        elif word in ("define", "template", "include", "with", "block", "tpl", "lookup"):
            raise Unsupported(f"{word} is outside the supported subset")
        else:
            out.append(f"{{{{{left} {_pipeline(body, in_range, local_vars)} {right}}}}}")
    if stack:
        raise Unsupported("unclosed block")
    tail = source[pos:]
    if "{%" in tail or "{#" in tail or "{{" in tail:
        raise Unsupported("Jinja syntax in literal text")
    out.append(tail)
    return "".join(out)


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def render_chart(
    chart_dir: Path, overrides: dict | None = None, release: str = "vera"
) -> dict[str, str]:
    """Render every template like `helm template RELEASE CHART`: {template name: text}."""
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    values = _merge(yaml.safe_load((chart_dir / "values.yaml").read_text()), overrides or {})
    root = {
        "Values": values,
        "Release": {"Name": release, "Namespace": "default", "Service": "Helm"},
        "Chart": {
            "Name": chart["name"],
            "Version": chart["version"],
            "AppVersion": chart.get("appVersion", ""),
        },
    }
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        finalize=_finalize,
    )
    env.globals.update(GLOBALS)
    rendered = {}
    for path in sorted((chart_dir / "templates").glob("*.yaml")):
        template = env.from_string(translate(path.read_text()))
        rendered[path.name] = template.render(root=root)
    return rendered


def documents(rendered: dict[str, str]) -> list[tuple[str, dict]]:
    """(template name, manifest) for every non-empty YAML document rendered."""
    docs = []
    for name, text in rendered.items():
        for doc in yaml.safe_load_all(text):
            if doc is not None:
                docs.append((name, doc))
    return docs
