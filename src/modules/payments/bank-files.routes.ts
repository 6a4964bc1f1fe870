import { Readable } from "node:stream";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import { actorOf, STAFF } from "../../platform/auth.js";
import { AppError } from "../../platform/errors.js";
import { errorResponses, idempotencyKeyOf, sendCreated } from "../../platform/tmf.js";
import { registerReadRoutes } from "../../platform/tmf-routes.js";
import { text } from "../../platform/tmf-schemas.js";
import type { SchemaTypeProvider } from "../../platform/type-provider.js";
import { DIRECT_DEBITS_PATH, type DirectDebitsService } from "./direct-debits.service.js";
import { STATEMENTS_PATH, type StatementsService } from "./statements.service.js";

const TAG = "bank files (camt.053, pain.008)";
const FINANCE = ["admin", "finance"] as const;
const PAYERS = [...STAFF, "subscriber"] as const;
const UNMATCHED_PATH = "/api/v1/payments/unmatched";
const XML_TYPES = ["application/xml", "text/xml"];

const Ref = Type.Object({ id: Type.String(), href: Type.Optional(Type.String()) });
const MoneyText = Type.Object({ unit: Type.String(), value: Type.String() });

const MandateSchema = Type.Object({
  id: Type.String(),
  href: Type.String(),
  reference: Type.String(),
  signatureDate: Type.String(),
  debtorName: Type.String(),
  /** Masked: the first four and the last four characters. */
  iban: Type.String(),
  bic: Type.Optional(Type.String()),
  sequence: Type.String(),
  status: Type.String(),
  statusDate: Type.String(),
  lastCollectionDate: Type.Optional(Type.String()),
  validUntil: Type.String(),
});

const MandateCreateSchema = Type.Object(
  {
    /** The unique mandate reference (UMR). */
    reference: text(35),
    signatureDate: Type.String({ minLength: 10, maxLength: 10 }),
    debtorName: text(140),
    iban: Type.String({ minLength: 15, maxLength: 42 }),
    bic: Type.Optional(Type.String({ minLength: 8, maxLength: 11 })),
  },
  { additionalProperties: false },
);

const FileSchema = Type.Object({
  id: Type.String(),
  href: Type.String(),
  messageId: Type.String(),
  collectionDate: Type.String(),
  transactions: Type.Integer(),
  controlSum: MoneyText,
  skipped: Type.Array(
    Type.Object({
      billId: Type.String(),
      billingAccountId: Type.String(),
      mandate: Type.Optional(Type.String()),
      reason: Type.String(),
    }),
  ),
  sha256: Type.String(),
  file: Type.Object({ href: Type.String(), mimeType: Type.String() }),
  createdAt: Type.String(),
});

const EntrySchema = Type.Object({
  id: Type.String(),
  statement: Ref,
  seq: Type.Integer(),
  bankReference: Type.String(),
  direction: Type.String(),
  reversal: Type.Optional(Type.Boolean()),
  bookingStatus: Type.String(),
  amount: MoneyText,
  bookingDate: Type.Optional(Type.String()),
  valueDate: Type.Optional(Type.String()),
  debtorName: Type.Optional(Type.String()),
  debtorIban: Type.Optional(Type.String()),
  remittance: Type.Optional(Type.String()),
  creditorReference: Type.Optional(Type.String()),
  endToEndId: Type.Optional(Type.String()),
  returnReason: Type.Optional(Type.String()),
  outcome: Type.String(),
  detail: Type.Optional(Type.String()),
  matchedBy: Type.Optional(Type.String()),
  payment: Type.Optional(Ref),
  billingAccount: Type.Optional(Ref),
  candidates: Type.Optional(Type.Array(Type.String())),
  duplicateOf: Type.Optional(Type.String()),
});

const StatementSchema = Type.Object({
  id: Type.String(),
  href: Type.String(),
  statementRef: Type.Union([Type.String(), Type.Null()]),
  account: Type.Union([Type.String(), Type.Null()]),
  messageId: Type.Union([Type.String(), Type.Null()]),
  status: Type.String(),
  error: Type.Optional(Type.String()),
  entries: Type.Integer(),
  /** How many entries came out each way: matched, collected, returned, unmatched, ambiguous, ignored, duplicate… */
  outcomes: Type.Record(Type.String(), Type.Integer()),
  receivedAt: Type.String(),
  completedAt: Type.Optional(Type.String()),
});

const AccountParams = Type.Object({ id: Type.String({ maxLength: 100 }) });
const MandateParams = Type.Object({ id: Type.String({ maxLength: 100 }), mandateId: Type.String({ maxLength: 100 }) });
const IdParams = Type.Object({ id: Type.String({ maxLength: 100 }) });

