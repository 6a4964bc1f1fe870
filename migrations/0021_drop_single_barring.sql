ALTER TABLE "products" DROP CONSTRAINT "products_barred_check";--> statement-breakpoint
ALTER TABLE "products" DROP COLUMN "barred";