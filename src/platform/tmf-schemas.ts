import { Type } from "typebox";
import { LIST_FIELD_MAX_ITEMS, NAME_MAX_LENGTH, SHORT_TEXT_MAX_LENGTH } from "../shared/limits.js";
import { MULTI_LINE, SINGLE_LINE } from "./validation.js";

/** TMF building blocks shared by every API (TMF630 common types), as TypeBox schemas. */

/** A name, subject or code: one line, no control characters (a CR/LF would inject headers or forge log lines). */
export function text(maxLength: number = NAME_MAX_LENGTH, minLength = 1) {
  return Type.String({ minLength, maxLength, pattern: SINGLE_LINE });
}

/** Free text (descriptions, reasons, message bodies): line breaks and tabs, but no other control characters. */
export function multilineText(maxLength: number, minLength = 1) {
  return Type.String({ minLength, maxLength, pattern: MULTI_LINE });
}

export const TimePeriodSchema = Type.Object({
  startDateTime: Type.Optional(Type.String({ format: "date-time" })),
  endDateTime: Type.Optional(Type.String({ format: "date-time" })),
});

/** Money as TMF sends it: a currency and a JSON number, converted once with decimal.js (shared/money). */
export const MoneySchema = Type.Object({
  unit: Type.String({ pattern: "^[A-Z]{3}$" }),
  value: Type.Number(),
});

/** A reference to another resource in a request: the id is what we read. */
export const RefInputSchema = Type.Object({
  id: text(100),
  href: Type.Optional(Type.String({ maxLength: 500 })),
  name: Type.Optional(text(NAME_MAX_LENGTH, 0)),
  role: Type.Optional(text(SHORT_TEXT_MAX_LENGTH)),
  "@referredType": text(SHORT_TEXT_MAX_LENGTH),
});

/** A reference in a response. */
export const RefSchema = Type.Object({
  id: Type.String(),
  href: Type.String(),
  name: Type.Optional(Type.String()),
  role: Type.Optional(Type.String()),
  "@referredType": Type.String(),
});

export function boundedArray<T extends Parameters<typeof Type.Array>[0]>(items: T) {
  return Type.Array(items, { maxItems: LIST_FIELD_MAX_ITEMS });
}
