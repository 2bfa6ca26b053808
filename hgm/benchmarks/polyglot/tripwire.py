"""A static check of a solution's source: does it name the test framework or hgm's reporter?

An Exercism solution never needs them: it is a library the benchmark's tests call. A solution
that names unittest, pytest, jest's `expect`, JUnit, Go's `testing`, Catch's macros or hgm's
reporter is scored failed with the tampering flag (scoring.run_tests), whatever its tests say:
the search optimises the score, so a flag that left the score alone would not stop a lineage
that found a hack from being amplified. It is a tripwire, not a proof: a name built at run time
(`__import__("unit" + "test")`) passes it, which is why the canary (canary.py) and the reporters'
snapshots exist. What it reads: code tokens and string literals, not comments.
"""

from __future__ import annotations

import io
import re
import tokenize

from hgm.benchmarks.polyglot.testcases import _js_tokens_at, _js_unescape

_PY_NAMES = {"unittest", "pytest", "_pytest", "pluggy", "builtins", "__builtins__", "settrace", "setprofile",
             "hgm_pytest_report", "HGM_REPORT"}
_PY_STRING = re.compile(r"^(?:unittest|_?pytest|pluggy|builtins|hgm\w*)(?:\.|$)|HGM_REPORT")
_JS_NAMES = {"expect", "jest", "describe", "beforeAll", "beforeEach", "afterAll", "afterEach", "xtest", "xit",
             "asymmetricMatch", "HGM_REPORT"}
_JS_STRING = re.compile(r"\bjest\b|\bexpect\b|\$\$jest|hgm|HGM_REPORT")
_OTHER = {  # searched in the source with comments removed (string literals kept)
    "java": re.compile(r"\borg\s*\.\s*(?:junit|assertj|opentest4j)\b|\bjunit\b|\bassertj\b|\bHgm(?:JavaTest|Listener)\b"
                       r"|HGM_REPORT"),
    "go": re.compile(r'"testing(?:/[\w/]*)?"|\bhgmverdict\b|\bhgmTrack\b|HGM_REPORT|//go:linkname'),
    "rust": re.compile(r"\bhgm_verdict\b|HGM_REPORT|macro_rules!\s*(?:assert\w*|panic|test)\b"),
    "cpp": re.compile(r"\bcatch(?:_amalgamated)?\.hpp\b|\bCatch\s*::|\bCATCH_\w+|\bTEST_CASE\b|\bSECTION\b"
                      r"|\b(?:REQUIRE|CHECK)(?:_FALSE|_NOTHROW|_THAT|_THROWS\w*)?\b|\bhgm_verdict\b|\bHgmVerdictListener\b"
                      r"|HGM_REPORT"),
}
_C_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)


def framework_references(language: str, files: dict[str, bytes | None]) -> list[str]:
    """Where the solution files name the test framework or the reporter: "file:line: name"."""
    hits = []
    for rel, content in sorted(files.items()):
        if content is None:
            continue
        text = content.decode("utf-8", errors="replace")
        hits += [f"{rel}:{line}: {name}" for line, name in _find(language, text)]
    return hits


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _find(language: str, text: str) -> list[tuple[int, str]]:
    if language == "python":
        return _python(text)
    if language == "javascript":
        found = []
        for kind, value, start, _ in _js_tokens_at(text):
            if kind == "name" and value in _JS_NAMES:
                found.append((_line(text, start), value))
            elif kind in ("str", "tpl") and _JS_STRING.search(_js_unescape(value[1:-1])):
                found.append((_line(text, start), value[:40]))
        return found
    stripped = _C_COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)
    return [(_line(stripped, m.start()), m.group()) for m in _OTHER[language].finditer(stripped)]


def _python(text: str) -> list[tuple[int, str]]:
    found = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.NAME and tok.string in _PY_NAMES:
                found.append((tok.start[0], tok.string))
            elif tok.type == tokenize.STRING:
                body = re.sub(r"^[rbuRBUfF]*('''|\"\"\"|'|\")|('''|\"\"\"|'|\")$", "", tok.string)
                if _PY_STRING.search(body):
                    found.append((tok.start[0], tok.string[:40]))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass  # it will not import either; the tests say so
    return found
