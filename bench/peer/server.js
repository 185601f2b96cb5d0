'use strict';
/*
 * The Node peer of the Mookti storage API, for side-by-side benchmarks (bench/peer.py).
 *
 * A plain node:http server with ioredis over the service's own Redis keys and key prefix,
 * answering the benchmarked operations with the API's JSON:
 *   GET  /api/storage/chat?limit=&startingAfter=&endingBefore=&orderBy=   list chats (keyset page)
 *   GET  /api/storage/chat/:id                                           get a chat
 *   GET  /api/storage/message?chatId=&limit=&startingAfter=&endingBefore= read messages
 *   POST /api/storage/message                                            save one message or a batch
 * Auth: the hashed bearer token (token:{sha256} -> userId), one round trip. The reads answer
 * with the service's strong ETag (the revision counter read in the first pipeline) and a matching
 * If-None-Match with 304; the post bumps the same counters.
 *
 * The Lua scripts are the service's own (bench/peer.py extracts them from the repository's
 * source into a JSON file, PEER_SCRIPTS), and so are the settings the writes depend on
 * (PEER_CONFIG: message limits, event-stream retention, gamification rules). Standalone
 * Redis only (one MULTI/EXEC per write, as the service does on a standalone server).
 *
 * Not done, unlike the service: the channel-layer pokes for websockets after a write, learners
 * whose timezone is not UTC (answered 501), the service key, and every endpoint not listed above.
 */

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const zlib = require('node:zlib');
const Redis = require('ioredis');

const CONFIG = JSON.parse(process.env.PEER_CONFIG);
const SCRIPTS = JSON.parse(fs.readFileSync(process.env.PEER_SCRIPTS, 'utf8'));
const PREFIX = CONFIG.prefix;
const GAME = CONFIG.gamification;
const DAY_US = 24 * 3600 * 1_000_000;
const MESSAGE_TIMES_RETENTION_US = 31 * DAY_US;
const FUTURE_SKEW_US = 60 * 1_000_000;
const ROLES = ['user', 'assistant', 'system'];
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
const TOKEN_PREFIX = 'mkt_';
const LIMITS_JSON = JSON.stringify(CONFIG.messageLimits);

const redis = new Redis(process.env.REDIS_URL || 'redis://127.0.0.1:6379/0', { enableAutoPipelining: false });

// --- keys (storage/keys.py, mookti/keys.py, gamification/keys.py) -------------------------------
const keys = {
  user: (uid) => `${PREFIX}user:{${uid}}`,
  userChats: (uid) => `${PREFIX}user:{${uid}}:chats`,
  userChatsByActivity: (uid) => `${PREFIX}user:{${uid}}:chats-by-activity`,
  userMessageTimes: (uid) => `${PREFIX}user:{${uid}}:message-times`,
  token: (digest) => `${PREFIX}token:{${digest}}`,
  chat: (cid) => `${PREFIX}chat:{${cid}}`,
  chatMessages: (cid) => `${PREFIX}chat:{${cid}}:messages`,
  chatMessageData: (cid) => `${PREFIX}chat:{${cid}}:message-data`,
  messageLookups: (mid) =>
    `${PREFIX}message-chat-ids:{${(zlib.crc32(Buffer.from(mid)) % CONFIG.lookupBuckets).toString(16).padStart(2, '0')}}`,
  chatRev: (cid) => `${PREFIX}chat:{${cid}}:rev`,
  userRev: (uid) => `${PREFIX}user:{${uid}}:rev`,
  outbox: () => `${PREFIX}outbox:index`,
  events: (uid) => `${PREFIX}user:{${uid}}:events`,
  streak: (uid) => `${PREFIX}user:{${uid}}:streak`,
  streakDays: (uid) => `${PREFIX}user:{${uid}}:streak-days`,
  stats: (uid, day) => `${PREFIX}user:{${uid}}:stats:${day}`,
  totals: (uid) => `${PREFIX}user:{${uid}}:totals`,
  weeklyXp: (uid) => `${PREFIX}user:{${uid}}:xp-weekly`,
  achievements: (uid) => `${PREFIX}user:{${uid}}:achievements`,
  activityIds: (uid) => `${PREFIX}user:{${uid}}:activity-ids`,
  leaderboard: (week) => `${PREFIX}leaderboard:weekly:{${week}}`,
};

// --- errors (storage/errors.py's one format) -----------------------------------------------------
class ApiError extends Error {
  constructor(status, code, message, fields, headers) {
    super(message);
    Object.assign(this, { status, code, fields, headers });
  }
}
const notFound = (what, message) =>
  new ApiError(404, `not_found:${what}`, message || `${what[0].toUpperCase()}${what.slice(1)} not found.`);
