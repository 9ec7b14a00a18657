# -*- test-case-name: tests.test_memory -*-
"""
The memory index: one SQLite file (WAL) per agent workspace, under the state
directory. Blocking: every call runs on the memory thread, never the reactor.

Tables: C{files} (path, mtime, size, content hash: what was indexed),
C{chunks} (line ranges of Markdown), C{chunks_fts} (FTS5 over the chunks,
BM25), C{vectors} (one embedding per chunk, tagged with the provider key) and
C{embedding_cache} (embeddings by content hash, so unchanged text is never
embedded twice). A sync is one transaction: a crash leaves the old index or
the new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import math
import os
import re
import sqlite3
import stat
import time
from array import array
from operator import mul
from pathlib import Path
from typing import Iterable, Sequence

import attrs

from openclaw.agent.fsjail import Jail, JailError
from openclaw.store import FILE_MODE, ensure_dir

SCHEMA = 1
MAX_FILES = 5000
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_VECTORS = 50_000  # chunks scored by vector per search
SNIPPET_CHARS = 700
_WORD = re.compile(r"\w+", re.UNICODE)


@attrs.frozen
class Source:
    """One Markdown file to index: C{label} is what results show (workspace-relative, or absolute for extra paths)."""

    label: str
    root: Path  # the folder it is read from (confined: no symbolic links below it)
    rel: str


@attrs.frozen
class Chunk:
    start: int
    end: int
    text: str

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@attrs.frozen
class Hit:
    path: str
    start_line: int
    end_line: int
    score: float
    text_score: float
    vector_score: float | None
    snippet: str

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"path": self.path, "startLine": self.start_line, "endLine": self.end_line, "score": round(self.score, 4), "snippet": self.snippet, "source": "memory"}
        out["textScore"] = round(self.text_score, 4)
        if self.vector_score is not None:
            out["vectorScore"] = round(self.vector_score, 4)
        return out


@attrs.define
class SyncReport:
    files: int = 0
    indexed: list[str] = attrs.field(factory=list)
    removed: list[str] = attrs.field(factory=list)
    skipped: list[str] = attrs.field(factory=list)  # "path: why"
    chunks: int = 0

    def as_json(self) -> dict[str, object]:
        return {"files": self.files, "indexed": self.indexed, "removed": self.removed, "skipped": self.skipped, "chunks": self.chunks}


# -- finding and chunking (pure or read-only)


def discover(workspace: Path, extra_paths: Sequence[str] = ()) -> tuple[list[Source], list[str]]:
    """C{MEMORY.md} and C{memory/**/*.md} of the workspace, plus Markdown under C{extra_paths};
    symbolic links are skipped (files and folders), as upstream does."""
    found: list[Source] = []
    skipped: list[str] = []
    for name in ("MEMORY.md", "memory.md"):
        if _regular(workspace / name):
            found.append(Source(name, workspace, name))
            break
    _walk(workspace, "memory", workspace, found, skipped)
    for raw in extra_paths:
        path = Path(raw).expanduser()
        path = path if path.is_absolute() else workspace / path
        path = Path(os.path.normpath(path))
        if _regular(path) and path.suffix.lower() == ".md":
            found.append(Source(str(path), path.parent, path.name))
        elif path.is_dir() and not path.is_symlink():
            _walk(path, "", path, found, skipped, label_root=str(path))
        else:
            skipped.append(f"{raw}: not a Markdown file or folder (or a symbolic link)")
    seen: set[str] = set()
    unique = [s for s in found if not (s.label in seen or seen.add(s.label))]  # type: ignore[func-returns-value]
    if len(unique) > MAX_FILES:
        skipped.append(f"{len(unique) - MAX_FILES} files over the limit of {MAX_FILES} were not indexed")
    return unique[:MAX_FILES], skipped


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _walk(root: Path, rel: str, base: Path, found: list[Source], skipped: list[str], label_root: str | None = None) -> None:
    folder = root / rel if rel else root
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return
    except OSError:
        return
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if not name.lower().endswith(".md") or not _regular(full):
                continue
            inner = full.relative_to(base).as_posix()
            label = f"{label_root}/{inner}" if label_root else inner
            found.append(Source(label, base, inner))
            if len(found) > MAX_FILES:
                return


def chunk_text(text: str, tokens: int = 400, overlap: int = 80) -> list[Chunk]:
    """Line-aligned chunks of about C{tokens} tokens (4 characters each), the next starting
    C{overlap} tokens back; line numbers are 1-based and inclusive."""
    budget, back = tokens * 4, overlap * 4
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    chunks: list[Chunk] = []
    start = 0
    while start < len(lines):
        size, end = 0, start
        while end < len(lines) and (end == start or size + len(lines[end]) + 1 <= budget):
            size += len(lines[end]) + 1
            end += 1
        body = "\n".join(lines[start:end])
        if body.strip():
            chunks.append(Chunk(start + 1, end, body[: budget * 4]))
        if end >= len(lines):
            break
        # Step back over whole lines worth at most `back` characters (never to where we began).
        step, carried = end, 0
        while step - 1 > start and carried + len(lines[step - 1]) + 1 <= back:
            step -= 1
            carried += len(lines[step]) + 1
        start = step
    return chunks


def fts_query(query: str) -> str | None:
    """An FTS5 expression that matches any of the query's words (each quoted: no operators)."""
    words = [w for w in _WORD.findall(query.lower())][:64]
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(words)) or None


