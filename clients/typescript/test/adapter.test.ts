/**
 * Against a live server (MOOKTI_URL, MOOKTI_SERVICE_KEY): every function of the ai-chatbot
 * adapter with real data, the client's auth modes and errors, and every response body checked
 * against the server's OpenAPI schema.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { actAs, createMooktiClient, MooktiError, ok, type MooktiClient } from "../src/client.js";
import * as q from "../src/queries.js";
import { loadSchema, recordingFetch, SchemaChecker, type Exchange } from "./schema-check.js";

const baseUrl = process.env.MOOKTI_URL ?? "";
const serviceKey = process.env.MOOKTI_SERVICE_KEY ?? "";
const strict = process.env.MOOKTI_SCHEMA_STRICT === "1";
const run = randomUUID().slice(0, 8);

const exchanges: Exchange[] = [];
const fetchAndRecord = recordingFetch(exchanges);
let service: MooktiClient;
let checker: SchemaChecker;
const createdUsers: string[] = [];

/** The first element, failing the test when there is none. */
function first<T>(items: readonly T[]): T {
  assert.ok(items.length > 0, "expected at least one item");
  return items[0] as T;
}

/** Checks a rejected call's MooktiError (status, code, optionally a field). */
async function rejectsWith(pending: Promise<unknown>, status: number, code?: string, field?: string): Promise<void> {
  await assert.rejects(pending, (error: unknown) => {
    assert.ok(error instanceof MooktiError, `expected a MooktiError, got ${String(error)}`);
    assert.equal(error.status, status);
    if (code) assert.equal(error.code, code);
    if (field) assert.ok(field in error.fields, `expected field ${field} in ${JSON.stringify(error.fields)}`);
    return true;
  });
}

before(async () => {
  assert.ok(baseUrl && serviceKey, "set MOOKTI_URL and MOOKTI_SERVICE_KEY to a running server");
  checker = new SchemaChecker(await loadSchema(baseUrl));
  q.configureMookti({ baseUrl, serviceKey, fetch: fetchAndRecord });
  service = createMooktiClient({ baseUrl, auth: { serviceKey }, fetch: fetchAndRecord });
});

after(async () => {
  const leftovers: string[] = [];
  for (const id of createdUsers) {
    const { response } = await service.DELETE("/api/storage/user/{id}/", { params: { path: { id } } });
    if (response.status !== 204) leftovers.push(`${id}: ${response.status}`);
  }
  assert.deepEqual(leftovers, [], "test users that could not be deleted");
  for (const exchange of exchanges) checker.check(exchange);
  const found = [...checker.mismatches].sort();
  console.log(`\nschema check: ${checker.checked} responses, ${found.length} mismatches with today's schema`);
  for (const line of found) console.log(`  schema mismatch: ${line}`);
  if (strict) assert.deepEqual(found, [], "responses that do not match the schema");
});

