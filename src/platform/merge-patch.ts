import type { TObject } from "typebox";
import { invalidField } from "./errors.js";
import { compileBodyValidator, describeValidationError } from "./validation.js";

/** RFC 7386: objects merge key by key, null removes, everything else (arrays included) replaces. */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const base: Record<string, unknown> =
    target !== null && typeof target === "object" && !Array.isArray(target) ? { ...(target as object) } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete base[key];
    else base[key] = applyMergePatch(base[key], value);
  }
  return base;
}

/**
 * Applies a merge patch to a resource's create-shaped input and validates the result against the create
 * schema, so a PATCH can never produce a resource that a POST would have refused.
 */
export function mergePatcher<C>(createSchema: TObject): (current: C, patch: unknown) => C {
  const validate = compileBodyValidator<C>(createSchema);
  return (current, patch) => {
    const merged = applyMergePatch(current, patch);
    if (!validate(merged)) {
      const first = validate.errors?.[0];
      const { field, reason } = first
        ? describeValidationError(first, "body")
        : { field: "body", reason: "is invalid" };
      throw invalidField(field, reason);
    }
    return merged;
  };
}