const invalid = (field, message) => new ApiError(400, 'bad_request:api', 'Invalid input.', { [field]: [message] });

// --- ids and time (storage/ids.py) ---------------------------------------------------------------
const nowUs = () => Date.now() * 1000;
const iso = (us) => (us === null || us === undefined ? null : new Date(Math.floor(us / 1000)).toISOString());

function newId() {
  // UUIDv7, as storage.ids.new_id
  const bytes = crypto.randomBytes(16);
  let ms = BigInt(Date.now());
  for (let i = 5; i >= 0; i--) {
    bytes[i] = Number(ms & 0xffn);
    ms >>= 8n;
  }
  bytes[6] = (bytes[6] & 0x0f) | 0x70;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function parseTimestamp(value, field) {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0 && value < 1e14) return Math.trunc(value * 1000);
  if (typeof value === 'string' && value.length <= 40) {
    const ms = Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : `${value}Z`);
    if (!Number.isNaN(ms)) return ms * 1000;
  }
  throw invalid(field, 'Use an ISO-8601 timestamp or epoch milliseconds.');
}

// --- decoding (storage/managers/*.py) ------------------------------------------------------------
// storage.entities.text_of: the text of every {"type": "text"} part (a missing text is '')
const textOf = (parts) =>
  parts
    .filter((p) => p && typeof p === 'object' && !Array.isArray(p) && p.type === 'text')
    .map((p) => (p.text === undefined ? '' : p.text))
    .filter((t) => typeof t === 'string')
    .join('\n');
function chatOut(raw) {
  if (!raw || raw.id === undefined) return null;
  return {
    id: raw.id,
    userId: raw.userId ?? '',
    title: raw.title ?? '',
    visibility: raw.visibility ?? 'private',
    createdAt: parseInt(raw.createdAt ?? '0', 10),
    lastMessageAt: raw.lastMessageAt ? parseInt(raw.lastMessageAt, 10) : null,
  };
}

const renderChat = (c) => ({ ...c, createdAt: iso(c.createdAt), lastMessageAt: iso(c.lastMessageAt) });

// Base85 as Python's base64.b85encode / b85decode (storage.entities.records.pack, MessageLookup)
const B85 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~';

function b85encode(buf) {
  const pad = (4 - (buf.length % 4)) % 4;
  const padded = Buffer.concat([buf, Buffer.alloc(pad)]);
  let out = '';
  for (let i = 0; i < padded.length; i += 4) {
    let n = padded.readUInt32BE(i);
    let chunk = '';
    for (let j = 0; j < 5; j++) {
      chunk = B85[n % 85] + chunk;
      n = Math.floor(n / 85);
    }
    out += chunk;
  }
  return out.slice(0, out.length - pad);
}

function b85decode(text) {
  const pad = (5 - (text.length % 5)) % 5;
  const padded = text + '~'.repeat(pad);
  const out = Buffer.alloc((padded.length / 5) * 4);
  for (let i = 0; i < padded.length; i += 5) {
    let n = 0;
    for (let j = 0; j < 5; j++) n = n * 85 + B85.indexOf(padded[i + j]);
    out.writeUInt32BE(n, (i / 5) * 4);
  }
  return out.subarray(0, out.length - pad);
}

const PACK_FROM = 128;
function pack(value) {
  // deflated + Base85 when that is shorter, else null
  const raw = Buffer.from(value);
  if (raw.length < PACK_FROM) return null;
  const packed = b85encode(zlib.deflateRawSync(raw, { level: 9 }));
  return packed.length < raw.length ? packed : null;
}
const unpack = (value) => zlib.inflateRawSync(b85decode(value)).toString();

function partsSection(parts) {
  // Message.parts_section: one text part is kept as its text; long values deflated
  const only = parts.length === 1 ? parts[0] : null;
  if (only && typeof only === 'object' && Object.keys(only).sort().join() === 'text,type' && only.type === 'text'
    && typeof only.text === 'string') {
    const packed = pack(only.text);
    return packed === null ? ['t', only.text] : ['T', packed];
  }
  const json = JSON.stringify(parts);
  const packed = pack(json);
  return packed === null ? ['p', json] : ['P', packed];
}

const ROLE_CODES = { user: 'u', assistant: 'a', system: 's' };
const HEADER = /^([uas])([tTpP])(-?[0-9a-z]+)(?:\.(\d+))?(?:,(\d+))?:/;

