# -*- test-case-name: tests.test_memory -*-
"""
L{Memory}: the memory thread (one dedicated thread: every SQLite call runs
there, never on the reactor) and one L{MemoryManager} per workspace index.

A manager syncs before it searches (only files whose size or mtime changed
are read; only chunks whose text changed are embedded), embeds on the
reactor, and serialises its syncs. A failing embedding provider never fails
a search: it falls back to keyword (BM25) results and says so.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, TypeVar

import attrs
import treq
from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from openclaw.agent.memory.embeddings import Embedder, EmbeddingError
from openclaw.agent.memory.index import MemoryIndex, SyncReport, discover
from openclaw.agent.memory.settings import MemoryConfig, MemorySettings

log = Logger(namespace="openclaw.memory")

MAX_MANAGERS = 16
MAX_QUERY = 2000
T = TypeVar("T")


class MemoryClosed(Exception):
    """The index was closed under a caller (config change or shutdown)."""


class MemoryManager:
    """The index of one workspace's memory files."""

    def __init__(self, config: MemoryConfig, workspace: Path, reactor: Any, pool: ThreadPool, http: Any = treq, extra: bool = True) -> None:
        self.config = config
        self.workspace = Path(workspace)
        self.reactor = reactor
        self.pool = pool
        self.extra = config.extra_paths if extra else ()
        self.embedder = Embedder(config.embedding, reactor, http) if config.embedding is not None else None
        self._index: MemoryIndex | None = None
        self._closed = False
        self._lock = DeferredLock()
        self.last_sync: SyncReport | None = None
        self.last_sync_at: int | None = None
        self.embedding_error: str | None = None
        self._timer: LoopingCall | None = None
        if config.interval_minutes:
            self._timer = LoopingCall(self._background)
            self._timer.clock = reactor
            self._timer.start(config.interval_minutes * 60, now=False)

    @property
    def model(self) -> str | None:
        return self.config.embedding.key if self.config.embedding is not None else None

    def _thread(self, f: Callable[..., T], *args: Any) -> Deferred[T]:
        return deferToThreadPool(self.reactor, self.pool, f, *args)

    def _open(self) -> MemoryIndex:
        if self._closed:
            raise MemoryClosed("the memory index was closed (the config changed or the gateway is stopping); try again")
        if self._index is None:
            self._index = MemoryIndex(self.config.store_path, self.config.chunk_tokens, self.config.chunk_overlap)
            if self._index.set_aside is not None:
                log.warn("the memory index {path} was damaged: moved to {aside}, rebuilding it from the files", path=str(self.config.store_path), aside=str(self._index.set_aside))
        return self._index

    def _on_index(self, f: Callable[[MemoryIndex], T]) -> Deferred[T]:
        """C{f(index)} on the memory thread (the index opens there, at first use)."""
        return self._thread(lambda: f(self._open()))

    # -- syncing

    async def sync(self) -> SyncReport:
        """Index what changed (one sync at a time; a caller arriving meanwhile runs the next)."""
        await self._lock.acquire()
        try:
            return await self._sync()
        finally:
            self._lock.release()

    async def _sync(self) -> SyncReport:
        sources, skipped = await self._thread(discover, self.workspace, self.extra)
        model, cache = self.model, self.config.cache_enabled
        report, missing = await self._on_index(lambda index: index.sync(sources, model, cache))
        report.skipped[:0] = skipped
        if missing and self.embedder is not None and model is not None:
            try:
                vectors = await self.embedder.embed([text for _, _, text in missing])
            except EmbeddingError as e:
                self.embedding_error = str(e)
                log.warn("memory embeddings failed: {error}", error=str(e))
            else:
                self.embedding_error = None
                rows = [(cid, digest, vector) for (cid, digest, _), vector in zip(missing, vectors)]
                now, most = int(time.time()), self.config.cache_max
                await self._on_index(lambda index: index.store_vectors(model, rows, now, most, cache))
        self.last_sync, self.last_sync_at = report, int(time.time() * 1000)
        if report.indexed or report.removed:
            log.info("memory index: {indexed} files indexed, {removed} removed ({chunks} chunks)", indexed=len(report.indexed), removed=len(report.removed), chunks=report.chunks)
        return report

    def _background(self) -> Deferred[Any]:
        d = Deferred.fromCoroutine(self.sync())
        d.addErrback(lambda f: None if f.check(MemoryClosed) else log.failure("memory sync failed", f))
        return d

    def warm(self) -> None:
        """A session starts: sync in the background (C{sync.onSessionStart})."""
        if self.config.sync_on_session_start:
            self._background()

    # -- searching

    async def search(self, query: str, max_results: int | None = None, min_score: float | None = None) -> dict[str, Any]:
        cfg = self.config
        if self.config.sync_on_search:
            await self.sync()
        vector: list[float] | None = None
        fell_back = None
        if self.embedder is not None and cfg.hybrid:
            try:
                vector = (await self.embedder.embed([query[:MAX_QUERY]]))[0]
            except EmbeddingError as e:
                fell_back = str(e)
                log.warn("memory query embedding failed: {error}", error=str(e))
        text, model, most = query[:MAX_QUERY], self.model, max_results or cfg.max_results
        least = cfg.min_score if min_score is None else min_score
        hits = await self._on_index(lambda index: index.search(text, vector, model, most, least, cfg.vector_weight, cfg.text_weight, cfg.candidate_multiplier))
        result: dict[str, Any] = {"results": [h.as_json() for h in hits], "mode": "hybrid" if vector is not None else "keyword"}
        if cfg.embedding is not None:
            result.update(provider=cfg.embedding.provider, model=cfg.embedding.model)
        if fell_back or (vector is None and cfg.note):
            result["note"] = f"embeddings unavailable ({fell_back}): keyword (BM25) results only" if fell_back else cfg.note
        return result

    async def status(self) -> dict[str, Any]:
        cfg = self.config
        model = self.model
        counts = await self._on_index(lambda index: index.counts(model))
        fts = await self._on_index(lambda index: index.fts)
        out: dict[str, Any] = {
            "enabled": cfg.enabled,
            "workspace": str(self.workspace),
            "store": str(cfg.store_path),
            "fts": fts,
            "provider": cfg.embedding.provider if cfg.embedding else None,
            "model": cfg.embedding.model if cfg.embedding else None,
            "extraPaths": list(self.extra),
            **counts,
        }
        if cfg.note:
            out["note"] = cfg.note
        if self.embedding_error:
            out["embeddingError"] = self.embedding_error
        if self.last_sync is not None:
            out["lastSync"] = {"at": self.last_sync_at, **self.last_sync.as_json()}
        return out

    def close(self) -> Deferred[None]:
        self._closed = True
        if self._timer is not None and self._timer.running:
            self._timer.stop()
        # On the memory thread, after whatever was queued before: the index is only used there.
        return self._thread(self._close_index)

    def _close_index(self) -> None:
        index, self._index = self._index, None
        if index is not None:
            index.close()


