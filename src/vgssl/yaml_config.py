"""YAML config files, read the one way every vgssl config is: strict YAML (duplicate keys refused), a
top-level mapping, paths relative to the file, and each validation problem reported as
`file:line: key.path: message` so a user fixes a config in one pass.

Used by the training config (`vgssl.train.config`) and the study config (`vgssl.study.config`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ValidationInfo
from pydantic_core import PydanticCustomError

from vgssl.errors import VgsslError


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    path = value.expanduser()
    base_dir = (info.context or {}).get("base_dir")
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return Path(os.path.abspath(path))


def _existing_file(value: Path, info: ValidationInfo) -> Path:
    path = _resolve_path(value, info)
    if not path.is_file():
        raise PydanticCustomError("file_not_found", "file not found: {path}", {"path": str(path)})
    return path


def _existing_dir(value: Path, info: ValidationInfo) -> Path:
    path = _resolve_path(value, info)
    if not path.is_dir():
        raise PydanticCustomError("dir_not_found", "directory not found: {path}", {"path": str(path)})
    return path


ResolvedPath = Annotated[Path, AfterValidator(_resolve_path)]
ExistingFile = Annotated[Path, AfterValidator(_existing_file)]
ExistingDir = Annotated[Path, AfterValidator(_existing_dir)]


def validate_config[Config: BaseModel](
    model: type[Config], raw: Mapping[str, Any], *, base_dir: Path
) -> Config:
    """`raw` validated with strict types: a number key takes only a YAML number (`clip_norm: yes` and
    `dim: "128"` are errors, not 1.0 and 128), a boolean only true/false.

    Strictness in pydantic's JSON mode, which is what YAML data is: a string still makes a path, a list a
    tuple, an integer a float. Python-mode strictness would refuse those too."""
    text = json.dumps(raw, default=str)
    return model.model_validate_json(text, strict=True, context={"base_dir": base_dir})


def read_yaml_mapping(
    source: Path, *, error: type[VgsslError], missing: str, keys: str
) -> tuple[dict[str, Any], yaml.Node | None]:
    """The YAML file's top-level mapping and its node tree (for line numbers); `error` for anything else."""
    if not source.is_file():
        raise error(missing)
    data = source.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as problem:
        line = data[: problem.start].count(b"\n") + 1
        raise error(
            f"{source}:{line}: not UTF-8 text (byte {data[problem.start]:#04x} at offset {problem.start}); "
            "save the file as UTF-8"
        ) from None
    try:
        raw = yaml.load(text, Loader=StrictYamlLoader)
        root_node = yaml.compose(text, Loader=StrictYamlLoader)
    except yaml.YAMLError as problem:
        raise error(f"{source}: not valid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise error(f"{source}: the top level must be a mapping of keys ({keys}, ...)")
    return raw, root_node


def format_config_error(source: Path, root_node: yaml.Node | None, problem: Mapping[str, Any]) -> str:
    location = tuple(problem["loc"])
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")
    line = _line_of(root_node, location)
    where = f"{source}:{line}" if line is not None else str(source)
    return f"{where}: {key or '(top level)'}: {problem['msg']}"


def _line_of(node: yaml.Node | None, location: Sequence[str | int]) -> int | None:
    """The 1-based YAML line of the deepest node on `location` that exists in the file."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in location:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((value for key, value in node.value if key.value == part), None)
            if child is None:  # an unknown key is reported at the key itself
                child = next((key for key, _ in node.value if key.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


def set_dotted(raw: dict[str, Any], keys: Sequence[str], value: Any, *, error: type[VgsslError]) -> None:
    """Set `raw[k1][k2]... = value` for a dotted override, making sections as needed."""
    for depth, key in enumerate(keys[:-1]):
        raw = raw.setdefault(key, {})
        if not isinstance(raw, dict):
            section = ".".join(keys[: depth + 1])
            raise error(f"override {'.'.join(keys)}: {section} is not a section of keys")
    raw[keys[-1]] = value


class StrictYamlLoader(yaml.SafeLoader):
    """A safe loader that rejects duplicate keys, which plain YAML silently resolves to the last one, and
    reads `1e-3` as the number it looks like (YAML 1.1, PyYAML's dialect, wants `1.0e-3` and makes `1e-3` a
    string, which strict config types would then refuse)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


StrictYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml_value(text: str) -> Any:
    """One value of a `--set key=value` override, read like a value in a config file."""
    return yaml.load(text, Loader=StrictYamlLoader)
