"""Policies by spec string: what ``--policy`` takes in ``vlatwin record``, ``eval`` and ``serve``.

=============================== ================================================================
spec                            policy
=============================== ================================================================
``expert``                      the scripted expert (:mod:`vlatwin.policy.expert`, built-in Panda)
``noisy-expert?noise=0.02``     the expert with Gaussian noise on its arm dims (std, action units)
``random``                      uniform random actions in the action space's bounds
``excite?amplitude=0.25``       smooth multi-sine joint motion around the start pose (twin / sysid)
``hf://FOLDER?...``             a Hugging Face image-text-to-text model in this process
                                (:mod:`vlatwin.policy.hf`; options ``decode=openvla|text``,
                                ``unnorm_key=...``, ``trust_remote_code=1``, ...)
``openpi://HOST:PORT?...``      an openpi-compatible websocket policy server (``ws://`` too)
``openvla://HOST:PORT?...``     an OpenVLA ``vla-scripts/deploy.py`` REST server (``http://`` too)
``lerobot://FOLDER?...``        a LeRobot ``PreTrainedPolicy`` (needs ``lerobot`` importable)
``module:factory[?...]``        your own: ``factory(context)`` returns a :class:`Policy`
``path/to/file.py:factory``     the same, from a file
=============================== ================================================================

Options after ``?`` are URL query pairs (``a=1&b=x``); every kind rejects options it does not know.
Common ones: ``action_space``, ``gripper`` (a :mod:`vlatwin.control.gripper` convention),
``cameras`` (comma-separated scene camera names), ``chunk`` (horizon override).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from vlatwin.errors import VlatwinError

#: kind -> "module:function" building the policy as ``function(target, options, context)``.
POLICY_KINDS: dict[str, str] = {
    "expert": "vlatwin.policy.factory:_expert",
    "noisy-expert": "vlatwin.policy.factory:_noisy_expert",
    "random": "vlatwin.policy.factory:_random",
    "excite": "vlatwin.policy.excitation:from_spec",
    "hf": "vlatwin.policy.hf:from_spec",
    "openpi": "vlatwin.policy.openpi:from_spec",
    "openvla": "vlatwin.policy.openvla_rest:from_spec",
    "lerobot": "vlatwin.policy.lerobot:from_spec",
}
#: Kinds named without a scheme.
BUILTINS = ("expert", "noisy-expert", "random", "excite")
#: URL schemes that name the same kinds.
SCHEME_ALIASES = {"ws": "openpi", "http": "openvla"}
#: Encrypted transports are not spoken; refusing them beats silently falling back to plain text.
TLS_SCHEMES = ("wss", "https")


@dataclass(frozen=True)
class PolicySpec:
    """A parsed ``--policy`` value."""

    text: str
    kind: str
    """A key of :data:`POLICY_KINDS`, or ``factory`` (``module:function``)."""
    target: str = ""
    """Folder, ``host:port`` or ``module:function``; empty for built-ins."""
    options: dict[str, str] = field(default_factory=dict)
    scheme: str = ""
    """The URL scheme as written (``ws``, ``http``...), empty when none."""


@dataclass
class PolicyContext:
    """What a policy factory may use to build a policy for one scene and task."""

    task: Any = None
    """The :class:`~vlatwin.tasks.base.Task` (None when serving without a task)."""
    info: Any = None
    """The loaded :class:`~vlatwin.sim.types.SimModelInfo` (None when serving)."""
    chain: Any = None
    """The robot's TCP :class:`~vlatwin.control.kinematics.KinematicChain` (None: not the built-in Panda)."""
    seed: int = 0
    control_hz: float | None = None
    cameras: tuple[str, ...] = ()
    """Scene camera names, in config order."""
    make_spec: Callable[..., Any] | None = None
    """``make_spec(action_space, **controller_options)`` -> the controller's ActionSpec."""
    options: dict[str, str] = field(default_factory=dict)
    """The spec's ``?`` options (for ``module:factory`` policies)."""
    action_space: str | None = None
    """The action space the caller runs (``vlatwin record --action-space``), None: the policy's choice."""


def parse_policy_spec(text: str) -> PolicySpec:
    """Split ``--policy`` into kind, target and options (one-line error for malformed specs)."""
    text = str(text).strip()
    if not text:
        raise VlatwinError("empty --policy; give e.g. expert, random, hf://FOLDER or openpi://127.0.0.1:8000")
    head, sep, query = text.partition("?")
    try:
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=True)) if sep else {}
    except ValueError:
        raise VlatwinError(f"--policy {text!r}: options after '?' must be key=value pairs joined by '&'") from None
    if "://" in head:
        parts = urlsplit(head)
        scheme = parts.scheme.lower()
        if scheme in TLS_SCHEMES:
            raise VlatwinError(
                f"--policy {text!r}: TLS ({scheme}://) is not supported; use {scheme[:-1]}:// on loopback or through an SSH tunnel "
                "(servers require --api-key when not on loopback)"
            )
        kind = SCHEME_ALIASES.get(scheme, scheme)
        if kind not in POLICY_KINDS or kind in BUILTINS:
            raise VlatwinError(f"--policy {text!r}: unknown scheme {scheme!r}; known: {', '.join(_schemes())}")
        target = head.split("://", 1)[1]
        if not target:
            raise VlatwinError(f"--policy {text!r}: nothing after {scheme}://")
        return PolicySpec(text=text, kind=kind, target=target, options=options, scheme=scheme)
    if head in POLICY_KINDS:
        return PolicySpec(text=text, kind=head, options=options)
    if ":" in head:
        module, _, attr = head.partition(":")
        if module and attr:
            return PolicySpec(text=text, kind="factory", target=head, options=options)
    raise VlatwinError(
        f"unknown policy {text!r}; known: expert, noisy-expert, random, {', '.join(s + '://...' for s in _schemes())} "
        "or module:factory"
    )


