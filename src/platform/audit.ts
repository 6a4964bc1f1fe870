import { count, desc } from "drizzle-orm";
import { redactSecrets } from "../shared/redact.js";
import { auditLog } from "./audit.tables.js";
import type { Clock } from "./clock.js";
import type { Db } from "./database.js";
import { insertDeferred } from "./deferred-inserts.js";
import { listFilters } from "./sql.js";
import type { ListRequest } from "./tmf.js";

/** Who is acting: the API key (or the system itself for jobs and start-up) and the request. */
export interface Actor {
  readonly keyId: string | null;
  readonly role: string;
  readonly requestId: string | null;
  /** The caller's own X-Request-Id, when it sent one (kept apart from the engine's request id). */
  readonly callerRequestId?: string | null;
  /** Set for subscriber keys: the only billing account this actor may see. */
  readonly billingAccountId: string | null;
}

export const SYSTEM_ACTOR: Actor = { keyId: null, role: "system", requestId: null, billingAccountId: null };

export interface AuditEntry {
  action: string;
  entityType: string;
  entityId: string;
  before?: unknown;
  after?: unknown;
}

export interface AuditRecord {
  id: number;
  occurredAt: Date;
  requestId: string | null;
  callerRequestId: string | null;
  actorKeyId: string | null;
  actorRole: string;
  action: string;
  entityType: string;
  entityId: string;
  before: unknown;
  after: unknown;
}

/**
 * The audit trail. Services call `record` with the transaction that makes the change, so the row exists
 * exactly when the change does. Snapshots are redacted like the logs.
 */
export class AuditLog {
  constructor(private readonly clock: Clock) {}

  async record(tx: Db, actor: Actor, entry: AuditEntry): Promise<void> {
    await insertDeferred(tx, auditLog, {
      occurredAt: this.clock.now(),
      requestId: actor.requestId,
      callerRequestId: actor.callerRequestId ?? null,
      actorKeyId: actor.keyId,
      actorRole: actor.role,
      action: entry.action,
      entityType: entry.entityType,
      entityId: entry.entityId,
      before: entry.before === undefined ? null : redactSecrets(entry.before),
      after: entry.after === undefined ? null : redactSecrets(entry.after),
    });
  }

  async list(db: Db, request: ListRequest): Promise<{ rows: AuditRecord[]; total: number }> {
    const where = listFilters(AUDIT_FILTER_COLUMNS, request);
    const rows = await db
      .select()
      .from(auditLog)
      .where(where)
      .orderBy(desc(auditLog.id))
      .offset(request.offset)
      .limit(request.limit);
    const [counted] = await db.select({ total: count() }).from(auditLog).where(where);
    return { rows, total: counted?.total ?? 0 };
  }
}

const AUDIT_FILTER_COLUMNS = {
  id: auditLog.id,
  entityType: auditLog.entityType,
  entityId: auditLog.entityId,
  action: auditLog.action,
  actorKeyId: auditLog.actorKeyId,
};
