import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import websocket from "@fastify/websocket";
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyServerOptions,
  type RouteOptions,
} from "fastify";
import type { Redis } from "ioredis";
import type { Config } from "./config.js";
import { createAccessModule } from "./modules/access/index.js";
import { createBillingModule } from "./modules/billing/index.js";
import { createCatalogModule, priceTerms } from "./modules/catalog/index.js";
import { createChargingModule, ratedView } from "./modules/charging/index.js";
import { redisShardLeases, redisWorkersAlive, soleShardLeases } from "./modules/charging/leases.js";
import { ratingLoopsRunning } from "./modules/charging/rating.service.js";
import { memoryChargingStore } from "./modules/charging/store/memory-store.js";
import { redisChargingStore } from "./modules/charging/store/redis-store.js";
import { createCustomersModule } from "./modules/customers/index.js";
import { createInventoryModule } from "./modules/inventory/index.js";
import { createNotificationsModule } from "./modules/notifications/index.js";
import {
  httpGatewayChannel,
  type MessageChannel,
  undeliveredChannel,
} from "./modules/notifications/message-channel.js";
import { createOrdersModule } from "./modules/orders/index.js";
import { createPaymentsModule, REVERSAL_FEE_OFFERING } from "./modules/payments/index.js";
import { httpProvisioning, type Provisioning, SimulatedNetwork } from "./modules/provisioning/provisioning.js";
import { simulatorRoutes } from "./modules/provisioning/simulator.routes.js";
import { createRatingModule } from "./modules/rating/index.js";
import { createSubscriptionsModule } from "./modules/subscriptions/index.js";
import { createUsageModule } from "./modules/usage/index.js";
import { inProcessUsageQueue, redisUsageQueue } from "./modules/usage/usage-queue.js";
import { type Actor, AuditLog } from "./platform/audit.js";
import { registerAuth } from "./platform/auth.js";
import { type Broadcast, inProcessBroadcast, redisBroadcast } from "./platform/broadcast.js";
import { CallbackPolicy } from "./platform/callback-policy.js";
import { type Clock, systemClock } from "./platform/clock.js";
import { adminRoutes, ClockMover, clockMoving } from "./platform/clock-admin.js";
import { type Database, openDatabase } from "./platform/database.js";
import { registerDocs } from "./platform/docs.js";
import { TestClock } from "./platform/engine-clock.js";
import { registerErrorHandlers } from "./platform/error-handler.js";
import { errorBody } from "./platform/errors.js";
import { EventLog } from "./platform/events.js";
import { registerHealth } from "./platform/health.js";
import { parseJsonBody, parseTextBody } from "./platform/json-body.js";
import { callerRequestIdOf, loggerOptions, requestIdFor } from "./platform/logger.js";
import { registerMetrics } from "./platform/metrics.js";
import { registerRateLimits } from "./platform/rate-limit.js";
import { openRedis, waitForRedis } from "./platform/redis.js";
import { registerRequestGuard } from "./platform/request-guard.js";
import { Scheduler } from "./platform/scheduler.js";
import { resolveSecretsKey, SecretBox } from "./platform/secrets.js";
import { cachedSerializerFactory } from "./platform/serialization.js";
import { ErrorSchema } from "./platform/tmf.js";
import { validatorCompiler } from "./platform/validation.js";
import { registerScheduledJobs } from "./scheduled-jobs.js";
import { REDIS_CONNECT_TIMEOUT_MS, WS_MAX_FRAME_BYTES } from "./shared/limits.js";
import { isReverseCharged } from "./shared/vat-id.js";

