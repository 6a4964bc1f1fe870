import { sql } from "drizzle-orm";
import { bigint, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";

/** One row per publish that changed something. */
export const catalogPublications = pgTable("catalog_publications", {
  id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
  publishedAt: timestamp("published_at", { withTimezone: true, mode: "date" }).notNull(),
  catalogId: text("catalog_id").notNull(),
  /** SHA-256 over every entity's content: the same files always give the same hash. */
  contentHash: text("content_hash").notNull(),
  created: integer("created").notNull(),
  changed: integer("changed").notNull(),
  retired: integer("retired").notNull(),
});

/**
 * Every version of every catalog entity. The current version has no valid_to; a changed entity closes its
 * current version and opens the next, so a subscription can keep pointing at the version it bought.
 */
export const catalogEntities = pgTable(
  "catalog_entities",
  {
    kind: text("kind").notNull(),
    id: text("id").notNull(),
    version: integer("version").notNull(),
    contentHash: text("content_hash").notNull(),
    content: jsonb("content").notNull(),
    validFrom: timestamp("valid_from", { withTimezone: true, mode: "date" }).notNull(),
    validTo: timestamp("valid_to", { withTimezone: true, mode: "date" }),
    publicationId: bigint("publication_id", { mode: "number" })
      .notNull()
      .references(() => catalogPublications.id),
  },
  (table) => [
    primaryKey({ columns: [table.kind, table.id, table.version] }),
    uniqueIndex("catalog_entities_current_idx").on(table.kind, table.id).where(sql`${table.validTo} is null`),
    index("catalog_entities_publication_idx").on(table.publicationId),
  ],
);

export type CatalogEntityRow = typeof catalogEntities.$inferSelect;
