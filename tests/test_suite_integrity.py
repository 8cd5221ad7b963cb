"""The test suite itself: its strategies draw what they claim, and its runners never pass quietly.

- No hypothesis strategy in tests/ or bench/ may draw lone surrogates unless it says so: a failure
  holding one cannot be shipped by pytest-xdist, and a text holding one cannot round-trip.
- `./dev test` and `.ci/run` fail loudly when pytest reports an INTERNALERROR or fewer finished
  tests than it collected (tests/suite_guard.py), and a failure holding a lone surrogate reaches
  the terminal as the test's own failure.
"""

import ast
import os
import re
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

SURROGATE_FREE_CATEGORIES = {"C", "Cs"}


def _literal(node):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _characters_may_draw_surrogates(call: ast.Call) -> bool:
    keywords = {k.arg: k.value for k in call.keywords}
    if "codec" in keywords and _literal(keywords["codec"]) is not None:
        return False  # any codec (utf-8, ascii, latin-1) leaves out the surrogates
    for name in ("exclude_categories", "blacklist_categories"):
        if name in keywords and SURROGATE_FREE_CATEGORIES & set(_literal(keywords[name]) or ()):
            return False
    for name in ("categories", "whitelist_categories"):
        if name in keywords and not SURROGATE_FREE_CATEGORIES & set(_literal(keywords[name]) or ("Cs",)):
            return False
    high = _literal(keywords["max_codepoint"]) if "max_codepoint" in keywords else None
    low = _literal(keywords["min_codepoint"]) if "min_codepoint" in keywords else None
    if (isinstance(high, int) and high < 0xD800) or (isinstance(low, int) and low > 0xDFFF):
        return False
    if "exclude_characters" in keywords or "blacklist_characters" in keywords:
        return True  # a few characters out says nothing about the surrogates
    return True


# Parts of a regular expression that match any character, surrogates included.
ANY_CHARACTER = re.compile(r"(?<!\\)\.|\\[WSD]|(?<!\\)\[\^")


def _regex_may_draw_surrogates(call: ast.Call) -> bool:
    if any(k.arg == "alphabet" for k in call.keywords):
        return False
    pattern = _literal(call.args[0]) if call.args else None
    if not isinstance(pattern, str):
        return True
    outside_classes = re.sub(r"(?<!\\)\[(?!\^)(?:\\.|[^\]])*\]", "", pattern)
    return bool(ANY_CHARACTER.search(outside_classes))


def _strategies_that_may_draw_surrogates(source: str, filename: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if (name == "characters" and _characters_may_draw_surrogates(node)) or (
            name == "from_regex" and _regex_may_draw_surrogates(node)
        ):
            found.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_hypothesis_strategy_draws_lone_surrogates():
    found = []
    for path in sorted([*REPO.glob("tests/**/*.py"), *REPO.glob("bench/**/*.py")]):
        found += _strategies_that_may_draw_surrogates(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    assert not found, (
        "these strategies can draw lone surrogates (U+D800..U+DFFF); give st.characters codec='utf-8' "
        "(or exclude_categories=['Cs']), and st.from_regex an alphabet=st.characters(codec='utf-8'):\n"
        + "\n".join(found)
    )


@pytest.mark.parametrize(
    "snippet",
    [
        "st.characters()",
        "st.characters(exclude_characters='x')",
        "st.characters(min_codepoint=0x100)",
        "st.text(st.characters(categories=['L', 'Cs']))",
        "st.from_regex(r'\\A.+\\Z')",
        "st.from_regex(r'[^a]')",
    ],
)
def test_the_surrogate_check_finds_strategies_that_draw_them(snippet):
    assert _strategies_that_may_draw_surrogates(snippet, "x.py")


@pytest.mark.parametrize(
    "snippet",
    [
        "st.characters(codec='utf-8')",
        "st.characters(exclude_categories=('Cs',))",
        "st.characters(blacklist_categories=('Cs',))",
        "st.characters(max_codepoint=0xFFFF, blacklist_categories=('Cs',))",
        "st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)",
        "st.characters(categories=['L', 'N'])",
        "st.from_regex(r'\\A(\\+|00|0)?[0-9 ().-]{0,18}\\Z')",
        "st.from_regex(r'\\A.+\\Z', alphabet=st.characters(codec='utf-8'))",
    ],
)
def test_the_surrogate_check_passes_strategies_without_them(snippet):
    assert not _strategies_that_may_draw_surrogates(snippet, "x.py")


# Three tests that pass, then one whose failure holds a lone surrogate. With pytest-xdist the
# failure report cannot travel to the controller ("strings must be utf-8 encodable"); without
# tests/suite_guard.py the run printed "3 passed" and exited 0.
SURROGATE_FAILURE = """
def test_a(): pass
def test_b(): pass
def test_c(): pass
def test_last_fails_with_a_lone_surrogate():
    assert "a\\ud800" == "a\\ufffd"
"""

# The same, with a failure report that no worker can ship at all (a user property that is not
# data): the guard must notice the result that never arrived.
UNSHIPPABLE_RESULT = """
def test_a(): pass
def test_b(): pass
def test_c(): pass
def test_last_has_a_result_no_worker_can_ship(record_property):
    record_property("handle", object())
"""


NESTED = "GSMGW_SUITE_INTEGRITY_NESTED"


def _run(script: str, test_file: Path) -> subprocess.CompletedProcess:
    # A script that ignored the file argument would run the whole suite, this test included,
    # which would start the script again: the marker in the environment stops that at once.
    assert NESTED not in os.environ, f"{script} ran the whole suite instead of only the file it was given"
    command = [str(REPO / "dev"), "test"] if script == "dev" else [str(REPO / script)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GSMGW_"))}
    env[NESTED] = "1"
    process = subprocess.Popen(
        [*command, str(test_file), "-p", "no:cacheprovider"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=100)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # pytest and its xdist workers share this group
        stdout, stderr = process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_dev_test_shows_a_failure_that_holds_a_lone_surrogate(tmp_path):
    test_file = tmp_path / "test_surrogate_failure.py"
    test_file.write_text(textwrap.dedent(SURROGATE_FAILURE))
    result = _run("dev", test_file)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "FAILED" in output and "test_last_fails_with_a_lone_surrogate" in output, output
    assert "1 failed, 3 passed" in output, output


@pytest.mark.parametrize("script", ["dev", ".ci/run"])
def test_a_lost_test_result_fails_the_run_loudly(tmp_path, script):
    test_file = tmp_path / "test_lost_result.py"
    test_file.write_text(textwrap.dedent(UNSHIPPABLE_RESULT))
    result = _run(script, test_file)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "INTERNALERROR" in output, output
    # How many INTERNALERRORs xdist reports, and whether the lost test was still to be scheduled,
    # depends on which worker took it; the verdict does not.
    assert re.search(r"suite guard: pytest reported \d INTERNALERROR", output), output
    assert "run FAILS" in result.stdout.splitlines()[-1], output  # after pytest's "3 passed" line
