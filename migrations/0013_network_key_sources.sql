ALTER TABLE "api_keys" ADD COLUMN "cdr_sources" text[];--> statement-breakpoint
-- Network keys issued before keys named their sources keep working for every source; an operator narrows them by issuing bound keys.
UPDATE "api_keys" SET "cdr_sources" = '{*}' WHERE "role" = 'network';--> statement-breakpoint
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_network_sources_check" CHECK (("api_keys"."role" = 'network') = ("api_keys"."cdr_sources" is not null));
