"""The tests each Polyglot exercise defines, read statically from the benchmark's own test files.

This is the list a verdict is checked against, so it never comes from anything that ran after a
solution was loaded: the harness parses the files (never imports or runs them). Names are the
ones hgm's reporters give (reporters/):

    python      <file>::<Class>::<method>        (pytest node id)
    javascript  <describe> > ... > <test title>  (jest ancestor titles and title)
    go          TestX                            (top-level test functions; subtests are inside)
    rust        <mod>::...::<fn>                 (libtest's name, per test target)
    java        <Class>#<method>                 (JUnit MethodSource)
    cpp         <TEST_CASE name>                 (Catch2)

The parsers handle what the 225 exercises contain (checked by `hgm benchmark validate`, where a
name mismatch shows as a reference that is not solved); they are lexers, not full grammars.
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass

from hgm.benchmarks.polyglot.loader import PolyglotTask


@dataclass(frozen=True)
class ExpectedTest:
    name: str
    passing: str = "passed"
    """The reported outcome that means this test passed (Rust: "returned", or "panicked" for a
    #[should_panic] test)."""
    file: str = ""
    """Test file (relative to the exercise) that defines it."""
    body_at: int = -1
    """Go and Rust: offset in that file just after the test function's opening brace."""
    optional: bool = False
    """Compiled only if the solution asks for it (rust: behind a feature not enabled by default):
    need not be reported, must pass if it is."""
    canary: bool = False
    """hgm's canary (canary.py), not the benchmark's: `passing` is the outcome that means it failed."""


def python_tests(task: PolyglotTask) -> list[ExpectedTest]:
    out = []
    for rel in task.test_files:
        tree = ast.parse((task.path / rel).read_text(), rel)
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and (
                node.name.startswith("Test") or any("TestCase" in ast.unparse(b) for b in node.bases)
            ):
                out += [ExpectedTest(f"{rel}::{node.name}::{f.name}", file=rel) for f in node.body
                        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) and f.name.startswith("test")]
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
                out.append(ExpectedTest(f"{rel}::{node.name}", file=rel))
    return out


# ---- JavaScript ------------------------------------------------------------------------------

_JS_REGEX_AFTER = set("(,=:[!&|?{};+-*%<>~^") | {"return", "typeof", "case", "", "=>"}
_JS_TOKEN = re.compile(
    r"(?P<space>\s+)|(?P<comment>//[^\n]*|/\*.*?\*/)|(?P<str>'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\")"
    r"|(?P<tpl>`(?:[^`\\]|\\.)*`)|(?P<name>[A-Za-z_$][\w$]*)|(?P<num>\d[\w.]*)|(?P<arrow>=>)|(?P<punct>.)",
    re.S,
)
_JS_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


def _js_unescape(body: str) -> str:
    def one(m: re.Match[str]) -> str:
        s = m.group(1)
        if s[0] in "xu":
            return chr(int(s[1:].strip("{}"), 16))
        return "" if s == "\n" else _JS_ESCAPES.get(s, s)

    return re.sub(r"\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}|.)", one, body, flags=re.S)


def _js_tokens_at(text: str) -> list[tuple[str, str, int, int]]:
    """(kind, text, start offset, end offset) of each significant token."""
    tokens: list[tuple[str, str, int, int]] = []
    pos = 0
    while pos < len(text):
        if (
            text[pos] == "/"
            and text[pos + 1 : pos + 2] not in ("/", "*")
            and (tokens[-1][1] if tokens else "") in _JS_REGEX_AFTER
        ):
            end, in_class = pos + 1, False  # a regex literal: skip to its closing slash
            while end < len(text) and (text[end] != "/" or in_class):
                in_class = (in_class or text[end] == "[") and text[end] != "]"
                end += 2 if text[end] == "\\" else 1
            tokens.append(("regex", "", pos, end + 1))
            pos = end + 1
            continue
        m = _JS_TOKEN.match(text, pos)
        assert m is not None
        kind = m.lastgroup or "punct"
        if kind not in ("space", "comment"):
            tokens.append((kind, m.group(), pos, m.end()))
        pos = m.end()
    return tokens


