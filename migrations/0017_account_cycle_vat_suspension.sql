ALTER TABLE "billing_accounts" ADD COLUMN "previous_bill_cycle_day" smallint;--> statement-breakpoint
ALTER TABLE "billing_accounts" ADD COLUMN "previous_time_zone" text;--> statement-breakpoint
ALTER TABLE "billing_accounts" ADD COLUMN "cycle_changed_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "billing_accounts" ADD COLUMN "vat_id" text;--> statement-breakpoint
ALTER TABLE "product_history" ADD COLUMN "suspension_reason" text;--> statement-breakpoint
ALTER TABLE "billing_accounts" ADD CONSTRAINT "billing_accounts_previous_cycle_day_check" CHECK ("billing_accounts"."previous_bill_cycle_day" is null or "billing_accounts"."previous_bill_cycle_day" between 1 and 31);--> statement-breakpoint
ALTER TABLE "billing_accounts" ADD CONSTRAINT "billing_accounts_previous_cycle_check" CHECK (("billing_accounts"."previous_bill_cycle_day" is null) = ("billing_accounts"."previous_time_zone" is null) and ("billing_accounts"."previous_bill_cycle_day" is null) = ("billing_accounts"."cycle_changed_at" is null));--> statement-breakpoint
ALTER TABLE "billing_accounts" ADD CONSTRAINT "billing_accounts_vat_id_check" CHECK ("billing_accounts"."vat_id" is null or "billing_accounts"."vat_id" ~ '^[A-Z]{2}[0-9A-Z+*]{2,14}$');--> statement-breakpoint
-- Backfill: before this migration a product could be suspended only on its customer's request (PATCH status, whose
-- rows say "suspended on request"), so every row that leaves a product suspended gets that reason: the suspensions
-- themselves and the rows of a suspended line's barring, which carry its suspension's reason on.
UPDATE "product_history" SET "suspension_reason" = 'customerRequest' WHERE "to_status" = 'suspended';--> statement-breakpoint
ALTER TABLE "product_history" ADD CONSTRAINT "product_history_suspension_reason_check" CHECK (("product_history"."to_status" = 'suspended') = ("product_history"."suspension_reason" is not null) and ("product_history"."suspension_reason" is null or "product_history"."suspension_reason" in ('customerRequest', 'dunning', 'nonRenewal', 'fraud')));