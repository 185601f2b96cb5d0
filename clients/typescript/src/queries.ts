/**
 * Drop-in replacement for ai-chatbot's `lib/db/queries.ts` over the Mookti storage API.
 *
 * Same function names, arguments and result shapes as the Drizzle queries (timestamps are `Date`
 * objects, lists are arrays, "not found" is `undefined`/`null`/`[]` as there), so the webapp switches
 * from Postgres by changing one import. Configured from env: `MOOKTI_URL`, `MOOKTI_SERVICE_KEY`.
 *
 * The service key acts for one user per request (`X-Mookti-User`). Functions whose arguments name
 * the user (saveChat, getChatsByUserId, saveDocument, ...) use that id; the others act for the
 * user of the current request: wrap a request in `withMooktiUser(session.user.id, fn)` or register
 * `setMooktiUserResolver(async () => (await auth())?.user?.id)` once. Without one, reads are
 * anonymous (public chats only) and writes throw.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { actAs, createMooktiClient, ok, type MooktiAuth, type MooktiClient } from "./client.js";
import { MooktiError } from "./errors.js";
import type { components } from "./schema.js";

type Schemas = components["schemas"];
type MessageParts = Schemas["MessageOut"]["parts"];
type Attachments = Schemas["MessageOut"]["attachments"];

// --- ai-chatbot's types (lib/db/schema.ts), as Drizzle returns them --------------------------
export type VisibilityType = Schemas["VisibilityEnum"]; // "private" | "public"
export type ArtifactKind = Schemas["DocumentKindEnum"]; // "text" | "code" | "image" | "sheet"

export interface User {
  id: string;
  email: string;
  /** Always null: the server keeps the hash; sign in with {@link authenticateUser}. */
  password: string | null;
}
export interface Chat {
  id: string;
  createdAt: Date;
  title: string;
  userId: string;
  visibility: VisibilityType;
}
export interface DBMessage {
  id: string;
  chatId: string;
  role: string;
  parts: unknown;
  attachments: unknown;
  createdAt: Date;
}
export interface Vote {
  chatId: string;
  messageId: string;
  isUpvoted: boolean;
}
export interface Document {
  id: string;
  createdAt: Date;
  title: string;
  content: string | null;
  kind: ArtifactKind;
  userId: string;
}
export interface Suggestion {
  id: string;
  documentId: string;
  documentCreatedAt: Date;
  originalText: string;
  suggestedText: string;
  description: string | null;
  isResolved: boolean;
  userId: string;
  createdAt: Date;
}

// --- configuration and the acting user ---------------------------------------------------------
export interface MooktiQueriesConfig {
  baseUrl: string;
  serviceKey: string;
  fetch?: (input: Request) => Promise<Response>;
}

let configured: { config: MooktiQueriesConfig; client: MooktiClient } | undefined;
const actingUser = new AsyncLocalStorage<string>();
let userResolver: (() => string | null | undefined | Promise<string | null | undefined>) | undefined;

/** Use another server than `MOOKTI_URL` / `MOOKTI_SERVICE_KEY` (tests, several deployments). */
export function configureMookti(config: MooktiQueriesConfig): void {
  configured = { config, client: clientFor(config, { serviceKey: config.serviceKey }) };
}

function clientFor(config: MooktiQueriesConfig, auth: MooktiAuth): MooktiClient {
  return createMooktiClient({ baseUrl: config.baseUrl, auth, ...(config.fetch ? { fetch: config.fetch } : {}) });
}

function setup(): { config: MooktiQueriesConfig; client: MooktiClient } {
  if (!configured) {
    const baseUrl = process.env.MOOKTI_URL;
    const serviceKey = process.env.MOOKTI_SERVICE_KEY;
    if (!baseUrl || !serviceKey) throw new Error("Set MOOKTI_URL and MOOKTI_SERVICE_KEY (or call configureMookti).");
    configureMookti({ baseUrl, serviceKey });
  }
  return configured as { config: MooktiQueriesConfig; client: MooktiClient };
}

