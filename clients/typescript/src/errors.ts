import type { components } from "./schema.js";

/** The API's one error body: `{"error": {"code", "message", "fields"}}` (the schema's `Error`).
 * `code` is ai-chatbot style `type:surface` (`not_found:chat`, `rate_limit:chat`); `fields` maps each
 * bad input field to its messages (nested objects for nested input). */
export type MooktiErrorBody = components["schemas"]["Error"];

/** A non-2xx answer of the storage API, with the parsed error body. */
export class MooktiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly fields: Record<string, unknown>;
  /** Seconds to wait, from `Retry-After` on a 429. */
  readonly retryAfter: number | undefined;

  constructor(status: number, code: string, message: string, fields: Record<string, unknown> = {}, retryAfter?: number) {
    super(message);
    this.name = "MooktiError";
    this.status = status;
    this.code = code;
    this.fields = fields;
    this.retryAfter = retryAfter;
  }

  /** ai-chatbot's error type: the part of `code` before the colon (`not_found`, `rate_limit`, ...). */
  get type(): string {
    return this.code.split(":")[0] ?? this.code;
  }

  /** Build one from a response whose body was already read (`body`: parsed JSON or text). */
  static fromResponse(response: Response, body: unknown): MooktiError {
    const retry = response.headers.get("Retry-After");
    const retryAfter = retry && /^\d+$/.test(retry) ? Number(retry) : undefined;
    if (isErrorBody(body)) {
      const { code, message, fields } = body.error;
      return new MooktiError(response.status, code, message, fields ?? {}, retryAfter);
    }
    const text = typeof body === "string" ? body.slice(0, 200) : response.statusText;
    return new MooktiError(response.status, `http_${response.status}:api`, text || `HTTP ${response.status}`, {}, retryAfter);
  }
}

export function isErrorBody(body: unknown): body is MooktiErrorBody {
  if (typeof body !== "object" || body === null || !("error" in body)) return false;
  const error = (body as { error: unknown }).error;
  return (
    typeof error === "object" &&
    error !== null &&
    typeof (error as { code?: unknown }).code === "string" &&
    typeof (error as { message?: unknown }).message === "string"
  );
}
