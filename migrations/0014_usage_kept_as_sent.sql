ALTER TABLE "usage_records" ALTER COLUMN "record_type" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_records" ALTER COLUMN "direction" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_records" ALTER COLUMN "started_at" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "usage_records" ADD COLUMN "body" jsonb;--> statement-breakpoint
ALTER TABLE "usage_records" ADD CONSTRAINT "usage_records_readable_check" CHECK (("usage_records"."body" is null) = ("usage_records"."record_type" is not null and "usage_records"."direction" is not null and "usage_records"."started_at" is not null));