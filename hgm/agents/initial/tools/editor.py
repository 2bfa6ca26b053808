"""editor tool: view, create and edit text files (exact string replacement, line insertion)."""

from __future__ import annotations

from pathlib import Path

MAX_VIEW_CHARS = 30_000


def tool_info() -> dict:
    return {
        "name": "editor",
        "description": (
            "View and edit files. Paths are absolute or relative to the repository directory.\n"
            "- view: show a file with line numbers (optionally view_range [start, end], 1-based, end -1 = last), "
            "or list a directory two levels deep.\n"
            "- create: write file_text to path (overwrites; creates parent directories).\n"
            "- str_replace: replace old_str, which must occur exactly once, by new_str.\n"
            "- insert: insert new_str after line insert_line (0 = at the top)."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert"]},
                "path": {"type": "string"},
                "file_text": {"type": "string", "description": "create: the whole content."},
                "old_str": {"type": "string", "description": "str_replace: exact text to replace."},
                "new_str": {"type": "string", "description": "str_replace / insert: new text."},
                "insert_line": {"type": "integer", "description": "insert: line number to insert after."},
                "view_range": {"type": "array", "items": {"type": "integer"}},
            },
            "required": ["command", "path"],
        },
    }


def _view(path: Path, view_range: list[int] | None) -> str:
    if path.is_dir():
        shown = sorted(
            str(p.relative_to(path)) + ("/" if p.is_dir() else "")
            for p in [*path.glob("*"), *path.glob("*/*")]
            if not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        return "\n".join(shown) or "(empty directory)"
    lines = path.read_text(errors="replace").splitlines()
    start, end = 1, len(lines)
    if view_range:
        if len(view_range) != 2:
            return "Error: view_range must be [start, end]."
        start, end = view_range[0], (len(lines) if view_range[1] == -1 else view_range[1])
        if not 1 <= start <= max(end, 1) or end > len(lines):
            return f"Error: view_range {view_range} is outside the file's {len(lines)} lines."
    text = "\n".join(f"{i:6}\t{lines[i - 1]}" for i in range(start, end + 1))
    if len(text) > MAX_VIEW_CHARS:
        text = text[:MAX_VIEW_CHARS] + "\n... [cut: use view_range to see the rest]"
    return text or "(empty file)"


def tool_function(command: str, path: str, file_text: str | None = None, old_str: str | None = None,
                  new_str: str | None = None, insert_line: int | None = None,
                  view_range: list[int] | None = None) -> str:
    p = Path(path)
    if command == "create":
        if file_text is None:
            return "Error: create needs file_text."
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(file_text)
        return f"Created {path} ({len(file_text.splitlines())} lines)."
    if not p.exists():
        return f"Error: {path} does not exist."
    if command == "view":
        return _view(p, view_range)
    if p.is_dir():
        return f"Error: {path} is a directory."
    text = p.read_text()
    if command == "str_replace":
        if old_str is None:
            return "Error: str_replace needs old_str."
        count = text.count(old_str)
        if count != 1:
            return f"Error: old_str occurs {count} times in {path}; it must occur exactly once."
        p.write_text(text.replace(old_str, new_str or ""))
        return f"Edited {path}."
    if command == "insert":
        if insert_line is None or new_str is None:
            return "Error: insert needs insert_line and new_str."
        lines = text.splitlines(keepends=True)
        if not 0 <= insert_line <= len(lines):
            return f"Error: insert_line must be between 0 and {len(lines)}."
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.insert(insert_line, new_str if new_str.endswith("\n") else new_str + "\n")
        p.write_text("".join(lines))
        return f"Inserted {len(new_str.splitlines())} lines after line {insert_line} of {path}."
    return f"Error: unknown command {command!r}; use view, create, str_replace or insert."