def _pack(vector: Sequence[float]) -> bytes:
    return array("f", vector).tobytes()


def _unit(blob: bytes) -> array | None:
    values = array("f")
    values.frombytes(blob)
    norm = math.sqrt(sum(v * v for v in values))
    if norm == 0 or not math.isfinite(norm):
        return None
    return array("f", (v / norm for v in values))


# -- the index


class MemoryIndex:
    """One SQLite index; not thread-safe: use it from one thread only."""

    def __init__(self, path: Path, chunk_tokens: int = 400, chunk_overlap: int = 80) -> None:
        self.path = Path(path)
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self._vectors: tuple[str, list[tuple[int, array]]] | None = None  # (model, unit vectors) while unchanged
        self.fts = True
        self.set_aside: Path | None = None  # a damaged index moved away (it is rebuilt from the files)
        ensure_dir(self.path.parent)
        try:
            self._connect()
        except sqlite3.DatabaseError:
            self.set_aside = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
            os.replace(self.path, self.set_aside)
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
            self._connect()

    def _connect(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
        os.fchmod(fd, FILE_MODE)
        os.close(fd)
        self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=10.0)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=10000")
            self._create()
        except sqlite3.DatabaseError:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    def _create(self) -> None:
        db = self.db
        with self._transaction():
            db.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS files(path TEXT PRIMARY KEY, mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL, hash TEXT NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS chunks(id INTEGER PRIMARY KEY, path TEXT NOT NULL, start_line INTEGER NOT NULL, end_line INTEGER NOT NULL, hash TEXT NOT NULL, text TEXT NOT NULL)")
            db.execute("CREATE INDEX IF NOT EXISTS chunks_path ON chunks(path)")
            db.execute("CREATE TABLE IF NOT EXISTS vectors(chunk_id INTEGER PRIMARY KEY, model TEXT NOT NULL, vector BLOB NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS embedding_cache(model TEXT NOT NULL, hash TEXT NOT NULL, vector BLOB NOT NULL, used_at INTEGER NOT NULL, PRIMARY KEY(model, hash))")
            try:
                db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(text, tokenize='unicode61 remove_diacritics 2')")
            except sqlite3.OperationalError:
                self.fts = False  # no FTS5 in this SQLite: vectors only
            layout = f"{SCHEMA}:{self.chunk_tokens}:{self.chunk_overlap}"
            row = db.execute("SELECT value FROM meta WHERE key='layout'").fetchone()
            if row is None or row[0] != layout:
                # New chunking (or a new schema): everything is indexed again; the cache stays.
                db.execute("DELETE FROM files")
                db.execute("DELETE FROM chunks")
                db.execute("DELETE FROM vectors")
                if self.fts:
                    db.execute("DELETE FROM chunks_fts")
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('layout', ?)", (layout,))

    def _transaction(self) -> "_Tx":
        return _Tx(self.db)

    # -- syncing

    def sync(self, sources: Iterable[Source], model: str | None, use_cache: bool = True) -> tuple[SyncReport, list[tuple[int, str, str]]]:
        """
        Bring the index up to date with C{sources}: files whose size or mtime
        changed are read; when their content hash changed too, their chunks are
        replaced. Returns the report and, for C{model}, the chunks still without
        a vector C{(id, hash, text)} (those the cache could fill are filled).
        """
        report = SyncReport()
        db = self.db
        known = {row[0]: row[1:] for row in db.execute("SELECT path, mtime_ns, size, hash FROM files")}
        current: set[str] = set()
        with self._transaction():
            for source in sources:
                current.add(source.label)
                report.files += 1
                try:
                    st = os.lstat(source.root / source.rel)
                except OSError:
                    continue
                old = known.get(source.label)
                if old is not None and old[0] == st.st_mtime_ns and old[1] == st.st_size:
                    continue
                if st.st_size > MAX_FILE_BYTES:
                    report.skipped.append(f"{source.label}: over {MAX_FILE_BYTES // 1024 ** 2} MiB")
                    continue
                try:
                    place, text = Jail(source.root, confined=True).read_text(source.rel)
                    place.__exit__()
                except JailError as e:
                    report.skipped.append(f"{source.label}: {e}")
                    continue
                digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
                db.execute("INSERT OR REPLACE INTO files(path, mtime_ns, size, hash) VALUES(?,?,?,?)", (source.label, st.st_mtime_ns, st.st_size, digest))
                if old is not None and old[2] == digest:
                    continue  # touched, not changed
                self._drop_chunks(source.label)
                for chunk in chunk_text(text, self.chunk_tokens, self.chunk_overlap):
                    cursor = db.execute("INSERT INTO chunks(path, start_line, end_line, hash, text) VALUES(?,?,?,?,?)", (source.label, chunk.start, chunk.end, chunk.hash, chunk.text))
                    if self.fts:
                        db.execute("INSERT INTO chunks_fts(rowid, text) VALUES(?, ?)", (cursor.lastrowid, chunk.text))
                report.indexed.append(source.label)
            for path in sorted(set(known) - current):
                self._drop_chunks(path)
                db.execute("DELETE FROM files WHERE path = ?", (path,))
                report.removed.append(path)
            if report.indexed or report.removed:
                self._vectors = None
            missing = self._fill_from_cache(model, use_cache) if model else []
        report.chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return report, missing

    def _drop_chunks(self, path: str) -> None:
        ids = [row[0] for row in self.db.execute("SELECT id FROM chunks WHERE path = ?", (path,))]
        for chunk_id in ids:
            if self.fts:
                self.db.execute("DELETE FROM chunks_fts WHERE rowid = ?", (chunk_id,))
            self.db.execute("DELETE FROM vectors WHERE chunk_id = ?", (chunk_id,))
        self.db.execute("DELETE FROM chunks WHERE path = ?", (path,))

    def _fill_from_cache(self, model: str, use_cache: bool) -> list[tuple[int, str, str]]:
        rows = self.db.execute(
            "SELECT c.id, c.hash, c.text FROM chunks c LEFT JOIN vectors v ON v.chunk_id = c.id AND v.model = ? WHERE v.chunk_id IS NULL ORDER BY c.id",
            (model,),
        ).fetchall()
        missing = []
        for chunk_id, digest, text in rows:
            cached = self.db.execute("SELECT vector FROM embedding_cache WHERE model = ? AND hash = ?", (model, digest)).fetchone() if use_cache else None
            if cached is not None:
                self.db.execute("INSERT OR REPLACE INTO vectors(chunk_id, model, vector) VALUES(?,?,?)", (chunk_id, model, cached[0]))
                self._vectors = None
            else:
                missing.append((chunk_id, digest, text))
        return missing

    def store_vectors(self, model: str, rows: Sequence[tuple[int, str, Sequence[float]]], now: int, cache_max: int, use_cache: bool = True) -> None:
        """Vectors for chunks C{(id, hash, vector)}; the cache keeps the C{cache_max} most recently used."""
        with self._transaction():
            for chunk_id, digest, vector in rows:
                blob = _pack(vector)
                exists = self.db.execute("SELECT 1 FROM chunks WHERE id = ? AND hash = ?", (chunk_id, digest)).fetchone()
                if exists:  # the chunk may have changed while it was being embedded
                    self.db.execute("INSERT OR REPLACE INTO vectors(chunk_id, model, vector) VALUES(?,?,?)", (chunk_id, model, blob))
                if use_cache:
                    self.db.execute("INSERT OR REPLACE INTO embedding_cache(model, hash, vector, used_at) VALUES(?,?,?,?)", (model, digest, blob, now))
            if use_cache:
                self.db.execute(
                    "DELETE FROM embedding_cache WHERE rowid IN (SELECT rowid FROM embedding_cache ORDER BY used_at DESC LIMIT -1 OFFSET ?)",
                    (cache_max,),
                )
        self._vectors = None

    # -- searching

    def keyword(self, query: str, limit: int) -> list[tuple[int, float]]:
        """C{(chunk id, BM25 strength)}, strongest first (strength is C{-bm25}, larger is better)."""
        expression = fts_query(query)
        if not self.fts or expression is None:
            return []
        rows = self.db.execute(
            "SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts) LIMIT ?",
            (expression, limit),
        ).fetchall()
        return [(int(rowid), max(0.0, -float(rank))) for rowid, rank in rows]

    def nearest(self, model: str, query: Sequence[float], limit: int) -> list[tuple[int, float]]:
        """C{(chunk id, cosine similarity)}, most similar first."""
        unit = _unit(_pack(query))
        if unit is None:
            return []
        if self._vectors is None or self._vectors[0] != model:
            rows = self.db.execute("SELECT chunk_id, vector FROM vectors WHERE model = ? LIMIT ?", (model, MAX_VECTORS)).fetchall()
            vectors = [(int(cid), v) for cid, blob in rows if (v := _unit(blob)) is not None]
            self._vectors = (model, vectors)
        scored = ((cid, sum(map(mul, unit, vec))) for cid, vec in self._vectors[1] if len(vec) == len(unit))
        return heapq.nlargest(limit, scored, key=lambda pair: pair[1])

    def search(self, query: str, vector: Sequence[float] | None, model: str | None, max_results: int, min_score: float, vector_weight: float, text_weight: float, multiplier: int) -> list[Hit]:
        """Hybrid search: BM25 candidates and (with C{vector}) nearest chunks, merged by weighted score."""
        pool = max_results * multiplier
        text = self.keyword(query, pool)
        top = max((s for _, s in text), default=0.0)
        text_scores = {cid: (s / top if top > 0 else 1.0) for cid, s in text}
        vector_scores = dict(self.nearest(model, vector, pool)) if vector is not None and model else {}
        hybrid = bool(vector_scores)
        merged: list[tuple[float, int, float, float | None]] = []
        for cid in set(text_scores) | set(vector_scores):
            t = text_scores.get(cid, 0.0)
            v = max(0.0, vector_scores.get(cid, 0.0))
            score = vector_weight * v + text_weight * t if hybrid else t
            if score >= min_score:
                merged.append((score, cid, t, vector_scores.get(cid) if hybrid else None))
        merged.sort(key=lambda row: (-row[0], row[1]))
        hits = []
        for score, cid, t, by_vector in merged[:max_results]:
            row = self.db.execute("SELECT path, start_line, end_line, text FROM chunks WHERE id = ?", (cid,)).fetchone()
            if row is not None:
                path, start, end, body = row
                hits.append(Hit(path, start, end, score, t, by_vector, body[:SNIPPET_CHARS]))
        return hits

    def counts(self, model: str | None) -> dict[str, int]:
        one = lambda sql, *args: int(self.db.execute(sql, args).fetchone()[0])  # noqa: E731
        out = {"files": one("SELECT count(*) FROM files"), "chunks": one("SELECT count(*) FROM chunks"), "cacheEntries": one("SELECT count(*) FROM embedding_cache")}
        out["vectors"] = one("SELECT count(*) FROM vectors WHERE model = ?", model) if model else 0
        return out


class _Tx:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
