/** A small typed client for the Mookti storage API, on openapi-fetch and the generated schema types. */
import createClient, { type Client } from "openapi-fetch";
import { MooktiError } from "./errors.js";
import type { paths } from "./schema.js";

export { MooktiError } from "./errors.js";
export type { MooktiErrorBody } from "./errors.js";
export type { paths, components, operations } from "./schema.js";

/** How to authenticate: a user token, or the webapp backend's service key (acting for `userId`). */
export type MooktiAuth = { token: string } | { serviceKey: string; userId?: string };

export interface MooktiClientOptions {
  /** Server root, e.g. `http://127.0.0.1:8000` (paths in the schema start with `/api/`). */
  baseUrl: string;
  /** No auth: anonymous calls (public chats and their messages only). */
  auth?: MooktiAuth;
  /** A custom fetch (tests, retries, Next.js caching options). */
  fetch?: (input: Request) => Promise<Response>;
}

export type MooktiClient = Client<paths>;

/** The header that names the user the service key acts for. */
export const ACT_AS_HEADER = "X-Mookti-User";

function authHeaders(auth: MooktiAuth | undefined): Record<string, string> {
  if (!auth) return {};
  if ("token" in auth) return { Authorization: `Bearer ${auth.token}` };
  const headers: Record<string, string> = { Authorization: `Bearer ${auth.serviceKey}` };
  if (auth.userId) headers[ACT_AS_HEADER] = auth.userId;
  return headers;
}

/** An openapi-fetch client whose every request carries the credentials and asks for JSON. */
export function createMooktiClient(options: MooktiClientOptions): MooktiClient {
  return createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ""),
    headers: { Accept: "application/json", ...authHeaders(options.auth) },
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
}

/** Per-request options for the service key acting for one user: `client.GET(path, {...actAs(id)})`. */
export function actAs(userId: string): { headers: Record<string, string> } {
  return { headers: { [ACT_AS_HEADER]: userId } };
}

/** The success body of an openapi-fetch call, or a thrown {@link MooktiError}. */
export async function ok<T>(pending: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await pending;
  if (!response.ok || error !== undefined) throw MooktiError.fromResponse(response, error);
  return data as T;
}
