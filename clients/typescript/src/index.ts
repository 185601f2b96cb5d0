export * from "./client.js";
export * as queries from "./queries.js";
