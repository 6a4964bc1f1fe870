import { and, asc, count, eq, inArray, like, lte, or, type SQL, sql } from "drizzle-orm";
import type { Actor } from "../../platform/audit.js";
import type { Db } from "../../platform/database.js";
import { AppError, type ItemError, invalidField, notFound } from "../../platform/errors.js";
import type { ServiceDeps } from "../../platform/resource-service.js";
import type { SecretBox } from "../../platform/secrets.js";
import { listFilters } from "../../platform/sql.js";
import { type ListRequest, TMF_BASE } from "../../platform/tmf.js";
import { isE164 } from "../../shared/contact.js";
import { iccidProblem, imsiProblem, SECRET_PATTERNS } from "../../shared/identifiers.js";
import { isId, newId } from "../../shared/ids.js";
import {
  ANALYZE_AFTER_ROWS,
  IMPORT_ERRORS_SHOWN,
  INSERT_CHUNK_ROWS,
  NUMBER_RANGE_MAX,
  SIM_IMPORT_MAX_LINES,
} from "../../shared/limits.js";
import { canTransition, type StateMachine, transitionRefusal } from "../../shared/state-machine.js";
import type {
  NativeResourceCreate,
  NumberRange,
  Reservation,
  ReservationRequest,
  Resource,
  SimRecord,
} from "./inventory.schemas.js";
import { type LifecycleState, STANDARD_STATES, statesOfStatus } from "./inventory.schemas.js";
import { type InventoryRow, inventoryResources } from "./inventory.tables.js";

export const RESOURCE_PATH = `${TMF_BASE.inventory}/resource`;
export const RESERVATION_PATH = "/api/v1/inventory/reservations";

/** Changes staff may make by PATCH; reservation and assignment go through their own use cases. */
const SIM_LIFECYCLE: StateMachine<string> = {
  available: ["blocked", "retired"],
  reserved: [],
  assigned: ["blocked", "retired"],
  blocked: ["available", "assigned", "retired"],
  retired: [],
};
// An assigned number is released by ending its line (releaseFromHolder), never by hand: a number taken from a
// live line would come back as available while the line still uses it.
const NUMBER_LIFECYCLE: StateMachine<string> = {
  available: [],
  reserved: [],
  assigned: [],
  quarantine: ["available"],
};

export interface InventoryDeps extends ServiceDeps {
  secrets: SecretBox;
  operatorPlmns: readonly string[];
  quarantineDays: number;
  reservationSeconds: number;
}

export function presentResource(row: InventoryRow): Resource {
  const characteristics =
    row.type === "SIMCard"
      ? [
          { name: "iccid", value: row.value },
          { name: "imsi", value: row.imsi ?? "" },
        ]
      : [{ name: "category", value: row.category ?? "regular" }];
  return {
    id: row.id,
    href: `${RESOURCE_PATH}/${row.id}`,
    "@type": row.type as Resource["@type"],
    name: row.value,
    value: row.value,
    ...STANDARD_STATES[row.state as LifecycleState],
    lifecycleState: row.state as LifecycleState,
    ...(row.category !== null ? { category: row.category } : {}),
    resourceCharacteristic: characteristics,
    ...(row.reservedUntil !== null ? { reservedUntil: row.reservedUntil.toISOString() } : {}),
    ...(row.quarantineUntil !== null ? { quarantineUntil: row.quarantineUntil.toISOString() } : {}),
    ...(row.assignedTo !== null ? { assignedTo: row.assignedTo } : {}),
    lastUpdate: row.updatedAt.toISOString(),
  };
}

