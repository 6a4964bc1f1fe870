/** Drops keys whose value is null or undefined: database nulls become absent JSON fields. */
export function withoutEmpty<T extends Record<string, unknown>>(
  value: T,
): { [K in keyof T]?: Exclude<T[K], null | undefined> } {
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    if (inner !== null && inner !== undefined) out[key] = inner;
  }
  return out as { [K in keyof T]?: Exclude<T[K], null | undefined> };
}
