"""target.yaml: what a target is (its entry command, outputs, cases, scorer, score rule, limits).

`hgm run --target DIR` reads DIR/target.yaml once, at the start of the run, into the run's config
(`HGMConfig.target`): paths become absolute, and later versions of DIR (the nodes) cannot change
their own scorer or limits by editing their copy of the file. `--set target.KEY=VALUE` overrides a
key of the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hgm.errors import UserError

TARGET_FILE = "target.yaml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True)


class ScorerSpec(_Model):
    command: list[str] = Field(min_length=1)
    """Argv of the trusted scorer, run in a sandbox of its own with the scorer directory as its working
    directory. It sees the target's declared outputs (read-only, at $HGM_OUTPUTS_DIR), the hidden data
    (read-only, at $HGM_HIDDEN_DIR), the case ($HGM_CASE, JSON) and the entry's wall time as the
    harness measured it ($HGM_ENTRY_SECONDS); it prints one JSON object on its last stdout line."""
    dir: Path
    """The scorer's code (relative to the target directory, outside it: the search never edits it)."""
    hidden: Path | None = None
    """Hidden data only the scorer sees (held-back text, answers); outside the target directory."""
    timeout_s: float = Field(300.0, gt=0)
    """Wall-clock limit of one scorer run; past it the evaluation is an infra error."""


class ScoreRule(_Model):
    """How the scorer's JSON becomes the evaluation's result."""

    key: str = "score"
    """The field holding a score in [0, 1] (a fractional success: n_s += s, n_f += 1 - s)."""
    threshold: float | None = None
    """Instead of a score: solved when the field `key` (a raw metric) is at least this good, else failed."""
    better: Literal["higher", "lower"] = "higher"
    """With a threshold: whether a higher or a lower value of the metric is better."""


class TargetSpec(_Model):
    """A target benchmark: a node is a version of the target directory, a task is one case."""

    dir: Path
    """The target directory (the root node's code); set by `hgm run --target DIR`."""
    description: str = "a program"
    """What the target is and does, in a few words (goes into the diagnosis and rewrite prompts)."""
    entry: list[str] = Field(min_length=1)
    """Argv of one evaluation, run in the run's sandbox in a fresh copy of the node's directory;
    `{field}` is replaced by the case's field (e.g. {seed}). No network, no keys, no hidden data."""
    outputs: list[str] = Field(min_length=1)
    """Files the entry writes under $HGM_OUTPUT_DIR (relative paths): only these reach the scorer."""
    cases: list[dict[str, Any]] = []
    """The tasks inline: one mapping per case (inputs, seed, shard ...); `id` names it (default case-N)."""
    cases_file: Path | None = None
    """Or a JSONL file of cases (one JSON object a line), relative to the target directory."""
    scorer: ScorerSpec
    score: ScoreRule = ScoreRule()
    entry_timeout_s: float = Field(600.0, gt=0)
    """Wall-clock limit of one entry run; past it the run is killed and the evaluation failed."""
    llm: bool = False
    """The entry is an agent that calls an LLM: it gets the gateway socket and a session token."""
    rewriter: str = "initial"
    """Who rewrites a node: `self` (the target is a coding agent that rewrites itself, HGM) or a fixed
    rewriter agent that edits the target's directory from the diagnosis (`initial`, the seed coding
    agent, or an agent directory: DARWIN's setting)."""

    @model_validator(mode="after")
    def _one_source_of_cases(self) -> TargetSpec:
        if bool(self.cases) == (self.cases_file is not None):
            raise ValueError("give the cases either inline (cases:) or as a JSONL file (cases_file:), one of them")
        return self

    def case_list(self) -> list[dict[str, Any]]:
        """The cases, each with an `id`."""
        if self.cases_file is not None:
            lines = [line for line in self.cases_file.read_text().splitlines() if line.strip()]
            try:
                rows = [json.loads(line) for line in lines]
            except json.JSONDecodeError as e:
                raise UserError(f"{self.cases_file} is not JSONL ({e}); give one JSON object a line") from None
        else:
            rows = list(self.cases)
        if not all(isinstance(r, dict) for r in rows):
            raise UserError("every case must be a mapping (a JSON object)")
        out = [{"id": str(r.get("id", f"case-{i + 1}")), **{k: v for k, v in r.items() if k != "id"}}
               for i, r in enumerate(rows)]
        if len({c["id"] for c in out}) != len(out):
            raise UserError("two cases have the same id; give each case its own id")
        return out


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def load_target(target_dir: Path, overrides: list[str] = ()) -> TargetSpec:  # type: ignore[assignment]
    """DIR/target.yaml with `target.KEY=VALUE` overrides applied, paths made absolute; UserError with
    the fix for what is missing or wrong."""
    from hgm.config import apply_override

    root = Path(target_dir).expanduser().resolve()
    if not root.is_dir():
        raise UserError(f"no target directory {target_dir}; give --target a directory holding {TARGET_FILE}")
    file = root / TARGET_FILE
    if not file.is_file():
        raise UserError(f"{root} has no {TARGET_FILE}; write one (see README, 'Bring your own target') with at "
                        "least entry:, outputs:, cases: and scorer:")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{file} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"{file} must hold a mapping (entry:, outputs:, cases:, scorer: ...)")
    wrapped = {"target": data}
    for override in overrides:
        apply_override(wrapped, override)
    data = wrapped["target"]
    if not data.get("entry"):
        raise UserError(f"{file} has no entry command: add `entry: [python, run.py]` (the argv that runs the "
                        "target on one case)")
    data["dir"] = str(root)
    try:
        spec = TargetSpec.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise UserError(f"{file}: {problems}") from None
    spec.scorer.dir = (root / spec.scorer.dir).resolve()
    if spec.scorer.hidden is not None:
        spec.scorer.hidden = (root / spec.scorer.hidden).resolve()
    if spec.cases_file is not None:
        spec.cases_file = (root / spec.cases_file).resolve()
    for what, path in (("scorer.dir", spec.scorer.dir), ("scorer.hidden", spec.scorer.hidden)):
        if path is None:
            continue
        if not path.is_dir():
            raise UserError(f"{file}: {what} {path} is not a directory")
        if _inside(path, root) or _inside(root, path):
            raise UserError(f"{file}: {what} {path} must be outside the target directory {root}: the search "
                            "rewrites everything inside it, and the target must never see the hidden data")
    if any(Path(o).is_absolute() or ".." in Path(o).parts for o in spec.outputs):
        raise UserError(f"{file}: outputs are paths relative to $HGM_OUTPUT_DIR, without '..'")
    if spec.rewriter not in ("self", "initial"):
        spec.rewriter = str((root / spec.rewriter).resolve())
    spec.case_list()  # a bad cases file is reported now
    return spec
