"""The tools, called directly."""

import time

from tools import bash, editor


def test_bash_runs_in_cwd_and_reports_exit_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.txt").write_text("hello\n")
    out = bash.tool_function(command="cat a.txt; echo err >&2; exit 3")
    assert "hello" in out and "err" in out and "[exit code: 3]" in out


def test_bash_timeout_kills_the_process_tree(tmp_path):
    start = time.monotonic()
    out = bash.tool_function(command=f"(sleep 30; touch {tmp_path}/late) & sleep 30", timeout_s=1)
    assert "timeout" in out and time.monotonic() - start < 10
    time.sleep(0.5)
    assert not (tmp_path / "late").exists()


def test_bash_caps_a_flood_of_output():
    out = bash.tool_function(command="yes x | head -c 5000000; echo END")
    assert len(out) < bash.MAX_OUTPUT_CHARS + 500
    assert "bytes of output cut" in out and out.rstrip().endswith("[exit code: 0]") and "END" in out


def test_bash_has_no_stdin():
    assert "[exit code: 0]" in bash.tool_function(command="cat", timeout_s=5)


def test_editor_create_view_replace_insert(tmp_path):
    f = tmp_path / "sub" / "m.py"
    assert "Created" in editor.tool_function(command="create", path=str(f), file_text="a = 1\nb = 2\n")
    assert "     1\ta = 1" in editor.tool_function(command="view", path=str(f))
    assert "Edited" in editor.tool_function(command="str_replace", path=str(f), old_str="b = 2", new_str="b = 3")
    assert "Inserted" in editor.tool_function(command="insert", path=str(f), insert_line=1, new_str="c = 0")
    assert f.read_text() == "a = 1\nc = 0\nb = 3\n"
    assert editor.tool_function(command="view", path=str(f), view_range=[2, 2]).strip() == "2\tc = 0"
    assert "sub/m.py" in editor.tool_function(command="view", path=str(tmp_path))


def test_editor_errors_are_messages(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("x\nx\n")
    assert "2 times" in editor.tool_function(command="str_replace", path=str(f), old_str="x", new_str="y")
    assert "does not exist" in editor.tool_function(command="view", path=str(tmp_path / "nope"))
    assert "unknown command" in editor.tool_function(command="delete", path=str(f))
    assert "outside" in editor.tool_function(command="view", path=str(f), view_range=[5, 9])
    assert f.read_text() == "x\nx\n"


def test_tool_infos_are_function_schemas():
    for module in (bash, editor):
        info = module.tool_info()
        assert set(info) == {"name", "description", "parameters"}
        assert info["parameters"]["type"] == "object"
