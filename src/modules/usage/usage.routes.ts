import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Type } from "typebox";
import { actorOf, type Role } from "../../platform/auth.js";
import { AppError, invalidField } from "../../platform/errors.js";
import {
  errorResponses,
  listQuerySchema,
  matchesFilters,
  parseListQuery,
  sendCreated,
  sendList,
} from "../../platform/tmf.js";
import { registerReadRoutes } from "../../platform/tmf-routes.js";
import type { SchemaTypeProvider } from "../../platform/type-provider.js";
import { CDR_BATCH_MAX, CDR_BODY_LIMIT_BYTES } from "../../shared/limits.js";
import { SERVICES } from "../catalog/index.js";
import { type BodyItem, splitJsonArray, splitNdjson, tooManyRecords } from "./cdr-body.js";
import { CDR_FIELDS } from "./cdr-record.js";
import { mapAsteriskRow, parseAsteriskCsv } from "./formats/asterisk.js";
import { decodeFreeswitchBody, mapFreeswitchCdr } from "./formats/freeswitch.js";
import type { IncomingRecord, IngestResult, IngestService } from "./ingest.service.js";
import { SUSPENSE_REASONS } from "./line-index.js";
import {
  CDR_SOURCE_PATH,
  CdrSourceCreateSchema,
  CdrSourcePatchSchema,
  CdrSourceSchema,
  type SourcesService,
} from "./sources.service.js";
import {
  IngestResultSchema,
  ReguideRequestSchema,
  ReguideResultSchema,
  SuspendedUsageSchema,
  SwitchQuerySchema,
  type UsageCreate,
  UsageCreateSchema,
  UsageSchema,
  UsageSpecificationSchema,
} from "./usage.schemas.js";
import {
  SUSPENSE_PATH,
  USAGE_PATH,
  USAGE_SPECIFICATION_PATH,
  USAGE_STATUSES,
  type UsageService,
} from "./usage.service.js";
import { usageSpecification, usageSpecifications } from "./usage-specifications.js";

const NETWORK: readonly Role[] = ["network"];
const USAGE_READERS: readonly Role[] = ["admin", "crm", "finance", "network", "subscriber"];
const SUSPENSE_READERS: readonly Role[] = ["admin", "crm", "finance", "network"];
const SUSPENSE_WRITERS: readonly Role[] = ["admin", "crm"];
const ADMIN: readonly Role[] = ["admin"];
const SOURCE_READERS: readonly Role[] = ["admin", "crm", "network"];

export interface UsageRouteDeps {
  ingest: IngestService;
  usage: UsageService;
  sources: SourcesService;
}

const sendsForCache = new WeakMap<readonly string[], ReadonlySet<string>>();

/** The sources a network key may send records for (its `cdrSources`); undefined: any (`["*"]`). */
function sendsForOf(request: FastifyRequest): ReadonlySet<string> | undefined {
  const named = request.principal?.cdrSources;
  if (named === null || named === undefined || named.includes("*")) return undefined;
  let set = sendsForCache.get(named);
  if (set === undefined) {
    set = new Set(named);
    sendsForCache.set(named, set);
  }
  return set;
}

/** A single-record door (switch formats, TMF635): a record for a source the key does not name is a 403. */
function refuseForeignSource(request: FastifyRequest, source: string, field: string): void {
  const sendsFor = sendsForOf(request);
  if (sendsFor !== undefined && !sendsFor.has(source)) {
    throw new AppError(
      "forbidden",
      "source_not_allowed",
      `${field}: this API key may not send records for source ${source} (its cdrSources name the ones it may)`,
      field,
    );
  }
}

/** Bodies of the CDR doors arrive as bytes: each record is decoded and checked on its own (API.md). */
function rawBodies(app: FastifyInstance, types: string[]): void {
  for (const type of types) {
    if (app.hasContentTypeParser(type)) app.removeContentTypeParser(type);
    app.addContentTypeParser(type, { parseAs: "buffer", bodyLimit: CDR_BODY_LIMIT_BYTES }, (_request, body, done) =>
      done(null, body),
    );
  }
}