export interface AppOptions {
  /** Business time; tests inject a ManualClock. */
  clock?: Clock;
  /** false silences the app (tests); otherwise logs go to stdout, or to this stream. */
  logger?: false;
  logStream?: NodeJS.WritableStream;
  /** Where customer messages go; tests pass a recording channel. */
  messageChannel?: MessageChannel;
  /** The network adapter; tests pass a recording one. Default: HTTP with a network URL, else simulated. */
  provisioning?: Provisioning;
  /** "manual": orders wait for `fulfil` (tests step through them); default: fulfilled in the background. */
  orderFulfilment?: "background" | "manual";
  /** "manual": bill runs are worked by `work` and the scheduler only (tests step through them); default: the API
   * process that starts a run also works it in the background. */
  billRunWork?: "background" | "manual";
  /** An in-memory PGlite starts from this migrated data directory (tests; see DatabaseOptions.seed). */
  pgliteSeed?: Blob;
  /** Who this process is, as an embedded data folder's lock names it (default: the engine on its port). */
  holder?: string;
}

/** A route as registered, for the test that proves every route declares roles and schemas. */
export interface RegisteredRoute {
  method: string;
  url: string;
  config: { roles?: readonly string[]; public?: boolean; readOnly?: boolean; auditExempt?: boolean };
  hasResponseSchema: boolean;
}

declare module "fastify" {
  interface FastifyInstance {
    services: AppServices;
    database: Database;
    scheduler: Scheduler;
    routeTable: RegisteredRoute[];
  }
}

type AppServices = {
  access: ReturnType<typeof createAccessModule>["service"];
  customers: ReturnType<typeof createCustomersModule>["services"];
  catalog: ReturnType<typeof createCatalogModule>["service"];
  hubs: ReturnType<typeof createNotificationsModule>["hubs"];
  messages: ReturnType<typeof createNotificationsModule>["messages"];
  alerts: ReturnType<typeof createNotificationsModule>["alerts"];
  live: ReturnType<typeof createNotificationsModule>["live"];
  inventory: ReturnType<typeof createInventoryModule>["service"];
  subscriptions: ReturnType<typeof createSubscriptionsModule>["service"];
  orders: ReturnType<typeof createOrdersModule>["service"];
  usage: Awaited<ReturnType<typeof createUsageModule>>["services"];
  charging: Awaited<ReturnType<typeof createChargingModule>>["services"];
  billing: ReturnType<typeof createBillingModule>["service"];
  payments: ReturnType<typeof createPaymentsModule>["service"];
  directDebits: ReturnType<typeof createPaymentsModule>["debits"];
  statements: ReturnType<typeof createPaymentsModule>["statements"];
  invoices: ReturnType<typeof createBillingModule>["invoices"];
  billRuns: ReturnType<typeof createBillingModule>["runs"];
};

const VERSION = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string })
  .version;

/**
 * Builds the engine: platform plugins first, then each module, listed by hand. The server, the tests,
 * the CLI and the workers all start here. Nothing listens until the caller says so.
 */
