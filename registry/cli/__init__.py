"""The `vera-registry` command line.

`app` holds the group, `admin` the commands that run the server side (migrate, serve,
worker, sweep, tenants), `local` the one-machine stack (`up`), `remote` and `jobs` and
`adapters` (and `erasure`: deletes, retention) the commands that speak to a registry's API,
`demo` the guided tour, `serve_model` the inference server.
"""

from registry.cli import (  # noqa: F401  (commands)
    adapters,
    admin,
    audit,
    demo,
    erasure,
    jobs,
    local,
    quotas,
    remote,
    serve_model,
    users,
    webhooks,
)
from registry.cli.app import main

__all__ = ["main"]
