CREATE TABLE "catalog_entities" (
	"kind" text NOT NULL,
	"id" text NOT NULL,
	"version" integer NOT NULL,
	"content_hash" text NOT NULL,
	"content" jsonb NOT NULL,
	"valid_from" timestamp with time zone NOT NULL,
	"valid_to" timestamp with time zone,
	"publication_id" bigint NOT NULL,
	CONSTRAINT "catalog_entities_kind_id_version_pk" PRIMARY KEY("kind","id","version")
);
--> statement-breakpoint
CREATE TABLE "catalog_publications" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "catalog_publications_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"published_at" timestamp with time zone NOT NULL,
	"catalog_id" text NOT NULL,
	"content_hash" text NOT NULL,
	"created" integer NOT NULL,
	"changed" integer NOT NULL,
	"retired" integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE "catalog_entities" ADD CONSTRAINT "catalog_entities_publication_id_catalog_publications_id_fk" FOREIGN KEY ("publication_id") REFERENCES "public"."catalog_publications"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "catalog_entities_current_idx" ON "catalog_entities" USING btree ("kind","id") WHERE "catalog_entities"."valid_to" is null;--> statement-breakpoint
CREATE INDEX "catalog_entities_publication_idx" ON "catalog_entities" USING btree ("publication_id");