import type { SQL } from "drizzle-orm";
import { newId } from "../shared/ids.js";
import { canTransition, type StateMachine, transitionRefusal } from "../shared/state-machine.js";
import type { Actor, AuditLog } from "./audit.js";
import type { Clock } from "./clock.js";
import type { Database, Db } from "./database.js";
import { AppError, invalidField, notFound } from "./errors.js";
import type { ChangeKind, EventApi, EventLog } from "./events.js";
import type { ListRequest } from "./tmf.js";
import type { ResourceService } from "./tmf-routes.js";

export interface ServiceDeps {
  database: Database;
  audit: AuditLog;
  events: EventLog;
  clock: Clock;
}

/** The rows a model reads and writes, as tableRepository provides them. */
interface Rows<Row, Insert> {
  insert(db: Db, values: Insert): Promise<Row>;
  find(db: Db, id: string, lock?: boolean): Promise<Row | undefined>;
  list(db: Db, request: ListRequest, scope?: SQL): Promise<{ rows: Row[]; total: number }>;
  update(db: Db, id: string, values: Partial<Insert>): Promise<Row>;
  remove(db: Db, id: string): Promise<boolean>;
}

/**
 * What one resource type defines; the use cases around it (list, get, create, merge-patch, delete, each
 * write with its audit row in the same transaction) are the same for all and live in ResourceStore.
 */
export interface ResourceModel<Row extends { id: string }, Insert, R, C, S extends string, K extends string = string> {
  /** Name in errors, the audit trail and events: the TMF resource name ("billingAccount"). */
  entity: string;
  /** The TMF API whose hub receives this resource's events. */
  api: EventApi;
  rows: Rows<Row, Insert>;
  lifecycle: StateMachine<S>;
  /** The state of a new resource when the create names none. */
  defaultState: S;
  /** The states a create may ask for; any other start (a terminal one, say) is a field error. */
  startStates: readonly S[];
  /** The row in create-input shape, the base a merge patch applies to. */
  toInput(row: Row): C;
  /** Rows as API resources; batched, so a page costs a fixed number of queries. */
  present(db: Db, rows: Row[]): Promise<R[]>;
  /**
   * A create's input completed before anything reads it, in its transaction: what a standard client may leave
   * out filled in (configured defaults, a related party resolved). Creates only.
   */
  prepare?(tx: Db, actor: Actor, input: C): Promise<C>;
  /** Rules beyond the schema, checked on create (current null) and on every patch. */
  validate(db: Db, input: C, current: Row | null): Promise<void>;
  /** Column values for the input (without id, state and timestamps). */
  columns(input: C): Omit<Insert, "id" | "createdAt" | "updatedAt" | K>;
  /** The column, and the field of the input, that hold the lifecycle state ("status" or "state"). */
  stateColumn: K;
  mergePatch(current: C, patch: unknown): C;
  /** Rules that depend on other data before a state change (a customer with open accounts cannot close). */
  beforeTransition?(db: Db, row: Row, to: S): Promise<void>;
  /** Told of every committed create (before null) and update, inside the writing transaction. */
  afterWrite?(db: Db, before: Row | null, after: Row): void;
  /** Refuses a delete that would orphan or destroy records others depend on. */
  beforeRemove?(db: Db, row: Row): Promise<void>;
  /** Restricts what an actor may see (subscriber keys); undefined scope means everything. */
  scope?(actor: Actor): SQL | undefined;
  visible?(actor: Actor, row: Row): boolean;
}

