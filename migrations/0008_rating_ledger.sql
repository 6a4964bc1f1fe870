CREATE TABLE "allowance_buckets" (
	"id" uuid PRIMARY KEY NOT NULL,
	"billing_account_id" uuid NOT NULL,
	"product_id" uuid NOT NULL,
	"source_product_id" uuid NOT NULL,
	"offering_id" text NOT NULL,
	"allowance_id" text NOT NULL,
	"service" text NOT NULL,
	"destinations" jsonb,
	"roaming" jsonb,
	"granted" bigint NOT NULL,
	"period_start" timestamp with time zone NOT NULL,
	"period_end" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	CONSTRAINT "allowance_buckets_period_check" CHECK ("allowance_buckets"."period_end" > "allowance_buckets"."period_start"),
	CONSTRAINT "allowance_buckets_granted_check" CHECK ("allowance_buckets"."granted" > 0)
);
--> statement-breakpoint
CREATE TABLE "balance_operations" (
	"id" uuid PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"billing_account_id" uuid NOT NULL,
	"product_id" uuid,
	"bucket_id" uuid,
	"amount" numeric(24, 6),
	"units" bigint,
	"currency" text NOT NULL,
	"reason" text,
	"idempotency_key" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	CONSTRAINT "balance_operations_kind_check" CHECK ("balance_operations"."kind" in ('topup', 'adjustment')),
	CONSTRAINT "balance_operations_what_check" CHECK (("balance_operations"."amount" is null) <> ("balance_operations"."units" is null))
);
--> statement-breakpoint
CREATE TABLE "charging_thresholds" (
	"id" text PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"value" numeric(24, 6) NOT NULL,
	"currency" text,
	CONSTRAINT "charging_thresholds_kind_check" CHECK ("charging_thresholds"."kind" in ('bill_limit_percent', 'spend_amount', 'allowance_percent', 'low_balance')),
	CONSTRAINT "charging_thresholds_currency_check" CHECK (("charging_thresholds"."kind" in ('spend_amount', 'low_balance')) = ("charging_thresholds"."currency" is not null))
);
--> statement-breakpoint
CREATE TABLE "rated_usage" (
	"usage_id" uuid PRIMARY KEY NOT NULL,
	"billing_account_id" uuid NOT NULL,
	"product_id" uuid NOT NULL,
	"rated_at" timestamp with time zone NOT NULL,
	"started_at" timestamp with time zone NOT NULL,
	"tariff_id" text NOT NULL,
	"tariff_version" integer NOT NULL,
	"record_type" text NOT NULL,
	"destination" text,
	"roaming" text NOT NULL,
	"quantity" bigint NOT NULL,
	"allowance_units" bigint NOT NULL,
	"charged_units" bigint NOT NULL,
	"draws" jsonb NOT NULL,
	"amount" numeric(24, 6) NOT NULL,
	"currency" text NOT NULL,
	"prepaid" boolean NOT NULL,
	"spend_period" text NOT NULL,
	"billed_at" timestamp with time zone,
	CONSTRAINT "rated_usage_amount_check" CHECK ("rated_usage"."amount" >= 0)
);
--> statement-breakpoint
CREATE TABLE "threshold_crossings" (
	"key" text NOT NULL,
	"kind" text NOT NULL,
	"billing_account_id" uuid NOT NULL,
	"product_id" uuid,
	"usage_id" uuid NOT NULL,
	"value" text NOT NULL,
	"crossed_at" timestamp with time zone NOT NULL,
	CONSTRAINT "threshold_crossings_key_usage_id_pk" PRIMARY KEY("key","usage_id")
);
--> statement-breakpoint
ALTER TABLE "products" ADD COLUMN "barred" text;--> statement-breakpoint
CREATE UNIQUE INDEX "allowance_buckets_period_idx" ON "allowance_buckets" USING btree ("source_product_id","allowance_id","period_start");--> statement-breakpoint
CREATE INDEX "allowance_buckets_line_idx" ON "allowance_buckets" USING btree ("product_id","period_start");--> statement-breakpoint
CREATE UNIQUE INDEX "balance_operations_key_idx" ON "balance_operations" USING btree ("billing_account_id","idempotency_key");--> statement-breakpoint
CREATE INDEX "balance_operations_product_idx" ON "balance_operations" USING btree ("product_id");--> statement-breakpoint
CREATE INDEX "rated_usage_account_idx" ON "rated_usage" USING btree ("billing_account_id","spend_period");--> statement-breakpoint
CREATE INDEX "rated_usage_product_idx" ON "rated_usage" USING btree ("product_id","started_at");--> statement-breakpoint
CREATE UNIQUE INDEX "threshold_crossings_once_idx" ON "threshold_crossings" USING btree ("key") WHERE "threshold_crossings"."kind" not in ('low-balance', 'balance-exhausted', 'credit-limit');--> statement-breakpoint
CREATE INDEX "threshold_crossings_account_idx" ON "threshold_crossings" USING btree ("billing_account_id","crossed_at");--> statement-breakpoint
ALTER TABLE "products" ADD CONSTRAINT "products_barred_check" CHECK ("products"."barred" is null or "products"."barred" in ('credit'));--> statement-breakpoint
INSERT INTO "charging_thresholds" ("id", "kind", "value", "currency") VALUES
  ('bill-limit-50', 'bill_limit_percent', 50, NULL),
  ('bill-limit-80', 'bill_limit_percent', 80, NULL),
  ('bill-limit-100', 'bill_limit_percent', 100, NULL),
  ('allowance-80', 'allowance_percent', 80, NULL),
  ('allowance-100', 'allowance_percent', 100, NULL),
  ('low-balance-eur-2', 'low_balance', 2, 'EUR'),
  ('low-balance-gbp-2', 'low_balance', 2, 'GBP');
