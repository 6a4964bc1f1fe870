// Every batch, page, body, cache and string in the engine has a named bound here (STYLE.md, TigerBeetle).

/** Default and maximum page sizes of TMF list endpoints. */
export const PAGE_LIMIT_DEFAULT = 50;
export const PAGE_LIMIT_MAX = 1000;
/** Largest offset a list accepts; deeper paging should filter instead of scanning. */
export const PAGE_OFFSET_MAX = 1_000_000;

/** Default request body limit; configurable with BSS_BODY_LIMIT_BYTES. */
export const BODY_LIMIT_BYTES_DEFAULT = 1_048_576;

/** Amounts arriving as JSON numbers keep at most this many significant digits (API.md). */
export const MONEY_MAX_SIGNIFICANT_DIGITS = 15;
/** Largest absolute amount the engine accepts anywhere (a trillion in any currency). */
export const MONEY_MAX_ABS = "1000000000000";
/**
 * The largest amount the charging store holds exactly (integer micro-units up to 2^53 − 1, exact in Lua's
 * doubles): top-ups, adjustments, balances, and the credit and bill limits it compares spend with.
 */
export const CHARGING_AMOUNT_MAX = "9007199254.740991";
/** Decimal places stored for amounts: micro-units (DESIGN.md §2). */
export const MONEY_SCALE = 6;

/** API key lookups are cached this long, so a revoked key stops working everywhere within it. */
export const API_KEY_CACHE_TTL_MS = 5_000;
export const API_KEY_CACHE_MAX_ENTRIES = 10_000;

/** String bounds of request fields. */
export const NAME_MAX_LENGTH = 200;
export const TEXT_MAX_LENGTH = 2_000;
export const SHORT_TEXT_MAX_LENGTH = 100;
/** Array bounds of request fields (contact media, identifications, related parties). */
export const LIST_FIELD_MAX_ITEMS = 20;

/** Filter values per query parameter (comma-separated OR). */
export const FILTER_VALUES_MAX = 50;
/** Longest value of one filter query parameter. */
export const FILTER_TEXT_MAX = 2_000;

/** Longest API key a client may present; anything longer is rejected before hashing. */
export const API_KEY_MAX_LENGTH = 256;
export const API_KEY_MIN_LENGTH = 32;

/** Database and Redis timeouts. */
export const DB_CONNECT_TIMEOUT_SECONDS = 10;
export const DB_IDLE_TIMEOUT_SECONDS = 60;
export const REDIS_CONNECT_TIMEOUT_MS = 5_000;
export const REDIS_COMMAND_TIMEOUT_MS = 2_000;
export const REDIS_MAX_RETRIES_PER_REQUEST = 2;
export const REDIS_RECONNECT_MAX_DELAY_MS = 2_000;
/** Readiness gives each dependency this long to answer. */
export const READY_CHECK_TIMEOUT_MS = 2_000;

/** Hub delivery: attempts before a callback is parked, backoff, timeouts and batch sizes. */
export const HUB_MAX_ATTEMPTS = 8;
export const HUB_BACKOFF_BASE_SECONDS = 2;
export const HUB_BACKOFF_MAX_SECONDS = 3_600;
export const HUB_DELIVERY_TIMEOUT_MS = 5_000;
export const HUB_SEND_BATCH_FOR_LEASE = 50;
/** A claimed batch is sent one delivery after another, so its lease outlasts a batch of timeouts. */
export const HUB_SENDING_LEASE_SECONDS = (HUB_SEND_BATCH_FOR_LEASE * HUB_DELIVERY_TIMEOUT_MS) / 1000 + 30;
export const HUB_DISPATCH_BATCH = 500;
export const HUB_SEND_BATCH = HUB_SEND_BATCH_FOR_LEASE;
/** Hub subscriptions per API, so a client cannot make every event fan out without bound. */
export const HUB_SUBSCRIPTIONS_MAX = 100;
export const HUB_LOOP_INTERVAL_MS = 1_000;

/** Inventory: lines per SIM import, numbers per range, rows per insert statement. */
export const SIM_IMPORT_MAX_LINES = 10_000;
export const NUMBER_RANGE_MAX = 100_000;
export const INSERT_CHUNK_ROWS = 2_000;
/** Per-line errors returned for a refused import; the rest are counted. */
export const IMPORT_ERRORS_SHOWN = 200;
/** Imports at least this large refresh the planner statistics of the inventory table. */
export const ANALYZE_AFTER_ROWS = 1_000;
/** How often the API process takes up orders interrupted by a crash. */
export const ORDER_RECOVERY_INTERVAL_MS = 10_000;