function simProblems(
  record: Partial<SimRecord> & { __columns?: string },
  operatorPlmns: readonly string[],
): Array<[string, string]> {
  const problems: Array<[string, string]> = [];
  if (record.__columns !== undefined)
    problems.push(["line", `has ${record.__columns} fields, not as many as the header`]);
  for (const field of ["iccid", "imsi", "pin1", "puk1", "ki"] as const) {
    if (typeof record[field] !== "string") problems.push([field, "is required"]);
  }
  if (typeof record.iccid === "string") {
    const problem = iccidProblem(record.iccid);
    if (problem) problems.push(["iccid", problem]);
  }
  if (typeof record.imsi === "string") {
    const problem = imsiProblem(record.imsi, operatorPlmns);
    if (problem) problems.push(["imsi", problem]);
  }
  for (const [field, pattern] of Object.entries(SECRET_PATTERNS)) {
    const value = record[field as keyof SimRecord];
    if (value !== undefined && (typeof value !== "string" || !pattern.test(value))) {
      problems.push([
        field,
        `has the wrong format (${field.startsWith("pin") ? "4-8 digits" : field.startsWith("puk") ? "8 digits" : "32 hex digits"})`,
      ]);
    }
  }
  return problems;
}

function importRefused(errors: ItemError[], lines: number): AppError {
  return new AppError(
    "bad_request",
    "invalid_import",
    `${errors.length} problem(s) in ${lines} line(s); nothing was imported`,
    undefined,
    errors.slice(0, IMPORT_ERRORS_SHOWN),
  );
}

/** `*777` → LIKE '%777', with LIKE's own wildcards escaped (they cannot occur: the pattern is digits, + and *). */
function likePattern(pattern: string): string {
  return pattern.replace(/[%_\\]/g, "\\$&").replace(/\*/g, "%");
}

/**
 * SIMs and numbers: imports, reservation (row locks that skip rows another request holds), assignment,
 * release to quarantine, expiry on the injected clock. Every change writes an audit row and a TMF639 event.
 */
export class InventoryService {
  constructor(private readonly deps: InventoryDeps) {}

  private async changed(tx: Db, actor: Actor, action: string, before: InventoryRow | null, after: InventoryRow) {
    const afterResource = presentResource(after);
    await this.deps.audit.record(tx, actor, {
      action,
      entityType: "resource",
      entityId: after.id,
      ...(before ? { before: presentResource(before) } : {}),
      after: afterResource,
    });
    await this.deps.events.record(tx, {
      api: "resourceInventoryManagement",
      resource: "resource",
      change: before === null ? "Create" : before.state === after.state ? "AttributeValueChange" : "StateChange",
      resourceId: after.id,
      body: afterResource,
    });
  }

  async list(request: ListRequest, valuePattern?: string): Promise<{ items: Resource[]; total: number }> {
    const db = this.deps.database.db;
    const pattern = valuePattern === undefined ? undefined : like(inventoryResources.value, likePattern(valuePattern));
    // The standard status stands for lifecycle states; the lifecycle state is the column.
    const { resourceStatus: statuses, ...columnFilters } = request.filters;
    const byStatus =
      statuses === undefined ? undefined : inArray(inventoryResources.state, statuses.flatMap(statesOfStatus));
    const where = listFilters(
      {
        id: inventoryResources.id,
        "@type": inventoryResources.type,
        lifecycleState: inventoryResources.state,
        value: inventoryResources.value,
        category: inventoryResources.category,
      },
      { ...request, filters: columnFilters },
      [pattern, byStatus],
    );
    const [rows, counted] = await Promise.all([
      db
        .select()
        .from(inventoryResources)
        .where(where)
        .orderBy(asc(inventoryResources.value))
        .offset(request.offset)
        .limit(request.limit),
      db.select({ total: count() }).from(inventoryResources).where(where),
    ]);
    return { items: rows.map(presentResource), total: counted[0]?.total ?? 0 };
  }

  async get(id: string): Promise<Resource> {
    const [row] = isId(id)
      ? await this.deps.database.db.select().from(inventoryResources).where(eq(inventoryResources.id, id))
      : [];
    if (!row) throw notFound("resource", id);
    return presentResource(row);
  }

