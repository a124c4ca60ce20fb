"""The FastAPI application: `create_app()` wires settings, database, storage and routers."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from registry import __version__
from registry.adapters.blobs import BlobCache
from registry.adapters.exports import ExportSlots
from registry.adapters.feed_wait import FeedWaiters
from registry.adapters.manifest_cache import ManifestCache
from registry.adapters.pg_listener import PgListener
from registry.api.deps import AuthCache
from registry.api.docs import install_docs
from registry.api.errors import install_error_handlers
from registry.api.input_guard import InputGuardMiddleware, reject_unknown_query
from registry.api.middleware import BodyLimitMiddleware, MetricsMiddleware
from registry.api.openapi import install_openapi
from registry.api.rate_limit import RateLimiter
from registry.blob_refs import remove_freed_on_commit
from registry.config import Settings, get_settings
from registry.db import make_engine, make_sessionmaker
from registry.dispatch import JobDispatcher, NullDispatcher
from registry.storage import BlobStore, open_store

log = logging.getLogger(__name__)

JSON_BODY_LIMIT = 1024 * 1024
DATASET_UPLOAD = re.compile(r"/v1/datasets/?")
MODEL_FILE_UPLOAD = re.compile(r"/v1/base-models/files/[^/]+")  # not .../presign or .../complete


def create_app(
    settings: Settings | None = None,
    *,
    store: BlobStore | None = None,
    dispatcher: JobDispatcher | None = None,
) -> FastAPI:
    """Build the service. Tests and `vera-registry serve` pass their own parts."""
    from registry.adapters.erasure import router as erasure_router
    from registry.adapters.export_router import router as export_router
    from registry.adapters.metadata_router import router as metadata_router
    from registry.adapters.router import router as adapters_router
    from registry.adapters.serving import router as serving_router
    from registry.api.health import router as health_router
    from registry.audit.router import router as audit_router
    from registry.base_models.router import router as base_models_router
    from registry.console.router import router as console_router
    from registry.jobs.router import router as jobs_router
    from registry.tenants.me import router as me_router
    from registry.tenants.operator import router as operator_router
    from registry.tenants.retention import router as retention_router
    from registry.tenants.router import router as tenants_router
    from registry.tenants.usage import router as usage_router
    from registry.webhooks.router import router as webhooks_router

    settings = settings or get_settings()
    app = FastAPI(
        title="VeRA Registry",
        version=__version__,
        description="Per-user VeRA adapters: training jobs, versions, aliases and publishing.",
        lifespan=_lifespan,
        docs_url=None,  # install_docs serves /docs and /redoc from local files
        redoc_url=None,
        dependencies=[Depends(reject_unknown_query)],
    )
    engine = make_engine(settings.database_url)
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_sessionmaker(engine)
    app.state.store = store or open_store(settings)
    remove_freed_on_commit(app.state.session_factory, app.state.store)
    app.state.dispatcher = dispatcher or _default_dispatcher(settings)
    app.state.auth_cache = AuthCache(app.state.session_factory)
    app.state.rate_limiter = RateLimiter(settings, app.state.session_factory)
    app.state.blob_cache = BlobCache()
    app.state.exports = ExportSlots()
    app.state.version_index = {}
    app.state.feed_waiters = FeedWaiters()
    app.state.pg_listener = None  # started with the app (see _lifespan)
    app.state.manifests = ManifestCache(
        app.state.session_factory,
        settings.resolve_cache_s,
        on_event=app.state.feed_waiters.wake,
        on_delete=lambda tenant_id, adapter_ids: _forget_deleted(app, tenant_id, adapter_ids),
    )

    install_error_handlers(app)
    install_docs(app)
    install_openapi(app)
    dataset_limit = settings.max_dataset_bytes

    def limit_for(path: str) -> int:
        if MODEL_FILE_UPLOAD.fullmatch(path):
            return settings.max_model_file_bytes
        return dataset_limit if DATASET_UPLOAD.fullmatch(path) else JSON_BODY_LIMIT

    def is_upload(path: str) -> bool:
        return bool(MODEL_FILE_UPLOAD.fullmatch(path) or DATASET_UPLOAD.fullmatch(path))

    # Inside the body limit, so the guard never buffers more than a JSON body may hold; an
    # upload's body is streamed to storage, never read as JSON.
    app.add_middleware(InputGuardMiddleware, skip=is_upload)
    app.add_middleware(
        BodyLimitMiddleware,
        limit_for=limit_for,
        timeout_s=settings.upload_timeout_s,
        idle_timeout_s=settings.upload_idle_timeout_s,
    )
    app.add_middleware(MetricsMiddleware)
    for router in (
        health_router,
        tenants_router,
        me_router,
        retention_router,
        base_models_router,
        jobs_router,
        adapters_router,
        export_router,
        erasure_router,
        metadata_router,
        serving_router,
        audit_router,
        usage_router,
        operator_router,
        webhooks_router,
        console_router,
    ):
        app.include_router(router)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """While serving: the LISTEN thread that pushes alias moves (PostgreSQL, pg_listen)."""
    settings = app.state.settings
    listener = None
    if settings.pg_listen:
        url = settings.listen_database_url
        listener = PgListener.for_engine(
            app.state.engine, app.state.manifests, url.get_secret_value() if url else None
        )
    if listener is not None:
        app.state.pg_listener = listener.start()
    try:
        yield
    finally:
        await app.state.rate_limiter.aclose()
        if listener is not None:
            app.state.pg_listener = None
            listener.stop()


def _forget_deleted(app: FastAPI, tenant_id: str | None, adapter_ids: list[str] | None) -> None:
    """A deletion (or missed events: None) reached this process: where versions' blobs live
    and the cached bytes go, so nothing deleted is served from memory."""
    index = app.state.version_index
    for key in list(index):
        if tenant_id is None or (key[0] == tenant_id and key[1] in (adapter_ids or ())):
            index.pop(key, None)
    app.state.blob_cache.clear()
    app.state.exports.clear()


def _default_dispatcher(settings: Settings) -> JobDispatcher:
    try:
        from workers.dispatch import CeleryDispatcher
    except ImportError:
        log.warning("workers.dispatch not available: jobs stay queued until a worker sends them")
        return NullDispatcher()
    return CeleryDispatcher(settings)
