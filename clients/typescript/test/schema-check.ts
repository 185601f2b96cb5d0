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
    this.ajv.addSchema({ components: doc.components ?? {} }, "openapi");
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
      const rooted = JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"openapi#/components/'));
      validate = this.ajv.compile(rooted);
      this.compiled.set(key, validate);
    }
    return validate;
  }
}