  /** SIM records checked line by line; any problem refuses the whole import, listing every line at fault. */
  async importSims(
    actor: Actor,
    records: Array<Partial<SimRecord>>,
    single = false,
  ): Promise<{ batch: string; imported: number }> {
    if (records.length === 0) throw invalidField("body", "has no SIM records");
    if (records.length > SIM_IMPORT_MAX_LINES)
      throw invalidField("body", `at most ${SIM_IMPORT_MAX_LINES} SIMs per import`);
    const errors: ItemError[] = [];
    const seen = new Map<string, number>();
    records.forEach((record, index) => {
      const line = index + 1;
      for (const [field, reason] of simProblems(record, this.deps.operatorPlmns)) errors.push({ line, field, reason });
      for (const field of ["iccid", "imsi"] as const) {
        const value = record[field];
        if (typeof value !== "string") continue;
        const first = seen.get(`${field}:${value}`);
        if (first !== undefined) errors.push({ line, field, reason: `repeats line ${first}` });
        else seen.set(`${field}:${value}`, line);
      }
    });
    const now = this.deps.clock.now();
    const batch = newId(now.getTime());
    const result = await this.deps.database.transaction(async (tx) => {
      const valid = records.filter((record) => typeof record.iccid === "string" && typeof record.imsi === "string");
      for (const chunk of chunks(valid, INSERT_CHUNK_ROWS)) {
        const existing = await tx
          .select({ value: inventoryResources.value, imsi: inventoryResources.imsi })
          .from(inventoryResources)
          .where(
            or(
              and(
                eq(inventoryResources.type, "SIMCard"),
                inArray(
                  inventoryResources.value,
                  chunk.map((record) => record.iccid as string),
                ),
              ),
              inArray(
                inventoryResources.imsi,
                chunk.map((record) => record.imsi as string),
              ),
            ),
          );
        for (const row of existing) {
          const line = records.findIndex((record) => record.iccid === row.value || record.imsi === row.imsi) + 1;
          const field = records[line - 1]?.iccid === row.value ? "iccid" : "imsi";
          errors.push({ line, field, reason: "is already in the inventory" });
        }
      }
      if (errors.length > 0)
        throw importRefused(
          errors.sort((a, b) => a.line - b.line),
          records.length,
        );
      for (const chunk of chunks(records as SimRecord[], INSERT_CHUNK_ROWS)) {
        await tx.insert(inventoryResources).values(
          chunk.map((record) => ({
            id: newId(now.getTime()),
            type: "SIMCard",
            value: record.iccid,
            imsi: record.imsi,
            category: null,
            sealedSecrets: this.deps.secrets.seal(
              JSON.stringify({
                pin1: record.pin1,
                puk1: record.puk1,
                pin2: record.pin2,
                puk2: record.puk2,
                ki: record.ki,
                opc: record.opc,
              }),
            ),
            batch,
            state: "available",
            createdAt: now,
            updatedAt: now,
          })),
        );
      }
      if (single) return this.recordSingle(tx, actor, batch);
      return this.recordBatch(tx, actor, "simImport", batch, records.length, {
        "@type": "SIMCard",
        iccids: records.map((record) => record.iccid),
      });
    });
    await this.refreshStatistics(result.imported);
    return result;
  }

