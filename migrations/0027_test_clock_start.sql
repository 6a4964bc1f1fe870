ALTER TABLE "engine_clock" DROP CONSTRAINT "engine_clock_forward";--> statement-breakpoint
-- Business time never goes back: an update may only grow the offset (a start before the wall clock is negative).
CREATE FUNCTION "engine_clock_forward"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW."offset_ms" < OLD."offset_ms" THEN
    RAISE EXCEPTION 'the engine clock only moves forward' USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;--> statement-breakpoint
CREATE TRIGGER "engine_clock_forward" BEFORE UPDATE ON "engine_clock" FOR EACH ROW EXECUTE FUNCTION "engine_clock_forward"();