def _schemes() -> list[str]:
    return [k for k in POLICY_KINDS if k not in BUILTINS] + sorted(SCHEME_ALIASES)


def _load(path: str, what: str):
    module, _, attr = path.rpartition(":") if path.count(":") > 1 or path.split(":", 1)[0].endswith(".py") else path.partition(":")
    try:
        obj = _import_file(module) if module.endswith(".py") else importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except ImportError as exc:
        raise VlatwinError(f"{what} {path!r}: cannot import {module!r} ({exc})") from None
    except AttributeError as exc:
        raise VlatwinError(f"{what} {path!r}: {exc}") from None
    return obj


def _import_file(path: str):
    """A module from a ``.py`` file (``examples/reach_bc/policy.py:make_policy`` specs)."""
    import importlib.util
    import sys
    from pathlib import Path

    file = Path(path).resolve()
    if not file.is_file():
        raise ImportError(f"no such file {path}")
    name = f"vlatwin_user_{abs(hash(str(file)))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def make_policy_from_spec(spec: str | PolicySpec, context: PolicyContext):
    """Build the policy a spec names, for ``context``."""
    spec = parse_policy_spec(spec) if isinstance(spec, str) else spec
    if spec.kind == "factory":
        factory = _load(spec.target, "policy factory")
        context.options = dict(spec.options)
        policy = _call_user_factory(factory, context)
    else:
        builder = _load(POLICY_KINDS[spec.kind], "policy kind")
        policy = builder(spec.target, dict(spec.options), context)
    if not hasattr(policy, "act") or not hasattr(policy, "reset"):
        raise VlatwinError(f"--policy {spec.text!r}: the factory returned {type(policy).__name__}, not a policy (needs act and reset)")
    return policy


def _call_user_factory(factory, context: PolicyContext):
    # Factories written for `vlatwin record` before PolicyContext took keywords; newer ones take the context.
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    if "task" in params and "info" in params:
        space = context.action_space or "ee_delta_pose"
        spec = context.make_spec(space) if context.make_spec is not None and "spec" in params else None
        kwargs = {"task": context.task, "info": context.info, "chain": context.chain, "spec": spec, "seed": context.seed}
        return factory(**{k: v for k, v in kwargs.items() if k in params})
    return factory(context)


def take_options(options: dict[str, str], known: dict[str, Any], where: str) -> dict[str, Any]:
    """Typed options: ``known`` maps name -> default (its type converts the text); unknown names are an error."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise VlatwinError(f"{where}: unknown option {unknown[0]!r}; known: {', '.join(sorted(known)) or 'none'}")
    out = {}
    for name, default in known.items():
        if name not in options:
            out[name] = default
            continue
        text = options[name]
        try:
            if isinstance(default, bool):
                if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(text)
                out[name] = text.lower() in ("1", "true", "yes")
            elif isinstance(default, int):
                out[name] = int(text)
            elif isinstance(default, float):
                out[name] = float(text)
            elif isinstance(default, tuple):
                out[name] = tuple(t.strip() for t in text.split(",") if t.strip())
            else:
                out[name] = text
        except ValueError:
            raise VlatwinError(f"{where}: option {name}={text!r} is not a {type(default).__name__}") from None
    return out


# ------------------------------------------------------------------------------------------ built-ins
def _expert(target: str, options: dict, context: PolicyContext):
    from vlatwin.policy.expert import ScriptedExpert

    take_options(options, {}, "--policy expert")
    if context.chain is None:
        raise VlatwinError("policy 'expert' needs the built-in Panda (its TCP chain); the stage has none")
    if context.task is None:
        raise VlatwinError("policy 'expert' needs a task (it plans from the task's goal)")
    return ScriptedExpert.for_task(context.task, context.info, context.chain)


def _noisy_expert(target: str, options: dict, context: PolicyContext):
    import numpy as np

    from vlatwin.policy.expert import NoisyExpert

    opts = take_options(options, {"noise": 0.01}, "--policy noisy-expert")
    if not (np.isfinite(opts["noise"]) and opts["noise"] >= 0):
        raise VlatwinError(f"--policy noisy-expert: noise must be >= 0, got {opts['noise']}")
    expert = _expert("", {}, context)
    return NoisyExpert(expert, opts["noise"], seed=context.seed)


def _random(target: str, options: dict, context: PolicyContext):
    from vlatwin.policy.expert import RandomPolicy

    opts = take_options(options, {"action_space": context.action_space or "ee_delta_pose"}, "--policy random")
    if context.make_spec is None:
        raise VlatwinError("policy 'random' needs the scene's controller (its action bounds)")
    hz = context.control_hz if context.control_hz is not None else getattr(context.task, "control_hz", None)
    return RandomPolicy(context.make_spec(opts["action_space"]), seed=context.seed, control_hz=hz)