  /** A range of numbers in one category; refused whole if any of them exists already. */
  async importRange(actor: Actor, range: NumberRange, single = false): Promise<{ batch: string; imported: number }> {
    if (range.from.length !== range.to.length) throw invalidField("to", "must have as many digits as from");
    const from = BigInt(range.from.slice(1));
    const to = BigInt(range.to.slice(1));
    if (to < from) throw invalidField("to", "must not be below from");
    const size = Number(to - from + 1n);
    if (size > NUMBER_RANGE_MAX) throw invalidField("to", `a range holds at most ${NUMBER_RANGE_MAX} numbers`);
    const width = range.from.length - 1;
    const values = Array.from(
      { length: size },
      (_, offset) => `+${(from + BigInt(offset)).toString().padStart(width, "0")}`,
    );
    const now = this.deps.clock.now();
    const batch = newId(now.getTime());
    const result = await this.deps.database.transaction(async (tx) => {
      const taken: string[] = [];
      for (const chunk of chunks(values, INSERT_CHUNK_ROWS)) {
        const rows = await tx
          .select({ value: inventoryResources.value })
          .from(inventoryResources)
          .where(and(eq(inventoryResources.type, "MSISDN"), inArray(inventoryResources.value, chunk)));
        taken.push(...rows.map((row) => row.value));
      }
      if (taken.length > 0) {
        throw new AppError(
          "conflict",
          "numbers_exist",
          `${taken.length} number(s) of the range exist already (${taken.slice(0, 5).join(", ")}${taken.length > 5 ? ", …" : ""}); nothing was imported`,
          "from",
        );
      }
      for (const chunk of chunks(values, INSERT_CHUNK_ROWS)) {
        await tx.insert(inventoryResources).values(
          chunk.map((value) => ({
            id: newId(now.getTime()),
            type: "MSISDN",
            value,
            category: range.category ?? "regular",
            batch,
            state: "available",
            createdAt: now,
            updatedAt: now,
          })),
        );
      }
      if (single) return this.recordSingle(tx, actor, batch);
      return this.recordBatch(tx, actor, "numberRange", batch, size, { "@type": "MSISDN", ...range });
    });
    await this.refreshStatistics(result.imported);
    return result;
  }

  /**
   * After a bulk import the planner's statistics still describe the table before it; without fresh ones it
   * may sort the whole inventory for every reservation instead of walking the free-resource index.
   */
  private async refreshStatistics(imported: number): Promise<void> {
    if (imported >= ANALYZE_AFTER_ROWS) await this.deps.database.db.execute(sql`analyze inventory_resources`);
  }

  /** An import is audited and announced once, as a batch, rather than once per SIM or number. */
  private async recordBatch(
    tx: Db,
    actor: Actor,
    entityType: "simImport" | "numberRange",
    batch: string,
    imported: number,
    details: Record<string, unknown>,
  ): Promise<{ batch: string; imported: number }> {
    const summary = { batch, imported, ...details };
    await this.deps.audit.record(tx, actor, { action: "import", entityType, entityId: batch, after: summary });
    await this.deps.events.record(tx, {
      api: "resourceInventoryManagement",
      resource: "resource",
      change: "Create",
      resourceId: batch,
      body: summary,
    });
    return { batch, imported };
  }

  /** A resource created alone is audited and announced as itself, not as a batch. */
  private async recordSingle(tx: Db, actor: Actor, batch: string): Promise<{ batch: string; imported: number }> {
    const [row] = await tx.select().from(inventoryResources).where(eq(inventoryResources.batch, batch));
    await this.changed(tx, actor, "create", null, row as InventoryRow);
    return { batch, imported: 1 };
  }

  /** A single SIM or number (TMF639 POST). */
  async create(actor: Actor, input: NativeResourceCreate): Promise<Resource> {
    if (input["@type"] === "MSISDN") {
      if (input.value === undefined || !isE164(input.value)) throw invalidField("value", "must be an E.164 number");
      const range = { from: input.value, to: input.value, ...(input.category ? { category: input.category } : {}) };
      const result = await this.importRange(actor, range, true);
      const [row] = await this.deps.database.db
        .select()
        .from(inventoryResources)
        .where(eq(inventoryResources.batch, result.batch));
      return presentResource(row as InventoryRow);
    }
    try {
      const result = await this.importSims(actor, [input as Partial<SimRecord>], true);
      const [row] = await this.deps.database.db
        .select()
        .from(inventoryResources)
        .where(eq(inventoryResources.batch, result.batch));
      return presentResource(row as InventoryRow);
    } catch (error) {
      // A single SIM reports its first problem as the field at fault, like any other create.
      const first = error instanceof AppError ? error.errors?.[0] : undefined;
      if (first)
        throw new AppError(
          first.reason.includes("already") ? "conflict" : "bad_request",
          "invalid_field",
          `${first.field}: ${first.reason}`,
          first.field,
        );
      throw error;
    }
  }

