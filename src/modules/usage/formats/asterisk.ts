import { createHash } from "node:crypto";
import { offsetMs } from "../../../shared/calendar.js";
import type { MapResult, RecordRejection } from "./mapped.js";

/**
 * Asterisk `cdr_csv` Master.csv uploads (API.md "CDRs in").
 *
 * cdr_csv writes one call per line with no header row: strings always in double quotes with inner quotes
 * doubled (`append_string`), duration and billsec as bare integers (`append_int`), and a time that never
 * happened (no answer) as an empty, unquoted field (`append_date`). Times are the switch's local wall clock
 * without a zone (unless `usegmtime`), so the source's configured zone is applied here.
 */

export type CsvLine = { line: number; cells: string[] } | { line: number; rejection: RecordRejection };

/**
 * Splits a Master.csv text into rows of cells, RFC 4180 quoting within a line, CRLF or LF line ends, blank
 * lines skipped. Each physical line is one row: cdr_csv never writes a line break inside a field, and
 * keeping rows to lines means an unterminated quote costs only its own line instead of swallowing the rest
 * of the file. `line` is the 1-based line number in the text. Linear in the text length.
 */
export function parseAsteriskCsv(text: string): CsvLine[] {
  const rows: CsvLine[] = [];
  const lines = text.split("\n");
  for (let index = 0; index < lines.length; index++) {
    let content = lines[index] ?? "";
    if (content.endsWith("\r")) content = content.slice(0, -1);
    if (index === 0 && content.startsWith("\uFEFF")) content = content.slice(1);
    if (content.trim() === "") continue;
    const parsed = parseCsvLine(content);
    rows.push(
      typeof parsed === "string"
        ? { line: index + 1, rejection: { field: "row", reason: parsed } }
        : { line: index + 1, cells: parsed },
    );
  }
  return rows;
}

/** The cells of one line, or why the line is not CSV. */
function parseCsvLine(line: string): string[] | string {
  if (line.includes("\u0000")) return "contains a NUL character";
  const cells: string[] = [];
  let i = 0;
  for (;;) {
    const column = cells.length + 1;
    if (line[i] === '"') {
      let value = "";
      let from = i + 1;
      for (;;) {
        const quote = line.indexOf('"', from);
        if (quote === -1) return `column ${column}: quoted field is not terminated`;
        value += line.slice(from, quote);
        if (line[quote + 1] === '"') {
          value += '"';
          from = quote + 2;
          continue;
        }
        i = quote + 1;
        break;
      }
      cells.push(value);
      if (i < line.length && line[i] !== ",") return `column ${column}: unexpected text after the closing quote`;
    } else {
      const comma = line.indexOf(",", i);
      const value = comma === -1 ? line.slice(i) : line.slice(i, comma);
      if (value.includes('"')) return `column ${column}: a quote inside an unquoted field`;
      cells.push(value);
      i = comma === -1 ? line.length : comma;
    }
    if (i >= line.length) return cells;
    i += 1; // past the comma; a trailing comma leaves one more (empty) cell
    if (i === line.length) {
      cells.push("");
      return cells;
    }
  }
}

/** Column order of cdr_csv: 16 fixed columns, then uniqueid (loguniqueid=yes), then userfield (loguserfield=yes). */
const COLUMNS = [
  "accountcode",
  "src",
  "dst",
  "dcontext",
  "clid",
  "channel",
  "dstchannel",
  "lastapp",
  "lastdata",
  "start",
  "answer",
  "end",
  "duration",
  "billsec",
  "disposition",
  "amaflags",
  "uniqueid",
  "userfield",
] as const;
type Column = (typeof COLUMNS)[number];

/**
 * Maps one Master.csv row to the native CDR fields.
 *
 * - 16, 17 or 18 columns; with 17 the extra one is taken as `uniqueid` (cdr_csv writes uniqueid before
 *   userfield, so 17 columns mean loguniqueid=yes, loguserfield=no).
 * - `cdrId`: `uniqueid/dstchannel` when uniqueid is present and non-empty (Asterisk 12+ writes one row per
 *   dial attempt under one uniqueid; the bare uniqueid when there is no destination channel); otherwise `row-` + SHA-256 of the row's cells
 *   (JSON-encoded, so cell boundaries are unambiguous): the same row uploaded twice has the same key, rows
 *   that differ in any cell have different keys.
 * - Always `direction: outgoing`, `servedMSISDN` = src, `calledNumber` = dst, numbers as written.
 * - `recordOpeningTime`: answer if present, else start, read as wall-clock time in `timeZone` and written as
 *   ISO 8601 with that zone's offset (see localTimeToIso for DST gaps and overlaps).
 * - `duration` = billsec. Only `ANSWERED` with billsec > 0 is chargeable; the rest are recorded with a note.
 */
