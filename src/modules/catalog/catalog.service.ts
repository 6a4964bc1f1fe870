import { createHash } from "node:crypto";
import { sql } from "drizzle-orm";
import type { Actor, AuditLog } from "../../platform/audit.js";
import type { Broadcast } from "../../platform/broadcast.js";
import type { Clock } from "../../platform/clock.js";
import type { Database, Db } from "../../platform/database.js";
import type { EventLog } from "../../platform/events.js";
import { canonicalJson } from "../../shared/objects.js";
import * as repository from "./catalog.repository.js";
import {
  catalogResource,
  categoryResource,
  offeringResource,
  priceResources,
  promotionResources,
  specificationResource,
  type VersionInfo,
} from "./catalog.resources.js";
import type {
  CatalogRoot,
  DunningPolicy,
  IssuingEntity,
  Offering,
  Promotion,
  Specification,
  TaxClass,
} from "./catalog.schemas.js";
import type { CatalogEntityRow } from "./catalog.tables.js";
import { type CatalogDefinition, loadCatalog } from "./catalog-load.js";
import { issuingEntityFor, nextRateChange } from "./catalog-terms.js";
import type { TariffDefinition } from "./tariff.schemas.js";
import { type CompiledTariff, compileTariff } from "./tariff-compile.js";

export const ENTITY_KINDS = [
  "catalog",
  "category",
  "taxClass",
  "specification",
  "offering",
  "promotion",
  "tariff",
  "issuingEntity",
  "dunningPolicy",
] as const;
export type EntityKind = (typeof ENTITY_KINDS)[number];

const PUBLISH_LOCK_KEY = 7_201_442_119;
const CHANNEL = "catalog:published";

export interface CatalogDeps {
  database: Database;
  audit: AuditLog;
  events: EventLog;
  clock: Clock;
  broadcast: Broadcast;
  /** How often a process re-checks the latest publication in case a broadcast was missed; 0 disables. */
  refreshSeconds: number;
}

export interface PublishResult {
  publicationId: number | null;
  created: number;
  changed: number;
  retired: number;
}

export interface Versioned<T> {
  content: T;
  info: VersionInfo;
}

/** How a plan's usage charges are taxed: the tax terms of the tariff that prices its usage in one currency. */
export interface UsageTaxTerms {
  tariffId: string;
  taxClass: string;
  taxIncluded: boolean;
}

/**
 * The current catalog, built once per publication and shared by reads, rating and billing until the next one (or
 * until a tax rate's validFrom day arrives: the TMF620 prices show the rates in force).
 */
export interface CatalogSnapshot {
  publicationId: number;
  /** When the presentation's tax rates go stale (the first day a published rate starts), or null. */
  staleAtMs: number | null;
  root: Versioned<CatalogRoot> | null;
  offerings: Map<string, Versioned<Offering>>;
  tariffs: Map<string, { compiled: CompiledTariff; info: VersionInfo }>;
  taxClasses: Map<string, Versioned<TaxClass>>;
  promotions: Map<string, Versioned<Promotion>>;
  issuingEntities: Map<string, Versioned<IssuingEntity>>;
  dunningPolicies: Map<string, Versioned<DunningPolicy>>;
  resources: {
    productOffering: object[];
    productOfferingPrice: object[];
    productSpecification: object[];
    category: object[];
    catalog: object[];
  };
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function entitiesOf(definition: CatalogDefinition): Array<{ kind: EntityKind; id: string; content: unknown }> {
  return [
    { kind: "catalog" as const, id: definition.root.id, content: definition.root },
    ...definition.root.categories.map((category) => ({
      kind: "category" as const,
      id: category.id,
      content: category,
    })),
    ...definition.taxClasses.map((taxClass) => ({ kind: "taxClass" as const, id: taxClass.id, content: taxClass })),
    ...definition.specifications.map((spec) => ({ kind: "specification" as const, id: spec.id, content: spec })),
    ...definition.offerings.map((offering) => ({ kind: "offering" as const, id: offering.id, content: offering })),
    ...definition.promotions.map((promotion) => ({ kind: "promotion" as const, id: promotion.id, content: promotion })),
    ...definition.tariffs.map((tariff) => ({ kind: "tariff" as const, id: tariff.id, content: tariff })),
    ...definition.issuingEntities.map((entity) => ({ kind: "issuingEntity" as const, id: entity.id, content: entity })),
    ...definition.dunningPolicies.map((policy) => ({ kind: "dunningPolicy" as const, id: policy.id, content: policy })),
  ];
}

function infoOf(row: CatalogEntityRow): VersionInfo {
  return { version: row.version, validFrom: row.validFrom, validTo: row.validTo };
}

/** The UTC calendar date of an instant, "YYYY-MM-DD": the day whose tax rates the TMF620 presentation shows. */
function utcDate(instant: Date): string {
  return instant.toISOString().slice(0, 10);
}

/**
 * The catalog: validate files, publish them as versioned entities, and serve the current version from memory.
 * Publishing takes an advisory lock, changes only what changed, and tells every process to reload.
 */
export class CatalogService {
  #snapshot: CatalogSnapshot | null = null;
  #loading: Promise<CatalogSnapshot> | null = null;
  #timer: NodeJS.Timeout | null = null;

