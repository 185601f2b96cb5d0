'use strict';
/*
 * POST /api/storage/search for the Node peer (bench/peer.py --ops search), doing the service's work
 * (storage/search/query.py, storage/search/vectors/lancedb.py, storage/search/hybrid.py):
 *   - the index identity (vector-index:meta, HGETALL at most every 30 s, as query._ensure_index);
 *   - the query embedding from the service's Redis cache (embedding-cache:{model}:{sha256 of the
 *     query}, base64 of little-endian float32), one GET;
 *   - on the user's LanceDB table (same directory, @lancedb/lancedb): listIndices, the vector search
 *     (cosine, prefiltered by user and kinds) and the full-text (BM25) search of the query's terms,
 *     each term exactly and with 1-2 edits at half weight; score = cosine + weight x BM25/best BM25;
 *   - the hits checked and titled from Redis, one pipeline per kind (HMGET of the chats' and
 *     documents' userId/title, HEXISTS of each message in its chat's message data), chunks of a message folded, grouped.
 *
 * The peer cannot embed: a query whose embedding is not cached answers 501 (bench/peer.py searches
 * once through the service first). Learning namespaces, the Pinecone store and an index without a
 * recorded identity are not supported (501/503). Its settings come from the service: bench/peer.py
 * writes peer-search.json next to PEER_SCRIPTS before the first search (read then, once).
 */

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const lancedb = require('@lancedb/lancedb');

const ROLES = ['user', 'assistant', 'system'];
const MAX_QUERY_CHARS = 2000;
const MAX_TOP_K = 100;
const MAX_QUERY_TERMS = 32;
const INDEX_CHECK_MS = 30_000;
const FIELDS = new Set(['query', 'kinds', 'chatId', 'role', 'from', 'to', 'topK', 'includeLearning']);
const TEXT_COLUMN = 'text';
const TEXT_INDEX = 'text_idx';
const VECTOR_INDEX_PREFIX = 'vector_p';
const COLUMNS = {
  userId: 'user_id', chatId: 'chat_id', messageId: 'message_id', documentId: 'document_id', role: 'role',
  kind: 'kind', createdAt: 'created_at', title: 'title', snippet: 'snippet', chunk: 'chunk',
};
const STRING_COLUMNS = ['user_id', 'chat_id', 'message_id', 'document_id', 'role', 'kind', 'title', 'snippet'];
const RESULT_COLUMNS = ['id', ...STRING_COLUMNS, 'chunk', 'created_at', 'extra'];
// storage/search/hybrid.py's STOP_WORDS
const STOP_WORDS = new Set(
  ('a about above after again against all am an and any are as at be because been before being below ' +
    'between both but by can could did do does doing down during each few for from further had has have ' +
    'having he her here hers herself him himself his how i if in into is it its itself just me more most ' +
    'my myself no nor not now of off on once only or other our ours ourselves out over own same she ' +
    'should so some such than that the their theirs them themselves then there these they this those ' +
    'through to too under until up very was we were what when where which while who whom why will with ' +
    'would you your yours yourself yourselves explain tell know want mean means').split(' '),
);
const WORD = /[\p{L}\p{N}_]+/gu; // Python's \w (str.isalnum or "_")

// --- the keyword side (hybrid.py) -------------------------------------------------------------------
const fold = (text) => text.toLowerCase().normalize('NFKD').replace(/\p{Mn}/gu, '');
const terms = (text) => (fold(text).match(WORD) || []).filter((w) => [...w].length > 1 && !STOP_WORDS.has(w));
const queryTerms = (text) => [...new Set(terms(text))].slice(0, MAX_QUERY_TERMS);
const editsAllowed = (term) => {
  const n = [...term].length;
  return n < 5 ? 0 : n < 9 ? 1 : 2;
};
const round6 = (x) => Number(x.toFixed(6)); // Python's round(x, 6): no exact ties at 6 decimals in a double

