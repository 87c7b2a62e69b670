"""The part of Go's text/template that ``docker inspect --format`` is used with, for the CLI.

    render("{{range .Containers}}{{.IPv4Address}} {{end}}", network)

Supported: text and ``{{ }}`` actions with ``{{-`` / ``-}}`` trimming; fields (``.A.B``, ``.``,
``$``, ``$name.A``); string, number and boolean literals; pipelines with ``|``; ``if`` / ``else``
/ ``end``, ``range`` (with ``$key, $value :=`` or ``$value :=``) / ``else`` / ``end`` and
``with`` / ``else`` / ``end``; and the functions docker's templates offer most: ``json``,
``index``, ``len``, ``join``, ``split``, ``lower``, ``upper``, ``title``, ``print``,
``println``, ``printf`` (its verbs %s %d %v %q). Values print as Go prints the JSON it decoded:
maps as ``map[key:value]`` in key order, lists as ``[a b]``, null as ``<nil>``, a missing key
as ``<no value>``.

docker runs the template on its typed records, so a whole struct-valued field (``{{.IPAM}}``)
prints there as ``{default map[] [...]}``; here every JSON object prints as a map, which is
exact for Docker's own maps (Options, Labels, Containers) and for ``json`` of anything; and a
field the JSON leaves out (Docker's omitempty, such as an unset Gateway) prints ``<no value>``
where docker prints the field's zero value.

TODO: not the whole language: no parenthesised sub-pipelines, comparison functions (eq, ne,
lt...), ``and``/``or``/``not``, ``define``/``template``/``block``, or variable assignment
outside range; such a template is refused with a message naming what is missing.
"""

