import { AppError } from "../../platform/errors.js";
import type { SimRecord } from "./inventory.schemas.js";

const COLUMNS = ["iccid", "imsi", "pin1", "puk1", "pin2", "puk2", "ki", "opc"] as const;
const REQUIRED = ["iccid", "imsi", "pin1", "puk1", "ki"] as const;

/**
 * A SIM vendor's CSV: a header row naming the columns (any order; iccid, imsi, pin1, puk1 and ki required;
 * pin2, puk2 and opc optional), then one SIM per line. Values are plain digits and hex, so fields are split
 * on commas with surrounding quotes and spaces removed.
 */
export function parseSimCsv(text: string): SimRecord[] {
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== "");
  const header = (lines[0] ?? "").split(",").map((name) => name.trim().replace(/^"|"$/g, "").toLowerCase());
  const unknown = header.filter((name) => !(COLUMNS as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new AppError("bad_request", "invalid_csv", `header: unknown column(s) ${unknown.join(", ")}`, "header");
  }
  const missing = REQUIRED.filter((name) => !header.includes(name));
  if (missing.length > 0) {
    throw new AppError("bad_request", "invalid_csv", `header: missing column(s) ${missing.join(", ")}`, "header");
  }
  return lines.slice(1).map((line) => {
    const cells = line.split(",").map((cell) => cell.trim().replace(/^"|"$/g, ""));
    const record: Record<string, string> = {};
    header.forEach((name, index) => {
      const value = cells[index];
      if (value !== undefined && value !== "") record[name] = value;
    });
    if (cells.length !== header.length) record.__columns = String(cells.length);
    return record as unknown as SimRecord;
  });
}
