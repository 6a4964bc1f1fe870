CREATE TABLE "usage_summaries" (
	"id" uuid PRIMARY KEY NOT NULL,
	"billing_account_id" uuid NOT NULL,
	"usage_period" text NOT NULL,
	"product_id" uuid NOT NULL,
	"service" text NOT NULL,
	"zone" text NOT NULL,
	"prepaid" boolean NOT NULL,
	"currency" text NOT NULL,
	"quantity" bigint NOT NULL,
	"charged_units" bigint NOT NULL,
	"amount" numeric(24, 6) NOT NULL,
	"last_seq" bigint NOT NULL,
	"billed_seq" bigint DEFAULT 0 NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "usage_summaries_billed_check" CHECK ("usage_summaries"."billed_seq" between 0 and "usage_summaries"."last_seq")
);
--> statement-breakpoint
ALTER TABLE "rated_usage" ADD COLUMN "summary_id" uuid;--> statement-breakpoint
ALTER TABLE "rated_usage" ADD COLUMN "seq" bigint;--> statement-breakpoint
CREATE UNIQUE INDEX "usage_summaries_key_idx" ON "usage_summaries" USING btree ("billing_account_id","usage_period","product_id","service","zone");--> statement-breakpoint
CREATE UNIQUE INDEX "rated_usage_summary_seq_idx" ON "rated_usage" USING btree ("summary_id","seq");--> statement-breakpoint
-- Backfill: the rated rows that exist get their summaries and their numbers in them (in acceptance order, as
-- the rating transaction numbers new rows). Rows marked billed one by one before this (none were: billing did not
-- exist) would set the summary's billed mark to the last of them.
INSERT INTO "usage_summaries" ("id", "billing_account_id", "usage_period", "product_id", "service", "zone", "prepaid",
  "currency", "quantity", "charged_units", "amount", "last_seq", "billed_seq", "updated_at")
SELECT gen_random_uuid(), "billing_account_id", "spend_period", "product_id", "record_type", coalesce("destination", ''),
  bool_or("prepaid"), min("currency"), sum("quantity"), sum("charged_units"), sum("amount"), count(*), 0, max("rated_at")
FROM "rated_usage"
GROUP BY "billing_account_id", "spend_period", "product_id", "record_type", coalesce("destination", '');--> statement-breakpoint
UPDATE "rated_usage" AS r SET "summary_id" = n."summary_id", "seq" = n."seq"
FROM (
  SELECT r2."usage_id", s."id" AS "summary_id",
    row_number() OVER (PARTITION BY s."id" ORDER BY r2."usage_id") AS "seq"
  FROM "rated_usage" r2
  JOIN "usage_summaries" s ON s."billing_account_id" = r2."billing_account_id" AND s."usage_period" = r2."spend_period"
    AND s."product_id" = r2."product_id" AND s."service" = r2."record_type" AND s."zone" = coalesce(r2."destination", '')
) AS n
WHERE r."usage_id" = n."usage_id";--> statement-breakpoint
UPDATE "usage_summaries" AS s SET "billed_seq" = b."billed_seq"
FROM (SELECT "summary_id", max("seq") AS "billed_seq" FROM "rated_usage" WHERE "billed_at" IS NOT NULL GROUP BY "summary_id") AS b
WHERE s."id" = b."summary_id";