def _js_tokens(text: str) -> list[tuple[str, str]]:
    return [(kind, value) for kind, value, _, _ in _js_tokens_at(text)]


def javascript_tests(task: PolyglotTask) -> list[ExpectedTest]:
    return [t for rel in task.test_files for t in javascript_file_tests((task.path / rel).read_text(), rel)]


def javascript_file_tests(text: str, rel: str) -> list[ExpectedTest]:
    out = []
    tokens = _js_tokens(text)
    describes: list[tuple[str, int]] = []  # (title, paren depth inside its call)
    depth = 0
    for i, (kind, value) in enumerate(tokens):
        if value == "(":
            depth += 1
        elif value == ")":
            depth -= 1
            while describes and describes[-1][1] > depth:
                describes.pop()
        elif kind == "name" and value.lstrip("x") in ("describe", "test", "it") and (i == 0 or tokens[i - 1][1] != "."):
            j = i + 1
            if tokens[j:j + 2] and tokens[j][1] == "." and tokens[j + 1][1] in ("skip", "only"):
                j += 2
            if len(tokens) < j + 2 or tokens[j][1] != "(" or tokens[j + 1][0] not in ("str", "tpl"):
                continue
            title = _js_unescape(tokens[j + 1][1][1:-1])
            if value.lstrip("x") == "describe":
                describes.append((title, depth + 1))
            else:
                out.append(ExpectedTest(" > ".join([d for d, _ in describes] + [title]), file=rel))
    return out


# ---- Go ---------------------------------------------------------------------------------------

_GO_TEST = re.compile(r"^func (Test(?:[^a-z]\w*)?)\((\w+) \*testing\.T\) \{", re.M)


def _go_builds(text: str) -> bool:
    """Whether a file's //go:build constraint holds with no build tags set (linux/amd64 aside)."""
    m = re.search(r"^//go:build (.+)$", text.split("\npackage ", 1)[0], re.M)
    if not m:
        return True
    expr = re.sub(r"[\w.]+", lambda t: str(t.group() in ("linux", "amd64", "unix", "gc")), m.group(1))
    expr = expr.replace("&&", " and ").replace("||", " or ").replace("!", " not ")
    return bool(eval(expr, {"__builtins__": {}}))  # noqa: S307 - only True/False/and/or/not/parens remain


def go_tests(task: PolyglotTask) -> list[ExpectedTest]:
    out = []
    for path in sorted(task.path.glob("*_test.go")):
        text = path.read_text()
        if _go_builds(text):
            out += [ExpectedTest(m.group(1), file=path.name, body_at=m.end()) for m in _GO_TEST.finditer(text)]
    return out


# ---- Rust -------------------------------------------------------------------------------------

_RUST_TOKEN = re.compile(
    r"(?P<space>\s+)|(?P<comment>//[^\n]*)|(?P<block>/\*)|(?P<raw>b?r(?P<hashes>#*)\")|(?P<str>b?\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<char>b?'(?:[^'\\\n]|\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.))')|(?P<life>'[A-Za-z_]\w*)"
    r"|(?P<name>[A-Za-z_]\w*)|(?P<num>\d[\w.]*)|(?P<punct>.)",
    re.S,
)


def _rust_tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, end offset) of each significant token."""
    tokens = []
    pos = 0
    while pos < len(text):
        m = _RUST_TOKEN.match(text, pos)
        assert m is not None
        kind, pos = m.lastgroup or "punct", m.end()
        if kind == "hashes":
            kind = "raw"
        if kind == "block":  # nested block comments
            nesting = 1
            while nesting and pos < len(text):
                if text.startswith("/*", pos):
                    nesting, pos = nesting + 1, pos + 2
                elif text.startswith("*/", pos):
                    nesting, pos = nesting - 1, pos + 2
                else:
                    pos += 1
        elif kind == "raw":
            close = '"' + (m.group("hashes") or "")
            pos = text.index(close, pos) + len(close)
            tokens.append(("str", "", pos))
        elif kind not in ("space", "comment"):
            tokens.append((kind, m.group(), pos))
    return tokens


def _rust_disabled(attrs: list[str], features: set[str]) -> bool:
    """Whether a #[cfg(feature = "x")] among `attrs` names a feature that is not enabled."""
    return any((m := re.fullmatch(r'cfg \( feature = "([^"]*)" \)', a)) and m.group(1) not in features for a in attrs)