export class ResourceStore<Row extends { id: string }, Insert, R, C, S extends string, K extends string = string>
  implements ResourceService<R, C, unknown>
{
  constructor(
    private readonly model: ResourceModel<Row, Insert, R, C, S, K>,
    private readonly deps: ServiceDeps,
  ) {}

  private async one(db: Db, row: Row): Promise<R> {
    const [resource] = await this.model.present(db, [row]);
    if (resource === undefined) throw new Error(`${this.model.entity} ${row.id} could not be presented`);
    return resource;
  }

  async list(actor: Actor, request: ListRequest): Promise<{ items: R[]; total: number }> {
    const db = this.deps.database.db;
    const { rows, total } = await this.model.rows.list(db, request, this.model.scope?.(actor));
    return { items: await this.model.present(db, rows), total };
  }

  /** The row if it exists and the actor may see it; other parties' rows are 404, never 403 (API.md). */
  async findVisible(db: Db, actor: Actor, id: string, lock = false): Promise<Row> {
    const row = await this.model.rows.find(db, id, lock);
    if (!row || (this.model.visible && !this.model.visible(actor, row))) throw notFound(this.model.entity, id);
    return row;
  }

  async get(actor: Actor, id: string): Promise<R> {
    const db = this.deps.database.db;
    return this.one(db, await this.findVisible(db, actor, id));
  }

  /** Every write leaves an audit row and a TMF event, both in the write's transaction. */
  private async record(tx: Db, actor: Actor, change: ChangeKind, id: string, snapshots: { before?: R; after?: R }) {
    const action = change === "Create" ? "create" : change === "Delete" ? "delete" : "update";
    await this.deps.audit.record(tx, actor, { action, entityType: this.model.entity, entityId: id, ...snapshots });
    const body = snapshots.after ?? snapshots.before;
    await this.deps.events.record(tx, {
      api: this.model.api,
      resource: this.model.entity,
      change,
      resourceId: id,
      body,
    });
  }

  private stateOf(record: Row | C): S | undefined {
    return (record as Record<string, unknown>)[this.model.stateColumn] as S | undefined;
  }

  async create(actor: Actor, input: C): Promise<R> {
    return this.deps.database.transaction((tx) => this.createIn(tx, actor, input));
  }

  /** A create inside the caller's transaction (a resource made on the way to another, in the same commit). */
  async createIn(tx: Db, actor: Actor, given: C): Promise<R> {
    const state = this.stateOf(given) ?? this.model.defaultState;
    if (!this.model.startStates.includes(state)) {
      throw invalidField(this.model.stateColumn, `a new ${this.model.entity} cannot start ${state}`);
    }
    const now = this.deps.clock.now();
    const input = this.model.prepare === undefined ? given : await this.model.prepare(tx, actor, given);
    await this.model.validate(tx, input, null);
    const row = await this.model.rows.insert(tx, {
      ...this.model.columns(input),
      id: newId(now.getTime()),
      [this.model.stateColumn]: state,
      createdAt: now,
      updatedAt: now,
    } as Insert);
    const resource = await this.one(tx, row);
    await this.record(tx, actor, "Create", row.id, { after: resource });
    this.model.afterWrite?.(tx, null, row);
    return resource;
  }

  /** Lock → re-read inside the lock → compute → write, in one transaction (Lago's rule for changes). */
  async update(actor: Actor, id: string, patch: unknown): Promise<R> {
    return this.deps.database.transaction(async (tx) => {
      const current = await this.findVisible(tx, actor, id, true);
      const next = this.model.mergePatch(this.model.toInput(current), patch);
      await this.model.validate(tx, next, current);
      const from = this.stateOf(current) as S;
      const to = this.stateOf(next) ?? from;
      if (!canTransition(this.model.lifecycle, from, to)) {
        throw new AppError(
          "conflict",
          "illegal_transition",
          transitionRefusal(this.model.lifecycle, this.model.entity, from, to),
        );
      }
      if (from !== to) await this.model.beforeTransition?.(tx, current, to);
      const before = await this.one(tx, current);
      const row = await this.model.rows.update(tx, id, {
        ...this.model.columns(next),
        [this.model.stateColumn]: to,
        updatedAt: this.deps.clock.now(),
      } as unknown as Partial<Insert>);
      const after = await this.one(tx, row);
      await this.record(tx, actor, from === to ? "AttributeValueChange" : "StateChange", id, { before, after });
      this.model.afterWrite?.(tx, current, row);
      return after;
    });
  }

  async remove(actor: Actor, id: string): Promise<void> {
    await this.deps.database.transaction(async (tx) => {
      const current = await this.findVisible(tx, actor, id, true);
      await this.model.beforeRemove?.(tx, current);
      const before = await this.one(tx, current);
      await this.model.rows.remove(tx, id);
      await this.record(tx, actor, "Delete", id, { before });
    });
  }
}
