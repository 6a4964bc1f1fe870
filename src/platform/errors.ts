/**
 * One error type with a closed set of kinds, mapped to HTTP in one place (Medusa's MedusaError). Services
 * throw AppErrors for expected failures; anything else is a bug and answers 500 without detail.
 */
export const ERROR_STATUS = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  unprocessable: 422,
  upgrade_required: 426,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
} as const;
export type ErrorKind = keyof typeof ERROR_STATUS;

const REASON: Record<ErrorKind, string> = {
  bad_request: "Bad request",
  unauthorized: "Not authenticated",
  forbidden: "Not allowed",
  not_found: "Not found",
  conflict: "Conflict",
  payload_too_large: "Payload too large",
  unsupported_media_type: "Unsupported media type",
  unprocessable: "Business rule violated",
  upgrade_required: "Upgrade required",
  rate_limited: "Too many requests",
  internal: "Internal error",
  unavailable: "Service unavailable",
};

export class AppError extends Error {
  override name = "AppError";
  readonly kind: ErrorKind;
  /** Stable snake_case code clients may branch on. */
  readonly code: string;
  /** The request field at fault, as a dotted path ("creditLimit.value"), when one is. */
  readonly field: string | undefined;
  /** Per-item problems of a batch (an import's lines), when there are several. */
  readonly errors: readonly ItemError[] | undefined;

  constructor(kind: ErrorKind, code: string, message: string, field?: string, errors?: readonly ItemError[]) {
    super(message);
    this.kind = kind;
    this.code = code;
    this.field = field;
    this.errors = errors;
  }

  get status(): number {
    return ERROR_STATUS[this.kind];
  }
}

/** A field-level validation failure: 400 with the field and why. */
export function invalidField(field: string, reason: string): AppError {
  return new AppError("bad_request", "invalid_field", `${field}: ${reason}`, field);
}

export function notFound(resource: string, id: string): AppError {
  return new AppError("not_found", "not_found", `${resource} ${id} does not exist`);
}

/** One item of a batch that was refused: which line (1-based), which field, and why. */
export interface ItemError {
  line: number;
  field: string;
  reason: string;
}

/** The TM Forum error body (TMF630): code, reason, message, status as a string, plus the field. */
export interface ErrorBody {
  code: string;
  reason: string;
  message: string;
  status: string;
  field?: string;
  errors?: readonly ItemError[];
  "@type": "Error";
}

export function errorBody(
  kind: ErrorKind,
  code: string,
  message: string,
  field?: string,
  errors?: readonly ItemError[],
): ErrorBody {
  const body: ErrorBody = {
    code,
    reason: REASON[kind],
    message,
    status: String(ERROR_STATUS[kind]),
    "@type": "Error",
  };
  if (field !== undefined) body.field = field;
  if (errors !== undefined) body.errors = errors;
  return body;
}

/** A start-up failure for the terminal, with its cause (a failed query names the query; its cause says why). */
export function describeFailure(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `\ncaused by: ${error.cause.message}` : "";
  return `${error.stack ?? error.message}${cause}`;
}