  constructor(private readonly deps: CatalogDeps) {}

  /** Subscribes to publications from other processes and starts the safety re-check. */
  async start(): Promise<void> {
    await this.deps.broadcast.subscribe(CHANNEL, () => {
      this.#snapshot = null;
    });
    if (this.deps.refreshSeconds > 0) {
      this.#timer = setInterval(() => {
        this.refreshIfStale().catch(() => {
          // The next tick tries again; reads keep the snapshot they have.
        });
      }, this.deps.refreshSeconds * 1000);
      this.#timer.unref();
    }
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
  }

  validate(directory: string): CatalogDefinition {
    return loadCatalog(directory);
  }

  async publish(actor: Actor, directory: string): Promise<PublishResult> {
    const definition = loadCatalog(directory);
    const entities = entitiesOf(definition).map((entity) => ({
      ...entity,
      hash: sha256(canonicalJson(entity.content)),
    }));
    const contentHash = sha256(
      entities
        .map((entity) => `${entity.kind}:${entity.id}:${entity.hash}`)
        .sort()
        .join("\n"),
    );
    const result = await this.deps.database.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${PUBLISH_LOCK_KEY})`);
      const current = new Map((await repository.currentEntities(tx)).map((row) => [`${row.kind}:${row.id}`, row]));
      const now = this.deps.clock.now();
      const inserts: Array<{ kind: string; id: string; version: number; hash: string; content: unknown }> = [];
      let created = 0;
      let changed = 0;
      for (const entity of entities) {
        const existing = current.get(`${entity.kind}:${entity.id}`);
        current.delete(`${entity.kind}:${entity.id}`);
        if (existing?.contentHash === entity.hash) continue;
        if (existing) changed += 1;
        else created += 1;
        inserts.push({ ...entity, version: (existing?.version ?? 0) + 1 });
      }
      const retired = [...current.values()];
      if (inserts.length === 0 && retired.length === 0) {
        return { publicationId: null, created: 0, changed: 0, retired: 0 };
      }
      const publication = await repository.insertPublication(tx, {
        publishedAt: now,
        catalogId: definition.root.id,
        contentHash,
        created,
        changed,
        retired: retired.length,
      });
      for (const entity of [...inserts.filter((entity) => entity.version > 1), ...retired]) {
        await repository.closeVersion(tx, entity.kind, entity.id, now);
      }
      await repository.insertVersions(
        tx,
        inserts.map((entity) => ({
          kind: entity.kind,
          id: entity.id,
          version: entity.version,
          contentHash: entity.hash,
          content: entity.content,
          validFrom: now,
          validTo: null,
          publicationId: publication.id,
        })),
      );
      await this.recordEvents(tx, definition, inserts, retired, now);
      const summary = { publicationId: publication.id, created, changed, retired: retired.length };
      await this.deps.audit.record(tx, actor, {
        action: "publish",
        entityType: "catalogPublication",
        entityId: String(publication.id),
        after: { ...summary, catalogId: definition.root.id, contentHash },
      });
      return summary;
    });
    if (result.publicationId !== null) {
      this.#snapshot = null;
      await this.deps.broadcast.publish(CHANNEL, String(result.publicationId));
    }
    return result;
  }

  /** TMF620 events for what a publication changed: offerings, specifications, categories, catalogs, promotions. */
  private async recordEvents(
    tx: Db,
    definition: CatalogDefinition,
    inserts: Array<{ kind: string; id: string; version: number; content: unknown }>,
    retired: CatalogEntityRow[],
    now: Date,
  ): Promise<void> {
    const currencies = definition.root.currencies;
    type Presented = { resource: string; id: string; body: object };
    const present = (kind: string, id: string, content: unknown, info: VersionInfo): Presented[] => {
      switch (kind) {
        case "offering":
          return [
            {
              resource: "productOffering",
              id,
              body: offeringResource(content as Offering, info, currencies, definition.promotions),
            },
          ];
        case "specification":
          return [
            { resource: "productSpecification", id, body: specificationResource(content as Specification, info) },
          ];
        case "category":
          return [
            {
              resource: "category",
              id,
              body: categoryResource(content as CatalogRoot["categories"][number], info, definition.offerings),
            },
          ];
        case "catalog":
          return [{ resource: "catalog", id, body: catalogResource(content as CatalogRoot, info) }];
        case "promotion":
          // An amount off is one TMF price per currency, each with its own id.
          return promotionResources(content as Promotion, info, currencies).map((body) => ({
            resource: "productOfferingPrice",
            id: body.id,
            body,
          }));
        default:
          // Tariffs, tax classes and issuing entities have no TMF620 resource of their own.
          return [];
      }
    };
    for (const entity of inserts) {
      const info = { version: entity.version, validFrom: now, validTo: null };
      for (const presented of present(entity.kind, entity.id, entity.content, info)) {
        await this.deps.events.record(tx, {
          api: "productCatalogManagement",
          resource: presented.resource,
          change: entity.version === 1 ? "Create" : "AttributeValueChange",
          resourceId: presented.id,
          body: presented.body,
        });
      }
    }
    for (const row of retired) {
      const info = { version: row.version, validFrom: row.validFrom, validTo: now };
      for (const presented of present(row.kind, row.id, row.content, info)) {
        await this.deps.events.record(tx, {
          api: "productCatalogManagement",
          resource: presented.resource,
          change: "Delete",
          resourceId: presented.id,
          body: presented.body,
        });
      }
    }
  }

  /** Publishes the folder when nothing was ever published (an engine's first start). */
  async publishIfEmpty(actor: Actor, directory: string): Promise<PublishResult | null> {
    if (await repository.latestPublication(this.deps.database.db)) return null;
    return this.publish(actor, directory);
  }

  async snapshot(): Promise<CatalogSnapshot> {
    const staleAtMs = this.#snapshot?.staleAtMs ?? null;
    if (staleAtMs !== null && this.deps.clock.now().getTime() >= staleAtMs) this.#snapshot = null;
    if (this.#snapshot !== null) return this.#snapshot;
    this.#loading ??= this.load(this.deps.database.db).finally(() => {
      this.#loading = null;
    });
    this.#snapshot = await this.#loading;
    return this.#snapshot;
  }

  private async refreshIfStale(): Promise<void> {
    const latest = await repository.latestPublication(this.deps.database.db);
    if (this.#snapshot !== null && (latest?.id ?? 0) !== this.#snapshot.publicationId) this.#snapshot = null;
  }

  /** One version of one entity, current or not (a subscription's price, a replayed CDR's tariff). */
  async entityVersion(kind: EntityKind, id: string, version: number): Promise<CatalogEntityRow | undefined> {
    return repository.entityVersion(this.deps.database.db, kind, id, version);
  }

  /**
   * A TMF620 resource as it was at one version of its entity. Prices are versioned with their offering, so
   * a price id names the offering version it belongs to.
   */
  async resourceVersion(
    type: keyof CatalogSnapshot["resources"],
    id: string,
    version: number,
  ): Promise<object | undefined> {
    const snapshot = await this.snapshot();
    const currencies = snapshot.root?.content.currencies ?? [];
    if (type === "productOfferingPrice") {
      const offeringId = (
        snapshot.resources.productOfferingPrice as Array<{ id: string; productOffering?: { id: string } }>
      ).find((price) => price.id === id)?.productOffering?.id;
      const row = offeringId === undefined ? undefined : await this.entityVersion("offering", offeringId, version);
      if (row === undefined) return undefined;
      const taxClasses = new Map([...snapshot.taxClasses].map(([taxId, entry]) => [taxId, entry.content]));
      return priceResources(
        row.content as Offering,
        infoOf(row),
        currencies,
        taxClasses,
        utcDate(this.deps.clock.now()),
      ).find((price) => price.id === id);
    }
    const row = await this.entityVersion(RESOURCE_KINDS[type], id, version);
    if (row === undefined) return undefined;
    const info = infoOf(row);
    switch (type) {
      case "productOffering":
        return offeringResource(
          row.content as Offering,
          info,
          currencies,
          [...snapshot.promotions.values()].map((entry) => entry.content),
        );
      case "productSpecification":
        return specificationResource(row.content as Specification, info);
      case "category":
        return categoryResource(
          row.content as CatalogRoot["categories"][number],
          info,
          [...snapshot.offerings.values()].map((o) => o.content),
        );
      case "catalog":
        return catalogResource(row.content as CatalogRoot, info);
    }
  }

  // --- The current terms, for billing. Each reads the snapshot: no query per call. ---

  /** Every tax class, current versions, by id (what invoice composition takes as its tax terms). */
  async taxClasses(): Promise<ReadonlyMap<string, TaxClass>> {
    const entries = (await this.snapshot()).taxClasses;
    return new Map([...entries].map(([id, entry]) => [id, entry.content]));
  }

  /** The current version of a tax class. */
  async taxClass(id: string): Promise<TaxClass | undefined> {
    return (await this.snapshot()).taxClasses.get(id)?.content;
  }

  /** The current version of a tariff, as written in the catalog (defaults written out). */
  async tariff(id: string): Promise<TariffDefinition | undefined> {
    return (await this.snapshot()).tariffs.get(id)?.compiled.definition;
  }

  /** The current version of a promotion. */
  async promotion(id: string): Promise<Promotion | undefined> {
    return (await this.snapshot()).promotions.get(id)?.content;
  }

  /** The current version of an issuing entity, by its id (as an issued document names it). */
  async issuingEntity(id: string): Promise<IssuingEntity | undefined> {
    return (await this.snapshot()).issuingEntities.get(id)?.content;
  }

  /**
   * The dunning policy for an account: of its jurisdiction's country, its currency, and its segment (the customer's
   * party) or, failing that, the policy for both segments; undefined when the catalog has none (no dunning).
   */
  async dunningPolicyFor(
    jurisdiction: string,
    segment: "Individual" | "Organization",
    currency: string,
  ): Promise<Versioned<DunningPolicy> | undefined> {
    const country = jurisdiction.slice(0, 2);
    const policies = [...(await this.snapshot()).dunningPolicies.values()].filter(
      (entry) => entry.content.jurisdiction === country && entry.content.currency === currency,
    );
    return (
      policies.find((entry) => entry.content.segment === segment) ??
      policies.find((entry) => entry.content.segment === undefined)
    );
  }

  /**
   * The issuing entity that bills a country (ISO 3166-1 alpha-2; a jurisdiction such as "ES-CN" is taken as its
   * country), or undefined when the catalog names none for it.
   */
  async issuingEntityFor(country: string): Promise<IssuingEntity | undefined> {
    return issuingEntityFor(
      [...(await this.snapshot()).issuingEntities.values()].map((entry) => entry.content),
      country,
    );
  }

  /**
   * How the usage of a line that bought `offeringId` at `offeringVersion` is taxed in `currency`: the tax terms of
   * the tariff that version names for the currency, as the tariff is now (rating prices with the current tariff
   * too). Undefined when the version, its tariff for the currency, or that tariff's tax class is missing (a tariff
   * published before tariffs named one): the caller reports it rather than taxing at nothing.
   */
  async usageTax(offeringId: string, offeringVersion: number, currency: string): Promise<UsageTaxTerms | undefined> {
    const snapshot = await this.snapshot();
    const current = snapshot.offerings.get(offeringId);
    const offering =
      current?.info.version === offeringVersion
        ? current.content
        : ((await this.entityVersion("offering", offeringId, offeringVersion))?.content as Offering | undefined);
    const tariffId = offering?.tariffs?.[currency];
    const tariff = tariffId === undefined ? undefined : snapshot.tariffs.get(tariffId)?.compiled;
    if (tariffId === undefined || tariff?.taxClass == null) return undefined;
    return { tariffId, taxClass: tariff.taxClass, taxIncluded: tariff.taxIncluded };
  }

  private async load(db: Db): Promise<CatalogSnapshot> {
    const latest = await repository.latestPublication(db);
    const rows = await repository.currentEntities(db);
    const byKind = <T>(kind: EntityKind) =>
      new Map(
        rows
          .filter((row) => row.kind === kind)
          .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
          .map((row) => [row.id, { content: row.content as T, info: infoOf(row) }]),
      );
    const roots = [...byKind<CatalogRoot>("catalog").values()];
    const root = roots[0] ?? null;
    const currencies = root?.content.currencies ?? [];
    const offerings = byKind<Offering>("offering");
    const promotions = byKind<Promotion>("promotion");
    const taxClassEntries = byKind<TaxClass>("taxClass");
    const taxClasses = new Map([...taxClassEntries].map(([id, entry]) => [id, entry.content]));
    // Prices show the tax rates in force today; the snapshot is rebuilt on the day the next rate starts.
    const today = utcDate(this.deps.clock.now());
    const nextChange = nextRateChange(taxClasses.values(), today);
    const tariffs = new Map(
      [...byKind<TariffDefinition>("tariff")].map(([id, entry]) => [
        id,
        { compiled: compileTariff(entry.content), info: entry.info },
      ]),
    );
    const offeringList = [...offerings.values()];
    const promotionList = [...promotions.values()];
    const categories = byKind<CatalogRoot["categories"][number]>("category");
    return {
      publicationId: latest?.id ?? 0,
      staleAtMs: nextChange === null ? null : Date.parse(`${nextChange}T00:00:00Z`),
      root,
      offerings,
      tariffs,
      taxClasses: taxClassEntries,
      promotions,
      issuingEntities: byKind<IssuingEntity>("issuingEntity"),
      dunningPolicies: byKind<DunningPolicy>("dunningPolicy"),
      resources: {
        productOffering: offeringList.map((entry) =>
          offeringResource(
            entry.content,
            entry.info,
            currencies,
            promotionList.map((promotion) => promotion.content),
          ),
        ),
        productOfferingPrice: [
          ...offeringList.flatMap((entry) => priceResources(entry.content, entry.info, currencies, taxClasses, today)),
          ...promotionList.flatMap((entry) => promotionResources(entry.content, entry.info, currencies)),
        ],
        productSpecification: [...byKind<Specification>("specification").values()].map((entry) =>
          specificationResource(entry.content, entry.info),
        ),
        category: [...categories.values()].map((entry) =>
          categoryResource(
            entry.content,
            entry.info,
            offeringList.map((offering) => offering.content),
          ),
        ),
        catalog: roots.map((entry) => catalogResource(entry.content, entry.info)),
      },
    };
  }
}

/** The TMF620 resource types and the catalog entity kind each is stored as. */
export const RESOURCE_KINDS = {
  productOffering: "offering",
  productOfferingPrice: "offering",
  productSpecification: "specification",
  category: "category",
  catalog: "catalog",
} as const satisfies Record<keyof CatalogSnapshot["resources"], EntityKind>;
