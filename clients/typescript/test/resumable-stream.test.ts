/**
 * The resumable-stream drop-in against a running server (MOOKTI_URL, MOOKTI_SERVICE_KEY, as
 * run-tests.sh sets them): a producer uploads while a second context resumes the same stream.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { createResumableStreamContext } from "../src/resumable-stream.js";

const baseUrl = process.env.MOOKTI_URL ?? "";
const serviceKey = process.env.MOOKTI_SERVICE_KEY ?? "";

async function call(path: string, body: unknown, userId?: string): Promise<any> {
  const headers: Record<string, string> = { Authorization: `Bearer ${serviceKey}`, "Content-Type": "application/json" };
  if (userId) headers["X-Mookti-User"] = userId;
  const response = await fetch(`${baseUrl}${path}`, { method: "POST", headers, body: JSON.stringify(body) });
  const raw = await response.text();
  assert.ok(response.ok, `${path}: HTTP ${response.status} ${raw}`);
  return JSON.parse(raw);
}

function words(parts: string[], pauseMs: number): ReadableStream<string> {
  let index = 0;
  return new ReadableStream<string>({
    async pull(controller) {
      if (index === parts.length) return controller.close();
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
      controller.enqueue(parts[index++]);
    },
  });
}

async function text(stream: ReadableStream<string> | null | undefined): Promise<string> {
  assert.ok(stream);
  let out = "";
  for await (const chunk of stream as unknown as AsyncIterable<string>) out += chunk;
  return out;
}

test("a second context resumes a stream while it is produced, and sees it done after", async () => {
  const user = await call("/api/storage/user", { email: `rs-${randomUUID().slice(0, 8)}@example.com` });
  const chat = await call("/api/storage/chat", { title: "resumable" }, user.id);
  const streamId = randomUUID();
  await call(`/api/storage/chat/${chat.id}/streams`, { streamId }, user.id);
  const auth = { serviceKey, userId: user.id };
  const uploads: Promise<unknown>[] = [];
  const producer = createResumableStreamContext({ baseUrl, auth, waitUntil: (p) => uploads.push(p) });
  const reader = createResumableStreamContext({ baseUrl, auth, waitUntil: null });
  const parts = Array.from({ length: 40 }, (_, i) => `word${i} `);

  const own = await producer.resumableStream(streamId, () => words(parts, 10));
  assert.equal(await reader.hasExistingStream(streamId), true);
  const resumed = await reader.resumeExistingStream(streamId, 3);
  const [ownText, resumedText] = await Promise.all([text(own), text(resumed)]);
  await Promise.all(uploads);

  assert.equal(ownText, parts.join(""));
  assert.equal(resumedText, parts.join("").slice(3));
  assert.equal(await reader.hasExistingStream(streamId), "DONE");
  assert.equal(await reader.resumeExistingStream(streamId), null);
  assert.equal(await reader.resumableStream(streamId, () => words(["x"], 0)), null);
  assert.equal(await reader.resumeExistingStream(randomUUID()), undefined);
  assert.equal(await reader.hasExistingStream(randomUUID()), null);
});