const api = (): MooktiClient => setup().client;

/** Run `fn` (and everything it awaits) acting for `userId`. */
export function withMooktiUser<T>(userId: string, fn: () => T): T {
  return actingUser.run(userId, fn);
}

/** Where to find the acting user outside {@link withMooktiUser}, e.g. the Auth.js session. */
export function setMooktiUserResolver(
  resolver: (() => string | null | undefined | Promise<string | null | undefined>) | undefined,
): void {
  userResolver = resolver;
}

async function currentUser(): Promise<string | undefined> {
  return actingUser.getStore() ?? (await userResolver?.()) ?? undefined;
}

/** Request options acting for the current user; anonymous when there is none (reads). */
async function asCurrent(): Promise<{ headers: Record<string, string> } | Record<string, never>> {
  const userId = await currentUser();
  return userId ? actAs(userId) : {};
}

async function asCurrentWriter(what: string): Promise<{ headers: Record<string, string> }> {
  const userId = await currentUser();
  if (!userId) throw new MooktiError(401, "unauthorized:api", `${what} needs the acting user: use withMooktiUser.`);
  return actAs(userId);
}

/** A 404 becomes `fallback` (ai-chatbot's "not found" results); other errors are thrown. */
async function orWhenMissing<T, F>(pending: Promise<T>, fallback: F): Promise<T | F> {
  try {
    return await pending;
  } catch (error) {
    if (error instanceof MooktiError && error.status === 404) return fallback;
    throw error;
  }
}

// --- mapping the API's JSON to Drizzle rows ---------------------------------------------------
const toDate = (iso: string): Date => new Date(iso);

function toChat(chat: Schemas["ChatOut"]): Chat {
  const { id, createdAt, title, userId, visibility } = chat;
  return { id, createdAt: toDate(createdAt), title, userId, visibility };
}

function toMessage(message: Schemas["MessageOut"]): DBMessage {
  const { id, chatId, role, parts, attachments, createdAt } = message;
  return { id, chatId, role, parts, attachments, createdAt: toDate(createdAt) };
}

function toDocument(document: Schemas["DocumentOut"]): Document {
  const { id, createdAt, title, content, kind, userId } = document;
  return { id, createdAt: toDate(createdAt), title, content, kind, userId };
}

function toSuggestion(suggestion: Schemas["SuggestionOut"]): Suggestion {
  return {
    ...suggestion,
    documentCreatedAt: toDate(suggestion.documentCreatedAt),
    createdAt: toDate(suggestion.createdAt),
  };
}

const toUser = (user: Schemas["UserOut"]): User => ({ id: user.id, email: user.email, password: null });

// --- users ------------------------------------------------------------------------------------
export async function getUser(email: string): Promise<Array<User>> {
  const users = await ok(api().GET("/api/storage/user/", { params: { query: { email } } }));
  return users.map(toUser);
}

/** The server hashes the password (at least 8 characters). */
export async function createUser(email: string, password: string): Promise<Array<User>> {
  const user = await ok(api().POST("/api/storage/user/", { body: { email, password } }));
  return [toUser(user)];
}

export async function createGuestUser(): Promise<Array<{ id: string; email: string }>> {
  const user = await ok(api().POST("/api/storage/user/guest/"));
  return [{ id: user.id, email: user.email }];
}

/**
 * Not in ai-chatbot: its auth.ts compares a bcrypt hash from getUser; the server keeps the hash,
 * so sign-in checks the password here instead (a short-lived token, revoked at once).
 */
export async function authenticateUser(email: string, password: string): Promise<User | null> {
  try {
    const issued = await ok(api().POST("/api/storage/token/", { body: { email, password, ttl: 60 } }));
    const [user] = await getUser(email);
    await ok(clientFor(setup().config, { token: issued.token }).DELETE("/api/storage/token/current/"));
    return user ?? null;
  } catch (error) {
    if (error instanceof MooktiError && (error.status === 400 || error.status === 401)) return null; // bad input, wrong password
    throw error;
  }
}