def rust_file_tests(text: str, features: set[str] = frozenset()) -> list[tuple[str, bool, int, bool]]:  # type: ignore[assignment]
    """(libtest name, #[should_panic], offset after the body's brace, behind a disabled feature)
    of each #[test] fn."""
    tokens = _rust_tokens(text)
    found = []
    scopes: list[tuple[str | None, bool]] = []  # per open brace: (the module it opens, or None; disabled)
    attrs: list[str] = []
    i = 0
    while i < len(tokens):
        kind, value, _ = tokens[i]
        disabled = any(off for _, off in scopes)
        if value == "#" and i + 1 < len(tokens) and tokens[i + 1][1] == "[":
            depth, j = 0, i + 1
            while True:  # the attribute's tokens up to its closing bracket
                depth += {"[": 1, "]": -1}.get(tokens[j][1], 0)
                if depth == 0:
                    break
                j += 1
            attrs.append(" ".join(t[1] for t in tokens[i + 2: j]))
            i = j + 1
            continue
        if value == "mod" and i + 2 < len(tokens) and tokens[i + 2][1] == "{":
            scopes.append((tokens[i + 1][1], _rust_disabled(attrs, features)))
            attrs = []
            i += 3
            continue
        if value == "fn" and "test" in attrs:
            j = i + 2
            while tokens[j][1] != "{":
                j += 1
            module = [name for name, _ in scopes if name is not None]
            should_panic = any(a.startswith("should_panic") for a in attrs)
            found.append(("::".join([*module, tokens[i + 1][1]]), should_panic, tokens[j][2],
                          disabled or _rust_disabled(attrs, features)))
            scopes.append((None, False))
            attrs = []
            i = j + 1
            continue
        if value == "{":
            scopes.append((None, False))
        elif value == "}":
            scopes.pop()
        if value in ("{", "}", ";"):
            attrs = []
        i += 1
    return found


def rust_default_features(manifest: str) -> set[str]:
    """The features a Cargo.toml enables by default (transitively)."""
    features = tomllib.loads(manifest).get("features", {})
    enabled, todo = set(), list(features.get("default", []))
    while todo:
        name = todo.pop()
        if name not in enabled:
            enabled.add(name)
            todo += features.get(name, [])
    return enabled


def rust_tests(task: PolyglotTask) -> list[ExpectedTest]:
    """#[test] fns of the benchmark's tests/*.rs; those behind a feature its Cargo.toml does not
    enable by default are optional (a solution's Cargo.toml may enable them)."""
    features = rust_default_features((task.path / "Cargo.toml").read_text())
    out = []
    for path in sorted((task.path / "tests").glob("*.rs")):
        for name, should_panic, body_at, disabled in rust_file_tests(path.read_text(), features):
            out.append(ExpectedTest(name, "panicked" if should_panic else "returned", f"tests/{path.name}", body_at,
                                optional=disabled))
    return out


# ---- Java -------------------------------------------------------------------------------------

_JAVA_TEST = re.compile(
    r"@Test\b(?:\s*@\w+(?:\s*\((?:[^()\"]|\"(?:[^\"\\]|\\.)*\")*\))?)*\s*"
    r"(?:(?:public|protected|private|static|final)\s+)*void\s+(\w+)\s*\("
)