export function mapAsteriskRow(cells: string[], source: string, timeZone: string): MapResult {
  if (cells.length < 16 || cells.length > 18) {
    return reject("row", `expected 16, 17 or 18 columns (cdr_csv Master.csv), found ${cells.length}`);
  }
  const cell = (column: Column): string => (cells[COLUMNS.indexOf(column)] ?? "").trim();

  const src = cell("src");
  if (src === "") return reject("src", "is empty: the calling number is needed to find the subscriber");
  const dst = cell("dst");
  if (dst === "") return reject("dst", "is empty: the called number is needed to rate the call");

  const times: Partial<Record<"start" | "answer" | "end", string>> = {};
  for (const column of ["start", "answer", "end"] as const) {
    const value = cell(column);
    if (value === "") {
      if (column === "start") return reject("start", "is empty: the call has no start time");
      continue;
    }
    const iso = localTimeToIso(value, timeZone);
    if (!iso.ok) return reject(iso.zoneProblem ? "timeZone" : column, iso.reason);
    times[column] = iso.value;
  }

  const duration = wholeSeconds(cell("duration"));
  if (duration === null)
    return reject("duration", `must be a non-negative whole number of seconds, got "${cell("duration")}"`);
  const billsec = wholeSeconds(cell("billsec"));
  if (billsec === null)
    return reject("billsec", `must be a non-negative whole number of seconds, got "${cell("billsec")}"`);

  const disposition = cell("disposition").toUpperCase();
  const chargeable = disposition === "ANSWERED" && billsec > 0;
  let note: string | undefined;
  if (disposition !== "ANSWERED") note = disposition === "" ? "no disposition" : disposition;
  else if (billsec === 0) note = "billsec 0";

  const uniqueid = cells.length >= 17 ? cell("uniqueid") : "";
  // Asterisk 12+ writes several rows under one uniqueid (each dial attempt of a ring group), one per
  // destination channel: uniqueid and dstchannel together name a row, and stay the same on a retry.
  const dstchannel = cell("dstchannel");
  const cdrId =
    uniqueid === ""
      ? `row-${createHash("sha256").update(JSON.stringify(cells)).digest("hex")}`
      : dstchannel === ""
        ? uniqueid
        : `${uniqueid}/${dstchannel}`;
  return {
    ok: true,
    cdr: {
      record: {
        recordType: "voice",
        cdrId,
        source,
        servedMSISDN: src,
        calledNumber: dst,
        recordOpeningTime: times.answer ?? times.start,
        duration: billsec,
        direction: "outgoing",
      },
      chargeable,
      ...(note === undefined ? {} : { note }),
    },
  };
}

function wholeSeconds(value: string): number | null {
  return /^\d{1,9}$/.test(value) ? Number(value) : null;
}

const LOCAL_TIME = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;
const DAY_MS = 86_400_000;

export type IsoResult = { ok: true; value: string } | { ok: false; reason: string; zoneProblem: boolean };

/**
 * "YYYY-MM-DD HH:MM:SS" on the wall clock of `timeZone` → ISO 8601 with the zone's offset at that instant
 * ("2026-03-16T11:00:07+01:00"; "Z" when the offset is 0).
 *
 * Around a DST change the wall clock is not one-to-one, and the answer is deterministic (the same as
 * Temporal's and java.time's default, "compatible"):
 * - a time in the autumn overlap that happens twice (Europe/Berlin 2026-10-25 02:30) is the earlier of the
 *   two, still on summer time: 02:30+02:00;
 * - a time in the spring gap that never happens (Europe/Berlin 2026-03-29 02:30) is read with the offset
 *   in force before the gap, which lands it the gap's length later: 03:30+02:00 (01:30Z).
 */
export function localTimeToIso(value: string, timeZone: string): IsoResult {
  const match = LOCAL_TIME.exec(value);
  if (!match) return { ok: false, reason: `must be "YYYY-MM-DD HH:MM:SS", got "${value}"`, zoneProblem: false };
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (year < 2000 || year > 2099 || month < 1 || month > 12 || day < 1 || day > daysInMonth) {
    return { ok: false, reason: `is not a calendar date between 2000 and 2099: "${value}"`, zoneProblem: false };
  }
  if (hour > 23 || minute > 59 || second > 59) {
    return { ok: false, reason: `is not a time of day: "${value}"`, zoneProblem: false };
  }
  const wallMs = Date.UTC(year, month - 1, day, hour, minute, second);
  let utcMs: number;
  let offset: number;
  try {
    utcMs = wallClockToUtc(timeZone, wallMs);
    offset = offsetMs(timeZone, utcMs);
  } catch {
    // Intl.DateTimeFormat throws RangeError for a zone it does not know.
    return { ok: false, reason: `"${timeZone}" is not a known IANA time zone`, zoneProblem: true };
  }
  return { ok: true, value: formatWithOffset(utcMs, offset) };
}

/**
 * The instant at which `timeZone`'s wall clock shows `wallMs` (a wall-clock time encoded as if it were UTC).
 * The offsets a day before and a day after bracket any single DST change; each gives a candidate, kept if
 * the zone's wall clock really shows `wallMs` then. Two valid candidates: an overlap, take the earlier.
 * None: a gap, take the pre-change offset.
 */
function wallClockToUtc(timeZone: string, wallMs: number): number {
  const before = offsetMs(timeZone, wallMs - DAY_MS);
  const after = offsetMs(timeZone, wallMs + DAY_MS);
  const valid = [wallMs - before, wallMs - after].filter((utc) => utc + offsetMs(timeZone, utc) === wallMs);
  return valid.length > 0 ? Math.min(...valid) : wallMs - before;
}

function formatWithOffset(utcMs: number, offset: number): string {
  const local = new Date(utcMs + offset).toISOString().slice(0, 19);
  if (offset === 0) return `${local}Z`;
  const minutes = Math.abs(offset) / 60_000;
  const hh = String(Math.floor(minutes / 60)).padStart(2, "0");
  const mm = String(minutes % 60).padStart(2, "0");
  return `${local}${offset < 0 ? "-" : "+"}${hh}:${mm}`;
}

function reject(field: string, reason: string): MapResult {
  return { ok: false, rejection: { field, reason } };
}
