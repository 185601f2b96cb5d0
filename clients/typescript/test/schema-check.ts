/**
 * Records every API exchange of the tests (through a fetch wrapper) and checks each response body
 * against the live OpenAPI schema with ajv: the operation's documented status and the component
 * schema of its JSON body. Mismatches are collected (and printed) rather than thrown while the
 * schema is being fixed; MOOKTI_SCHEMA_STRICT=1 turns them into failures.
 */
import { Ajv, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";

// ajv-formats is CommonJS with a default export.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

interface OpenApiDoc {
  paths: Record<string, Record<string, Operation>>;
  components?: Record<string, unknown>;
}
interface Operation {
  operationId?: string;
  responses?: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}
export interface Exchange {
  method: string;
  path: string;
  status: number;
  body: unknown;
}

export async function loadSchema(baseUrl: string): Promise<OpenApiDoc> {
  const response = await fetch(`${baseUrl.replace(/\/+$/, "")}/api/schema/?format=json`, {
    headers: { Accept: "application/json" },
  });
  if (!response.ok) throw new Error(`GET /api/schema/: ${response.status}`);
  return (await response.json()) as OpenApiDoc;
}

/** Wraps fetch: every exchange is kept (body parsed as JSON when it is JSON). */
export function recordingFetch(exchanges: Exchange[]): (input: Request) => Promise<Response> {
  return async (input: Request) => {
    const response = await fetch(input);
    const text = await response.clone().text();
    let body: unknown = text === "" ? undefined : text;
    if ((response.headers.get("Content-Type") ?? "").includes("json") && text !== "") body = JSON.parse(text);
    exchanges.push({ method: input.method, path: new URL(input.url).pathname, status: response.status, body });
    return response;
  };
}

export class SchemaChecker {
  private readonly ajv: Ajv;
  private readonly templates: { template: string; pattern: RegExp; params: number }[];
  private readonly compiled = new Map<string, ValidateFunction>();
  /** Distinct mismatches, e.g. `GET /api/storage/chat/ 200 (storage_chat_list): must be array`. */
  readonly mismatches = new Set<string>();
  checked = 0;

  constructor(private readonly doc: OpenApiDoc) {
    this.ajv = new Ajv({ strict: false, allErrors: true, logger: false });
    addFormats(this.ajv);
    this.ajv.addSchema({ components: closeObjects(doc.components ?? {}) }, "openapi");
    // A literal path (/chat/all/) wins over a template (/chat/{id}/): fewer parameters first.
    this.templates = Object.keys(doc.paths)
      .map((template) => ({
        template,
        pattern: new RegExp(`^${template.replace(/\{[^}]+\}/g, "[^/]+")}$`),
        params: (template.match(/\{/g) ?? []).length,
      }))
      .sort((a, b) => a.params - b.params);
  }

  check(exchange: Exchange): void {
    this.checked += 1;
    const { method, path, status, body } = exchange;
    const match = this.templates.find((t) => t.pattern.test(path));
    const where = `${method} ${match?.template ?? path} ${status}`;
    if (!match) return void this.mismatches.add(`${where}: path not in the schema`);
    const operation = this.doc.paths[match.template]?.[method.toLowerCase()];
    if (!operation) return void this.mismatches.add(`${where}: method not in the schema`);
    const label = `${where} (${operation.operationId ?? "?"})`;
    const responses = operation.responses ?? {};
    const documented = responses[String(status)] ?? responses.default;
    if (!documented) {
      const known = Object.keys(responses).join(", ");
      return void this.mismatches.add(`${label}: status not documented (documented: ${known})`);
    }
    const schema = documented.content?.["application/json"]?.schema;
    if (schema === undefined) {
      if (body !== undefined) this.mismatches.add(`${label}: documented without a body, the server sends one`);
      return;
    }
    for (const where of freeForm(schema, this.doc, "(body)")) {
      this.mismatches.add(`${label}: ${where}`);
    }
    const validate = this.validator(`${method} ${match.template} ${status}`, schema);
    if (!validate(body)) {
      for (const error of validate.errors ?? []) {
        this.mismatches.add(`${label}: ${error.instancePath || "(body)"} ${error.message ?? ""}`.trim());
      }
    }
  }

  private validator(key: string, schema: unknown): ValidateFunction {
    let validate = this.compiled.get(key);
    if (!validate) {
      const rooted = closeObjects(JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"openapi#/components/')));
      validate = this.ajv.compile(rooted);
      this.compiled.set(key, validate);
    }
    return validate;
  }
}

/**
 * A copy where every object schema with `properties` and no `additionalProperties` rejects
 * undeclared fields, so a field the server sends but the schema omits is reported too.
 */
function closeObjects<T>(schema: T): T {
  if (Array.isArray(schema)) return schema.map(closeObjects) as T;
  if (typeof schema !== "object" || schema === null) return schema;
  const copy = Object.fromEntries(Object.entries(schema).map(([key, value]) => [key, closeObjects(value)]));
  if ("properties" in copy && !("additionalProperties" in copy)) copy.additionalProperties = false;
  return copy as T;
}

/** Truly free-form data (documented as such in the README): user preferences, tool input/output,
 * provider metadata of message parts. */
const FREE_FORM_ALLOWED = new Set(["preferences", "input", "output", "providerMetadata"]);
/** Fields whose values the server draws from a fixed set: the schema should say which (an enum). */
const ENUM_FIELDS = new Set(["visibility", "role", "kind", "type", "status"]);

/** Where a response schema leaves the data untyped: an `unknown`, or a plain string for an enumerated field. */
function freeForm(schema: unknown, doc: OpenApiDoc, at: string, seen = new Set<string>()): string[] {
  if (typeof schema !== "object" || schema === null) return [];
  const node = schema as Record<string, unknown>;
  const ref = node.$ref;
  if (typeof ref === "string") {
    if (seen.has(ref)) return [];
    const target = ref.replace(/^#\//, "").split("/").reduce<unknown>((into, key) => (into as Record<string, unknown>)?.[key], doc);
    return freeForm(target, doc, at, new Set([...seen, ref]));
  }
  const found: string[] = [];
  const isEmpty = (value: unknown) => typeof value === "object" && value !== null && Object.keys(value).length === 0;
  if (node.type === "object" && !node.properties && (node.additionalProperties === undefined || isEmpty(node.additionalProperties) || node.additionalProperties === true)) {
    found.push(`${at} is typed as free-form (unknown)`);
  }
  if (node.type === "array" && (node.items === undefined || isEmpty(node.items))) {
    found.push(`${at}[] is typed as free-form (unknown)`);
  }
  const field = at.split(".").at(-1) ?? "";
  const open = node.pattern !== undefined || node["x-extensible-enum"] !== undefined; // a family (`tool-*`) or known values plus others
  if (ENUM_FIELDS.has(field) && node.type === "string" && !node.enum && !open) found.push(`${at} is a plain string, not an enum`);
  if (node.type === "array" && node.items) found.push(...freeForm(node.items, doc, `${at}[]`, seen));
  for (const [name, property] of Object.entries((node.properties ?? {}) as Record<string, unknown>)) {
    if (!FREE_FORM_ALLOWED.has(name)) found.push(...freeForm(property, doc, `${at}.${name}`, seen));
  }
  for (const key of ["allOf", "oneOf", "anyOf"]) {
    for (const part of (node[key] ?? []) as unknown[]) found.push(...freeForm(part, doc, at, seen));
  }
  return found;
}