function renderMessage(chatId, id, value) {
  // Message.stored: role, kind, createdAt (base 36), section sizes in bytes, then the sections
  const [head, role, kind, created, aSize, cSize] = HEADER.exec(value);
  const rest = Buffer.from(value.slice(head.length));
  const a = Number(aSize || 0);
  const c = Number(cSize || 0);
  let body = rest.subarray(a + c).toString();
  if (kind === 'T' || kind === 'P') body = unpack(body);
  const parts = kind === 't' || kind === 'T' ? [{ type: 'text', text: body }] : JSON.parse(body);
  return {
    id,
    chatId,
    role: Object.keys(ROLE_CODES).find((r) => ROLE_CODES[r] === role),
    parts,
    attachments: a ? JSON.parse(rest.subarray(0, a).toString()) : [],
    content: c ? rest.subarray(a, a + c).toString() : textOf(parts),
    createdAt: iso(parseInt(created, 36)),
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// compact_id: a canonical UUID as its 16 bytes in Base85, another id behind a '.'
const compactId = (id) => (UUID.test(id) ? b85encode(Buffer.from(id.replaceAll('-', ''), 'hex')) : `.${id}`);

function lookupValue(chatId, ownerId) {
  // MessageLookup.encode: two canonical UUIDs as their 32 bytes in Base85, else chatId/ownerId
  if (UUID.test(chatId) && UUID.test(ownerId)) {
    return b85encode(Buffer.from(chatId.replaceAll('-', '') + ownerId.replaceAll('-', ''), 'hex'));
  }
  return `${chatId}/${ownerId}`;
}

const canRead = (chat, actor) => chat !== null && (chat.userId === actor || chat.visibility === 'public');

// --- auth (storage/auth.py, TokenManager.user_for) -------------------------------------------------
async function authenticate(req) {
  const header = req.headers.authorization || '';
  const space = header.indexOf(' ');
  const scheme = space < 0 ? header : header.slice(0, space);
  const token = space < 0 ? '' : header.slice(space + 1).trim();
  if (!header) throw new ApiError(401, 'unauthorized:auth', 'Authentication credentials were not provided.');
  if (scheme !== 'Bearer' || !token) throw new ApiError(401, 'unauthorized:auth', "Use 'Authorization: Bearer <token>'.");
  let userId = null;
  if (token.startsWith(TOKEN_PREFIX) && token.length <= 128) {
    userId = await redis.hget(keys.token(crypto.createHash('sha256').update(token).digest('hex')), 'userId');
  }
  if (!userId) throw new ApiError(401, 'unauthorized:auth', 'Invalid, expired or revoked token.');
  return userId;
}

// --- paging (storage/managers/paging.py) -----------------------------------------------------------
function pageOf(params, order) {
  const limit = params.has('limit') ? Number(params.get('limit')) : 20;
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw invalid('limit', 'Must be an integer from 1 to 100.');
  const after = params.get('startingAfter');
  const before = params.get('endingBefore');
  for (const [name, value] of [['startingAfter', after], ['endingBefore', before]]) {
    if (value !== null && !ID_PATTERN.test(value)) throw invalid(name, 'Not a valid id.');
  }
  if (after !== null && before !== null) throw invalid('endingBefore', 'Use startingAfter or endingBefore, not both.');
  return { limit, cursor: after ?? before ?? '', side: after !== null ? 'newer' : 'older', order };
}

const queuePage = (pipe, page, zset) => pipe.eval(SCRIPTS.page, 1, zset, page.cursor, page.side, page.order, page.limit + 1);

function splitPage(reply, page) {
  const ids = reply.slice(1);
  return { found: Number(reply[0]) === 1, ids: ids.slice(0, page.limit), hasMore: ids.length > page.limit };
}

function results(replies) {
  return replies.map(([error, value]) => {
    if (error) throw error;
    return value;
  });
}

// --- conditional GETs (storage/api/conditional.py, storage/managers/revisions.py) ------------------
class NotModified extends Error {
  constructor(etag) {
    super('not modified');
    this.etag = etag;
  }
}

// The counter a GET reads in its first round trip; its ETag names the counter, the URL and the media type.
function revision(req, key, field) {
  const variant = crypto.createHash('sha256').update(`${req.url}|application/json`).digest('hex').slice(0, 16);
  const header = req.headers['if-none-match'] || '';
  const tags = new Set(header.split(',').map((t) => t.trim()).map((t) => (t.startsWith('W/') ? t.slice(2) : t)));
  tags.delete('');
  return { key, field, variant, tags, etag: null };
}

function checkRevision(rev, value) {
  if (value === null || value === undefined) return; // never bumped: the service hashes the body (not done here)
  rev.etag = `"${rev.field}.${value}.${rev.variant}"`;
  if (rev.tags.has('*') || rev.tags.has(rev.etag)) throw new NotModified(rev.etag);
}

// --- reads -------------------------------------------------------------------------------------------
async function listChats(actor, params, rev) {
  const orderBy = params.get('orderBy') ?? 'createdAt';
  const index = { createdAt: keys.userChats, lastMessageAt: keys.userChatsByActivity }[orderBy];
  if (!index) throw invalid('orderBy', `"${orderBy}" is not a valid choice.`);
  const page = pageOf(params, 'desc');
  const [reply, version] = results(await queuePage(redis.pipeline(), page, index(actor)).hget(rev.key, rev.field).exec());
  const { found, ids, hasMore } = splitPage(reply, page);
  if (!found) throw notFound('chat', 'The cursor chat was not found.');
  checkRevision(rev, version);
  if (!ids.length) return { chats: [], hasMore };
  const pipe = redis.pipeline();
  for (const id of ids) pipe.hgetall(keys.chat(id));
  const chats = results(await pipe.exec()).map(chatOut).filter(Boolean).map(renderChat);
  return { chats, hasMore };
}

async function getChat(actor, chatId, rev) {
  if (!ID_PATTERN.test(chatId)) throw invalid('id', 'Not a valid id.');
  const [raw, version] = results(await redis.pipeline().hgetall(keys.chat(chatId)).hget(rev.key, rev.field).exec());
  const chat = chatOut(raw);
  if (!canRead(chat, actor)) throw notFound('chat');
  checkRevision(rev, version);
  return renderChat(chat);
}

async function listMessages(actor, params, rev) {
  const chatId = params.get('chatId');
  if (chatId === null || !ID_PATTERN.test(chatId)) throw invalid('chatId', 'Not a valid id.');
  const page = pageOf(params, 'asc');
  const pipe = redis.pipeline().hgetall(keys.chat(chatId));
  queuePage(pipe, page, keys.chatMessages(chatId)).hget(rev.key, rev.field);
  const [rawChat, reply, version] = results(await pipe.exec());
  if (!canRead(chatOut(rawChat), actor)) throw notFound('chat');
  const { found, ids, hasMore } = splitPage(reply, page);
  if (!found) throw notFound('message', 'The cursor message was not found.');
  checkRevision(rev, version);
  if (!ids.length) return { messages: [], hasMore };
  const stored = await redis.hmget(keys.chatMessageData(chatId), ...ids);
  const messages = ids.map((id, i) => [id, stored[i]]).filter(([, value]) => value !== null);
  return { messages: messages.map(([id, value]) => renderMessage(chatId, id, value)), hasMore };
}

// --- the message write (MessageManager.save, events.stage, outbox.stage, gamification) -------------

function messageInput(item, index) {
  if (!item || typeof item !== 'object' || Array.isArray(item)) throw invalid('messages', 'Expected an object.');
  if (typeof item.chatId !== 'string' || !ID_PATTERN.test(item.chatId)) throw invalid('chatId', 'Not a valid id.');
  if (!ROLES.includes(item.role)) throw invalid('role', `"${item.role}" is not a valid choice.`);
  if (item.id !== undefined && (typeof item.id !== 'string' || !ID_PATTERN.test(item.id))) throw invalid('id', 'Not a valid id.');
  if (item.parts === undefined && item.content === undefined) throw invalid('parts', 'Send parts (or content).');
  if (item.parts !== undefined && !Array.isArray(item.parts)) throw invalid('parts', 'Expected a list of items.');
  return {
    id: item.id,
    chatId: item.chatId,
    role: item.role,
    parts: item.parts ?? [{ type: 'text', text: item.content ?? '' }],
    attachments: item.attachments ?? [],
    content: item.content ?? '',
    createdAt: item.createdAt === undefined ? undefined : parseTimestamp(item.createdAt, 'createdAt'),
    index,
  };
}

function encodeMessage(m) {
  // Message.value: role, kind, createdAt in base 36, the sizes (bytes) of the attachments and of a
  // content that is not the parts' text, ':', then those sections and the body
  const [kind, body] = partsSection(m.parts);
  const attachments = m.attachments.length ? JSON.stringify(m.attachments) : '';
  const content = m.content !== textOf(m.parts) ? m.content : '';
  let head = ROLE_CODES[m.role] + kind + m.createdAt.toString(36);
  if (attachments) head += `.${Buffer.byteLength(attachments)}`;
  if (content) head += `,${Buffer.byteLength(content)}`;
  return `${head}:${attachments}${content}${body}`;
}

// The stored form of mookti.events (see its "stored form"): an event whose type has a codec there is
// stored as the code and its fields' values packed in order (a UUID as its 16 bytes, anything else as
// one msgpack value); any other as the type name and the JSON text. The codecs of the events posted here.
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function msgpack(value) {
  // msgpack's smallest encoding of null, a boolean, a safe integer or a string (as Python's msgpack.packb)
  if (value === null) return Buffer.from([0xc0]);
  if (typeof value === 'boolean') return Buffer.from([value ? 0xc3 : 0xc2]);
  if (typeof value === 'string') {
    const text = Buffer.from(value, 'utf8');
    const n = text.length;
    const head = n < 32 ? [0xa0 | n] : n < 256 ? [0xd9, n] : n < 65536 ? [0xda, n >> 8, n & 255] : null;
    if (head === null) throw new Error('string too long');
    return Buffer.concat([Buffer.from(head), text]);
  }
  if (!Number.isSafeInteger(value)) throw new Error(`no msgpack form for ${value}`);
  if (value >= 0 && value < 128) return Buffer.from([value]);
  if (value < 0 && value >= -32) return Buffer.from([value & 0xff]);
  const [tag, size] = value >= 0
    ? (value < 256 ? [0xcc, 1] : value < 65536 ? [0xcd, 2] : value < 2 ** 32 ? [0xce, 4] : [0xcf, 8])
    : (value >= -128 ? [0xd0, 1] : value >= -32768 ? [0xd1, 2] : value >= -(2 ** 31) ? [0xd2, 4] : [0xd3, 8]);
  const out = Buffer.alloc(1 + size);
  out[0] = tag;
  if (size === 8) out.writeBigInt64BE(BigInt(value), 1);
  else if (value >= 0) out.writeUIntBE(value, 1, size);
  else out.writeIntBE(value, 1, size);
  return out;
}

const KINDS = {
  plain: (v) => msgpack(v),
  id: (v) => {
    if (!UUID_PATTERN.test(v)) throw new Error('not a canonical UUID');
    return Buffer.from(v.replace(/-/g, ''), 'hex');
  },
  time: (v) => msgpack(v === null ? null : Date.parse(v)), // milliseconds
  date: (v) => msgpack(v === null ? null : Date.parse(`${v}T00:00:00Z`) / 86_400_000 + EPOCH_ORDINAL),
  week: (v) => msgpack(Number(v.slice(0, 4)) * 100 + Number(v.slice(6))),
  role: (v) => msgpack(ROLES.indexOf(v)), // ROLES has the stored order
};
const CODECS = {
  'message.created': [1, [['id', 'id'], ['chatId', 'id'], ['role', 'role']]],
  'xp.awarded': [2, [['amount', 'plain'], ['total', 'plain'], ['week', 'week'], ['weekXp', 'plain']]],
  'streak.updated': [11, [['current', 'plain'], ['longest', 'plain'], ['freezes', 'plain'], ['maxFreezes', 'plain'],
    ['lastActivity', 'time'], ['lastActivityDate', 'date'], ['today', 'date'], ['timezone', 'plain'],
    ['alive', 'plain'], ['activeToday', 'plain'], ['freezesNeeded', 'plain']]],
  'achievement.awarded': [12, [['id', 'plain'], ['title', 'plain'], ['description', 'plain'], ['xp', 'plain'],
    ['awardedAt', 'time']]],
};

function storedEvent(type, data) {
  const [code, fields] = CODECS[type] || [];
  const names = Object.keys(data);
  if (fields && names.length === fields.length && fields.every(([name], i) => names[i] === name)) {
    try {
      return ['type', String(code), 'data', Buffer.concat(fields.map(([name, kind]) => KINDS[kind](data[name])))];
    } catch {
      // a value the codec cannot take: the generic form below
    }
  }
  return ['type', type, 'data', JSON.stringify(data)];
}

function stageEvent(multi, userId, type, data) {
  // events.stage: XADD to the user's replay stream, then the trim/expiry script
  const stream = keys.events(userId);
  const fields = storedEvent(type, data); // the chat scopes the poke, not the entry
  multi.xadd(stream, 'MAXLEN', '~', CONFIG.eventsMaxlen, '*', ...fields);
  const oldestKept = `${Date.now() - CONFIG.eventsRetention * 1000}-0`;
  multi.eval(SCRIPTS.afterAppend, 1, stream, oldestKept, CONFIG.eventsRetention);
}

// Calendar arithmetic of gamification.days, for UTC learners.
const EPOCH_ORDINAL = 719163; // date(1970, 1, 1).toordinal()
const utcDay = (us) => Math.floor(us / DAY_US);
const dayIso = (day) => new Date(day * 86_400_000).toISOString().slice(0, 10);

function isoWeek(us) {
  const d = new Date(Math.floor(us / 1000));
  const date = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const weekday = date.getUTCDay() || 7;
  date.setUTCDate(date.getUTCDate() + 4 - weekday);
  const yearStart = Date.UTC(date.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((date - yearStart) / 86_400_000 + 1) / 7);
  return `${date.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

function weekStartSeconds(week) {
  const [year, number] = week.split('-W').map(Number);
  const jan4 = Date.UTC(year, 0, 4);
  const monday = jan4 - (((new Date(jan4).getUTCDay() || 7) - 1) * 86_400_000);
  return (monday + (number - 1) * 7 * 86_400_000) / 1000;
}

function stageActivity(multi, user, messages, now) {
  // gamification.managers.activity.stage_messages: the learner's messages of one local day are one activity
  const byDay = new Map();
  for (const m of messages) {
    if (m.role !== 'user') continue;
    const moment = Math.min(m.createdAt || now, now);
    if (now - GAME.BACKFILL_DAYS * DAY_US <= moment && moment <= now + FUTURE_SKEW_US) {
      const day = utcDay(moment);
      byDay.set(day, [...(byDay.get(day) || []), moment]);
    }
  }
  const staged = [];
  for (const [day, moments] of byDay) {
    const moment = Math.max(...moments);
    const week = isoWeek(moment);
    const act = {
      type: 'message', xp: GAME.XP.message * moments.length, messages: moments.length, seconds: 0, items: 0,
      streak: true, id: '', t: String(moment), day: day + EPOCH_ORDINAL,
      back: Array.from({ length: GAME.FREEZE_MAX + 2 }, (_, i) => String((day - i) * DAY_US)),
      fwd: Array.from({ length: GAME.BACKFILL_DAYS + 2 }, (_, i) => String((day + 1 + i) * DAY_US)),
    };
    const args = {
      now: String(now), week, statsExpireAt: (day + GAME.STATS_RETENTION_DAYS + 1) * 86_400,
      rules: CONFIG.rules, earnEvery: GAME.FREEZE_EARN_EVERY, maxFreezes: GAME.FREEZE_MAX,
      keep: Math.max(60, GAME.BACKFILL_DAYS + GAME.FREEZE_MAX + 10), goalXpPerDay: GAME.GOAL_XP_PER_DAY,
      seenSince: String(now - (GAME.BACKFILL_DAYS + 2) * DAY_US),
      limits: { items: GAME.DAILY_ITEMS, seconds: GAME.DAILY_MINUTES * 60, activities: GAME.DAILY_ACTIVITIES },
      act,
    };
    const uid = user.id;
    multi.eval(SCRIPTS.recordActivity, 7, keys.streak(uid), keys.streakDays(uid), keys.stats(uid, dayIso(day)),
      keys.totals(uid), keys.weeklyXp(uid), keys.achievements(uid), keys.activityIds(uid), JSON.stringify(args));
    staged.push({ day, week });
  }
  return staged;
}

function streakView(reported, now) {
  // gamification.managers.engine.streak_view for a UTC learner
  const stored = parseInt(reported.current || '0', 10);
  const freezes = parseInt(reported.freezes || '0', 10);
  const lastAt = reported.lastAt ? parseInt(reported.lastAt, 10) : null;
  const today = utcDay(now);
  const missed = lastAt === null ? null : today - utcDay(lastAt) - 1;
  const alive = stored > 0 && missed !== null && missed <= freezes;
  return {
    current: alive ? stored : 0, longest: parseInt(reported.longest || '0', 10), freezes, maxFreezes: GAME.FREEZE_MAX,
    lastActivity: iso(lastAt), lastActivityDate: lastAt === null ? null : dayIso(utcDay(lastAt)), today: dayIso(today),
    timezone: 'UTC', alive, activeToday: missed !== null && missed < 0,
    freezesNeeded: alive && missed !== null ? Math.max(0, missed) : 0,
  };
}

async function publishOutcome(userId, { week }, reply, now) {
  // gamification.managers.engine._publish, after the response: leaderboard entry and derived events
  const out = JSON.parse(reply);
  const xp = out.xp || {};
  const multi = redis.multi();
  if (xp.awarded > 0) {
    const board = keys.leaderboard(week);
    multi.zadd(board, 'GT', xp.week || 0, userId);
    multi.expireat(board, weekStartSeconds(week) + (GAME.LEADERBOARD_WEEKS_KEPT + 1) * 7 * 86_400);
  }
  if (out.streak && out.streak.changed) stageEvent(multi, userId, 'streak.updated', streakView(out.streak, now));
  // a learner's messages publish no stats.updated (their message.created says the counters moved)
  if (xp.awarded) {
    stageEvent(multi, userId, 'xp.awarded', { amount: xp.awarded, total: xp.total || 0, week, weekXp: xp.week || 0 });
  }
  for (const id of Array.isArray(out.achievements) ? out.achievements : []) {
    stageEvent(multi, userId, 'achievement.awarded', { ...CONFIG.achievements[id], awardedAt: iso(now) });
  }
  if (multi.length > 1) await multi.exec(); // more than the MULTI itself
}

async function saveMessages(actor, body) {
  const batch = body && typeof body === 'object' && !Array.isArray(body) && 'messages' in body ? body.messages : [body];
  if (!Array.isArray(batch) || !batch.length || batch.length > 100) throw invalid('messages', 'Send 1 to 100 messages.');
  const messages = batch.map(messageInput);
  const now = nowUs();
  for (const m of messages) {
    m.id = m.id || newId();
    m.createdAt = m.createdAt || now + m.index * 1000;
    if (!m.content) m.content = textOf(m.parts);
    delete m.index;
  }
  const chatIds = [...new Set(messages.map((m) => m.chatId))];
  const timesKey = keys.userMessageTimes(actor);
  const quota = messages.filter((m) => m.role === 'user').map((m) => m.id);

  // one read round trip: the chats, the id claims, the user, and the quota reservation
  const read = redis.pipeline();
  for (const cid of chatIds) read.hgetall(keys.chat(cid));
  for (const m of messages) read.hget(keys.messageLookups(m.id), compactId(m.id));
  read.hgetall(keys.user(actor));
  read.eval(SCRIPTS.reserveQuota, 2, keys.user(actor), timesKey, now, now - DAY_US,
    now - MESSAGE_TIMES_RETENTION_US, LIMITS_JSON, ...quota);
  const replies = results(await read.exec());
  const [userRaw, reservation] = replies.slice(-2);
  const taken = messages.map((m, i) => replies[chatIds.length + i]);
  const chats = new Map();
  let user;
  try {
    chatIds.forEach((cid, i) => {
      const chat = chatOut(replies[i]);
      if (chat === null || chat.userId !== actor) throw notFound('chat');
      chats.set(cid, chat);
    });
    messages.forEach((m, i) => {
      if (taken[i]) throw new ApiError(409, 'conflict:api', `Message ${m.id} already exists.`, { id: ['already exists'] });
    });
    if (!userRaw || userRaw.id === undefined) throw notFound('user');
    user = { id: userRaw.id, timezone: userRaw.timezone || 'UTC' };
    if (quota.length && user.timezone !== 'UTC') throw new ApiError(501, 'not_implemented:peer', 'The peer keeps UTC learners only.');
  } catch (error) {
    if (quota.length && Number(reservation[0]) === 1) await redis.zrem(timesKey, ...quota);
    throw error;
  }
  if (Number(reservation[0]) === 0) {
    const [, limit, kind, oldest] = reservation;
    const freesAt = oldest ? parseInt(oldest, 10) + DAY_US : now + DAY_US;
    const retryAfter = Math.max(1, Math.floor((freesAt - now) / 1_000_000) + 1);
    throw new ApiError(429, 'rate_limit:chat', `Daily message limit of ${limit} reached for ${kind} users.`, undefined,
      { 'Retry-After': String(retryAfter) });
  }

  // one write round trip: MULTI/EXEC of every step
  const multi = redis.multi();
  for (const [cid, chat] of chats) {
    const group = messages.filter((m) => m.chatId === cid);
    let last = Math.max(...group.map((m) => m.createdAt));
    if (chat.lastMessageAt && chat.lastMessageAt > last) last = chat.lastMessageAt;
    chat.lastMessageAt = last;
    multi.hset(keys.chatMessageData(cid), ...group.flatMap((m) => [m.id, encodeMessage(m)]));
    multi.zadd(keys.chatMessages(cid), ...group.flatMap((m) => [m.createdAt, m.id]));
    multi.eval(SCRIPTS.raiseField, 1, keys.chat(cid), 'lastMessageAt', last);
    multi.eval(SCRIPTS.bump, 1, keys.chatRev(cid), nowUs(), 'chat', 'messages'); // revisions.touch_chat
  }
  for (const m of messages) multi.hset(keys.messageLookups(m.id), compactId(m.id), lookupValue(m.chatId, actor));
  for (const [cid, chat] of chats) multi.zadd(keys.userChatsByActivity(actor), 'GT', chat.lastMessageAt, cid);
  multi.eval(SCRIPTS.bump, 1, keys.userRev(actor), nowUs(), 'chats'); // revisions.touch_user
  const rendered = messages.map((m) => ({ ...m, createdAt: iso(m.createdAt) }));
  messages.forEach((m, i) => {
    multi.xadd(keys.outbox(), '*', 'op', 'upsert', 'kind', 'message', 'userId', actor, 'chatId', m.chatId, 'messageId', m.id);
    stageEvent(multi, actor, 'message.created', { id: m.id, chatId: m.chatId, role: m.role });
  });
  const before = multi.length - 1; // the queue holds MULTI itself; the replies do not
  const staged = stageActivity(multi, user, messages, now);
  const written = results(await multi.exec());
  staged.forEach((outcome, i) => {
    setImmediate(() => publishOutcome(actor, outcome, written[before + i], now).catch((e) => console.error(e)));
  });
  return rendered;
}

// --- HTTP ----------------------------------------------------------------------------------------
const CACHE_CONTROL = 'private, no-cache';

function send(res, status, payload, headers) {
  if (status === 304) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const body = JSON.stringify(payload);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// POST /api/storage/search lives in search.js (bench/peer.py --ops search)
const search = require('./search').create({ redis, prefix: PREFIX, ApiError, invalid, iso, parseTimestamp, idPattern: ID_PATTERN });

async function route(req) {
  const url = new URL(req.url, 'http://peer');
  const path = url.pathname.replace(/\/$/, '');
  if (path === '/api/health') return [200, { status: 'ok' }];
  const actor = await authenticate(req);
  if (req.method === 'GET') {
    const chat = /^\/api\/storage\/chat\/([^/]+)$/.exec(path);
    let rev, read;
    if (path === '/api/storage/chat') {
      rev = revision(req, keys.userRev(actor), 'chats');
      read = () => listChats(actor, url.searchParams, rev);
    } else if (chat) {
      const chatId = decodeURIComponent(chat[1]);
      rev = revision(req, keys.chatRev(chatId), 'chat');
      read = () => getChat(actor, chatId, rev);
    } else if (path === '/api/storage/message') {
      const chatId = url.searchParams.get('chatId') || '';
      rev = revision(req, keys.chatRev(chatId), 'messages');
      read = () => listMessages(actor, url.searchParams, rev);
    }
    if (read) {
      try {
        const payload = await read();
        return [200, payload, rev.etag ? { ETag: rev.etag, 'Cache-Control': CACHE_CONTROL } : {}];
      } catch (error) {
        if (!(error instanceof NotModified)) throw error;
        return [304, null, { ETag: error.etag, 'Cache-Control': CACHE_CONTROL }];
      }
    }
  }
  if (path === '/api/storage/search' && req.method === 'POST') return [200, await search(actor, await readBody(req))];
  if (path === '/api/storage/message' && req.method === 'POST') {
    let body;
    try {
      body = JSON.parse(await readBody(req));
    } catch {
      throw new ApiError(400, 'bad_request:api', 'JSON parse error.');
    }
    return [201, await saveMessages(actor, body)];
  }
  throw new ApiError(404, 'not_found:api', 'Not found.');
}

const server = http.createServer((req, res) => {
  route(req).then(
    ([status, payload, headers]) => send(res, status, payload, headers),
    (error) => {
      if (!(error instanceof ApiError)) {
        console.error(error);
        error = new ApiError(500, 'error:api', 'Internal error.');
      }
      const body = { error: { code: error.code, message: error.message, ...(error.fields ? { fields: error.fields } : {}) } };
      const headers = { ...(error.headers || {}), ...(error.status === 401 ? { 'WWW-Authenticate': 'Bearer' } : {}) };
      send(res, error.status, body, headers);
    },
  );
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT || 8787), process.env.HOST || '127.0.0.1', () => {
  console.log(`peer listening on ${server.address().address}:${server.address().port}`);
});
const stop = () => server.close(() => redis.quit().finally(() => process.exit(0)));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
