ALTER TABLE "rated_usage" ALTER COLUMN "summary_id" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "rated_usage" ALTER COLUMN "seq" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "rated_usage" DROP COLUMN "billed_at";