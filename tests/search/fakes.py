"""Local HTTP servers that speak Pinecone's data-plane REST API and OpenAI's ``POST /v1/embeddings``.

The real ``pinecone`` (v10) and ``openai`` SDKs talk to them through ``host=``/``base_url=``, so the
tests exercise the SDKs' own request encoding, response decoding, errors and retries. The JSON
shapes follow ../shared/reference/vectors.md (1.4 and 4). Both servers can be stopped and started
again on the same port (an outage), and can be told to answer the next requests with an error.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import re
import socket
import threading
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np


class FakeServer:
    """A threaded HTTP server on 127.0.0.1 with scripted failures and a request log."""

    def __init__(self) -> None:
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.lock = threading.Lock()
        self.failures: deque[tuple[int, dict[str, str], dict[str, Any], str | None]] = deque()
        self.requests: list[tuple[str, str, Any]] = []
        self._connections: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with fake.lock:
                    fake._connections.add(self.connection)

            def finish(self) -> None:
                with fake.lock:
                    fake._connections.discard(self.connection)
                super().finish()

            def do_GET(self) -> None:
                fake._dispatch(self, "GET")

            def do_POST(self) -> None:
                fake._dispatch(self, "POST")

            def do_DELETE(self) -> None:
                fake._dispatch(self, "DELETE")

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering (connections are refused) until :meth:`start` again, on the same port.

        Kept-alive connections are cut too, as when a real server goes away.
        """
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self.lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                connection.close()

    @property
    def running(self) -> bool:
        return self._server is not None

    def fail_next(
        self, status: int, times: int = 1, headers: dict[str, str] | None = None, path: str | None = None
    ) -> None:
        """Answer the next ``times`` requests (to ``path``, if given) with ``status``."""
        body = {"error": {"code": status, "message": f"scripted failure {status}"}, "code": status}
        for _ in range(times):
            self.failures.append((status, headers or {}, body, path))

    def _scripted_failure(self, path: str) -> tuple[int, dict[str, str], dict[str, Any]] | None:
        with self.lock:
            for index, (status, headers, body, only) in enumerate(self.failures):
                if only is None or path.startswith(only):
                    del self.failures[index]
                    return status, headers, body
        return None

    def _dispatch(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        parsed = urlparse(handler.path)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(handler, 400, {"error": {"message": "invalid JSON"}})
            return
        with self.lock:
            self.requests.append((method, parsed.path, body))
        failure = self._scripted_failure(parsed.path)
        if failure:
            status, headers, payload = failure
            self._send(handler, status, payload, headers)
            return
        status, payload = self.handle(method, parsed.path, parse_qs(parsed.query), body, handler.headers, len(raw))
        self._send(handler, status, payload)

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, headers: Any, size: int
    ) -> tuple[int, Any]:
        raise NotImplementedError


# --- Pinecone -----------------------------------------------------------------------------------
def _error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"code": 3, "message": message, "details": []}


def matches_filter(metadata: dict[str, Any], spec: dict[str, Any]) -> bool:
    """Pinecone's metadata filter semantics (the operators the app uses and a few more)."""
    for name, condition in spec.items():
        if name == "$and":
            if not all(matches_filter(metadata, part) for part in condition):
                return False
            continue
        if name == "$or":
            if not any(matches_filter(metadata, part) for part in condition):
                return False
            continue
        if not isinstance(condition, dict):
            condition = {"$eq": condition}
        value = metadata.get(name)
        for op, target in condition.items():
            if op == "$exists":
                ok = (name in metadata) == bool(target)
            elif name not in metadata:
                ok = op in ("$ne", "$nin")
            elif op == "$eq":
                ok = value == target
            elif op == "$ne":
                ok = value != target
            elif op == "$in":
                ok = value in target
            elif op == "$nin":
                ok = value not in target
            elif op in ("$gt", "$gte", "$lt", "$lte"):
                if not isinstance(value, int | float):
                    ok = False
                else:
                    ok = {
                        "$gt": value > target,
                        "$gte": value >= target,
                        "$lt": value < target,
                        "$lte": value <= target,
                    }[op]
            else:
                raise ValueError(f"unsupported operator {op}")
            if not ok:
                return False
    return True