/** A body of this scope as its parser left it: the raw bytes (none when the request had no body). */
function rawBody(body: unknown): Buffer {
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (!Buffer.isBuffer(body)) throw new Error("a CDR route's body was parsed: its scope must keep raw bytes");
  return body;
}

/** The bulk and switch doors for network elements, in their own scope so their bodies stay raw bytes. */
function cdrRoutes(deps: UsageRouteDeps) {
  return async function routes(instance: FastifyInstance): Promise<void> {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    rawBodies(app, [
      "application/json",
      "application/x-ndjson",
      "application/x-www-form-urlencoded",
      // mod_json_cdr with encode=base64
      "application/x-www-form-base64-encoded",
      "text/csv",
    ]);

    app.post(
      "/api/v1/cdrs",
      {
        bodyLimit: CDR_BODY_LIMIT_BYTES,
        config: { roles: NETWORK, auditExempt: true },
        schema: {
          tags: ["usage"],
          summary: `Ingest a batch of normalized CDRs (JSON array or NDJSON, at most ${CDR_BATCH_MAX}); every record gets its own outcome`,
          response: { 200: IngestResultSchema, ...errorResponses(413, 415) },
        },
      },
      async (request) => {
        const raw = rawBody(request.body);
        const contentType = (request.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
        if (contentType !== "application/json" && contentType !== "application/x-ndjson") {
          throw new AppError(
            "unsupported_media_type",
            "unsupported_media_type",
            "send application/json or application/x-ndjson",
          );
        }
        const items: BodyItem[] =
          contentType === "application/json" ? splitJsonArray(raw, CDR_BATCH_MAX) : splitNdjson(raw, CDR_BATCH_MAX);
        return deps.ingest.ingest(items as IncomingRecord[], "native", sendsForOf(request));
      },
    );

    app.post(
      "/api/v1/cdrs/freeswitch",
      {
        bodyLimit: CDR_BODY_LIMIT_BYTES,
        config: { roles: NETWORK, auditExempt: true },
        schema: {
          tags: ["usage"],
          summary:
            "Ingest one FreeSWITCH mod_json_cdr record (raw JSON, or form-encoded/base64 `cdr=`); idempotent on the call uuid, billsec rated",
          querystring: SwitchQuerySchema,
          response: { 200: IngestResultSchema, ...errorResponses(409, 413, 415) },
        },
      },
      async (request, reply) => {
        const { source } = request.query;
        refuseForeignSource(request, source, "source");
        await requireSource(deps, source);
        const decoded = decodeFreeswitchBody(request.headers["content-type"], rawBody(request.body));
        if (!decoded.ok) throw invalidField(decoded.rejection.field, decoded.rejection.reason);
        const mapped = mapFreeswitchCdr(decoded.cdr, source);
        if (!mapped.ok) throw invalidField(mapped.rejection.field, mapped.rejection.reason);
        const result = await deps.ingest.ingest(
          [
            {
              value: mapped.cdr.record,
              chargeable: mapped.cdr.chargeable,
              ...(mapped.cdr.note === undefined ? {} : { note: mapped.cdr.note }),
            },
          ],
          "freeswitch",
        );
        // mod_json_cdr keeps a record it could not post (err-log-dir): a refusal must not look like success.
        const [outcome] = result.records;
        if (outcome?.outcome === "rejected") throw invalidField(outcome.field ?? "cdr", outcome.reason ?? "invalid");
        if (outcome?.outcome === "conflict") {
          throw new AppError("conflict", "cdr_conflict", `uuid ${outcome.cdrId}: ${outcome.reason}`, "variables.uuid");
        }
        return reply.send(result);
      },
    );

    app.post(
      "/api/v1/cdrs/asterisk",
      {
        bodyLimit: CDR_BODY_LIMIT_BYTES,
        config: { roles: NETWORK, auditExempt: true },
        schema: {
          tags: ["usage"],
          summary: `Upload Asterisk Master.csv rows (no header, at most ${CDR_BATCH_MAX}); times in the source's zone, only answered legs charged`,
          querystring: SwitchQuerySchema,
          response: { 200: IngestResultSchema, ...errorResponses(413, 415) },
        },
      },
      async (request) => {
        const { source } = request.query;
        refuseForeignSource(request, source, "source");
        const rules = await requireSource(deps, source);
        const contentType = (request.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
        if (contentType !== "text/csv")
          throw new AppError("unsupported_media_type", "unsupported_media_type", "send text/csv");
        const items = asteriskItems(rawBody(request.body), source, rules.timeZone);
        return deps.ingest.ingest(items, "asterisk");
      },
    );
  };
}

async function requireSource(deps: UsageRouteDeps, source: string) {
  const rules = (await deps.sources.resolve([source])).get(source);
  if (rules === undefined) {
    throw invalidField("source", `${source} is not a registered, active CDR source (see ${CDR_SOURCE_PATH})`);
  }
  return rules;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Master.csv, one row per line, each line decoded on its own so one bad line refuses only itself. */
function asteriskItems(raw: Buffer, source: string, timeZone: string): IncomingRecord[] {
  const items: IncomingRecord[] = [];
  let start = 0;
  let line = 1;
  while (start < raw.length) {
    let end = raw.indexOf(0x0a, start);
    if (end === -1) end = raw.length;
    const bytes = raw.subarray(start, end);
    const here = line;
    start = end + 1;
    line += 1;
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      items.push({ line: here, rejection: { field: "row", reason: "is not valid UTF-8" } });
      continue;
    }
    if (text.trim() === "") continue;
    if (items.length >= CDR_BATCH_MAX) throw tooManyRecords(CDR_BATCH_MAX);
    if (text.includes("\u0000")) {
      items.push({ line: here, rejection: { field: "row", reason: "must not contain NUL" } });
      continue;
    }
    for (const parsed of parseAsteriskCsv(text)) {
      if ("rejection" in parsed) {
        items.push({ line: here, rejection: parsed.rejection });
        continue;
      }
      const mapped = mapAsteriskRow(parsed.cells, source, timeZone);
      if (!mapped.ok) items.push({ line: here, rejection: mapped.rejection });
      else {
        items.push({
          line: here,
          value: mapped.cdr.record,
          chargeable: mapped.cdr.chargeable,
          ...(mapped.cdr.note === undefined ? {} : { note: mapped.cdr.note }),
        });
      }
    }
  }
  return items;
}

/** TMF635 usage: one CDR in as a Usage, stored usage out with its derived status. */
function tmfUsageRoutes(deps: UsageRouteDeps) {
  return async function routes(instance: FastifyInstance): Promise<void> {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    registerReadRoutes(app, {
      path: USAGE_PATH,
      name: "usage",
      tag: "usage",
      resource: UsageSchema,
      filters: {
        usageType: { values: SERVICES },
        status: { values: USAGE_STATUSES },
        usageDate: { range: "date" },
        date: { range: "date" },
      },
      roles: USAGE_READERS,
      list: (actor, request) => deps.usage.list(actor, request),
      get: (actor, id) => deps.usage.get(actor, id),
    });

    app.post(
      USAGE_PATH,
      {
        config: { roles: NETWORK, auditExempt: true },
        schema: {
          tags: ["usage"],
          summary:
            "Submit one usage record (a CDR as TMF635 Usage); a retry with the same source and cdrId returns the first",
          body: UsageCreateSchema,
          response: { 200: UsageSchema, 201: UsageSchema, ...errorResponses(409, 413, 415) },
        },
      },
      async (request, reply) => postUsage(deps, request, request.body, reply),
    );

    // The three record types, held in code: read through the same routes (filters, fields) as stored resources.
    registerReadRoutes(app, {
      path: USAGE_SPECIFICATION_PATH,
      name: "usageSpecification",
      tag: "usage",
      resource: UsageSpecificationSchema,
      filters: { name: {}, lifecycleStatus: {} },
      roles: USAGE_READERS,
      isItemId: (id) => (SERVICES as readonly string[]).includes(id),
      list: async (_actor, request) => {
        const matching = usageSpecifications().filter((spec) => matchesFilters(spec, request.filters));
        return { items: matching.slice(request.offset, request.offset + request.limit), total: matching.length };
      },
      get: async (_actor, id) => usageSpecification(id),
    });
  };
}

async function postUsage(deps: UsageRouteDeps, request: FastifyRequest, body: UsageCreate, reply: FastifyReply) {
  const actor = actorOf(request);
  if (body.usageCharacteristic === undefined || body.usageCharacteristic.length === 0) {
    const { usageCharacteristic: _none, ...sent } = body;
    const kept = await deps.ingest.keepUncharacterised(sent);
    const usage = await deps.usage.get(actor, kept.usageId);
    return kept.created ? sendCreated(reply, usage) : reply.code(200).send(usage);
  }
  const record: Record<string, unknown> = {};
  body.usageCharacteristic.forEach((characteristic, index) => {
    const name = characteristic.name;
    if (!(CDR_FIELDS as readonly string[]).includes(name)) {
      throw invalidField(
        `usageCharacteristic[${index}].name`,
        `"${name}" is not a CDR field (${CDR_FIELDS.join(", ")})`,
      );
    }
    if (name in record) throw invalidField(`usageCharacteristic[${index}].name`, `"${name}" appears more than once`);
    record[name] = characteristic.value;
  });
  if (body.usageType !== undefined) {
    if (record.recordType !== undefined && record.recordType !== body.usageType) {
      throw invalidField("usageType", "differs from the recordType characteristic");
    }
    record.recordType = body.usageType;
  }
  if (body.usageDate !== undefined) {
    if (record.recordOpeningTime !== undefined && record.recordOpeningTime !== body.usageDate) {
      throw invalidField("usageDate", "differs from the recordOpeningTime characteristic");
    }
    record.recordOpeningTime = body.usageDate;
  }
  if (typeof record.source === "string") refuseForeignSource(request, record.source, "usageCharacteristic.source");
  const result: IngestResult = await deps.ingest.ingest([{ value: record }], "tmf635");
  const outcome = result.records[0];
  if (outcome === undefined) throw new Error("ingest answered no outcome");
  if (outcome.outcome === "rejected") {
    const field = outcome.field ?? "usageCharacteristic";
    const where = (CDR_FIELDS as readonly string[]).includes(field) ? `usageCharacteristic.${field}` : field;
    throw invalidField(where, outcome.reason ?? "invalid");
  }
  if (outcome.outcome === "conflict") {
    throw new AppError(
      "conflict",
      "cdr_conflict",
      `cdrId ${outcome.cdrId}: ${outcome.reason}`,
      "usageCharacteristic.cdrId",
    );
  }
  // Network keys read usage too, so the stored record is read back through the same service.
  const usage = await deps.usage.get(actor, outcome.usageId as string);
  if (outcome.outcome === "duplicate") return reply.code(200).send(usage);
  return sendCreated(reply, usage);
}

/** Suspense: what could not be guided, with the reason; re-guided one by one or in bulk. */
function suspenseRoutes(deps: UsageRouteDeps) {
  return async function routes(instance: FastifyInstance): Promise<void> {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    registerReadRoutes(app, {
      path: SUSPENSE_PATH,
      name: "suspended usage",
      tag: "usage",
      resource: SuspendedUsageSchema,
      filters: {
        state: {},
        reason: { values: SUSPENSE_REASONS },
        since: { range: "date" },
        "usage.source": {},
        "usage.recordType": { values: SERVICES },
        "usage.servedMSISDN": {},
        // Shorter spellings of the usage's attributes.
        source: { aliasOf: "usage.source" },
        recordType: { values: SERVICES, aliasOf: "usage.recordType" },
        servedMSISDN: { aliasOf: "usage.servedMSISDN" },
      },
      roles: SUSPENSE_READERS,
      list: (_actor, request) => deps.usage.listSuspense(request),
      get: (_actor, id) => deps.usage.getSuspense(id),
    });

    app.post(
      `${SUSPENSE_PATH}/reguide`,
      {
        config: { roles: SUSPENSE_WRITERS },
        schema: {
          tags: ["usage"],
          summary:
            "Re-guide open suspended records matching a filter (after a late activation); those guided are rated",
          body: ReguideRequestSchema,
          response: { 200: ReguideResultSchema, ...errorResponses(413, 415) },
        },
      },
      async (request) => {
        const body = request.body;
        return deps.usage.reguideMany(actorOf(request), {
          ...(body.reason ? { reason: body.reason } : {}),
          ...(body.source ? { source: body.source } : {}),
          ...(body.servedMSISDN ? { servedMSISDN: body.servedMSISDN } : {}),
          ...(body.limit ? { limit: body.limit } : {}),
        });
      },
    );

    app.post(
      `${SUSPENSE_PATH}/:id/reguide`,
      {
        config: { roles: SUSPENSE_WRITERS },
        schema: {
          tags: ["usage"],
          summary: "Re-guide one suspended record; the answer shows it resolved or still open with the new reason",
          params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) }),
          response: { 200: SuspendedUsageSchema, ...errorResponses(404, 409) },
        },
      },
      async (request) => deps.usage.reguideOne(actorOf(request), request.params.id),
    );
  };
}