/** Mandates, pain.008 direct debit files, camt.053 statements and the worklist of what they did not match. */
export function bankFilesRoutes(debits: DirectDebitsService, statements: StatementsService) {
  return async function routes(instance: FastifyInstance): Promise<void> {
    const app = instance.withTypeProvider<SchemaTypeProvider>();
    // A statement streams in as it is read: the body reaches the handler as the request stream, never whole.
    for (const type of XML_TYPES) {
      if (app.hasContentTypeParser(type)) app.removeContentTypeParser(type);
      app.addContentTypeParser(type, (_request, payload, done) => done(null, payload));
    }

    const mandatesPath = "/api/v1/billing-accounts/:id/mandates";
    app.get(
      mandatesPath,
      {
        config: { roles: PAYERS },
        schema: {
          tags: [TAG],
          summary: "The SEPA direct debit mandates of a billing account",
          params: AccountParams,
          response: { 200: Type.Array(MandateSchema), ...errorResponses(404) },
        },
      },
      async (request) => debits.mandates(actorOf(request), request.params.id),
    );
    app.post(
      mandatesPath,
      {
        config: { roles: STAFF },
        schema: {
          tags: [TAG],
          summary:
            "Record a signed SEPA mandate: its unique reference, signature date, the debtor's name and IBAN (checked mod 97 and by country length), BIC optional",
          params: AccountParams,
          body: MandateCreateSchema,
          response: { 201: MandateSchema, ...errorResponses(404, 409, 413, 415, 422) },
        },
      },
      async (request, reply) =>
        sendCreated(
          reply,
          (await debits.addMandate(actorOf(request), request.params.id, request.body)) as { href: string },
        ),
    );
    app.get(
      `${mandatesPath}/:mandateId`,
      {
        config: { roles: PAYERS },
        schema: {
          tags: [TAG],
          summary: "One mandate (lapsed when unused for 36 months)",
          params: MandateParams,
          response: { 200: MandateSchema, ...errorResponses(404) },
        },
      },
      async (request) => debits.mandate(actorOf(request), request.params.id, request.params.mandateId),
    );
    app.delete(
      `${mandatesPath}/:mandateId`,
      {
        config: { roles: STAFF },
        schema: {
          tags: [TAG],
          summary: "Revoke a mandate: no further debits (it stays on record; debits already pending stay pending)",
          params: MandateParams,
          response: { 204: Type.Null(), ...errorResponses(404) },
        },
      },
      async (request, reply) => {
        await debits.revokeMandate(actorOf(request), request.params.id, request.params.mandateId);
        return reply.code(204).send();
      },
    );

    registerReadRoutes(app, {
      path: DIRECT_DEBITS_PATH,
      name: "directDebitFile",
      tag: TAG,
      resource: FileSchema,
      filters: {},
      roles: FINANCE,
      list: async (_actor, request) => debits.files(request),
      get: async (_actor, id) => debits.file(id) as never,
    });
    app.post(
      DIRECT_DEBITS_PATH,
      {
        config: { roles: FINANCE },
        schema: {
          tags: [TAG],
          summary:
            "Build a pain.008 file collecting, on the collection date, the open bills due by then of accounts with a valid mandate (each a pending payment; Idempotency-Key honoured)",
          headers: Type.Object({ "idempotency-key": Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) }),
          body: Type.Object({ collectionDate: Type.String({ maxLength: 10 }) }, { additionalProperties: false }),
          response: { 201: FileSchema, 200: FileSchema, ...errorResponses(409, 413, 415, 422) },
        },
      },
      async (request, reply) => {
        const key = idempotencyKeyOf(request);
        const { created, file } = await debits.build(actorOf(request), {
          collectionDate: request.body.collectionDate,
          ...(key === undefined ? {} : { idempotencyKey: key }),
        });
        if (!created) return reply.code(200).header("idempotent-replayed", "true").send(file);
        return sendCreated(reply, file as { href: string });
      },
    );
    app.get(
      `${DIRECT_DEBITS_PATH}/:id/file`,
      {
        config: { roles: FINANCE },
        schema: {
          tags: [TAG],
          summary: "The pain.008.001.02 file as built (the same bytes on every download; its SHA-256 in ETag)",
          params: IdParams,
          response: { 200: Type.String(), ...errorResponses(404) },
        },
      },
      async (request, reply) => {
        const { xml, sha256, messageId } = await debits.fileXml(request.params.id);
        return reply
          .type("application/xml; charset=utf-8")
          .header("etag", `"${sha256}"`)
          .header("content-disposition", `attachment; filename="${messageId}.xml"`)
          .send(xml);
      },
    );

    app.post(
      STATEMENTS_PATH,
      {
        config: { roles: FINANCE },
        schema: {
          tags: [TAG],
          summary:
            "Import a camt.053 bank statement (application/xml, streamed): entries deduplicated by the bank's reference, matched to bills, returns reversed; every entry's outcome reported",
          response: {
            201: Type.Intersect([StatementSchema, Type.Object({ items: Type.Array(EntrySchema) })]),
            ...errorResponses(413, 415),
          },
        },
      },
      async (request, reply) => {
        // A large statement is applied for minutes after its last byte arrives: the socket's idle timeout
        // (BSS_REQUEST_TIMEOUT_MS) is lifted for this request and set back when the answer is sent.
        // (An injected request's socket has no timer.)
        const socket = request.raw.socket as { setTimeout?: (ms: number) => unknown } | undefined;
        const idle = request.server.server.timeout;
        if (typeof socket?.setTimeout === "function") {
          socket.setTimeout(0);
          reply.raw.once("finish", () => socket.setTimeout?.(idle));
        }
        const body = request.body as AsyncIterable<Buffer> | undefined;
        if (
          body !== undefined &&
          typeof (body as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] !== "function"
        ) {
          throw new AppError(
            "unsupported_media_type",
            "unsupported_media_type",
            "a statement is sent as application/xml",
          );
        }
        const statement = (await statements.import(actorOf(request), body ?? emptyBody())) as {
          id: string;
          href: string;
        };
        // The answer lists every entry's outcome, read back a page at a time and streamed.
        const pages = async function* (): AsyncGenerator<string> {
          const head = JSON.stringify(statement);
          yield `${head.slice(0, -1)},"items":[`;
          let afterSeq = 0;
          let first = true;
          for (;;) {
            const page = (await statements.entries(statement.id, { afterSeq, limit: 1000 })) as Array<{ seq: number }>;
            if (page.length === 0) break;
            for (const entry of page) {
              yield `${first ? "" : ","}${JSON.stringify(entry)}`;
              first = false;
            }
            afterSeq = page[page.length - 1]?.seq ?? afterSeq;
          }
          yield "]}";
        };
        return reply
          .code(201)
          .header("location", statement.href)
          .type("application/json; charset=utf-8")
          .send(Readable.from(pages()));
      },
    );
    app.get(
      `${STATEMENTS_PATH}/:id`,
      {
        config: { roles: FINANCE },
        schema: {
          tags: [TAG],
          summary: "A statement as imported, with how many entries came out each way",
          params: IdParams,
          response: { 200: StatementSchema, ...errorResponses(404) },
        },
      },
      async (request) => statements.statement(request.params.id),
    );
    app.get(
      `${STATEMENTS_PATH}/:id/entries`,
      {
        config: { roles: FINANCE },
        schema: {
          tags: [TAG],
          summary: "A statement's entries in file order with their outcomes (after a position, a page at a time)",
          params: IdParams,
          querystring: Type.Object(
            {
              after: Type.Optional(Type.Integer({ minimum: 0 })),
              limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Array(EntrySchema), ...errorResponses(404) },
        },
      },
      async (request) => {
        await statements.statement(request.params.id);
        return statements.entries(request.params.id, {
          afterSeq: request.query.after ?? 0,
          limit: request.query.limit ?? 100,
        });
      },
    );

    registerReadRoutes(app, {
      path: UNMATCHED_PATH,
      name: "unmatched statement entry",
      tag: TAG,
      resource: EntrySchema,
      filters: {},
      roles: FINANCE,
      list: async (_actor, request) => statements.unmatched(request),
      get: async (_actor, id) => statements.entry(id) as never,
    });
    app.post(
      `${UNMATCHED_PATH}/:id/assign`,
      {
        config: { roles: FINANCE },
        schema: {
          tags: [TAG],
          summary: "Assign an unmatched or ambiguous credit to a billing account or a bill: it becomes a payment, once",
          params: IdParams,
          body: Type.Object(
            {
              billingAccount: Type.Optional(Type.Object({ id: text(100) }, { additionalProperties: true })),
              bill: Type.Optional(Type.Object({ id: text(100) }, { additionalProperties: true })),
            },
            { additionalProperties: false },
          ),
          response: { 200: EntrySchema, ...errorResponses(404, 409, 413, 415, 422) },
        },
      },
      async (request) =>
        statements.assign(actorOf(request), request.params.id, {
          ...(request.body.billingAccount === undefined ? {} : { billingAccountId: request.body.billingAccount.id }),
          ...(request.body.bill === undefined ? {} : { billId: request.body.bill.id }),
        }),
    );
  };
}

async function* emptyBody(): AsyncGenerator<Buffer> {}
