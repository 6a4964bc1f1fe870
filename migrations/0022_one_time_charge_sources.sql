-- One-time charges have a source (an order's fees, or a fee for a service: reconnection, reversal, termination…)
-- and its id; product and order are optional (a reversal fee belongs to the account). Each charge exists once per
-- source, product and price. The charges so far came from orders: their source id is the order's.
DROP INDEX "one_time_charges_once_idx";--> statement-breakpoint
ALTER TABLE "one_time_charges" ALTER COLUMN "product_id" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "one_time_charges" ALTER COLUMN "order_id" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "one_time_charges" ALTER COLUMN "offering_version" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "one_time_charges" ADD COLUMN "source" text DEFAULT 'order' NOT NULL;--> statement-breakpoint
ALTER TABLE "one_time_charges" ADD COLUMN "source_id" text;--> statement-breakpoint
UPDATE "one_time_charges" SET "source_id" = "order_id"::text;--> statement-breakpoint
ALTER TABLE "one_time_charges" ALTER COLUMN "source_id" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "one_time_charges" ADD CONSTRAINT "one_time_charges_source_key" UNIQUE NULLS NOT DISTINCT("source","source_id","product_id","price_id");--> statement-breakpoint
ALTER TABLE "one_time_charges" ADD CONSTRAINT "one_time_charges_source_check" CHECK ("one_time_charges"."source" in ('order', 'fee', 'adjustment', 'reconnection', 'reversal', 'termination'));