def sparse_error(sparse: Any) -> str | None:
    """What Pinecone would refuse in sparse values (indices uint32, same length as values, <= 1000)."""
    if not isinstance(sparse, dict) or set(sparse) != {"indices", "values"}:
        return "Sparse values take exactly indices and values"
    indices, values = sparse["indices"], sparse["values"]
    if len(indices) != len(values) or not indices:
        return "Sparse vector indices and values must have the same non-zero length"
    if len(indices) > 1000:
        return "Sparse vector has more than 1000 non-zero values"
    if any(not isinstance(i, int) or not 0 <= i < 2**32 for i in indices) or len(set(indices)) != len(indices):
        return "Sparse vector indices must be distinct unsigned 32-bit integers"
    return None


def sparse_dot(a: dict[str, list[Any]] | None, b: dict[str, list[Any]] | None) -> float:
    if not a or not b:
        return 0.0
    weights = dict(zip(a["indices"], a["values"], strict=True))
    return float(sum(weights.get(i, 0.0) * v for i, v in zip(b["indices"], b["values"], strict=True)))


class FakePinecone(FakeServer):
    """One serverless index: namespaces of ``id -> (values, metadata)`` plus sparse values; metric
    ``dotproduct`` (sparse-dense) by default: score = dense dot product + sparse dot product."""

    def __init__(self, dimension: int, metric: str = "dotproduct") -> None:
        super().__init__()
        self.dimension = dimension
        self.metric = metric
        self.namespaces: dict[str, dict[str, tuple[list[float], dict[str, Any]]]] = {}
        self.sparse: dict[str, dict[str, dict[str, list[Any]]]] = {}  # namespace -> id -> sparse values
        self.upserts: Counter[str] = Counter()  # successful upserts per "namespace/id"
        self.upsert_requests: list[tuple[int, int]] = []  # (records, body bytes)

    def reset(self) -> None:
        with self.lock:
            self.namespaces.clear()
            self.sparse.clear()
            self.upserts.clear()
            self.upsert_requests.clear()
            self.failures.clear()
            self.requests.clear()

    def vectors(self, namespace: str) -> dict[str, tuple[list[float], dict[str, Any]]]:
        with self.lock:
            return dict(self.namespaces.get(namespace, {}))

    def handle(self, method, path, query, body, headers, size):
        if not headers.get("Api-Key"):
            return 401, {"error": {"code": "UNAUTHENTICATED", "message": "Invalid API Key"}}
        if not headers.get("X-Pinecone-Api-Version"):
            return _error(400, "missing X-Pinecone-Api-Version")
        body = body or {}
        with self.lock:
            if method == "POST" and path == "/vectors/upsert":
                return self._upsert(body, size)
            if method == "POST" and path == "/query":
                return self._query(body)
            if method == "GET" and path == "/vectors/fetch":
                ns = self.namespaces.get(query.get("namespace", [""])[0], {})
                found = {
                    i: {"id": i, "values": ns[i][0], "metadata": ns[i][1]} for i in query.get("ids", []) if i in ns
                }
                return 200, {"vectors": found, "namespace": query.get("namespace", [""])[0], "usage": {"readUnits": 1}}
            if method == "POST" and path == "/vectors/delete":
                return self._delete(body)
            if method == "GET" and path == "/vectors/list":
                return self._list(query)
            if method == "POST" and path == "/describe_index_stats":
                namespaces = {(n or "__default__"): {"vectorCount": len(v)} for n, v in self.namespaces.items() if v}
                return 200, {
                    "namespaces": namespaces,
                    "dimension": self.dimension,
                    "indexFullness": 0.0,
                    "totalVectorCount": sum(len(v) for v in self.namespaces.values()),
                    "metric": self.metric,
                    "vectorType": "dense",
                }
        return _error(404, f"no route {method} {path}")

    def _upsert(self, body: dict[str, Any], size: int) -> tuple[int, Any]:
        vectors = body.get("vectors") or []
        if size > 2 * 1024 * 1024:
            return _error(413, "Request size exceeds 2MB")
        if not vectors or len(vectors) > 1000:
            return _error(400, "upsert takes 1-1000 vectors")
        for vector in vectors:
            if len(vector.get("values", [])) != self.dimension:
                return _error(400, f"Vector dimension {len(vector.get('values', []))} does not match {self.dimension}")
            metadata = vector.get("metadata") or {}
            if any(v is None for v in metadata.values()):
                return _error(400, "Metadata values must be string, number, boolean or list of strings; got null")
            if len(json.dumps(metadata).encode()) > 40 * 1024:
                return _error(400, "Metadata size exceeds the limit of 40960 bytes per vector")
            if "sparseValues" in vector:
                if self.metric != "dotproduct":
                    return _error(400, "Sparse values are only supported for indexes using the dotproduct metric")
                problem = sparse_error(vector["sparseValues"])
                if problem:
                    return _error(400, problem)
        namespace = body.get("namespace", "")
        target = self.namespaces.setdefault(namespace, {})
        sparse = self.sparse.setdefault(namespace, {})
        for vector in vectors:
            target[vector["id"]] = (vector["values"], vector.get("metadata") or {})
            if "sparseValues" in vector:
                sparse[vector["id"]] = vector["sparseValues"]
            else:
                sparse.pop(vector["id"], None)
            self.upserts[f"{namespace}/{vector['id']}"] += 1
        self.upsert_requests.append((len(vectors), size))
        return 200, {"upsertedCount": len(vectors)}

    def _query(self, body: dict[str, Any]) -> tuple[int, Any]:
        namespace = body.get("namespace", "")
        top_k = body.get("topK", 10)
        query = np.asarray(body.get("vector") or [], dtype="float64")
        if len(query) != self.dimension:
            return _error(400, "Query vector dimension does not match the index")
        spec = body.get("filter")
        query_sparse = body.get("sparseVector")
        if query_sparse is not None:
            problem = "Sparse queries need the dotproduct metric" if self.metric != "dotproduct" else None
            problem = problem or sparse_error(query_sparse)
            if problem:
                return _error(400, problem)
        sparse = self.sparse.get(namespace, {})
        scored = []
        for vector_id, (values, metadata) in self.namespaces.get(namespace, {}).items():
            if spec and not matches_filter(metadata, spec):
                continue
            values_array = np.asarray(values, dtype="float64")
            if self.metric == "dotproduct":
                score = float(values_array @ query) + sparse_dot(query_sparse, sparse.get(vector_id))
            else:
                denominator = float(np.linalg.norm(values_array) * np.linalg.norm(query)) or 1.0
                score = float(values_array @ query) / denominator
            scored.append((score, vector_id, metadata))
        scored.sort(key=lambda item: -item[0])
        matches = []
        for score, vector_id, metadata in scored[:top_k]:
            match: dict[str, Any] = {"id": vector_id, "score": score}
            if body.get("includeMetadata"):
                match["metadata"] = metadata
            matches.append(match)
        return 200, {"matches": matches, "namespace": namespace, "usage": {"readUnits": 5}}

    def _delete(self, body: dict[str, Any]) -> tuple[int, Any]:
        namespace = body.get("namespace", "")
        if body.get("deleteAll"):
            if namespace not in self.namespaces:
                return _error(404, f"Namespace not found: {namespace}")
            del self.namespaces[namespace]
            self.sparse.pop(namespace, None)
            return 200, {}
        target = self.namespaces.get(namespace, {})
        sparse = self.sparse.get(namespace, {})
        if "ids" in body:
            if len(body["ids"]) > 1000:
                return _error(400, "delete takes at most 1000 ids")
            for vector_id in body["ids"]:
                target.pop(vector_id, None)
                sparse.pop(vector_id, None)
        elif body.get("filter"):
            for vector_id in [i for i, (_, m) in target.items() if matches_filter(m, body["filter"])]:
                del target[vector_id]
                sparse.pop(vector_id, None)
        return 200, {}

    def _list(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        if "namespace" not in query:
            return _error(400, "namespace is required")
        namespace = query["namespace"][0]
        prefix = query.get("prefix", [""])[0]
        limit = int(query.get("limit", ["100"])[0])
        start = int(query.get("paginationToken", ["0"])[0] or 0)
        ids = sorted(i for i in self.namespaces.get(namespace, {}) if i.startswith(prefix))
        page = ids[start : start + limit]
        more = start + limit < len(ids)
        return 200, {
            "vectors": [{"id": i} for i in page],
            "pagination": {"next": str(start + limit)} if more else None,
            "namespace": namespace,
            "usage": {"readUnits": 1},
        }


# --- OpenAI embeddings --------------------------------------------------------------------------
WORD = re.compile(r"[a-z0-9]+")


def bag_of_words_vector(text: str, dimension: int) -> list[float]:
    """A deterministic embedding: hashed word counts, L2-normalised (shared words -> similar)."""
    vector = np.zeros(dimension, dtype="float64")
    for word in WORD.findall(text.lower()):
        digest = hashlib.md5(word.encode()).digest()
        vector[int.from_bytes(digest[:4], "little") % dimension] += 1.0 if digest[4] % 2 else -1.0
    norm = float(np.linalg.norm(vector))
    if norm == 0:
        vector[0] = 1.0
        norm = 1.0
    return (vector / norm).tolist()


def estimated_tokens(text: str) -> int:
    return math.ceil(len(text.encode()) / 4)


# The fake multilingual model: words of other languages land where their English words do.
TRANSLATIONS = {
    "cellule": "cell",
    "célula": "cell",
    "zelle": "cell",
    "division": "division",
    "teilung": "division",
    "marché": "market",
    "mercado": "market",
    "markt": "market",
    "actions": "stocks",
    "acciones": "stocks",
    "aktien": "stocks",
    "obligations": "bonds",
    "bonos": "bonds",
    "anleihen": "bonds",
}


def multilingual_vector(text: str, dimension: int) -> list[float]:
    words = (TRANSLATIONS.get(word, word) for word in re.findall(r"\w+", text.lower()))
    return bag_of_words_vector(" ".join(words), dimension)


class FakeOpenAI(FakeServer):
    """``POST /v1/embeddings`` with the API's limits and both encodings; ``fake-multilingual-e5``
    stands for a multilingual model served by any OpenAI-compatible server."""

    MODELS = {
        "text-embedding-3-small": 1536,
        "text-embedding-3-large": 3072,
        "text-embedding-ada-002": 1536,
        "fake-multilingual-e5": 384,
    }

    def __init__(self) -> None:
        super().__init__()
        self.inputs_seen: list[list[str]] = []
        self.poison = "POISON"

    def reset(self) -> None:
        with self.lock:
            self.inputs_seen.clear()
            self.failures.clear()
            self.requests.clear()

    def handle(self, method, path, query, body, headers, size):
        if method != "POST" or path != "/v1/embeddings":
            return 404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}}
        if not (headers.get("Authorization") or "").startswith("Bearer "):
            return 401, {"error": {"message": "Missing API key", "type": "invalid_request_error"}}
        body = body or {}
        model = body.get("model")
        if model not in self.MODELS:
            return 404, {"error": {"message": f"The model {model} does not exist", "type": "invalid_request_error"}}
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or not inputs:
            return self._bad("input must be a string or a non-empty array", "input")
        if len(inputs) > 2048:
            return self._bad("'$.input' is invalid: at most 2048 inputs", "input")
        if any(not isinstance(text, str) or text == "" for text in inputs):
            return self._bad("'$.input' is invalid: empty strings are not allowed", "input")
        if any(estimated_tokens(text) > 8192 for text in inputs):
            return self._bad("This model's maximum context length is 8192 tokens", "input")
        if sum(estimated_tokens(text) for text in inputs) > 300_000:
            return self._bad("Requested 300001 tokens, max 300000 tokens per request", "input")
        if any(self.poison in text for text in inputs):
            return self._bad("The input was rejected by the content filter", "input")
        dimension = body.get("dimensions") or self.MODELS[model]
        encoding = body.get("encoding_format", "float")
        with self.lock:
            self.inputs_seen.append(list(inputs))
        data = []
        for index, text in enumerate(inputs):
            vector = (multilingual_vector if "multilingual" in model else bag_of_words_vector)(text, dimension)
            if encoding == "base64":
                embedding: Any = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
            else:
                embedding = vector
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(estimated_tokens(text) for text in inputs)
        # the API does not promise order; the client sorts by index
        data.reverse()
        return 200, {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    @staticmethod
    def _bad(message: str, param: str) -> tuple[int, Any]:
        return 400, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}
