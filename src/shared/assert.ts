/** Programmer errors fail loudly; expected failures are AppErrors instead (platform/errors.ts). */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export class AssertionError extends Error {
  override name = "AssertionError";
}

export function assertNever(value: never, message = "unexpected value"): never {
  throw new AssertionError(`${message}: ${String(value)}`);
}