describe("ai-chatbot queries adapter", () => {
  const email = `ts-${run}@example.com`;
  const password = `pw-${run}-secret`;
  let userId = "";
  const chatId = `chat-${run}`;
  const otherChatId = `chat2-${run}`;
  const base = Date.now() - 60_000;
  const messageIds = [0, 1, 2].map((i) => `msg${i}-${run}`);
  const documentId = `doc-${run}`;

  it("createUser, getUser, authenticateUser", async () => {
    const [created] = await q.createUser(email, password);
    assert.ok(created);
    userId = created.id;
    createdUsers.push(userId);
    assert.deepEqual(created, { id: userId, email, password: null });
    assert.deepEqual(await q.getUser(email), [{ id: userId, email, password: null }]);
    assert.deepEqual(await q.getUser(`nobody-${run}@example.com`), []);
    assert.equal((await q.authenticateUser(email, password))?.id, userId);
    assert.equal(await q.authenticateUser(email, "wrong-password"), null);
    await rejectsWith(q.createUser(email, password), 409);
  });

  it("createGuestUser", async () => {
    const guest = first(await q.createGuestUser());
    createdUsers.push(guest.id);
    assert.match(guest.email, /^guest-\d+$/);
    assert.deepEqual(Object.keys(guest).sort(), ["email", "id"]);
  });

  it("saveChat, getChatById, updateChatVisibilityById, updateChatTitleById", async () => {
    const chat = await q.saveChat({ id: chatId, userId, title: "First", visibility: "private" });
    assert.equal(chat.id, chatId);
    assert.ok(chat.createdAt instanceof Date && !Number.isNaN(chat.createdAt.getTime()));
    assert.deepEqual(await q.withMooktiUser(userId, () => q.getChatById({ id: chatId })), chat);
    assert.equal(await q.getChatById({ id: chatId }), null, "a private chat is hidden from anonymous readers");
    assert.equal(await q.withMooktiUser(userId, () => q.getChatById({ id: `missing-${run}` })), null);

    const shared = await q.withMooktiUser(userId, () =>
      q.updateChatVisibilityById({ chatId, visibility: "public" }),
    );
    assert.equal(shared.visibility, "public");
    assert.equal((await q.getChatById({ id: chatId }))?.visibility, "public", "anyone reads a public chat");
    assert.equal(q.updateChatVisiblityById, q.updateChatVisibilityById);

    const renamed = await q.withMooktiUser(userId, () => q.updateChatTitleById({ chatId, title: "Renamed" }));
    assert.equal(renamed?.title, "Renamed");
    const missing = await q.withMooktiUser(userId, () => q.updateChatTitleById({ chatId: `missing-${run}`, title: "x" }));
    assert.equal(missing, undefined, "updateChatTitleById swallows errors like ai-chatbot");
  });

  it("getChatsByUserId pages newest first with both cursors", async () => {
    await q.saveChat({ id: otherChatId, userId, title: "Second", visibility: "private" });
    const page = await q.getChatsByUserId({ id: userId, limit: 1, startingAfter: null, endingBefore: null });
    assert.deepEqual(page.chats.map((c) => c.id), [otherChatId]);
    assert.equal(page.hasMore, true);
    const older = await q.getChatsByUserId({ id: userId, limit: 10, startingAfter: null, endingBefore: otherChatId });
    assert.deepEqual(older.chats.map((c) => c.id), [chatId]);
    assert.equal(older.hasMore, false);
    const newer = await q.getChatsByUserId({ id: userId, limit: 10, startingAfter: chatId, endingBefore: null });
    assert.deepEqual(newer.chats.map((c) => c.id), [otherChatId]);
    await rejectsWith(
      q.getChatsByUserId({ id: userId, limit: 10, startingAfter: `missing-${run}`, endingBefore: null }),
      404,
      "not_found:chat",
    );
  });

  it("saveMessages, getMessagesByChatId, getMessageById, updateMessage", async () => {
    const roles = ["user", "assistant", "user"];
    const messages = messageIds.map((id, i) => ({
      id,
      chatId,
      role: roles[i] as string,
      parts: [{ type: "text", text: `message ${i}` }],
      attachments: [],
      createdAt: new Date(base + i * 1000),
    }));
    const saved = await q.withMooktiUser(userId, () => q.saveMessages({ messages }));
    assert.deepEqual(saved, messages);
    const read = await q.withMooktiUser(userId, () => q.getMessagesByChatId({ id: chatId }));
    assert.deepEqual(read, messages, "oldest first, createdAt as Date");
    assert.deepEqual(await q.getMessageById({ id: messageIds[1] as string }), [messages[1]]);
    assert.deepEqual(await q.getMessageById({ id: `missing-${run}` }), []);

    const parts = [{ type: "text", text: "edited" }];
    const updated = await q.withMooktiUser(userId, () => q.updateMessage({ id: messageIds[1] as string, parts }));
    assert.deepEqual(updated.parts, parts);
    assert.deepEqual(first(await q.getMessageById({ id: messageIds[1] as string })).parts, parts);
  });

  it("getMessageCountByUserId counts the user's own recent messages", async () => {
    assert.equal(await q.getMessageCountByUserId({ id: userId, differenceInHours: 24 }), 2);
  });

  it("voteMessage, getVotesByChatId", async () => {
    await q.withMooktiUser(userId, async () => {
      assert.deepEqual(await q.voteMessage({ chatId, messageId: messageIds[1] as string, type: "up" }), {
        chatId,
        messageId: messageIds[1],
        isUpvoted: true,
      });
      await q.voteMessage({ chatId, messageId: messageIds[1] as string, type: "down" });
      await q.voteMessage({ chatId, messageId: messageIds[0] as string, type: "up" });
      const votes = await q.getVotesByChatId({ id: chatId });
      const byMessage = Object.fromEntries(votes.map((v) => [v.messageId, v.isUpvoted]));
      assert.deepEqual(byMessage, { [messageIds[0] as string]: true, [messageIds[1] as string]: false });
    });
  });

  it("createStreamId, getStreamIdsByChatId", async () => {
    await q.withMooktiUser(userId, async () => {
      assert.equal(await q.createStreamId({ streamId: `s1-${run}`, chatId }), undefined);
      await q.createStreamId({ streamId: `s2-${run}`, chatId });
      assert.deepEqual(await q.getStreamIdsByChatId({ chatId }), [`s1-${run}`, `s2-${run}`]);
    });
  });

  it("deleteMessagesByChatIdAfterTimestamp is inclusive and drops the votes", async () => {
    await q.withMooktiUser(userId, async () => {
      const [message] = await q.getMessageById({ id: messageIds[1] as string });
      assert.ok(message);
      const deleted = await q.deleteMessagesByChatIdAfterTimestamp({ chatId, timestamp: message.createdAt });
      assert.deepEqual([...deleted.deletedIds].sort(), [messageIds[1], messageIds[2]].sort());
      assert.deepEqual((await q.getMessagesByChatId({ id: chatId })).map((m) => m.id), [messageIds[0]]);
      assert.deepEqual((await q.getVotesByChatId({ id: chatId })).map((v) => v.messageId), [messageIds[0]]);
    });
  });

  it("saveDocument, getDocumentsById, getDocumentById, saveSuggestions, getSuggestionsByDocumentId", async () => {
    const [v1] = await q.saveDocument({ id: documentId, title: "Draft", kind: "text", content: "one", userId });
    await new Promise((resolve) => setTimeout(resolve, 5));
    const [v2] = await q.saveDocument({ id: documentId, title: "Final", kind: "code", content: "two", userId });
    assert.ok(v1 && v2 && v2.createdAt > v1.createdAt);
    assert.equal(v2.kind, "code");
    await q.withMooktiUser(userId, async () => {
      assert.deepEqual(await q.getDocumentsById({ id: documentId }), [v1, v2]);
      assert.deepEqual(await q.getDocumentById({ id: documentId }), v2);
      assert.equal(await q.getDocumentById({ id: `missing-${run}` }), undefined);
      assert.deepEqual(await q.getDocumentsById({ id: `missing-${run}` }), []);
    });

    const suggestion = (version: q.Document, text: string): q.Suggestion => ({
      id: randomUUID(),
      documentId,
      documentCreatedAt: version.createdAt,
      originalText: text,
      suggestedText: text.toUpperCase(),
      description: "louder",
      isResolved: false,
      userId,
      createdAt: new Date(),
    });
    const wanted = [suggestion(v1, "one"), suggestion(v2, "two")];
    const saved = await q.saveSuggestions({ suggestions: wanted });
    assert.deepEqual(saved.map((s) => [s.id, s.documentCreatedAt.getTime()]), wanted.map((s) => [s.id, s.documentCreatedAt.getTime()]));
    const read = await q.withMooktiUser(userId, () => q.getSuggestionsByDocumentId({ documentId }));
    assert.deepEqual(read.map((s) => s.id).sort(), wanted.map((s) => s.id).sort());
    assert.ok(read.every((s) => s.createdAt instanceof Date && s.userId === userId));
  });

  it("deleteDocumentsByIdAfterTimestamp is strict and returns the deleted versions", async () => {
    await q.withMooktiUser(userId, async () => {
      const [v1, v2] = await q.getDocumentsById({ id: documentId });
      assert.ok(v1 && v2);
      assert.deepEqual(await q.deleteDocumentsByIdAfterTimestamp({ id: documentId, timestamp: v1.createdAt }), [v2]);
      assert.deepEqual(await q.getDocumentsById({ id: documentId }), [v1]);
      const left = await q.getSuggestionsByDocumentId({ documentId });
      assert.deepEqual(left.map((s) => s.documentCreatedAt.getTime()), [v1.createdAt.getTime()]);
    });
  });

  it("writes need the acting user; someone else's private chat is not found", async () => {
    await rejectsWith(q.voteMessage({ chatId, messageId: messageIds[0] as string, type: "up" }), 401);
    const [stranger] = await q.createGuestUser();
    assert.ok(stranger);
    createdUsers.push(stranger.id);
    assert.equal(await q.withMooktiUser(stranger.id, () => q.getChatById({ id: otherChatId })), null);
    assert.equal(await q.withMooktiUser(stranger.id, () => q.deleteChatById({ id: otherChatId })), undefined);
  });

  it("the user resolver supplies the acting user outside withMooktiUser", async () => {
    q.setMooktiUserResolver(async () => userId);
    try {
      assert.equal((await q.getChatById({ id: otherChatId }))?.id, otherChatId);
    } finally {
      q.setMooktiUserResolver(undefined);
    }
  });

  it("deleteChatById, deleteAllChatsByUserId", async () => {
    const deleted = await q.withMooktiUser(userId, () => q.deleteChatById({ id: otherChatId }));
    assert.equal(deleted?.id, otherChatId);
    assert.ok(deleted?.createdAt instanceof Date);
    assert.equal(await q.withMooktiUser(userId, () => q.getChatById({ id: otherChatId })), null);
    assert.deepEqual(await q.deleteAllChatsByUserId({ userId }), { deletedCount: 1 });
    assert.deepEqual(await q.withMooktiUser(userId, () => q.getStreamIdsByChatId({ chatId })), []);
    const page = await q.getChatsByUserId({ id: userId, limit: 10, startingAfter: null, endingBefore: null });
    assert.deepEqual(page, { chats: [], hasMore: false });
  });
});