  /** Manual status changes by staff (block, unblock, retire a SIM; end a quarantine early). */
  async changeStatus(actor: Actor, id: string, to: string): Promise<Resource> {
    return this.deps.database.transaction(async (tx) => {
      const [row] = isId(id)
        ? await tx.select().from(inventoryResources).where(eq(inventoryResources.id, id)).for("update")
        : [];
      if (!row) throw notFound("resource", id);
      const machine = row.type === "SIMCard" ? SIM_LIFECYCLE : NUMBER_LIFECYCLE;
      if (!(to in machine)) throw invalidField("lifecycleState", `is not a state of a ${row.type}`);
      if (!canTransition(machine, row.state, to)) {
        throw new AppError("conflict", "illegal_transition", transitionRefusal(machine, row.type, row.state, to));
      }
      if (row.type === "SIMCard" && to === "assigned" && row.assignedTo === null) {
        throw new AppError("conflict", "illegal_transition", "SIMCard was never assigned; unblock it to available");
      }
      if (row.type === "SIMCard" && to === "available" && row.assignedTo !== null) {
        throw new AppError(
          "conflict",
          "illegal_transition",
          `SIMCard is assigned to ${row.assignedTo}; unblock it to assigned`,
        );
      }
      if (row.state === to) return presentResource(row);
      return this.transition(tx, actor, row, to);
    });
  }

  private async transition(tx: Db, actor: Actor, row: InventoryRow, to: string): Promise<Resource> {
    const now = this.deps.clock.now();
    const quarantineUntil =
      to === "quarantine" ? new Date(now.getTime() + this.deps.quarantineDays * 86_400_000) : null;
    const [updated] = await tx
      .update(inventoryResources)
      .set({
        state: to,
        quarantineUntil,
        assignedTo: to === "quarantine" || to === "available" ? null : row.assignedTo,
        updatedAt: now,
      })
      .where(eq(inventoryResources.id, row.id))
      .returning();
    await this.changed(tx, actor, "update", row, updated as InventoryRow);
    return presentResource(updated as InventoryRow);
  }

