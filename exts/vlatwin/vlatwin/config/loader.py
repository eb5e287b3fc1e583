"""The one loader for ``configs/*.yaml``: YAML -> validated :class:`VlatwinConfig`.

Every failure becomes a :class:`ConfigError` whose message is one line naming the file and the
field path, e.g. ``configs/tabletop.yaml: scene.objects[2].size: expected 3 positive numbers``.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from vlatwin.errors import ConfigError

_FIELD_PREFIX = re.compile(r"^([A-Za-z_][\w]*(?:\[\d+\])*(?:\.[A-Za-z_]\w*(?:\[\d+\])*)*): (.*)$")


def load_config(path: str | Path):
    """Load and validate a config file.

    Args:
        path: YAML file.

    Returns:
        The validated :class:`vlatwin.config.scene_cfg.VlatwinConfig`.

    Raises:
        ConfigError: missing/unreadable file, YAML syntax error, or a validation failure.
    """
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    if not path.is_file():
        raise ConfigError(f"{path}: not a file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: YAML syntax error: {exc.problem}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    return config_from_dict({} if data is None else data, source=path)


def config_from_dict(data: Any, *, source: str | Path = "<config>", base_dir: str | Path | None = None):
    """Validate an already-parsed config mapping (paths resolve against ``base_dir`` or the source's folder)."""
    from pydantic import ValidationError

    from vlatwin.config.scene_cfg import VlatwinConfig

    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level (e.g. 'scene:'), got {type(data).__name__}")
    if base_dir is None:
        base_dir = Path(source).parent if str(source) != "<config>" else Path.cwd()
    try:
        return VlatwinConfig.model_validate(data, context={"base_dir": Path(base_dir)})
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc, VlatwinConfig)}") from None


def format_validation_error(exc, root_model) -> str:
    """The first validation problem as ``field.path[i]: message`` (plus a count of the others)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    message = _message(first, root_model)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return message


def _loc_to_path(loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _message(error: dict, root_model) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    text = error["msg"]
    if kind == "extra_forbidden":
        parent_model = _model_at(root_model, loc[:-1])
        allowed = sorted(parent_model.model_fields) if parent_model is not None else []
        hint = ""
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        if close:
            hint = f" (did you mean '{close[0]}'?)"
        elif allowed:
            hint = f"; allowed keys: {', '.join(allowed)}"
        return f"{_loc_to_path(loc)}: unknown key{hint}"
    if kind == "missing":
        return f"{_loc_to_path(loc)}: required field is missing"
    for prefix in ("Value error, ", "Assertion failed, "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    if kind == "literal_error":
        text = text.replace("Input should be", "expected one of")
    if kind == "int_parsing_size":  # e.g. 1e308 where an integer is expected
        text = f"expected an integer, got a number far too large ({error.get('input')!r})"
    # A model-level validator reports a sub-field path inside its message: fold it into the path.
    match = _FIELD_PREFIX.match(text)
    if match:
        loc_text = _loc_to_path(loc)
        return f"{loc_text + '.' if loc_text else ''}{match.group(1)}: {match.group(2)}"
    path = _loc_to_path(loc)
    return f"{path}: {text}" if path else text


def _model_at(model, loc):
    """Walk pydantic model classes along a loc to find the model that owns its last key."""
    import typing

    from pydantic import BaseModel

    current = model
    for part in loc:
        if isinstance(part, int):
            continue
        if current is None or part not in getattr(current, "model_fields", {}):
            if isinstance(current, type) and issubclass(current, BaseModel):
                return None
            continue
        annotation = current.model_fields[part].annotation
        current = _first_model(annotation, typing, BaseModel)
    return current


def _first_model(annotation, typing, base):
    if isinstance(annotation, type) and issubclass(annotation, base):
        return annotation
    for arg in typing.get_args(annotation):
        found = _first_model(arg, typing, base)
        if found is not None:
            return found
    return None
