"""Text from users, configs and our own messages prints intact through rich (hgm/markup.py):
every UserError message and doctor fix written in hgm/ that holds brackets, and `hgm doctor` on
a machine without the optional extras (imports of swebench and ray blocked in the process)."""

from __future__ import annotations

import ast
import importlib
import io
import os
import pkgutil
import subprocess
import sys
import textwrap

from conftest import REPO
from rich.console import Console

import hgm
from hgm.cli import show_error
from hgm.cli_benchmark import doctor_table
from hgm.doctor import Finding
from hgm.errors import UserError

HGM = REPO / "hgm"


def _user_error_classes() -> set[str]:
    for info in pkgutil.walk_packages(hgm.__path__, "hgm."):
        if not info.name.startswith("hgm.agents"):  # agent code is never imported into the harness
            importlib.import_module(info.name)
    found, todo = set(), [UserError]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo += cls.__subclasses__()
    return found


def _text(node: ast.expr, module: object) -> str | None:
    """The message a string literal / f-string / concatenation makes, placeholders as `X` (a module
    constant named in a placeholder is filled in); None when it is not built from literals."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value))
            elif isinstance(v, ast.FormattedValue) and isinstance(v.value, ast.Name) \
                    and isinstance(getattr(module, v.value.id, None), str) and v.format_spec is None:
                parts.append(getattr(module, v.value.id))
            else:
                parts.append("X")
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left, module), _text(node.right, module)
        return None if left is None or right is None else left + right
    return None


def messages_with_brackets() -> list[tuple[str, str]]:
    """(where, text) of every UserError (or subclass) message and doctor Finding text in hgm/
    that contains '['."""
    names = _user_error_classes()
    out = []
    for path in sorted(HGM.rglob("*.py")):
        if "agents" in path.relative_to(HGM).parts:
            continue
        module = importlib.import_module(
            ".".join(path.relative_to(REPO).with_suffix("").parts).replace(".__init__", "")
        )
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name in names:
                args = node.args[:1]
            elif name == "Finding":
                args = node.args[2:4] + [k.value for k in node.keywords if k.arg in ("what", "fix")]
            else:
                continue
            for arg in args:
                text = _text(arg, module)
                if text and "[" in text:
                    out.append((f"{path.relative_to(REPO)}:{node.lineno}", text))
    return out


def rendered(renderable: object) -> str:
    buf = io.StringIO()
    Console(file=buf, width=4000, color_system=None).print(renderable)
    return buf.getvalue()


def test_every_bracketed_user_error_message_prints_intact():
    found = messages_with_brackets()
    assert any("hgm[swe-bench]" in text for _, text in found), "the SWE-bench install hint is among them"
    assert any("hgm[ray]" in text for _, text in found)
    assert len(found) >= 5, found
    for where, text in found:
        buf = io.StringIO()
        show_error(UserError(text), Console(file=buf, width=4000, color_system=None))
        assert buf.getvalue() == f"error: {text}\n", f"{where}: {text!r} printed as {buf.getvalue()!r}"


def test_rich_markup_is_escaped_in_one_place_only():
    """hgm/markup.py is the one helper: no other module escapes (or forgets to) in its own way."""
    others = [str(p.relative_to(REPO)) for p in HGM.rglob("*.py")
              if p.name != "markup.py" and "rich.markup" in p.read_text()]
    assert others == [], f"use hgm.markup.literal instead of rich.markup in {others}"


def test_doctor_findings_print_intact():
    findings = [Finding("a [b] check", False, "found [x]", "pip install 'hgm[swe-bench]'"),
                Finding("other", True, "[bold]not markup[/]", "")]
    text = rendered(doctor_table(findings))
    for f in findings:
        assert f.area in text and f.what in text and f.fix in text


BLOCK = textwrap.dedent("""
    import sys

    class Blocked:  # as if the extras were not installed: `import swebench` / `import ray` fail
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("swebench", "ray"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Blocked())
    try:
        import swebench
    except ImportError:
        pass
    else:
        raise SystemExit("the blocker does not work")
    sys.argv = ["hgm", "doctor"]
    from hgm.cli import main
    main()
""")


def test_doctor_without_the_extras_shows_the_install_commands():
    env = {**os.environ, "COLUMNS": "400", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", BLOCK], check=False, capture_output=True, text=True, env=env,
                          timeout=120)
    assert "the blocker does not work" not in done.stderr
    out = done.stdout
    assert "pip install 'hgm[swe-bench]'" in out and "pip install 'hgm[ray]'" in out, out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 4}
    assert "not installed" in rows["swe-bench swebench"] and "ray not installed" in rows["executor ray"], out