/** The registered network elements (admins write, staff and elements read). */
function sourceRoutes(deps: UsageRouteDeps) {
  return async function routes(instance: FastifyInstance): Promise<void> {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    const filters = { status: { values: ["active", "disabled"] }, countryCode: {} };
    app.get(
      CDR_SOURCE_PATH,
      {
        config: { roles: SOURCE_READERS },
        schema: {
          tags: ["usage"],
          summary: "List the CDR sources (network elements) and their numbering rules",
          querystring: listQuerySchema(filters),
          response: { 200: Type.Array(Type.Partial(CdrSourceSchema)), ...errorResponses() },
        },
      },
      async (request, reply) => {
        const list = parseListQuery(request.query, filters, Object.keys(CdrSourceSchema.properties));
        const { items, total } = await deps.sources.list(list);
        return sendList(reply, items, total, list.fields);
      },
    );
    const idParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });
    app.get(
      `${CDR_SOURCE_PATH}/:id`,
      {
        config: { roles: SOURCE_READERS },
        schema: {
          tags: ["usage"],
          summary: "Retrieve a CDR source",
          params: idParams,
          response: { 200: CdrSourceSchema, ...errorResponses(404) },
        },
      },
      async (request) => deps.sources.get(request.params.id),
    );
    app.post(
      CDR_SOURCE_PATH,
      {
        config: { roles: ADMIN },
        schema: {
          tags: ["usage"],
          summary: "Register a CDR source: its name, country code, prefixes and the zone of its zone-less times",
          body: CdrSourceCreateSchema,
          response: { 201: CdrSourceSchema, ...errorResponses(409, 413, 415) },
        },
      },
      async (request, reply) => sendCreated(reply, await deps.sources.create(actorOf(request), request.body)),
    );
    app.patch(
      `${CDR_SOURCE_PATH}/:id`,
      {
        config: { roles: ADMIN },
        schema: {
          tags: ["usage"],
          summary: "Change a CDR source's rules, or disable it (its CDRs are then refused)",
          params: idParams,
          body: CdrSourcePatchSchema,
          response: { 200: CdrSourceSchema, ...errorResponses(404, 413, 415) },
        },
      },
      async (request) => deps.sources.update(actorOf(request), request.params.id, request.body),
    );
  };
}

export function usageRoutes(deps: UsageRouteDeps) {
  return async function routes(instance: FastifyInstance): Promise<void> {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    await app.register(cdrRoutes(deps));
    await app.register(tmfUsageRoutes(deps));
    await app.register(suspenseRoutes(deps));
    await app.register(sourceRoutes(deps));
  };
}
