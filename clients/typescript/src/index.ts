// A typed client for Baton's REST API: openapi-fetch over the types that
// openapi-typescript generates from api/openapi.yaml (src/schema.ts).
import createClient, { type ClientOptions } from "openapi-fetch";
import type { components, paths } from "./schema.js";

export type { components, paths };
export type Job = components["schemas"]["Job"];
export type NewJob = components["schemas"]["NewJob"];
export type Problem = components["schemas"]["Problem"];
export type State = components["schemas"]["State"];

/**
 * batonClient returns a client whose routes, parameters, bodies and
 * responses are typed from the OpenAPI document, for example
 * `await baton.POST("/v1/queues/{queue}/jobs", { params: { path: { queue: "emails" } }, body: { payload } })`.
 * Pass the API token when the server sets BATON_API_TOKENS.
 */
export function batonClient(baseUrl: string, token?: string, options: ClientOptions = {}) {
  return createClient<paths>({
    ...options,
    baseUrl,
    headers: token ? { Authorization: `Bearer ${token}` } : undefined,
  });
}