def java_tests(task: PolyglotTask) -> list[ExpectedTest]:
    out = []
    for path in sorted((task.path / "src" / "test" / "java").rglob("*.java")):
        text = re.sub(r"//[^\n]*|/\*.*?\*/", " ", path.read_text(), flags=re.S)
        rel = path.relative_to(task.path).as_posix()
        out += [ExpectedTest(f"{path.stem}#{m.group(1)}", file=rel) for m in _JAVA_TEST.finditer(text)]
    return out


# ---- C++ --------------------------------------------------------------------------------------

_CPP_DEFINED = {"EXERCISM_RUN_ALL_TESTS"}
_CPP_TOKEN = re.compile(
    r'(?P<space>\s+)|(?P<comment>//[^\n]*|/\*.*?\*/)|(?P<raw>R"(?P<delim>[^(\s]*)\()|(?P<str>"(?:[^"\\\n]|\\.)*")'
    r"|(?P<char>'(?:[^'\\\n]|\\.)+')|(?P<name>[A-Za-z_]\w*)|(?P<punct>.)",
    re.S,
)
_C_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def _cpp_condition(directive: str, arg: str) -> bool:
    if directive == "ifdef":
        return arg.strip() in _CPP_DEFINED
    if directive == "ifndef":
        return arg.strip() not in _CPP_DEFINED
    m = re.fullmatch(r"\s*(!?)\s*defined\s*\(?\s*(\w+)\s*\)?\s*", arg)
    return (m.group(2) in _CPP_DEFINED) != bool(m.group(1)) if m else True  # unknown: assume compiled


def _cpp_preprocess(text: str) -> str:
    """The text with directive lines and #if-excluded lines blanked (as the build compiles it)."""
    out, active = [], [True]
    for line in text.split("\n"):
        m = re.match(r"\s*#\s*(\w+)\s*(.*)", line)
        if m and m.group(1) in ("if", "ifdef", "ifndef"):
            active.append(active[-1] and _cpp_condition(m.group(1), m.group(2)))
        elif m and m.group(1) in ("else", "elif") and len(active) > 1:
            active[-1] = active[-2] and not active[-1]
        elif m and m.group(1) == "endif" and len(active) > 1:
            active.pop()
        out.append(line if active[-1] and not m else "")
    return "\n".join(out)


def cpp_tests(task: PolyglotTask) -> list[ExpectedTest]:
    out = []
    for rel in (f for f in task.test_files if f.endswith("_test.cpp")):
        text = _cpp_preprocess((task.path / rel).read_text())
        tokens, pos = [], 0
        while pos < len(text):
            m = _CPP_TOKEN.match(text, pos)
            assert m is not None
            pos = m.end()
            if m.lastgroup == "raw":
                close = ")" + m.group("delim") + '"'
                end = text.index(close, pos)
                tokens.append(("str", text[pos:end]))
                pos = end + len(close)
            elif m.lastgroup == "str":
                body = re.sub(r"\\(x[0-9a-fA-F]+|[0-7]{1,3}|.)", lambda e: _c_escape(e.group(1)), m.group()[1:-1])
                tokens.append(("str", body))
            elif m.lastgroup not in ("space", "comment", "delim"):
                tokens.append((m.lastgroup or "punct", m.group()))
        for i, (_, value) in enumerate(tokens):
            if value == "TEST_CASE" and tokens[i + 1][1] == "(":
                j, name = i + 2, ""
                while tokens[j][0] == "str":  # adjacent literals concatenate
                    name, j = name + tokens[j][1], j + 1
                out.append(ExpectedTest(name, file=rel))
    return out


def _c_escape(s: str) -> str:
    if s[0] == "x":
        return chr(int(s[1:], 16))
    if s[0] in "01234567":
        return chr(int(s, 8))
    return _C_ESCAPES.get(s, s)


EXPECTED = {
    "python": python_tests, "javascript": javascript_tests, "go": go_tests,
    "rust": rust_tests, "java": java_tests, "cpp": cpp_tests,
}  # fmt: skip


def expected_tests(task: PolyglotTask) -> list[ExpectedTest]:
    """The tests `task`'s benchmark files define, in file order."""
    return EXPECTED[task.language](task)