// --- chats ------------------------------------------------------------------------------------
export async function saveChat({
  id,
  userId,
  title,
  visibility,
}: {
  id: string;
  userId: string;
  title: string;
  visibility: VisibilityType;
}): Promise<Chat> {
  const chat = await ok(api().POST("/api/storage/chat/", { body: { id, title, visibility }, ...actAs(userId) }));
  return toChat(chat);
}

export async function deleteChatById({ id }: { id: string }): Promise<Chat | undefined> {
  const pending = ok(
    api().DELETE("/api/storage/chat/{id}/", { params: { path: { id } }, ...(await asCurrentWriter("deleteChatById")) }),
  );
  const chat = await orWhenMissing(pending, undefined);
  return chat ? toChat(chat) : undefined;
}

export async function deleteAllChatsByUserId({ userId }: { userId: string }): Promise<{ deletedCount: number }> {
  const body = await ok(api().DELETE("/api/storage/chat/all/", actAs(userId)));
  return { deletedCount: body.deletedCount };
}

export async function getChatsByUserId({
  id,
  limit,
  startingAfter,
  endingBefore,
}: {
  id: string;
  limit: number;
  startingAfter: string | null;
  endingBefore: string | null;
}): Promise<{ chats: Chat[]; hasMore: boolean }> {
  const query = {
    limit,
    ...(startingAfter ? { startingAfter } : endingBefore ? { endingBefore } : {}),
  };
  const page = await ok(api().GET("/api/storage/chat/", { params: { query }, ...actAs(id) }));
  return { chats: page.chats.map(toChat), hasMore: page.hasMore };
}

export async function getChatById({ id }: { id: string }): Promise<Chat | null> {
  const pending = ok(api().GET("/api/storage/chat/{id}/", { params: { path: { id } }, ...(await asCurrent()) }));
  const chat = await orWhenMissing(pending, null);
  return chat ? toChat(chat) : null;
}

export async function updateChatVisibilityById({
  chatId,
  visibility,
}: {
  chatId: string;
  visibility: "private" | "public";
}): Promise<Chat> {
  const options = await asCurrentWriter("updateChatVisibilityById");
  const chat = await ok(
    api().PATCH("/api/storage/chat/{id}/", { params: { path: { id: chatId } }, body: { visibility }, ...options }),
  );
  return toChat(chat);
}

/** The name before ai-chatbot fixed the typo (Oct 2025); forks from mid-2025 import this one. */
export const updateChatVisiblityById = updateChatVisibilityById;

/** Best effort, as in ai-chatbot: errors are logged, not thrown. */
export async function updateChatTitleById({ chatId, title }: { chatId: string; title: string }): Promise<Chat | undefined> {
  try {
    const options = await asCurrentWriter("updateChatTitleById");
    const chat = await ok(
      api().PATCH("/api/storage/chat/{id}/", { params: { path: { id: chatId } }, body: { title }, ...options }),
    );
    return toChat(chat);
  } catch (error) {
    console.warn("Failed to update title for chat", chatId, error instanceof Error ? error.message : error);
    return undefined;
  }
}

// --- messages ---------------------------------------------------------------------------------
const MESSAGE_BATCH = 100; // the server's largest batch
const MESSAGE_PAGE = 1000; // the server's largest page

export async function saveMessages({ messages }: { messages: Array<DBMessage> }): Promise<DBMessage[]> {
  const options = await asCurrentWriter("saveMessages");
  const saved: DBMessage[] = [];
  for (let start = 0; start < messages.length; start += MESSAGE_BATCH) {
    const batch = messages.slice(start, start + MESSAGE_BATCH).map((m) => ({
      id: m.id,
      chatId: m.chatId,
      role: m.role as Schemas["RoleEnum"],
      // DBMessage's parts and attachments are ai-chatbot's json columns (`unknown`): its UI message parts.
      parts: m.parts as MessageParts,
      attachments: (m.attachments ?? []) as Attachments,
      createdAt: m.createdAt.toISOString(),
    }));
    const answer = await ok(api().POST("/api/storage/message/", { body: { messages: batch }, ...options }));
    saved.push(...answer.map(toMessage));
  }
  return saved;
}