/** Message gateway: how long one call may take and how many times a failing send is tried. */
export const MESSAGE_GATEWAY_TIMEOUT_MS = 3_000;
export const MESSAGE_GATEWAY_ATTEMPTS = 3;
export const MESSAGE_BODY_MAX_LENGTH = 2_000;

/** Provisioning: time per network call and tries before a step fails (and the order compensates). */
export const PROVISIONING_TIMEOUT_MS = 5_000;
export const PROVISIONING_ATTEMPTS = 3;
/** Items per product order, and how long an order may stay unfinished before recovery picks it up. */
export const ORDER_ITEMS_MAX = 20;
export const ORDER_RECOVERY_AFTER_SECONDS = 30;

/** CDR ingestion: records per request, bytes per request, and the bounds every record is checked against. */
export const CDR_BATCH_MAX = 1_000;
export const CDR_BODY_LIMIT_BYTES = 4 * 1_048_576;
/** A record may be dated this far ahead of the engine's clock (clock skew between elements). */
export const CDR_FUTURE_SKEW_SECONDS = 900;
/** Records older than this are refused: their bill period is long closed. */
export const CDR_MAX_AGE_DAYS = 90;
/** One voice record covers at most a day; longer calls arrive as partial records. */
export const CDR_MAX_DURATION_SECONDS = 86_400;
export const CDR_MAX_VOLUME_BYTES = 1_099_511_627_776;
export const CDR_MAX_MESSAGES = 100;
/** Records re-guided by one bulk request. */
export const SUSPENSE_REGUIDE_MAX = 10_000;
/** Stream shards of the rating queue (DESIGN.md §2): at least the most workers that will ever run. */
export const RATING_SHARDS_DEFAULT = 16;
/** How often an API process reloads its whole guiding index, beside the line events that keep it current. */
export const LINE_INDEX_RELOAD_MS = 300_000;
/** CDR source settings are cached this long per process. */
export const CDR_SOURCE_CACHE_TTL_MS = 5_000;
/**
 * A shard lease lasts this long unless its worker renews it (every pass); a dead worker's shards free up after it.
 * BSS_LEASE_SECONDS overrides it (fault tests shorten it so crash recovery is not mostly waiting).
 */
export const LEASE_TTL_SECONDS = 15;
/** The sweeper re-enqueues guided records unrated this long after they were accepted, looking this far back. */
export const SWEEP_AFTER_SECONDS = 60;
export const SWEEP_WINDOW_SECONDS = 3_600;
export const SWEEP_BATCH = 1_000;
export const SWEEP_INTERVAL_MS = 30_000;
/** Shards a worker reads and rates at once in a pass. */
export const RATING_SHARD_CONCURRENCY = 4;
/** Accounts of a batch a worker rates at once (each on its own keys; its events in order). */
export const RATING_ACCOUNT_CONCURRENCY = 64;
/** Ended allowance buckets the renewal job reads per page while it looks for holders still due. */
export const RENEW_CANDIDATE_PAGE = 1_000;
/** How long a claimed scheduled-job slot is its runner's by default; renewed while it works, a dead runner's lapses. */
export const JOB_LEASE_SECONDS = 120;
/** Reconciliation: dedupe marks rebuilt for records rated this recently (replays come within minutes). */
export const DEDUPE_REBUILD_DAYS = 2;
/** Accounts reconciled per page. */
export const RECONCILE_PAGE = 200;
/** The reconcile job checks a difference again after this long, and rebuilds it only if it is still the same. */
export const RECONCILE_SETTLE_MS = 5_000;
/** The threshold table is read at most this often per process (it is data that changes rarely). */
export const THRESHOLD_CACHE_TTL_MS = 5_000;

/** Alerts: how long after being raised an unpublished alert is published by the relay, and rows per relay pass. */
export const ALERT_RELAY_GRACE_MS = 2_000;
export const ALERT_RELAY_BATCH = 100;
export const ALERT_LOOP_INTERVAL_MS = 1_000;
/** Self-care: the latest alerts and rated events it shows. */
export const SELF_CARE_RECENT = 20;

/** WebSocket: ticket lifetime, largest client frame, a connection's send queue, replay page, heartbeat. */
export const WS_TICKET_TTL_MS = 30_000;
export const WS_MAX_FRAME_BYTES = 4_096;
export const WS_SEND_QUEUE_BYTES = 1_048_576;
export const WS_REPLAY_PAGE = 100;
export const WS_HEARTBEAT_MS = 30_000;
/** A stored message still pending this long after it was stored is sent again by the relay (idempotent at the gateway). */
export const MESSAGE_PENDING_RESEND_MS = 60_000;
export const MESSAGE_PENDING_BATCH = 50;