export async function buildApp(config: Config, options: AppOptions = {}): Promise<FastifyInstance> {
  let clock: Clock = options.clock ?? systemClock;
  let testClock: TestClock | null = null;
  const app = Fastify({
    logger:
      options.logger === false
        ? false
        : ({
            ...loggerOptions(config.logLevel),
            ...(options.logStream ? { stream: options.logStream } : {}),
          } as Exclude<FastifyServerOptions["logger"], undefined>),
    genReqId: requestIdFor,
    // Response serializers built once per process per schema (platform/serialization.ts).
    schemaController: { compilersFactory: { buildSerializer: cachedSerializerFactory() } },
    // Errors the router raises before any hook (a path that does not decode) answer in the TMF shape too.
    frameworkErrors: (error, _request, reply: FastifyReply) => {
      if (error.code === "FST_ERR_MAX_PARAM_LENGTH") {
        // A path segment longer than any id the engine gives names nothing here (TMF clients send their own ids).
        void reply
          .code(404)
          .send(errorBody("not_found", "not_found", "no resource has an id this long; the path names nothing here"));
        return;
      }
      const badUrl = error.code === "FST_ERR_BAD_URL";
      void reply
        .code(400)
        .send(
          errorBody(
            "bad_request",
            badUrl ? "invalid_parameter" : "bad_request",
            badUrl ? "path: is not valid percent-encoded UTF-8" : error.message,
            badUrl ? "path" : undefined,
          ),
        );
    },
    bodyLimit: config.bodyLimitBytes,
    connectionTimeout: config.requestTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    forceCloseConnections: "idle",
    return503OnClosing: true,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
  });

  const routeTable: RegisteredRoute[] = [];
  app.addHook("onRoute", (route: RouteOptions) => {
    for (const method of [route.method].flat()) {
      routeTable.push({
        method,
        url: route.url,
        config: (route.config ?? {}) as RegisteredRoute["config"],
        hasResponseSchema: route.schema?.response !== undefined,
      });
    }
  });
  app.decorate("routeTable", routeTable);

  app.setValidatorCompiler(validatorCompiler);
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    ["application/json", "application/merge-patch+json"],
    { parseAs: "buffer" },
    (_request, body, done) => {
      // No body at all with a JSON content type (standard clients send the header on DELETE and on actions) is an
      // empty object: an action whose fields are all optional works, a create names the first field it misses.
      if ((body as Buffer).length === 0) return done(null, {});
      try {
        done(null, parseJsonBody(body as Buffer));
      } catch (error) {
        done(error as Error, undefined);
      }
    },
  );
  // Vendor SIM files arrive as CSV: checked like JSON for encoding and NUL, then parsed by the route.
  app.addContentTypeParser("text/csv", { parseAs: "buffer" }, (_request, body, done) => {
    try {
      done(null, parseTextBody(body as Buffer));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
  app.addSchema(ErrorSchema);
  registerErrorHandlers(app);
  registerRequestGuard(app);
  app.addHook("onSend", async (request, reply) => {
    reply.header("x-request-id", request.id);
    const caller = callerRequestIdOf(request.headers);
    if (caller !== null) reply.header("x-caller-request-id", caller);
  });

  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolMax: config.dbPoolMax,
    seed: options.pgliteSeed,
    holder: options.holder ?? `the engine on port ${config.port}`,
  });
  let redis: Redis | null = null;
  let broadcast: Broadcast | null = null;
  const stopping: Array<() => unknown> = [];
  app.addHook("onClose", async () => {
    for (const stop of stopping) await stop();
    await broadcast?.close();
    if (redis !== null) await redis.quit().catch(() => redis?.disconnect());
    await database.close();
  });
  try {
    if (config.migrateOnStart) await database.migrate();
    if (config.redisUrl !== undefined) {
      redis = openRedis(config.redisUrl, config.redisKeyPrefix, app.log, config.redisCluster);
      // Start even if Redis is not there yet: readiness reports it and the client keeps reconnecting.
      await waitForRedis(redis, REDIS_CONNECT_TIMEOUT_MS);
    }
    broadcast = redis === null ? inProcessBroadcast() : redisBroadcast(redis, config.redisKeyPrefix);
    // The engine clock (platform/engine-clock.ts): an injected clock (tests), the test clock, or the wall clock.
    if (options.clock === undefined && config.testClock) {
      const opened = await TestClock.open(database, broadcast, Date.now, config.testClockStart);
      stopping.push(() => opened.close());
      testClock = opened;
      clock = opened;
    }

    const audit = new AuditLog(clock);
    const events = new EventLog(clock);
    const deps = { database, audit, events, clock };
    const customers = createCustomersModule({
      ...deps,
      accountDefaults: { currency: config.defaultCurrency, taxJurisdiction: config.defaultTaxJurisdiction },
    });
    const access = createAccessModule({
      ...deps,
      broadcast,
      billingAccountExists: customers.services.billingAccountExists,
    });
    await access.service.start();
    const catalog = createCatalogModule({ ...deps, broadcast, refreshSeconds: config.catalogRefreshSeconds });
    await catalog.service.start();
    stopping.push(() => catalog.service.stop());
    const rating = createRatingModule({ catalog: catalog.service });
    const secrets = new SecretBox(resolveSecretsKey(config.secretsKey, config.dataDir));
    const callbacks = new CallbackPolicy(config.callbackAllow);
    stopping.push(() => callbacks.close());
    const notifications = createNotificationsModule({
      ...deps,
      secrets,
      callbacks,
      channel:
        options.messageChannel ??
        (config.messageGatewayUrl ? httpGatewayChannel(config.messageGatewayUrl) : undeliveredChannel),
      contactOf: customers.services.contactOf,
      broadcast,
      log: app.log,
      billingAccountExists: customers.services.billingAccountExists,
      liveKeyIds: (ids: readonly string[]) => access.service.liveKeyIds(ids),
      maxSocketsPerKey: config.wsMaxSocketsPerKey,
      // Alerts go to the account's customer by SMS to its mobile number, else by e-mail, else nowhere.
      recipientOf: async (billingAccountId: string) => {
        const profile = await customers.services.chargingProfile(database.db, billingAccountId);
        if (profile === undefined) return null;
        for (const channel of ["sms", "email"] as const) {
          const contact = await customers.services.contactOf(profile.customerId, channel);
          if (contact.address !== null) return { customerId: profile.customerId, channel, address: contact.address };
        }
        return null;
      },
    });
    await notifications.live.start();
    stopping.push(() => notifications.live.stop());
    // A revoked key's tickets are void with the revocation, and its sockets close in every API process.
    access.service.onRevoke({
      voidHeld: (tx, keyId, now) => notifications.live.voidTickets(tx, keyId, now),
      closeOpen: (keyId) => notifications.live.closeKey(keyId),
    });
    const inventory = createInventoryModule({
      ...deps,
      secrets,
      operatorPlmns: config.operatorPlmns,
      quarantineDays: config.quarantineDays,
      reservationSeconds: config.reservationSeconds,
    });
    const simulated =
      options.provisioning === undefined && config.networkUrl === undefined ? new SimulatedNetwork() : null;
    const provisioning =
      options.provisioning ??
      (config.networkUrl !== undefined ? httpProvisioning(config.networkUrl) : (simulated as SimulatedNetwork));
    const subscriptions = createSubscriptionsModule({
      ...deps,
      provisioning,
      inventory: inventory.service,
      alerts: notifications.alerts,
    });
    // An account with lines that have not ended cannot close (the lines would keep charging a closed account).
    customers.services.guardAccountClose((db, id) => subscriptions.service.refuseAccountClose(db, id));
    const orders = createOrdersModule({
      ...deps,
      catalog: catalog.service,
      customers: customers.services,
      inventory: inventory.service,
      subscriptions: subscriptions.service,
      messages: notifications.messages,
      log: app.log,
      schedule: options.orderFulfilment ?? "background",
    });
    const queue =
      redis === null
        ? inProcessUsageQueue(config.ratingShards)
        : redisUsageQueue(redis, config.redisKeyPrefix, config.ratingShards);
    stopping.push(() => queue.close());
    const store = redis === null ? memoryChargingStore() : redisChargingStore(redis);
    stopping.push(() => store.close());
    const usage = await createUsageModule({
      ...deps,
      subscriptions: subscriptions.service,
      broadcast,
      queue,
      // The charging module answers whether a record is rated or billed; usage never reads its tables.
      rated: ratedView(),
      log: app.log,
    });
    stopping.push(() => usage.stop());
    const charging = await createChargingModule({
      ...deps,
      usage: usage.services.usage,
      subscriptions: subscriptions.service,
      catalog: catalog.service,
      customers: customers.services,
      store,
      leases: (workerId: string) =>
        redis === null
          ? soleShardLeases(config.ratingShards, workerId)
          : redisShardLeases(redis, config.ratingShards, workerId, config.leaseSeconds * 1000),
      newEpoch: async () => (redis === null ? 0 : redis.incrby("lease-token", 1_000_000)),
      broadcast,
      queue,
      alerts: notifications.alerts,
      log: app.log,
    });
    stopping.push(() => charging.stop());
    // Bills and notices go to the customer by e-mail, else by SMS, else nowhere (a bill then stays "validated").
    const contactFor = async (customerId: string) => {
      const contacts = await customers.services.contactsOf(customerId);
      if (contacts === undefined) return null;
      for (const channel of ["email", "sms"] as const) {
        const address = contacts[channel][0];
        if (address !== undefined) return { channel, address };
      }
      return null;
    };
    const billing = createBillingModule({
      ...deps,
      account: (db, id) => customers.services.accountForBilling(db, id),
      products: (db, id) => subscriptions.service.productsOfAccount(db, id),
      history: (db, ids) => subscriptions.service.historyOf(db, ids),
      oneTimeCharges: (db, id) => subscriptions.service.unbilledCharges(db, id),
      usage: charging.services.summaries,
      catalog: catalog.service,
      reverseCharged: isReverseCharged,
      markUsageBilled: (db, marks) => charging.services.summaries.markBilled(db, marks),
      markChargesBilled: (db, ids, at) => subscriptions.service.markChargesBilled(db, ids, at),
      ratedRows: (summaryId, page) => charging.services.summaries.ratedRows(summaryId, page),
      contactFor,
      queueMessages: (tx, messages) => notifications.messages.queueMany(tx, messages),
      accounts: (db, ids) => customers.services.accountsForBilling(db, ids),
      onCycleDay: (db, day) => customers.services.postpaidOnCycleDay(db, day),
      billedMarks: (db, ids) => charging.services.summaries.billedMarks(db, ids),
      billedChargeIds: (db, ids) => subscriptions.service.billedChargeIds(db, ids),
      lineEndings: (db, ids) => subscriptions.service.lineEndings(db, ids),
      accountsEndedBefore: (db, before, afterId, limit) =>
        subscriptions.service.accountsEndedBefore(db, before, afterId, limit),
      finalBillWaitDays: config.finalBillWaitDays,
      log: app.log,
      owner: `${hostname()}-${process.pid}`,
      batchSize: config.billRunBatch,
      leaseSeconds: config.billRunLeaseSeconds,
      billRunWork: options.billRunWork ?? "background",
      deliverMessage: (id) => notifications.messages.deliver(id),
    });
    notifications.messages.onSent((message) => billing.invoices.messageSent(message));
    // An account that owes money cannot close (the receivables ledger's balance).
    customers.services.guardAccountClose((db, id) => billing.invoices.refuseAccountClose(db, id));
    const payments = createPaymentsModule({
      ...deps,
      accounts: (db, ids) => customers.services.accountsForBilling(db, ids),
      // The SEPA creditor is the bill's issuing entity, as the catalog describes it.
      creditorOf: async (issuerId) => {
        const entity = (await catalog.service.snapshot()).issuingEntities.get(issuerId)?.content;
        if (entity?.sepaCreditorId === undefined || entity.bankAccount === undefined) return null;
        return {
          name: entity.name,
          iban: entity.bankAccount.iban,
          bic: entity.bankAccount.bic,
          creditorId: entity.sepaCreditorId,
        };
      },
      contactFor,
      queueMessages: (tx, messages) => notifications.messages.queueMany(tx, messages),
      prenotificationDays: config.sepaPrenotificationDays,
      statementMaxBytes: config.statementMaxBytes,
      invoices: billing.invoices,
      reversalFee: async (currency) => {
        const snapshot = await catalog.service.snapshot();
        const entry = snapshot.offerings.get(REVERSAL_FEE_OFFERING);
        const offering = entry?.content;
        if (entry === undefined || offering === undefined || offering.lifecycleStatus !== "active") return null;
        const price = offering.prices.find((candidate) => candidate.amounts[currency] !== undefined);
        if (price === undefined) return null;
        return {
          priceId: price.id,
          name: price.name,
          amount: price.amounts[currency] as string,
          currency,
          taxClass: price.taxClass,
          taxIncluded: priceTerms(price).taxIncluded,
          offeringVersion: entry.info.version,
        };
      },
      chargeFee: (tx, billingAccountId, paymentId, fee) =>
        subscriptions.service.recordSourcedCharges(tx, billingAccountId, { source: "reversal", id: paymentId }, [
          { ...fee, productId: null },
        ]),
    });
    // An account that closes with credit has it refunded (to its default method, or reported for a manual refund).
    customers.services.onAccountClosing((tx, id) => payments.service.refundOnClose(tx, id));
    customers.services.readBalancesWith(async (db, ids) => {
      const balances = await billing.invoices.balances(db, ids);
      return new Map([...balances].map(([id, balance]) => [id, { amount: balance.amount.toMoney() }]));
    });
    // A network key may name only registered CDR sources.
    access.service.checkSourcesWith((db, ids) => usage.services.sources.unknown(db, ids));

    const scheduler = new Scheduler({
      database,
      clock,
      log: app.log,
      owner: `${hostname()}-${process.pid}`,
      leaseSeconds: config.jobLeaseSeconds,
      // While an admin moves the test clock, that process runs the crossed days' jobs; the others' ticks wait.
      ...(testClock === null ? {} : { paused: () => clockMoving(database) }),
    });
    registerScheduledJobs(scheduler, {
      billRuns: billing.runs,
      inventory: inventory.service,
      live: notifications.live,
      charging: charging.services,
      directDebits: payments.debits,
      statements: payments.statements,
      log: app.log,
    });
    const mover =
      testClock === null
        ? null
        : new ClockMover({
            clock: testClock,
            database,
            scheduler,
            rating: {
              backlog: () => usage.services.usage.backlog(),
              ratersAlive: async () => ratingLoopsRunning() > 0 || (redis !== null && (await redisWorkersAlive(redis))),
            },
          });
    app.decorate("scheduler", scheduler);
    app.decorate("services", {
      access: access.service,
      customers: customers.services,
      catalog: catalog.service,
      hubs: notifications.hubs,
      messages: notifications.messages,
      alerts: notifications.alerts,
      live: notifications.live,
      inventory: inventory.service,
      subscriptions: subscriptions.service,
      orders: orders.service,
      usage: usage.services,
      charging: charging.services,
      billing: billing.service,
      invoices: billing.invoices,
      billRuns: billing.runs,
      payments: payments.service,
      directDebits: payments.debits,
      statements: payments.statements,
    });
    app.decorate("database", database);

    registerAuth(app, access.service.authenticate);
    await registerRateLimits(app, {
      perMinute: config.rateLimitPerMinute,
      networkPerMinute: config.rateLimitNetworkPerMinute,
    });
    // WebSocket upgrades for /api/v1/ws, with the largest frame a client may send.
    await app.register(websocket, { options: { maxPayload: WS_MAX_FRAME_BYTES } });
    await registerDocs(app, VERSION);
    registerHealth(app, database, redis);
    registerMetrics(app, database, redis);
    await app.register(access.routes);
    await app.register(customers.routes);
    await app.register(catalog.routes);
    await app.register(rating.routes);
    await app.register(notifications.routes);
    await app.register(inventory.routes);
    await app.register(subscriptions.routes);
    await app.register(orders.routes);
    await app.register(usage.routes);
    await app.register(charging.routes);
    await app.register(billing.routes);
    await app.register(payments.routes);
    await app.register(adminRoutes(scheduler, mover, testClock ?? { now: () => clock.now(), offsetMs: () => 0 }));
    if (simulated !== null) {
      const recordFailure = (actor: Actor, change: object) =>
        database.transaction((tx) =>
          audit.record(tx, actor, {
            action: "update",
            entityType: "networkSimulator",
            entityId: "failures",
            after: change,
          }),
        );
      await app.register(simulatorRoutes(simulated, recordFailure));
    }
    await app.ready();
  } catch (error) {
    await app.close();
    throw error;
  }
  return app;
}
