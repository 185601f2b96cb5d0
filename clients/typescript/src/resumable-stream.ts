/**
 * A drop-in for Vercel's `resumable-stream`, backed by the Mookti storage service instead of the
 * webapp's own Redis: the same `createResumableStreamContext` and methods, so ai-chatbot's
 * `app/(chat)/api/chat` routes keep their code. Chunks are buffered by the service
 * (`POST /api/storage/stream/{id}/chunks`), so a stream survives the producing process and any
 * process (or device) can resume it (`GET /api/storage/stream/{id}?resumeAt=N`, server-sent events).
 *
 * The stream id must be registered on its chat first (ai-chatbot's `createStreamId`, i.e.
 * `POST /api/storage/chat/{chatId}/streams`), which the chat route already does.
 */

export type ResumableAuth = { token: string } | { serviceKey: string; userId: string };

export interface ResumableStreamContextOptions {
  /** Server root, e.g. `http://127.0.0.1:8000`. */
  baseUrl: string;
  /** Who produces and reads: a user token, or the service key acting for the chat's owner. */
  auth: ResumableAuth;
  /** Keeps the upload running after the response returned (Next.js `after`, Vercel `waitUntil`). */
  waitUntil: ((promise: Promise<unknown>) => void) | null;
  /** Send buffered text at least this often while the model streams (ms, default 50). */
  flushIntervalMs?: number;
  /** A custom fetch (tests). */
  fetch?: typeof fetch;
}

export interface ResumableStreamContext {
  /** Resume the stream if it exists and runs, else create it from `makeStream`; null if it is done. */
  resumableStream(
    streamId: string,
    makeStream: () => ReadableStream<string>,
    skipCharacters?: number,
  ): Promise<ReadableStream<string> | null>;
  /** Upload `makeStream()` to the service while handing it to the caller. */
  createNewResumableStream(
    streamId: string,
    makeStream: () => ReadableStream<string>,
    skipCharacters?: number,
  ): Promise<ReadableStream<string> | null>;
  /** The stream from the service: null when it is done, undefined when there is no such stream. */
  resumeExistingStream(streamId: string, skipCharacters?: number): Promise<ReadableStream<string> | null | undefined>;
  /** null: no such stream; true: streaming; "DONE": ended. */
  hasExistingStream(streamId: string): Promise<null | true | "DONE">;
}

const MAX_BATCH_CHUNKS = 256;
const RETRIES = 5;