export async function updateMessage({ id, parts }: { id: string; parts: DBMessage["parts"] }): Promise<DBMessage> {
  const options = await asCurrentWriter("updateMessage");
  const body = { parts: parts as MessageParts };
  const message = await ok(api().PATCH("/api/storage/message/{id}/", { params: { path: { id } }, body, ...options }));
  return toMessage(message);
}

/** All messages of the chat, oldest first (pages of 1000 until the end). */
export async function getMessagesByChatId({ id }: { id: string }): Promise<DBMessage[]> {
  const options = await asCurrent();
  const all: DBMessage[] = [];
  let startingAfter: string | undefined;
  for (;;) {
    const query = { chatId: id, limit: MESSAGE_PAGE, ...(startingAfter ? { startingAfter } : {}) };
    const pending = ok(api().GET("/api/storage/message/", { params: { query }, ...options }));
    const page = await orWhenMissing(pending, undefined);
    if (!page) return all;
    all.push(...page.messages.map(toMessage));
    startingAfter = page.messages.at(-1)?.id;
    if (!page.hasMore || !startingAfter) return all;
  }
}

export async function getMessageById({ id }: { id: string }): Promise<DBMessage[]> {
  const pending = ok(api().GET("/api/storage/message/{id}/", { params: { path: { id } }, ...(await asCurrent()) }));
  const message = await orWhenMissing(pending, undefined);
  return message ? [toMessage(message)] : [];
}

/** Deletes the chat's messages created at or after `timestamp` (inclusive) and their votes. */
export async function deleteMessagesByChatIdAfterTimestamp({
  chatId,
  timestamp,
}: {
  chatId: string;
  timestamp: Date;
}): Promise<{ deletedIds: string[]; deletedCount: number }> {
  const options = await asCurrentWriter("deleteMessagesByChatIdAfterTimestamp");
  const query = { chatId, timestamp: timestamp.toISOString() };
  const body = await ok(api().DELETE("/api/storage/message/after/", { params: { query }, ...options }));
  return { deletedIds: body.deletedIds, deletedCount: body.deletedCount };
}

/** The user's own messages in the last `differenceInHours` hours (rounded up to whole hours). */
export async function getMessageCountByUserId({
  id,
  differenceInHours,
}: {
  id: string;
  differenceInHours: number;
}): Promise<number> {
  const hours = Math.max(1, Math.ceil(differenceInHours));
  const body = await ok(api().GET("/api/storage/message/count/", { params: { query: { hours } }, ...actAs(id) }));
  return body.count;
}

// --- votes ------------------------------------------------------------------------------------
export async function voteMessage({
  chatId,
  messageId,
  type,
}: {
  chatId: string;
  messageId: string;
  type: "up" | "down";
}): Promise<Vote> {
  const options = await asCurrentWriter("voteMessage");
  return ok(api().POST("/api/storage/vote/", { body: { chatId, messageId, type }, ...options }));
}

export async function getVotesByChatId({ id }: { id: string }): Promise<Vote[]> {
  const pending = ok(api().GET("/api/storage/vote/", { params: { query: { chatId: id } }, ...(await asCurrent()) }));
  return orWhenMissing(pending, []);
}

// --- documents and suggestions ------------------------------------------------------------------
/** A new version of the document (ai-chatbot's `.returning()`: an array of one row). */
export async function saveDocument({
  id,
  title,
  kind,
  content,
  userId,
}: {
  id: string;
  title: string;
  kind: ArtifactKind;
  content: string;
  userId: string;
}): Promise<Document[]> {
  const document = await ok(api().POST("/api/storage/document/", { body: { id, title, kind, content }, ...actAs(userId) }));
  return [toDocument(document)];
}

