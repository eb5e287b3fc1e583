"""``vlatwin serve``: any vlatwin policy behind openpi's websocket protocol or OpenVLA's REST API."""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

EPILOG = """examples:
  # the scripted expert of a task, for `vlatwin eval ... --policy openpi://127.0.0.1:8000`
  vlatwin serve --policy expert --config configs/tasks/reach_ball.yaml
  # your own policy in its own environment (e.g. transformers 4.x), over OpenVLA's REST API
  vlatwin serve --policy my_pkg.policies:make_policy --protocol openvla --port 8001
  # reachable from other machines: a non-loopback address needs an API key
  VLATWIN_API_KEY=s3cret vlatwin serve --policy hf://models/tiny --config task.yaml --host 0.0.0.0
  curl http://127.0.0.1:8000/healthz

protocols:
  openpi   websocket, binary msgpack frames (openpi's WebsocketClientPolicy / serve_policy.py wire format);
           the server sends {"vlatwin": policy info} first; each observation frame gets {"actions": (H, D)};
           a new connection resets the policy; a malformed frame gets a text error frame (the connection
           stays open); a policy exception gets a text frame and close code 1011.
  openvla  HTTP POST /act {"image": json-numpy, "instruction": str, "unnorm_key": opt} -> json-numpy action
           (openvla's vla-scripts/deploy.py format); GET /healthz, GET /info, POST /reset {"episode": i}.
"""


def register(groups) -> None:
    srv = groups.add_parser(
        "serve",
        help="serve a policy over openpi's websocket protocol or OpenVLA's REST API",
        description="Expose any vlatwin policy (--policy SPEC, as in `vlatwin eval`) over the network, so a model "
        "that needs its own Python environment runs there and `vlatwin eval --policy openpi://HOST:PORT` (or "
        "openvla://HOST:PORT) evaluates it from the twin. With --config the policy is built for that task's scene "
        "(the expert needs it); without, it gets an empty context. Binds 127.0.0.1 unless --host says otherwise, "
        "and then requires an API key (clients send 'Authorization: Api-Key KEY'). GET /healthz answers OK.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    srv.add_argument("--policy", required=True, help="policy spec: expert, noisy-expert?noise=0.02, random, hf://FOLDER, lerobot://FOLDER, module:factory, file.py:factory")
    srv.add_argument("--protocol", choices=("openpi", "openvla"), default="openpi", help="wire protocol (default: %(default)s)")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s; others need --api-key)")
    srv.add_argument("--port", type=int, default=8000, help="TCP port, 0 = any free one (default: %(default)s)")
    srv.add_argument("--api-key", default=None, help="require 'Authorization: Api-Key KEY' (default: env VLATWIN_API_KEY; none)")
    srv.add_argument("--config", type=Path, default=None, help="task config (scene: + task:) to build the policy for")
    srv.add_argument("--seed", type=int, default=0, help="seed of the policy context (default: %(default)s)")
    srv.add_argument("--per-connection", action="store_true", help="openpi: build a separate policy for each client connection (stateful policies such as the expert served to `vlatwin eval --workers K`; default: one policy serves every connection in turn)")
    srv.add_argument("--camera", default=None, help="openvla: camera name the posted image is given to the policy as (default: the policy's first image key, else the config's first camera, else 'image')")
    srv.set_defaults(func=cmd_serve)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def cmd_serve(args: argparse.Namespace) -> int:
    from vlatwin.errors import VlatwinError
    from vlatwin.policy.factory import PolicyContext, make_policy_from_spec
    from vlatwin.policy.serve import PolicyServer, is_loopback

    api_key = args.api_key if args.api_key is not None else os.environ.get("VLATWIN_API_KEY") or None
    if not is_loopback(args.host) and not api_key:  # refuse before building a (possibly big) model
        raise VlatwinError(
            f"refusing to serve on {args.host} without an API key; pass --api-key KEY (or set VLATWIN_API_KEY), "
            "or bind 127.0.0.1 and tunnel (ssh -L)"
        )
    if not (0 <= args.port <= 65535):
        raise VlatwinError(f"--port must be 0..65535, got {args.port}")
    close_context = None
    if args.config is not None:
        from vlatwin.eval.setup import policy_context

        context, close_context = policy_context(args.config, seed=args.seed)
    else:
        context = PolicyContext(seed=args.seed)
    policy = None
    try:
        policy = make_policy_from_spec(args.policy, context)
        camera = args.camera or (context.cameras[0] if context.cameras and not getattr(getattr(policy, "info", None), "image_keys", ()) else None)
        factory = (lambda: make_policy_from_spec(args.policy, context)) if args.per_connection else None
        if factory is not None and args.protocol != "openpi":
            raise VlatwinError("--per-connection needs --protocol openpi (REST requests have no connection)")
        server = PolicyServer(
            policy, host=args.host, port=args.port, protocol=args.protocol, api_key=api_key, camera=camera, policy_factory=factory,
        )
        port = server.start()
        name = getattr(getattr(policy, "info", None), "name", None) or type(policy).__name__
        scheme = "ws" if args.protocol == "openpi" else "http"
        host = f"[{args.host}]" if ":" in args.host else args.host
        auth = " with API key" if api_key else ""
        print(f"serving {name} over {args.protocol} on {scheme}://{host}:{port}{auth} (Ctrl-C stops)", flush=True)
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` / `docker stop` stop it cleanly too
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped", flush=True)
        finally:
            signal.signal(signal.SIGTERM, previous)
            server.stop()
    finally:
        if policy is not None and hasattr(policy, "close"):
            policy.close()
        if close_context is not None:
            close_context()
    return 0
