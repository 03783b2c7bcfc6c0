"""``fusionrec serve --model DIR``: run the recommendation service under uvicorn.

The OpenAPI spec is at ``/openapi.json`` (interactive docs at ``/docs``).
Endpoints need an API key in the ``X-API-Key`` header whose role covers them
(read < write < admin); keys come from ``$FUSIONREC_API_KEYS`` (comma-separated
``KEY:role``; a bare key is ``write``) or ``--api-key-file`` (one ``KEY:role`` a line).
See docs/guide/serving.md.
"""
from __future__ import annotations

import argparse
import logging
import threading
import time

from fusionrec.cli_args import add_data_arguments


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve", help="serve a trained model over HTTP (FastAPI + uvicorn)",
        description="Serve recommendations, similar items, online events, new items and explanations "
                    "for a model saved by `fusionrec train`. OpenAPI spec at /openapi.json.",
    )
    p.add_argument("--model", required=True, help="the model/ folder of a run (written by fusionrec train)")
    p.add_argument("--config", help="serve YAML (defaults: fusionrec/configs/serve.yaml)")
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument("--db", dest="db_path", help="SQLite file for events and items (default <model>/serve.sqlite3), or a "
                        "postgresql://user@host:port/db URL: a store shared by several replicas (fusionrec[dist])")
    p.add_argument("--media-root", help="folder that image paths in POST /items must stay inside")
    add_data_arguments(p, run_file=False, overrides=False, presets=False,
                       data_help="the model's dataset folder (or its fusionrec.yaml) where it lives now: media "
                                 "paths of items resolve there (default: where the model was trained)")
    p.add_argument("--api-key-file", help="file with one KEY:role per line, role read/write/admin "
                                          "(else $FUSIONREC_API_KEYS, comma-separated)")
    p.add_argument("--public-reads", action="store_true", default=None,
                   help="read endpoints answer without a key (rate-limited per client address)")
    p.add_argument("--require-key-for-reads", action="store_true", default=None,
                   help="reads need a key (the default; overrides public_reads from a config file)")
    p.add_argument("--allow-no-keys", action="store_true", default=None,
                   help="start without any API key (keyed endpoints then refuse every request)")
    p.add_argument("--use-retrained", action="store_true", default=None,
                   help="serve the latest retrained version of --model (kept under the store's -models "
                        "folder) instead of --model itself")
    p.add_argument("--no-encoders", action="store_true",
                   help="do not load text/image encoders (no POST /items content, no text queries)")
    p.add_argument("--retrain-every", type=float, dest="retrain_every_seconds",
                   help="retrain on stored events every N seconds (0: only POST /admin/retrain)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from fusionrec.cli_args import load_description
    from fusionrec.errors import UserError
    from fusionrec.serve.app import create_app
    from fusionrec.serve.config import load_serve_config
    from fusionrec.serve.loader import load_service
    from fusionrec.serve.security import KeyChecker, load_api_keys

    overrides = {k: getattr(args, k, None) for k in (
        "host", "port", "db_path", "media_root", "api_key_file", "public_reads", "require_key_for_reads",
        "allow_no_keys", "retrain_every_seconds", "use_retrained")}
    overrides["model_dir"] = args.model
    if args.data and not args.media_root:
        overrides["media_root"] = load_description(args.data).root
    cfg = load_serve_config(args.config, overrides)
    if args.no_encoders:  # None overrides mean "not given" above, so switch the encoders off here
        cfg = cfg.model_copy(update={"text_encoder": None, "image_encoder": None})
    keys = load_api_keys(cfg.api_key_env, cfg.api_key_file)
    if not keys and not cfg.allow_no_keys:
        raise UserError("no API key is configured, so nobody could write events or items",
                        f"${cfg.api_key_env} / --api-key-file",
                        f"export {cfg.api_key_env}=<a long random key>:admin (or pass --allow-no-keys "
                        "with --public-reads for a read-only server)")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service = load_service(args.model, cfg)
    app = create_app(service, KeyChecker(keys))
    if cfg.retrain_every_seconds > 0:
        _start_periodic_retrain(service, cfg.retrain_every_seconds)
    h = service.health()
    served = "--model" if h["served_version"] == "base" else f"retrained version {h['served_version']}"
    print(f"fusionrec serve: {h['model']} ({served}) with {h['n_users']} users x {h['n_items']} items "
          f"({h['index']} index) on http://{cfg.host}:{cfg.port}  (OpenAPI: /docs)", flush=True)
    if h["retrained_available"]:
        print(f"fusionrec serve: a retrained version {h['retrained_available']} of this model exists and is NOT "
              "served; pass --use-retrained to serve it", flush=True)
    # one worker: the model, index and online state live in this process's memory
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=args.log_level, access_log=False)
    return 0


def _start_periodic_retrain(service, every: float) -> None:
    log = logging.getLogger("fusionrec.serve")

    def loop() -> None:
        while True:
            time.sleep(every)
            try:
                service.retrain()
            except Exception as err:  # noqa: BLE001 -- the old model keeps serving; /health shows the error
                # a failure is said at every period (and kept in /health's retrain.error), never silent
                log.error("periodic retrain did not run: %s", getattr(err, "message", None) or err)

    threading.Thread(target=loop, name="fusionrec-periodic-retrain", daemon=True).start()