  /**
   * Takes one matching resource that nobody holds: available, or reserved past its expiry, or (numbers) out
   * of quarantine. Candidates another request has locked are skipped, so concurrent reservations for the last
   * numbers each get a different one or fail cleanly.
   */
  /** With `within`, the reservation joins the caller's transaction (an order reserving and creating its line at once). */
  async reserve(
    actor: Actor,
    request: ReservationRequest,
    within?: Db,
  ): Promise<Reservation & { held: { category: string | null; imsi: string | null } }> {
    const now = this.deps.clock.now();
    if (request["@type"] === "SIMCard" && (request.valuePattern !== undefined || request.category !== undefined)) {
      throw invalidField("valuePattern", "patterns and categories apply to numbers only");
    }
    if (request.id !== undefined && !isId(request.id)) throw notFound("resource", request.id);
    // Available rows first (an index scan in value order); only when none is left, rows whose reservation or
    // quarantine has run out, which reservation treats as free before the expiry job has tidied them up.
    const lapsed = or(
      and(eq(inventoryResources.state, "reserved"), lte(inventoryResources.reservedUntil, now)),
      and(eq(inventoryResources.state, "quarantine"), lte(inventoryResources.quarantineUntil, now)),
    ) as SQL;
    const conditions: Array<SQL | undefined> = [eq(inventoryResources.type, request["@type"])];
    if (request.id !== undefined) conditions.push(eq(inventoryResources.id, request.id));
    if (request.value !== undefined) conditions.push(eq(inventoryResources.value, request.value));
    if (request.valuePattern !== undefined)
      conditions.push(like(inventoryResources.value, likePattern(request.valuePattern)));
    if (request.category !== undefined) conditions.push(eq(inventoryResources.category, request.category));
    const reservationId = newId(now.getTime());
    const ttlSeconds = request.ttlSeconds ?? this.deps.reservationSeconds;
    const work = async (tx: Db) => {
      const pick = async (state: SQL) => {
        const [row] = await tx
          .select()
          .from(inventoryResources)
          .where(and(...conditions, state))
          .orderBy(asc(inventoryResources.value))
          .limit(1)
          .for("update", { skipLocked: true });
        return row;
      };
      const candidate = (await pick(eq(inventoryResources.state, "available"))) ?? (await pick(lapsed));
      if (!candidate) {
        const specific = request.id ?? request.value;
        throw new AppError(
          "conflict",
          "not_available",
          specific !== undefined
            ? `${request["@type"]} ${specific} is not available`
            : `no available ${request["@type"]} matches${request.valuePattern ? ` ${request.valuePattern}` : ""}`,
        );
      }
      const expiresAt = new Date(now.getTime() + ttlSeconds * 1000);
      const [updated] = await tx
        .update(inventoryResources)
        .set({
          state: "reserved",
          reservationId,
          reservedUntil: expiresAt,
          quarantineUntil: null,
          assignedTo: null,
          updatedAt: now,
        })
        .where(eq(inventoryResources.id, candidate.id))
        .returning();
      await this.changed(tx, actor, "reserve", candidate, updated as InventoryRow);
      return {
        id: reservationId,
        href: `${RESERVATION_PATH}/${reservationId}`,
        "@type": "ResourceReservation" as const,
        expiresAt: expiresAt.toISOString(),
        resource: {
          id: candidate.id,
          href: `${RESOURCE_PATH}/${candidate.id}`,
          value: candidate.value,
          "@referredType": candidate.type,
        },
        held: { category: candidate.category, imsi: candidate.imsi },
      };
    };
    return within === undefined ? this.deps.database.transaction(work) : work(within);
  }

  private async held(tx: Db, reservationId: string): Promise<InventoryRow> {
    const [row] = isId(reservationId)
      ? await tx
          .select()
          .from(inventoryResources)
          .where(and(eq(inventoryResources.reservationId, reservationId), eq(inventoryResources.state, "reserved")))
          .for("update")
      : [];
    if (!row || (row.reservedUntil !== null && row.reservedUntil <= this.deps.clock.now())) {
      throw notFound("reservation", reservationId);
    }
    return row;
  }

  async releaseReservation(actor: Actor, reservationId: string, within?: Db): Promise<void> {
    const work = async (tx: Db) => {
      const row = await this.held(tx, reservationId);
      const [updated] = await tx
        .update(inventoryResources)
        .set({ state: "available", reservationId: null, reservedUntil: null, updatedAt: this.deps.clock.now() })
        .where(eq(inventoryResources.id, row.id))
        .returning();
      await this.changed(tx, actor, "release", row, updated as InventoryRow);
    };
    await (within === undefined ? this.deps.database.transaction(work) : work(within));
  }

  async findByValue(db: Db, type: "SIMCard" | "MSISDN", value: string): Promise<InventoryRow | undefined> {
    const [row] = await db
      .select()
      .from(inventoryResources)
      .where(and(eq(inventoryResources.type, type), eq(inventoryResources.value, value)));
    return row;
  }

