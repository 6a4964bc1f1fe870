import { AppError } from "../../platform/errors.js";

/**
 * A hub's `query`: `eventType=A,B` and equality on paths into the event (`event.billingAccount.state=active`),
 * joined with `&`; commas mean OR. Parsed once when subscribing; anything else is refused.
 */
export type HubFilter = Array<{ path: string[]; values: string[] }>;

export function parseHubQuery(query: string | undefined): HubFilter {
  if (query === undefined || query.trim() === "") return [];
  const filter: HubFilter = [];
  for (const [key, raw] of new URLSearchParams(query.trim().replace(/^\?/, ""))) {
    if (key !== "eventType" && !/^event(\.[A-Za-z0-9_@]+)+$/.test(key)) {
      throw new AppError(
        "bad_request",
        "invalid_query",
        `query: "${key}" must be eventType or a path starting with event.`,
        "query",
      );
    }
    const values = raw
      .split(",")
      .map((value) => value.trim())
      .filter((value) => value !== "");
    if (values.length === 0)
      throw new AppError("bad_request", "invalid_query", `query: "${key}" has no value`, "query");
    filter.push({ path: key.split("."), values });
  }
  return filter;
}

export function matchesHubFilter(filter: HubFilter, payload: Record<string, unknown>): boolean {
  return filter.every(({ path, values }) => {
    let value: unknown = payload;
    for (const segment of path) {
      value = value !== null && typeof value === "object" ? (value as Record<string, unknown>)[segment] : undefined;
    }
    return value !== undefined && values.includes(String(value));
  });
}