/** Every version, oldest first. */
export async function getDocumentsById({ id }: { id: string }): Promise<Document[]> {
  const pending = ok(
    api().GET("/api/storage/document/{id}/versions/", { params: { path: { id } }, ...(await asCurrent()) }),
  );
  return (await orWhenMissing(pending, [])).map(toDocument);
}

/** The latest version. */
export async function getDocumentById({ id }: { id: string }): Promise<Document | undefined> {
  const pending = ok(api().GET("/api/storage/document/{id}/", { params: { path: { id } }, ...(await asCurrent()) }));
  const document = await orWhenMissing(pending, undefined);
  return document ? toDocument(document) : undefined;
}

/** Deletes the versions newer than `timestamp` (strict) and their suggestions; returns the deleted versions. */
export async function deleteDocumentsByIdAfterTimestamp({
  id,
  timestamp,
}: {
  id: string;
  timestamp: Date;
}): Promise<Document[]> {
  const versions = await getDocumentsById({ id });
  const options = await asCurrentWriter("deleteDocumentsByIdAfterTimestamp");
  const query = { timestamp: timestamp.toISOString() };
  await ok(api().DELETE("/api/storage/document/{id}/", { params: { path: { id }, query }, ...options }));
  return versions.filter((version) => version.createdAt.getTime() > timestamp.getTime());
}

/** Saves suggestions (grouped by document, acting for each suggestion's `userId`). */
export async function saveSuggestions({ suggestions }: { suggestions: Array<Suggestion> }): Promise<Suggestion[]> {
  const groups = new Map<string, Suggestion[]>();
  for (const suggestion of suggestions) {
    const key = JSON.stringify([suggestion.documentId, suggestion.userId]);
    groups.set(key, [...(groups.get(key) ?? []), suggestion]);
  }
  const saved: Suggestion[] = [];
  for (const group of groups.values()) {
    const { documentId, userId } = group[0] as Suggestion;
    for (let start = 0; start < group.length; start += MESSAGE_BATCH) {
      const body = {
        suggestions: group.slice(start, start + MESSAGE_BATCH).map((s) => ({
          id: s.id,
          originalText: s.originalText,
          suggestedText: s.suggestedText,
          description: s.description,
          documentCreatedAt: s.documentCreatedAt.toISOString(),
          isResolved: s.isResolved,
        })),
      };
      const answer = await ok(
        api().POST("/api/storage/document/{id}/suggestions/", { params: { path: { id: documentId } }, body, ...actAs(userId) }),
      );
      saved.push(...answer.map(toSuggestion));
    }
  }
  return saved;
}

export async function getSuggestionsByDocumentId({ documentId }: { documentId: string }): Promise<Suggestion[]> {
  const pending = ok(
    api().GET("/api/storage/document/{id}/suggestions/", { params: { path: { id: documentId } }, ...(await asCurrent()) }),
  );
  return (await orWhenMissing(pending, [])).map(toSuggestion);
}

// --- resumable streams ----------------------------------------------------------------------------
export async function createStreamId({ streamId, chatId }: { streamId: string; chatId: string }): Promise<void> {
  const options = await asCurrentWriter("createStreamId");
  await ok(api().POST("/api/storage/chat/{id}/streams/", { params: { path: { id: chatId } }, body: { streamId }, ...options }));
}

/** Stream ids, oldest first (callers take `.at(-1)`). */
export async function getStreamIdsByChatId({ chatId }: { chatId: string }): Promise<string[]> {
  const pending = ok(
    api().GET("/api/storage/chat/{id}/streams/", { params: { path: { id: chatId } }, ...(await asCurrent()) }),
  );
  return (await orWhenMissing(pending, [])).map((stream) => stream.id);
}
