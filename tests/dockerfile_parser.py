"""A small parser of Dockerfile instructions, written from docker's documented rules.

Lines are joined on a trailing escape character (`\\`), comment lines (`#` first) and blank lines
are dropped, also inside continuations, and each logical line is an instruction word and its
rest. `RUN`/`ENTRYPOINT`/`COPY` arrays are read as JSON, `ENV`/`LABEL` pairs with the word
lexer's double-quote rules (`\\"`, `\\$` and `\\\\` are escapes; other backslashes stay; an
unescaped `$` is an expansion). Tests use it to show that no value can add an instruction.
"""

from __future__ import annotations

import json


def instructions(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    current = ""
    for raw in text.split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
        stripped = line.lstrip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        body = line.rstrip()
        if body.endswith("\\"):
            current += body[:-1]
            continue
        logical = (current + line).strip()
        current = ""
        if not logical:
            continue
        word, _, rest = logical.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not current, "dangling continuation"
    return out


def words(text: str) -> list[str]:
    return [w for w, _ in instructions(text)]


def flags_and_json(rest: str) -> tuple[list[str], list[str]]:
    """The `--flag`s before a JSON array, and the array."""
    flags = []
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        flags.append(flag)
        rest = rest.lstrip()
    value = json.loads(rest)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), rest
    return flags, value


def quoted_pairs(rest: str) -> list[tuple[str, str]]:
    """`k="v" k2="v2"` as docker's word lexer reads them; fails on anything else."""
    out = []
    i = 0
    while i < len(rest):
        if rest[i].isspace():
            i += 1
            continue
        eq = rest.index("=", i)
        key = rest[i:eq]
        assert rest[eq + 1] == '"', f"value of {key} is not double-quoted"
        i = eq + 2
        value = []
        while True:
            c = rest[i]
            if c == '"':
                i += 1
                break
            assert c != "$", f"unescaped $ in {key}"
            if c == "\\" and rest[i + 1] in '"$\\':
                value.append(rest[i + 1])
                i += 2
                continue
            value.append(c)
            i += 1
        out.append((key, "".join(value)))
    return out