describe("client", () => {
  it("authenticates with a user token and with the service key acting for a user", async () => {
    const user = await ok(service.POST("/api/storage/user/guest/"));
    createdUsers.push(user.id);
    const issued = await ok(service.POST("/api/storage/token/", { body: { userId: user.id } }));
    assert.equal(issued.userId, user.id);
    const asUser = createMooktiClient({ baseUrl, auth: { token: issued.token }, fetch: fetchAndRecord });
    assert.equal((await ok(asUser.GET("/api/storage/user/me/"))).id, user.id);
    assert.equal((await ok(service.GET("/api/storage/user/me/", actAs(user.id)))).id, user.id);
    const fixed = createMooktiClient({ baseUrl, auth: { serviceKey, userId: user.id }, fetch: fetchAndRecord });
    assert.equal((await ok(fixed.GET("/api/storage/user/me/"))).id, user.id);
    await ok(asUser.DELETE("/api/storage/token/current/"));
    await rejectsWith(ok(asUser.GET("/api/storage/user/me/")), 401, "unauthorized:auth");
  });

  it("throws MooktiError with the code and the fields of bad input", async () => {
    const user = first(await q.createGuestUser());
    createdUsers.push(user.id);
    const badChat = { id: "bad id with spaces", title: "x" };
    await rejectsWith(ok(service.POST("/api/storage/chat/", { body: badChat, ...actAs(user.id) })), 400, "bad_request:api", "id");
    const anonymous = createMooktiClient({ baseUrl, fetch: fetchAndRecord });
    await rejectsWith(ok(anonymous.GET("/api/storage/chat/")), 401);
    await rejectsWith(ok(anonymous.GET("/api/storage/chat/{id}/", { params: { path: { id: `missing-${run}` } } })), 404, "not_found:chat");
  });
});
