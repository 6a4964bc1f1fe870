import { customType } from "drizzle-orm/pg-core";
import { Money } from "../shared/money.js";

/**
 * Every amount column: PostgreSQL `numeric` with micro-unit scale, read back as a Money decimal and
 * written from its exact text. No amount ever passes through a JavaScript number on its way to SQL.
 */
export const moneyColumn = customType<{ data: Money; driverData: string }>({
  dataType: () => "numeric(24, 6)",
  toDriver: (value) => value.toFixed(),
  fromDriver: (value) => new Money(value),
});
