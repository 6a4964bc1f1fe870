-- Barring has reasons (DESIGN.md §10): a set of them per line instead of one; the network is unbarred only when
-- the set is empty. The one reason so far, credit, moves into the set (0021 drops the old column).
ALTER TABLE "products" ADD COLUMN "barring_reasons" text[] DEFAULT '{}'::text[] NOT NULL;--> statement-breakpoint
ALTER TABLE "products" ADD CONSTRAINT "products_barring_reasons_check" CHECK ("products"."barring_reasons" <@ array['credit', 'dunning', 'fraud', 'customerRequest']::text[]);--> statement-breakpoint
UPDATE "products" SET "barring_reasons" = array["barred"] WHERE "barred" IS NOT NULL;