export function createResumableStreamContext(options: ResumableStreamContextOptions): ResumableStreamContext {
  const base = options.baseUrl.replace(/\/+$/, "");
  const doFetch = options.fetch ?? fetch;
  const headers: Record<string, string> =
    "token" in options.auth
      ? { Authorization: `Bearer ${options.auth.token}` }
      : { Authorization: `Bearer ${options.auth.serviceKey}`, "X-Mookti-User": options.auth.userId };
  const streamUrl = (id: string, tail = "") => `${base}/api/storage/stream/${encodeURIComponent(id)}${tail}`;

  async function post(url: string, body: unknown): Promise<Response> {
    let last: unknown;
    for (let attempt = 0; attempt < RETRIES; attempt++) {
      try {
        const response = await doFetch(url, {
          method: "POST",
          headers: { ...headers, "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify(body),
        });
        if (response.status < 500) return response;
        last = new Error(`HTTP ${response.status}`);
      } catch (error) {
        last = error; // a retried batch is a no-op on the server (same seq)
      }
      await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
    }
    throw last;
  }

  /** Upload one stream: batches of what arrived since the last send, numbered 0, 1, 2, ... */
  async function upload(streamId: string, source: ReadableStream<string>): Promise<void> {
    const reader = source.getReader();
    let pending: string[] = [];
    let seq = 0;
    let done = false;
    let failed = false;
    const flush = async () => {
      while (pending.length) {
        const chunks = pending.slice(0, MAX_BATCH_CHUNKS);
        pending = pending.slice(chunks.length);
        const response = await post(streamUrl(streamId, "/chunks"), { seq, chunks });
        if (!response.ok) throw new Error(`append refused: HTTP ${response.status} ${await response.text()}`);
        seq += 1;
      }
    };
    const interval = options.flushIntervalMs ?? 50;
    let timer: Promise<void> | null = null;
    try {
      while (!done) {
        const read = reader.read();
        const next = await Promise.race([read, (timer ??= delay(interval)).then(() => null)]);
        if (next === null) {
          timer = null;
          await flush();
          const result = await read;
          if (result.done) done = true;
          else pending.push(result.value);
          continue;
        }
        if (next.done) done = true;
        else pending.push(next.value);
      }
      await flush();
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      await post(streamUrl(streamId, "/end"), { status: failed ? "failed" : "done" }).catch(() => undefined);
    }
  }

  type State = { status: string } & Record<string, unknown>;

  async function state(streamId: string): Promise<"none" | "gone" | State> {
    const response = await doFetch(streamUrl(streamId, "/state"), { headers: { ...headers, Accept: "application/json" } });
    if (response.status === 404) return "none";
    if (response.status === 422) return "gone";
    if (!response.ok) throw new Error(`stream state: HTTP ${response.status}`);
    return (await response.json()) as State;
  }

  async function read(streamId: string, skipCharacters = 0): Promise<ReadableStream<string> | null | undefined> {
    const response = await doFetch(streamUrl(streamId, "?resumeAt=0"), {
      headers: { ...headers, Accept: "text/event-stream" },
    });
    if (response.status === 404) return undefined;
    if (response.status === 422) return null;
    if (!response.ok || !response.body) throw new Error(`stream read: HTTP ${response.status}`);
    return response.body.pipeThrough(new TextDecoderStream()).pipeThrough(sseChunks(skipCharacters));
  }

  const context: ResumableStreamContext = {
    async createNewResumableStream(streamId, makeStream, skipCharacters = 0) {
      const [forCaller, forUpload] = makeStream().tee();
      const uploading = upload(streamId, forUpload);
      if (options.waitUntil) options.waitUntil(uploading);
      else uploading.catch(() => undefined);
      return skipCharacters ? forCaller.pipeThrough(skip(skipCharacters)) : forCaller;
    },
    async resumeExistingStream(streamId, skipCharacters = 0) {
      const current = await state(streamId);
      if (current === "none") return undefined;
      if (current === "gone" || current.status !== "streaming") return null;
      return read(streamId, skipCharacters);
    },
    async hasExistingStream(streamId) {
      const current = await state(streamId);
      if (current === "none") return null;
      return current === "gone" || current.status !== "streaming" ? "DONE" : true;
    },
    async resumableStream(streamId, makeStream, skipCharacters = 0) {
      const current = await state(streamId);
      if (current === "gone" || (current !== "none" && current.status !== "streaming")) return null;
      if (current !== "none" && hasProducer(current)) {
        const resumed = await read(streamId, skipCharacters);
        return resumed ?? null;
      }
      return context.createNewResumableStream(streamId, makeStream, skipCharacters);
    },
  };

  return context;
}

/** A registered stream nobody has appended to yet (createStreamId only) is still the caller's to produce. */
function hasProducer(current: { status: string } & Record<string, unknown>): boolean {
  return Number(current.position ?? 0) > 0 || current.lastActivityAt !== current.createdAt;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Drop the first `count` characters of a text stream (resumable-stream's skipCharacters). */
function skip(count: number): TransformStream<string, string> {
  let left = count;
  return new TransformStream({
    transform(chunk, controller) {
      if (left >= chunk.length) {
        left -= chunk.length;
        return;
      }
      controller.enqueue(chunk.slice(left));
      left = 0;
    },
  });
}

/** Server-sent events of the service -> the chunks' text, minus the first `skipCharacters`. */
function sseChunks(skipCharacters: number): TransformStream<string, string> {
  let buffer = "";
  let left = skipCharacters;
  let ended = false;
  return new TransformStream({
    transform(text, controller) {
      buffer += text;
      let end: number;
      while (!ended && (end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = new Map<string, string>();
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const colon = line.indexOf(": ");
          if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 2));
        }
        if (fields.get("event") === "end") {
          ended = true;
          controller.terminate();
          return;
        }
        const data = fields.get("data");
        if (data === undefined) continue;
        let chunk = JSON.parse(data) as string;
        if (left > 0) {
          const dropped = Math.min(left, chunk.length);
          chunk = chunk.slice(dropped);
          left -= dropped;
        }
        if (chunk) controller.enqueue(chunk);
      }
    },
  });
}