class Memory:
    """
    The memory of every agent one process runs: the memory thread and the
    managers (bounded; the least recently used is closed). Building it reads
    nothing: the thread starts and an index opens (on that thread) at first use.
    """

    def __init__(self, settings: MemorySettings, reactor: Any, http: Any = treq) -> None:
        self.settings = settings
        self.reactor = reactor
        self.http = http
        self._pool: ThreadPool | None = None
        self._managers: OrderedDict[tuple[str, str], MemoryManager] = OrderedDict()

    def pool(self) -> ThreadPool:
        if self._pool is None:
            self._pool = ThreadPool(1, 1, name="openclaw-memory")
            self._pool.start()
        return self._pool

    def config(self, agent_id: str = "main") -> MemoryConfig:
        return self.settings.of(agent_id)

    def workspace(self) -> Path:
        return self.settings.workspace

    def manager(self, agent_id: str = "main", workspace: Path | None = None) -> MemoryManager:
        """The manager for an agent's workspace; another workspace (a sandboxed session's own) gets
        its own index under C{<state>/memory/sandboxes/} and no extra paths."""
        config = self.config(agent_id)
        home = self.workspace()
        workspace = Path(workspace) if workspace is not None else home
        own = workspace == home
        if not own:
            digest = hashlib.sha256(str(workspace).encode()).hexdigest()[:16]
            config = attrs.evolve(config, store_path=self.settings.state_dir / "memory" / "sandboxes" / f"{agent_id}-{digest}.sqlite")
        key = (agent_id, str(workspace))
        found = self._managers.get(key)
        if found is not None:
            self._managers.move_to_end(key)
            return found
        made = MemoryManager(config, workspace, self.reactor, self.pool(), self.http, extra=own)
        self._managers[key] = made
        while len(self._managers) > MAX_MANAGERS:
            _, old = self._managers.popitem(last=False)
            old.close().addErrback(lambda f: log.failure("closing a memory index failed", f))
        return made

    def enabled(self, agent_id: str = "main") -> bool:
        return self.config(agent_id).enabled

    def stop(self) -> None:
        """Close every index (queued on the memory thread), then stop the thread once they ran."""
        managers, self._managers = list(self._managers.values()), OrderedDict()
        for manager in managers:
            manager.close().addErrback(lambda f: log.failure("closing a memory index failed", f))
        if self._pool is not None:
            self._pool.stop()
            self._pool = None