function dot(a, b) {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}

// --- SQL of the filter (vectors/lancedb.py to_sql; the service's string differs only in number format)
const quote = (value) => `'${String(value).replace(/'/g, "''")}'`;
const tableName = (namespace) =>
  namespace.replace(/[^A-Za-z0-9_.-]/gu, (c) => `_${c.codePointAt(0).toString(16).padStart(2, '0')}`) || '_';

function userWhere(request, own) {
  const parts = [`user_id = ${quote(request.userId)}`, `kind IN (${own.map(quote).join(', ')})`];
  if (request.chatId) parts.push(`chat_id = ${quote(request.chatId)}`);
  if (request.role) parts.push(`role = ${quote(request.role)}`);
  if (request.from !== null) parts.push(`created_at >= ${request.from / 1_000_000}`);
  if (request.to !== null) parts.push(`created_at <= ${request.to / 1_000_000}`);
  return `(${parts.join(' AND ')})`;
}

function create({ redis, prefix, ApiError, invalid, iso, parseTimestamp, idPattern }) {
  let settings = null;
  let db = null;
  const tables = new Map();
  let checkedUntil = 0;

  function config() {
    if (settings === null) {
      const file = path.join(path.dirname(process.env.PEER_SCRIPTS || '.'), 'peer-search.json');
      if (!fs.existsSync(file)) throw new ApiError(501, 'not_implemented:peer', 'Search settings not written yet.');
      settings = JSON.parse(fs.readFileSync(file, 'utf8'));
    }
    return settings;
  }

  const unavailable = (message) => new ApiError(503, 'unavailable:api', `Search is unavailable right now: ${message}`);

  // --- the request (views.SearchIn, query.search's checks) --------------------------------------
  function parseRequest(userId, body, kinds) {
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new ApiError(400, 'bad_request:api', 'Invalid input.');
    for (const name of Object.keys(body)) if (!FIELDS.has(name)) throw invalid(name, 'Unknown field.');
    if (typeof body.query !== 'string') throw invalid('query', 'Not a valid string.');
    const text = body.query.trim();
    if (!text) throw invalid('query', 'This field may not be blank.');
    if (text.length > MAX_QUERY_CHARS) throw invalid('query', `Ensure this field has no more than ${MAX_QUERY_CHARS} characters.`);
    let chosen = Object.keys(kinds).filter((k) => kinds[k].default);
    if (body.kinds !== undefined) {
      if (!Array.isArray(body.kinds) || !body.kinds.length || body.kinds.length > 20) throw invalid('kinds', 'Send 1 to 20 kinds.');
      for (const k of body.kinds) if (!(k in kinds)) throw invalid('kinds', `"${k}" is not a valid choice.`);
      chosen = [...body.kinds];
    }
    if (body.includeLearning !== undefined && typeof body.includeLearning !== 'boolean') throw invalid('includeLearning', 'Must be a valid boolean.');
    if (body.includeLearning && !chosen.includes('learning')) chosen.push('learning');
    if (body.chatId !== undefined && (typeof body.chatId !== 'string' || !idPattern.test(body.chatId))) throw invalid('chatId', 'Not a valid id.');
    if (body.role !== undefined && !ROLES.includes(body.role)) throw invalid('role', `"${body.role}" is not a valid choice.`);
    const from = body.from === undefined ? null : parseTimestamp(body.from, 'from');
    const to = body.to === undefined ? null : parseTimestamp(body.to, 'to');
    if (from !== null && to !== null && from > to) throw invalid('from', 'Must not be after to.');
    const topK = body.topK === undefined ? 10 : body.topK;
    if (!Number.isInteger(topK) || topK < 1 || topK > MAX_TOP_K) throw invalid('topK', `Use 1-${MAX_TOP_K}.`);
    return { userId, query: text, kinds: [...new Set(chosen)], chatId: body.chatId ?? null, role: body.role ?? null, from, to, topK };
  }

  // --- Redis: the index identity and the cached query embedding ------------------------------------
  async function ensureIndex(cfg) {
    if (checkedUntil > Date.now()) return;
    const recorded = await redis.hgetall(`${prefix}vector-index:meta`);
    for (const name of ['model', 'dimension', 'store', 'layout']) {
      if (recorded[name] !== cfg.identity[name]) throw unavailable(`the vector index was built for ${recorded.model} (run manage.py reindex).`);
    }
    checkedUntil = Date.now() + INDEX_CHECK_MS;
  }

  async function cachedVector(cfg, text) {
    const digest = crypto.createHash('sha256').update(text, 'utf8').digest('hex');
    const raw = await redis.get(`${prefix}embedding-cache:${cfg.modelKey}:${digest}`);
    if (raw) {
      const bytes = Buffer.from(raw, 'base64');
      if (bytes.length === cfg.dimension * 4) {
        const values = new Array(cfg.dimension);
        for (let i = 0; i < cfg.dimension; i++) values[i] = bytes.readFloatLE(i * 4);
        return values;
      }
    }
    throw new ApiError(501, 'not_implemented:peer', 'The peer has no embedding model: search once through the service first.');
  }

  // --- LanceDB (vectors/lancedb.py LanceDBVectorStore.query) ----------------------------------------
  async function openTable(cfg, namespace) {
    if (db === null) db = await lancedb.connect(cfg.lancedb.path, { readConsistencyInterval: cfg.lancedb.readConsistencySeconds });
    const name = tableName(namespace);
    if (tables.has(name)) return tables.get(name);
    let table;
    try {
      table = await db.openTable(name);
    } catch (error) {
      if (/not found|does not exist/i.test(String(error.message))) return null; // nothing indexed yet
      throw unavailable(`LanceDB failed: ${error.message}`);
    }
    tables.set(name, table);
    return table;
  }

  async function storeQuery(cfg, namespace, vector, topK, where, text) {
    const table = await openTable(cfg, namespace);
    if (table === null) return [];
    try {
      return await tableQuery(cfg, table, namespace, vector, topK, where, text);
    } catch (error) {
      tables.delete(tableName(namespace)); // dropped and re-created: reopen once
      const again = await openTable(cfg, namespace);
      if (again === null) return [];
      try {
        return await tableQuery(cfg, again, namespace, vector, topK, where, text);
      } catch (second) {
        throw second instanceof ApiError ? second : unavailable(`LanceDB failed: ${second.message}`);
      }
    }
  }

  async function tableQuery(cfg, table, namespace, vector, topK, where, text) {
    const options = cfg.lancedb;
    const indices = await table.listIndices();
    const ann = indices.find((index) => index.name.startsWith(VECTOR_INDEX_PREFIX));
    const partitions = ann ? parseInt(ann.name.slice(VECTOR_INDEX_PREFIX.length), 10) : 0;
    let semantic = table.vectorSearch(vector).distanceType('cosine').limit(topK).select([...RESULT_COLUMNS, '_distance']);
    if (partitions) {
      const nprobes = Math.max(1, Math.min(partitions, Math.ceil(partitions * options.probeFraction)));
      semantic = semantic.nprobes(nprobes).ef(options.ef).refineFactor(options.refineFactor);
    }
    if (where) semantic = semantic.where(where); // a prefilter, as the service asks
    const scored = new Map();
    for (const row of await semantic.toArray()) scored.set(row.id, [1.0 - row._distance, 0.0, row]);
    const words = queryTerms(text || '');
    if (words.length && indices.some((index) => index.name === TEXT_INDEX)) {
      const parts = [];
      for (const word of words) {
        parts.push([lancedb.Occur.Should, new lancedb.MatchQuery(word, TEXT_COLUMN)]);
        const edits = editsAllowed(word);
        if (edits) {
          const fuzzy = new lancedb.MatchQuery(word, TEXT_COLUMN, { fuzziness: edits, boost: 0.5, prefixLength: 1 });
          parts.push([lancedb.Occur.Should, fuzzy]);
        }
      }
      let keyword = table.search(new lancedb.BooleanQuery(parts), 'fts').limit(topK).select([...RESULT_COLUMNS, 'vector', '_score']);
      if (where) keyword = keyword.where(where);
      const rows = await keyword.toArray();
      const best = rows.reduce((most, row) => Math.max(most, row._score), 0.0);
      for (const row of rows) {
        const cosine = scored.has(row.id) ? scored.get(row.id)[0] : dot(vector, row.vector.toArray());
        scored.set(row.id, [cosine, best > 0 ? row._score / best : 0.0, row]);
      }
    }
    const weight = cfg.keywordWeight;
    const matches = [];
    for (const [id, [cosine, keyword, row]] of scored) {
      matches.push({ id, score: cosine + weight * Math.max(0, Math.min(1, keyword)), metadata: metadataOf(row), namespace });
    }
    matches.sort((a, b) => b.score - a.score);
    return matches.slice(0, topK);
  }

  function metadataOf(row) {
    const metadata = row.extra ? JSON.parse(row.extra) : {};
    for (const [field, column] of Object.entries(COLUMNS)) {
      const value = row[column];
      if (value !== null && value !== undefined && value !== '') metadata[field] = value;
    }
    return metadata;
  }

  // --- checking, titling, folding and grouping (query.py) --------------------------------------------
  async function visibleOf(kind, userId, matches) {
    const out = new Map();
    if (kind === 'learning') {
      for (const m of matches) out.set(m.id, [String(m.metadata.documentId || m.id.split('#')[0]), m.metadata.title || m.namespace]);
      return out;
    }
    const field = kind === 'message' ? 'chatId' : 'documentId';
    const owners = [...new Set(matches.map((m) => m.metadata[field] ?? ''))];
    const pairs = kind === 'message'
      ? [...new Map(matches.map((m) => [`${m.metadata.chatId ?? ''}\n${m.metadata.messageId ?? ''}`, m])).keys()]
      : [];
    const pipe = redis.pipeline();
    for (const id of owners) pipe.hmget(kind === 'message' ? `${prefix}chat:{${id}}` : `${prefix}document:{${id}}`, 'userId', 'title');
    for (const pair of pairs) {
      const [chatId, messageId] = pair.split('\n');
      pipe.hexists(`${prefix}chat:{${chatId}}:message-data`, messageId);
    }
    const replies = (await pipe.exec()).map(([error, value]) => {
      if (error) throw error;
      return value;
    });
    const titles = new Map();
    owners.forEach((id, i) => {
      if (replies[i][0] === userId) titles.set(id, replies[i][1] || '');
    });
    const existing = new Set(pairs.filter((_, i) => replies[owners.length + i]));
    for (const m of matches) {
      const owner = m.metadata[field];
      if (!titles.has(owner)) continue;
      if (kind === 'message' && !existing.has(`${m.metadata.chatId}\n${m.metadata.messageId}`)) continue;
      out.set(m.id, [owner, titles.get(owner)]);
    }
    return out;
  }

  async function checkAndTitle(cfg, request, matches) {
    const userNs = cfg.userNamespace.replace('{userId}', request.userId);
    const kindOf = (m) => (m.namespace !== userNs ? 'learning' : String(m.metadata.kind ?? ''));
    const byKind = new Map();
    for (const m of matches) byKind.set(kindOf(m), [...(byKind.get(kindOf(m)) || []), m]);
    const visible = new Map();
    for (const [name, own] of byKind) {
      const kind = cfg.kinds[name];
      if (!kind || kind.shared !== (name === 'learning')) continue;
      for (const [id, seen] of await visibleOf(name, request.userId, own)) visible.set(`${name}\n${id}`, [kind.group, ...seen]);
    }
    const hits = [];
    for (const m of matches) {
      const found = visible.get(`${kindOf(m)}\n${m.id}`);
      if (found) hits.push(hitOf(m, ...found));
    }
    return hits;
  }

  function hitOf(match, groupType, groupId, title) {
    const meta = match.metadata;
    let snippet = meta.snippet || meta.text || meta.content || '';
    if (typeof snippet === 'string' && [...snippet].length > 500) snippet = `${[...snippet].slice(0, 499).join('')}…`;
    return {
      groupType, groupId, namespace: match.namespace, title, id: match.id, score: round6(match.score), snippet,
      createdAt: typeof meta.createdAt === 'number' ? Math.trunc(meta.createdAt * 1_000_000) : null,
      role: meta.role ?? null, messageId: meta.messageId ?? null,
      chunk: typeof meta.chunk === 'number' ? Math.trunc(meta.chunk) : null, source: meta.source || null,
    };
  }

  function foldChunks(hits) {
    const seen = new Set();
    return hits.filter((hit) => {
      if (!hit.messageId) return true;
      const key = `${hit.namespace}\n${hit.groupId}\n${hit.messageId}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
  }

  function groupHits(hits) {
    const groups = new Map();
    for (const hit of hits) {
      const key = `${hit.groupType}\n${hit.namespace}\n${hit.groupId}`;
      let group = groups.get(key);
      if (!group) {
        const learning = hit.groupType === 'learning';
        group = {
          type: hit.groupType, id: hit.groupId, chatId: hit.groupType === 'chat' ? hit.groupId : null,
          documentId: hit.groupType === 'document' ? hit.groupId : null, namespace: learning ? hit.namespace : null,
          source: learning ? hit.source : null, title: hit.title, score: hit.score, snippet: hit.snippet,
          createdAt: iso(hit.createdAt), hits: [],
        };
        groups.set(key, group);
      }
      const { id, messageId, chunk, role, snippet, score, createdAt } = hit;
      group.hits.push({ id, messageId, chunk, role, snippet, score, createdAt: iso(createdAt) });
    }
    return [...groups.values()].sort((a, b) => b.score - a.score);
  }

  // --- the endpoint -------------------------------------------------------------------------------
  return async function search(userId, rawBody) {
    let body;
    try {
      body = JSON.parse(rawBody);
    } catch {
      throw new ApiError(400, 'bad_request:api', 'JSON parse error.');
    }
    const cfg = config();
    const request = parseRequest(userId, body, cfg.kinds);
    const own = request.kinds.filter((k) => !cfg.kinds[k].shared);
    if (request.kinds.some((k) => !['message', 'document', 'learning'].includes(k))) {
      throw new ApiError(501, 'not_implemented:peer', 'The peer searches messages and documents only.');
    }
    await ensureIndex(cfg);
    const vector = await cachedVector(cfg, request.query);
    const fetch = Math.min(MAX_TOP_K * 3, request.topK * 3);
    let matches = [];
    if (own.length) {
      const namespace = cfg.userNamespace.replace('{userId}', userId);
      matches = matches.concat(await storeQuery(cfg, namespace, vector, fetch, userWhere(request, own), request.query));
    }
    if (request.kinds.some((k) => cfg.kinds[k].shared) && !(request.chatId || request.role) && cfg.learningNamespaces.length) {
      throw new ApiError(501, 'not_implemented:peer', 'The peer does not search learning namespaces.');
    }
    if (cfg.minScore !== null) matches = matches.filter((m) => m.score >= cfg.minScore);
    matches.sort((a, b) => b.score - a.score);
    const hits = foldChunks(await checkAndTitle(cfg, request, matches));
    return { query: request.query, results: groupHits(hits.slice(0, request.topK)) };
  };
}

module.exports = { create };
