"""The user reference in docs/ stays true to the code.

- docs/config.md lists every key gsmgw/config.py accepts, and no key it does not. The accepted
  keys are found by running the config checker itself on configs that open each section in turn
  (every mapping it checks names its allowed keys), so a key added to config.py shows up here.
- docs/api.md names every HTTP route, every field of `POST /api/v1/messages` and every Kannel
  parameter the code understands.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from gsmgw import config as gsmgw_config
from gsmgw.http import kannel, validation

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"

# ---- config keys ---------------------------------------------------------------------------

# Where in a config a mapping sits: ("key", name) steps, ("index",) for an entry of a list,
# ("name",) for an entry of a mapping of names you choose (alertmanager.receivers.<name>).


def _mappings_checked(data) -> list[tuple[str, tuple[str, ...]]]:
    """(path, allowed keys) of every mapping the checker looks at in `data`."""
    seen: list[tuple[str, tuple[str, ...]]] = []
    original = gsmgw_config._Checker.mapping

    def record(self, value, path, allowed, required=()):
        seen.append((path, tuple(allowed)))
        return original(self, value, path, allowed, required)

    gsmgw_config._Checker.mapping = record
    try:
        gsmgw_config.check_text(yaml.safe_dump(data), filename="reference.yaml", read_secrets=False)
    finally:
        gsmgw_config._Checker.mapping = original
    return seen


# Values some sections need before the checker looks at their keys: `cluster:` is read only
# beside a valid `journal:`. A section hidden behind another condition shows up as a key the
# reference documents but the checker seems not to accept: add what it needs here.
SEED = {"journal": "postgresql://gsmgw@db1/gsmgw"}


def _data_at(steps, leaf):
    data = _nested(steps, leaf)
    return {**SEED, **data} if isinstance(data, dict) else data


def _nested(steps, leaf):
    if not steps:
        return leaf
    step, rest = steps[0], _nested(steps[1:], leaf)
    return {step[1]: rest} if step[0] == "key" else [rest] if step[0] == "index" else {"x": rest}


def _path(steps, index: str, name: str) -> str:
    path = ""
    for step in steps:
        if step[0] == "key":
            path = f"{path}.{step[1]}" if path else step[1]
        else:
            path += index if step[0] == "index" else name
    return path


def _checker_path(steps) -> str:
    """As the checker names it: `modems[0].limits`, `alertmanager.receivers.x`."""
    return _path(steps, "[0]", ".x")


def _reference_path(steps) -> str:
    """As docs/config.md names it: `modems[].limits`, `alertmanager.receivers.<name>`."""
    return _path(steps, "[]", ".<name>")


def accepted_config_keys() -> set[str]:
    """Every key path config.py accepts, e.g. `modems[].limits.per_minute`."""
    keys: set[str] = set()
    todo = [()]
    while todo:
        steps = todo.pop()
        allowed = [keys_ for path, keys_ in _mappings_checked(_data_at(steps, {})) if path == _checker_path(steps)]
        assert allowed, f"the checker looked at no mapping at {_reference_path(steps) or 'the top level'}"
        for key in allowed[0]:
            step = (*steps, ("key", key))
            keys.add(_reference_path(step))
            # Is the value a mapping, a list of mappings, or a mapping of named mappings?
            for shape in ((), (("index",),), (("name",),)):
                candidate = (*step, *shape)
                if any(path == _checker_path(candidate) for path, _ in _mappings_checked(_data_at(candidate, {}))):
                    todo.append(candidate)
                    break
    return keys


def documented_config_keys() -> set[str]:
    """The first column of the tables of docs/config.md: `key.path`."""
    found = set()
    for line in (DOCS / "config.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*`([^`]+)`\s*\|", line)
        if match:
            found.add(match.group(1))
    return found


def test_the_config_reference_lists_every_key_config_py_accepts_and_no_other():
    accepted, documented = accepted_config_keys(), documented_config_keys()
    assert "modems[].limits.per_minute" in accepted and "alertmanager.receivers.<name>.to" in accepted
    missing = sorted(accepted - documented)
    assert not missing, (
        f"docs/config.md does not document these config keys: {missing}. Add a row for each to the "
        "table of its section (key, default, meaning, what a reload does)."
    )
    # Names the user chooses (groups.<name>, two_way.commands.<word>) are documented under the key
    # that holds them; anything else must be a key the checker accepts.
    extra = sorted(key for key in documented - accepted
                   if not (re.search(r"\.<\w+>$", key) and key.rsplit(".", 1)[0] in accepted))
    assert not extra, f"docs/config.md documents keys that config.py does not accept: {extra}"


# ---- HTTP and Kannel -----------------------------------------------------------------------


def _api_text() -> str:
    return (DOCS / "api.md").read_text(encoding="utf-8")


def _placeholders_as_braces(text: str) -> str:
    return re.sub(r"[{<]\w+[}>]", "{}", text)


def test_the_api_reference_names_every_http_route():
    routes = set()
    for source in (REPO / "gsmgw" / "http").glob("*.py"):
        routes |= set(re.findall(r"router\.add_\w+\((?:\"[A-Z]+\", )?\"(/[^\"]*)\"", source.read_text(encoding="utf-8")))
    assert "/api/v1/messages" in routes
    documented = _placeholders_as_braces(_api_text())
    missing = sorted(route for route in routes if _placeholders_as_braces(route) not in documented)
    assert not missing, f"docs/api.md does not describe these routes: {missing}"


def test_the_api_reference_names_every_field_and_kannel_parameter():
    rows = "\n".join(line for line in _api_text().splitlines() if line.startswith("|"))
    fields = [field for field in validation.SEND_FIELDS if f"| `{field}` |" not in rows]
    assert not fields, f"docs/api.md: POST /api/v1/messages fields without a row: {fields}"
    parameters = [name for name in kannel.PARAMETERS if f"`{name}`" not in rows]
    assert not parameters, f"docs/api.md: Kannel parameters without a row: {parameters}"


# ---- citations -----------------------------------------------------------------------------


def test_code_and_readme_cite_the_user_docs_not_the_design_documents():
    # SPOOL.md and API.md are the team's design documents, which users never see.
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "gsmgw").glob("**/*.py"))]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"(?<![\w/])(SPOOL|API)\.md|design doc", line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not found, (
        "cite docs/spool.md, docs/api.md or docs/config.md (what users can read) instead:\n" + "\n".join(found)
    )