  /** SIM identities (ICCID and IMSI) by either: guiding finds a line by the IMSI a CDR carries. */
  async simIdentities(
    db: Db,
    by: "iccid" | "imsi",
    values: readonly string[],
  ): Promise<Array<{ iccid: string; imsi: string }>> {
    const found: Array<{ iccid: string; imsi: string }> = [];
    const column = by === "iccid" ? inventoryResources.value : inventoryResources.imsi;
    for (let start = 0; start < values.length; start += INSERT_CHUNK_ROWS) {
      const rows = await db
        .select({ iccid: inventoryResources.value, imsi: inventoryResources.imsi })
        .from(inventoryResources)
        .where(
          and(
            eq(inventoryResources.type, "SIMCard"),
            inArray(column, values.slice(start, start + INSERT_CHUNK_ROWS) as string[]),
          ),
        );
      for (const row of rows) if (row.imsi !== null) found.push({ iccid: row.iccid, imsi: row.imsi });
    }
    return found;
  }

  /** A line ended: its number goes to quarantine, its SIM is retired; only what this holder holds moves. */
  async releaseFromHolder(
    tx: Db,
    actor: Actor,
    type: "SIMCard" | "MSISDN",
    value: string,
    holder: string,
  ): Promise<void> {
    const [row] = await tx
      .select()
      .from(inventoryResources)
      .where(
        and(
          eq(inventoryResources.type, type),
          eq(inventoryResources.value, value),
          eq(inventoryResources.assignedTo, holder),
        ),
      )
      .for("update");
    if (row && row.state === "assigned")
      await this.transition(tx, actor, row, type === "MSISDN" ? "quarantine" : "retired");
  }

  /** Hands a reserved resource to its holder (a product, from an order); only the reservation can do that. */
  async assign(actor: Actor, reservationId: string, assignedTo: string, tx?: Db): Promise<Resource> {
    const work = async (db: Db) => {
      const row = await this.held(db, reservationId);
      const [updated] = await db
        .update(inventoryResources)
        .set({
          state: "assigned",
          reservationId: null,
          reservedUntil: null,
          assignedTo,
          updatedAt: this.deps.clock.now(),
        })
        .where(and(eq(inventoryResources.id, row.id), eq(inventoryResources.reservationId, reservationId)))
        .returning();
      if (!updated) throw new AppError("conflict", "not_available", `reservation ${reservationId} was taken over`);
      await this.changed(db, actor, "assign", row, updated);
      return presentResource(updated);
    };
    return tx === undefined ? this.deps.database.transaction(work) : work(tx);
  }

  /**
   * Ends what the clock has ended: expired reservations and finished quarantines become available again.
   * Reservation already treats them as free; this makes reads and events say so.
   */
  async expire(actor: Actor): Promise<{ reservations: number; quarantines: number }> {
    const now = this.deps.clock.now();
    return this.deps.database.transaction(async (tx) => {
      const due = await tx
        .select()
        .from(inventoryResources)
        .where(
          or(
            and(eq(inventoryResources.state, "reserved"), lte(inventoryResources.reservedUntil, now)),
            and(eq(inventoryResources.state, "quarantine"), lte(inventoryResources.quarantineUntil, now)),
          ),
        )
        .limit(INSERT_CHUNK_ROWS)
        .for("update", { skipLocked: true });
      let reservations = 0;
      for (const row of due) {
        const [updated] = await tx
          .update(inventoryResources)
          .set({ state: "available", reservationId: null, reservedUntil: null, quarantineUntil: null, updatedAt: now })
          .where(eq(inventoryResources.id, row.id))
          .returning();
        if (row.state === "reserved") reservations += 1;
        await this.changed(tx, actor, "expire", row, updated as InventoryRow);
      }
      return { reservations, quarantines: due.length - reservations };
    });
  }

  /** The sealed SIM secrets, for provisioning only; never for an API answer or a log. */
  async simSecrets(id: string): Promise<Record<string, string | undefined>> {
    const [row] = await this.deps.database.db.select().from(inventoryResources).where(eq(inventoryResources.id, id));
    if (!row || row.sealedSecrets === null) throw notFound("SIMCard", id);
    return JSON.parse(this.deps.secrets.open(row.sealedSecrets)) as Record<string, string | undefined>;
  }
}

function* chunks<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let start = 0; start < items.length; start += size) yield items.slice(start, start + size);
}