import json
import re
from collections.abc import Callable
from typing import Any

ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<raw>`[^`]*`)
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<field>(?:\$[A-Za-z0-9_]*)?(?:\.[A-Za-z0-9_]+)+|\.|\$[A-Za-z0-9_]*)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<pipe>\|)
      | (?P<declare>:=)
      | (?P<comma>,)
    )""",
    re.VERBOSE,
)


class TemplateError(ValueError):
    """The template cannot be parsed or run; the message says where and why."""


class _Missing:
    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()


# Parsing: a list of nodes, each ("text", str), ("action", pipeline) or a block.


def parse(text: str) -> list:
    """The template's nodes; raises TemplateError for what this subset does not know."""
    pieces: list[tuple[str, str]] = []
    position = 0
    for match in ACTION.finditer(text):
        before = text[position : match.start()]
        if match.group(1):
            before = before.rstrip()
        if pieces and pieces[-1][0] == "trim-next":
            pieces.pop()
            before = before.lstrip()
        pieces.append(("text", before))
        pieces.append(("action", match.group(2).strip()))
        if match.group(3):
            pieces.append(("trim-next", ""))
        position = match.end()
    rest = text[position:]
    if pieces and pieces[-1][0] == "trim-next":
        pieces.pop()
        rest = rest.lstrip()
    if "{{" in rest:
        raise TemplateError("unclosed action")
    pieces.append(("text", rest))

    nodes, ending = _parse_block(iter(pieces))
    if ending is not None:
        raise TemplateError(f"unexpected {{{{{ending}}}}}")
    return nodes


def _parse_block(pieces) -> tuple[list, str | None]:
    """Nodes up to an ``end`` or ``else`` (returned as the ending), or to the end of input."""
    nodes: list = []
    for kind, content in pieces:
        if kind == "text":
            if content:
                nodes.append(("text", content))
            continue
        if content.startswith("/*"):
            continue  # a comment
        keyword = content.split(None, 1)[0] if content else ""
        if keyword in ("end", "else"):
            return nodes, keyword
        if keyword in ("if", "with", "range"):
            nodes.append(_parse_control(keyword, content[len(keyword) :], pieces))
        elif keyword in ("define", "template", "block"):
            raise TemplateError(f"'{keyword}' is not supported")
        else:
            nodes.append(("action", _parse_pipeline(content)))
    return nodes, None


def _parse_control(keyword: str, rest: str, pieces) -> tuple:
    variables: list[str] = []
    declaration = re.match(r"\s*(\$\w*)\s*(?:,\s*(\$\w*)\s*)?:=", rest)
    if declaration:
        if keyword != "range":
            raise TemplateError(f"variables in '{keyword}' are not supported")
        variables = [name for name in declaration.groups() if name]
        rest = rest[declaration.end() :]
    pipeline = _parse_pipeline(rest)
    body, ending = _parse_block(pieces)
    otherwise: list = []
    if ending == "else":
        otherwise, ending = _parse_block(pieces)
    if ending != "end":
        raise TemplateError(f"'{keyword}' has no matching {{{{end}}}}")
    return (keyword, variables, pipeline, body, otherwise)


def _parse_pipeline(text: str) -> list[list[tuple[str, str]]]:
    """Commands separated by ``|``, each a list of (kind, token)."""
    commands: list[list[tuple[str, str]]] = [[]]
    position = 0
    text = text.strip()
    while position < len(text):
        match = TOKEN.match(text, position)
        if not match or match.end() == position:
            raise TemplateError(f"cannot parse '{text[position:]}' in '{text}'")
        position = match.end()
        kind = match.lastgroup
        if kind == "pipe":
            commands.append([])
        elif kind in ("declare", "comma"):
            raise TemplateError(f"unexpected '{match.group(kind)}' in '{text}'")
        else:
            commands[-1].append((kind, match.group(kind)))
    if not all(commands):
        raise TemplateError(f"missing value in '{text}'")
    return commands


# Running


def render(template: str | list, dot: Any) -> str:
    """The template (text or parsed nodes) applied to ``dot``."""
    nodes = parse(template) if isinstance(template, str) else template
    output: list[str] = []
    _run(nodes, dot, {"$": dot}, output)
    return "".join(output)


def _run(nodes: list, dot: Any, variables: dict[str, Any], output: list[str]) -> None:
    for node in nodes:
        kind = node[0]
        if kind == "text":
            output.append(node[1])
        elif kind == "action":
            output.append(go_string(_pipeline(node[1], dot, variables)))
        elif kind in ("if", "with"):
            _, _, pipeline, body, otherwise = node
            value = _pipeline(pipeline, dot, variables)
            if truth(value):
                _run(body, value if kind == "with" else dot, variables, output)
            else:
                _run(otherwise, dot, variables, output)
        else:
            _run_range(node, dot, variables, output)


def _run_range(node: tuple, dot: Any, variables: dict[str, Any], output: list[str]) -> None:
    _, names, pipeline, body, otherwise = node
    value = _pipeline(pipeline, dot, variables)
    if isinstance(value, dict):
        items = sorted(value.items())  # Go ranges over a map in key order
    elif isinstance(value, list):
        items = list(enumerate(value))
    elif value is None or value is MISSING:
        items = []
    else:
        raise TemplateError(f"range can't iterate over {go_string(value)}")
    if not items:
        _run(otherwise, dot, variables, output)
        return
    for key, item in items:
        scope = dict(variables)
        if len(names) == 1:
            scope[names[0]] = item
        elif len(names) == 2:
            scope[names[0]], scope[names[1]] = key, item
        _run(body, item, scope, output)


def _pipeline(commands: list, dot: Any, variables: dict[str, Any]) -> Any:
    value: Any = MISSING
    for position, command in enumerate(commands):
        piped = [value] if position else []
        value = _command(command, dot, variables, piped)
    return value


def _command(command: list, dot: Any, variables: dict[str, Any], piped: list) -> Any:
    (kind, token), *arguments = command
    if kind == "word" and token not in ("true", "false", "nil"):
        function = FUNCTIONS.get(token)
        if function is None:
            raise TemplateError(f'function "{token}" not defined')
        values = [_operand(argument, dot, variables) for argument in arguments] + piped
        try:
            return function(*values)
        except TypeError as error:
            raise TemplateError(f"wrong arguments for {token}: {error}") from error
    if arguments or piped:
        raise TemplateError(f"can't give an argument to non-function {token}")
    return _operand((kind, token), dot, variables)


def _operand(operand: tuple[str, str], dot: Any, variables: dict[str, Any]) -> Any:
    kind, token = operand
    if kind == "string":
        return json.loads(token)
    if kind == "raw":
        return token[1:-1]
    if kind == "number":
        return float(token) if "." in token else int(token)
    if kind == "word":
        return {"true": True, "false": False, "nil": None}.get(token, MISSING)
    if kind == "field":
        return _field(token, dot, variables)
    raise TemplateError(f"unexpected '{token}'")


def _field(token: str, dot: Any, variables: dict[str, Any]) -> Any:
    start, *names = token.split(".")
    if start.startswith("$"):
        if start not in variables:
            raise TemplateError(f'undefined variable "{start}"')
        value = variables[start]
    else:
        value = dot
    for name in filter(None, names):
        if isinstance(value, dict):
            value = value.get(name, MISSING)
        elif value is None or value is MISSING:
            return MISSING
        else:
            raise TemplateError(f"can't evaluate field {name} in {go_string(value)}")
    return value


def truth(value: Any) -> bool:
    """Go's truth: false, 0, nil and empty values are false."""
    return value is not MISSING and bool(value)


def go_string(value: Any) -> str:
    """``value`` as Go's fmt prints JSON it decoded (%v)."""
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_string(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_string(item) for item in value) + "]"
    return str(value)


def _json(value: Any) -> str:
    # docker's json function: no HTML escaping, no trailing newline.
    return json.dumps(
        None if value is MISSING else value, ensure_ascii=False, separators=(",", ":")
    )


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key, MISSING)
        elif isinstance(value, list) and isinstance(key, int):
            if not 0 <= key < len(value):
                raise TemplateError(f"index out of range: {key}")
            value = value[key]
        else:
            raise TemplateError(f"can't index {go_string(value)} with {go_string(key)}")
    return value


def _printf(form: str, *values: Any) -> str:
    converted = []
    for verb, value in zip(re.findall(r"%[-+# 0-9.]*([a-zA-Z%])", form), values, strict=False):
        converted.append(json.dumps(value) if verb == "q" else value)
    python_form = re.sub(r"%([-+# 0-9.]*)[vq]", r"%\1s", form)
    try:
        return python_form % tuple(
            go_string(value) if not isinstance(value, int | float) else value
            for value in converted
        )
    except (TypeError, ValueError) as error:
        raise TemplateError(f"printf {form!r}: {error}") from error


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "index": _index,
    "len": lambda value: len(value) if value not in (None, MISSING) else 0,
    "join": lambda values, separator: separator.join(go_string(v) for v in values or []),
    "split": lambda text, separator: text.split(separator),
    "lower": lambda text: go_string(text).lower(),
    "upper": lambda text: go_string(text).upper(),
    "title": lambda text: go_string(text).title(),
    "print": lambda *values: "".join(go_string(value) for value in values),
    "println": lambda *values: " ".join(go_string(value) for value in values) + "\n",
    "printf": _printf,
}
