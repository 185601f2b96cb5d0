/** The schema checker itself, on a tiny OpenAPI document (no server needed). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SchemaChecker } from "./schema-check.js";

/** A document with one object schema; `kind` is the schema of its enumerated field. */
const docWith = (kind: Record<string, unknown>) => ({
  paths: {
    "/api/thing/{id}/": {
      get: {
        operationId: "getThing",
        responses: { "200": { content: { "application/json": { schema: { $ref: "#/components/schemas/Thing" } } } } },
      },
    },
    "/api/thing/all/": {
      delete: {
        operationId: "deleteAll",
        responses: { "200": { content: { "application/json": { schema: { type: "object", additionalProperties: {} } } } } },
      },
    },
  },
  components: {
    schemas: {
      Thing: {
        type: "object",
        properties: { id: { type: "string" }, kind, at: { type: "string", format: "date-time", nullable: true } },
        required: ["id", "at"],
      },
    },
  },
});

describe("SchemaChecker", () => {
  it("accepts a body that matches, including a nullable field", () => {
    const checker = new SchemaChecker(docWith({ type: "string", enum: ["a"] }));
    checker.check({ method: "GET", path: "/api/thing/x1/", status: 200, body: { id: "x1", at: null } });
    checker.check({ method: "GET", path: "/api/thing/x1/", status: 200, body: { id: "x1", at: "2026-01-01T00:00:00.000Z" } });
    assert.deepEqual([...checker.mismatches], []);
    assert.equal(checker.checked, 2);
  });

  it("reports wrong types, undeclared fields, undocumented statuses, free-form bodies and plain-string enums", () => {
    const checker = new SchemaChecker(docWith({ type: "string" }));
    checker.check({ method: "GET", path: "/api/thing/x1/", status: 200, body: { id: 1, at: "yesterday", extra: true } });
    checker.check({ method: "GET", path: "/api/thing/x1/", status: 404, body: { error: {} } });
    checker.check({ method: "DELETE", path: "/api/thing/all/", status: 200, body: { deletedCount: 1 } });
    checker.check({ method: "POST", path: "/api/other/", status: 200, body: {} });
    const found = [...checker.mismatches].join("\n");
    assert.match(found, /GET \/api\/thing\/\{id\}\/ 200 \(getThing\): \/id must be string/);
    assert.match(found, /\/at must match format "date-time"/);
    assert.match(found, /must NOT have additional properties/);
    assert.match(found, /GET \/api\/thing\/\{id\}\/ 404 \(getThing\): status not documented \(documented: 200\)/);
    assert.match(found, /DELETE \/api\/thing\/all\/ 200 \(deleteAll\): \(body\) is typed as free-form/);
    assert.match(found, /POST \/api\/other\/ 200: path not in the schema/);
    assert.match(found, /\(body\)\.kind is a plain string, not an enum/);
  });

  it("takes a family of values (a pattern) or an extensible enum as typed", () => {
    for (const kind of [{ type: "string", pattern: "^tool-" }, { type: "string", "x-extensible-enum": ["a"] }]) {
      const checker = new SchemaChecker(docWith(kind));
      checker.check({ method: "GET", path: "/api/thing/x1/", status: 200, body: { id: "x1", kind: "tool-x", at: null } });
      assert.deepEqual([...checker.mismatches], [], JSON.stringify(kind));
    }
  });
});
