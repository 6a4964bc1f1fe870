import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import type { FastifySchemaCompiler } from "fastify";

// ajv-formats is CommonJS; its default export arrives wrapped under ESM interop.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/**
 * Request validation (API.md): bodies are validated as sent, with no type coercion ("60" is not 60) and
 * nothing stripped; query strings and path parameters arrive as text and may be coerced. Two Ajv
 * instances make that choice explicit instead of Fastify's default of coercing everything.
 */
function newAjv(coerceTypes: boolean | "array"): Ajv {
  const ajv = new Ajv({
    coerceTypes,
    useDefaults: true,
    removeAdditional: false,
    allErrors: false,
    strict: false,
  });
  return addFormats(ajv);
}

const bodyAjv = newAjv(false);
const parameterAjv = newAjv("array");

/**
 * Validators built so far in this process, by part and the schema's content: Ajv caches by the schema object, and
 * every app instance builds many route schemas anew (list queries from their filters, error responses), so without
 * this each instance compiled them again (the tests start hundreds). A validator is a pure function of its schema.
 */
const compiled = new Map<string, ValidateFunction>();

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const body = httpPart === "body";
  const key = `${body ? "body" : "parameters"}\u0000${JSON.stringify(schema)}`;
  let validate = compiled.get(key);
  if (validate === undefined) {
    validate = (body ? bodyAjv : parameterAjv).compile(schema as object) as ValidateFunction;
    compiled.set(key, validate);
  }
  return validate;
};

/** A validator for code outside routes (merged PATCH results, catalog files): same rules as bodies. */
export function compileBodyValidator<T>(schema: object): ValidateFunction<T> {
  return bodyAjv.compile<T>(schema);
}

/** Patterns of request text (tmf-schemas `text`, `multilineText`): no C0 or C1 control characters, no DEL. */
export const SINGLE_LINE = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";
export const MULTI_LINE = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$";

/** Turns an Ajv error into the field it concerns and a sentence a client can act on. */
export function describeValidationError(error: ErrorObject, part: string): { field: string; reason: string } {
  const base = pointerToPath(error.instancePath);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case "required":
      return { field: joinField(base, String(params.missingProperty)), reason: "is required" };
    case "additionalProperties":
      return { field: joinField(base, String(params.additionalProperty)), reason: "is not a known field" };
    case "type":
      return { field: fieldOrPart(base, part), reason: `must be ${String(params.type)}` };
    case "enum":
      return {
        field: fieldOrPart(base, part),
        reason: `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`,
      };
    case "const":
      return { field: fieldOrPart(base, part), reason: `must be ${JSON.stringify(params.allowedValue)}` };
    case "pattern":
      if (params.pattern === SINGLE_LINE)
        return { field: fieldOrPart(base, part), reason: "must be one line without control characters" };
      if (params.pattern === MULTI_LINE)
        return {
          field: fieldOrPart(base, part),
          reason: "must not contain control characters other than line breaks and tabs",
        };
      return { field: fieldOrPart(base, part), reason: error.message ?? "is invalid" };
    default:
      return { field: fieldOrPart(base, part), reason: error.message ?? "is invalid" };
  }
}

function pointerToPath(pointer: string): string {
  if (pointer === "") return "";
  return pointer
    .slice(1)
    .split("/")
    .map((segment) => segment.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((path, segment) => (/^\d+$/.test(segment) ? `${path}[${segment}]` : joinField(path, segment)), "");
}

function joinField(base: string, key: string): string {
  return base === "" ? key : `${base}.${key}`;
}

function fieldOrPart(field: string, part: string): string {
  return field === "" ? part : field;
}
