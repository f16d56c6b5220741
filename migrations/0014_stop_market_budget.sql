-- 0014_stop_market_budget: a stop-market buy may give a quote budget (`quote_qty`) instead
-- of a quantity, as the engine allows and as a market buy already could. Until now the
-- orders table kept a budget only on market buys, so the market actor refused budget
-- stop-market buys (`unsupported_order_type`). The check that said so was declared without
-- a name in 0002; it is found by its definition and replaced by a named one.
SET LOCAL ROLE clob_owner;

DO $$
DECLARE
    c NAME;
BEGIN
    SELECT conname INTO STRICT c
      FROM pg_constraint
     WHERE conrelid = 'orders'::regclass AND contype = 'c'
       AND pg_get_constraintdef(oid) LIKE '%quote_qty_tick_lots IS NULL%kind = ''market''%';
    EXECUTE format('ALTER TABLE orders DROP CONSTRAINT %I', c);
END
$$;

ALTER TABLE orders ADD CONSTRAINT orders_quote_budget_check
    CHECK (quote_qty_tick_lots IS NULL OR (kind IN ('market', 'stop_market') AND side = 'buy'));
