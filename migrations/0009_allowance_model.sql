ALTER TABLE "balance_operations" DROP CONSTRAINT "balance_operations_kind_check";--> statement-breakpoint
DROP INDEX "allowance_buckets_period_idx";--> statement-breakpoint
ALTER TABLE "allowance_buckets" ADD COLUMN "shared" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "allowance_buckets" ADD COLUMN "rolled_from" uuid;--> statement-breakpoint
CREATE UNIQUE INDEX "allowance_buckets_shared_idx" ON "allowance_buckets" USING btree ("product_id","offering_id","allowance_id","period_start") WHERE "allowance_buckets"."rolled_from" is null and "allowance_buckets"."shared";--> statement-breakpoint
CREATE UNIQUE INDEX "allowance_buckets_rollover_idx" ON "allowance_buckets" USING btree ("rolled_from") WHERE "allowance_buckets"."rolled_from" is not null;--> statement-breakpoint
CREATE INDEX "allowance_buckets_end_idx" ON "allowance_buckets" USING btree ("period_end");--> statement-breakpoint
CREATE UNIQUE INDEX "allowance_buckets_period_idx" ON "allowance_buckets" USING btree ("product_id","source_product_id","offering_id","allowance_id","period_start") WHERE "allowance_buckets"."rolled_from" is null and not "allowance_buckets"."shared";--> statement-breakpoint
ALTER TABLE "balance_operations" ADD CONSTRAINT "balance_operations_kind_check" CHECK ("balance_operations"."kind" in ('topup', 'adjustment', 'allowance', 'rollover'));