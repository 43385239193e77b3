-- Entitlements by purchase (issue 13, docs/entitlements.md): every item a
-- member bought, by SKU, one row per purchase that carried it. Tiering
-- writes it in the transaction that counts the purchase (a purchase is
-- counted once: qualifying_purchases' key), so a redelivered purchase adds
-- nothing; a refund of the purchase marks its rows refunded, and a
-- refunded purchase grants nothing.
CREATE TABLE member_sku_purchases (
    tenant_id    text NOT NULL,
    member_id    text NOT NULL,
    sku          text NOT NULL,
    command_id   text NOT NULL,
    purchased_us bigint NOT NULL,
    refunded     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, member_id, sku, command_id)
);

-- Read contract: the SKUs each member holds now (a purchase not refunded)
-- and when the latest such purchase was made, in µs since the epoch.
CREATE VIEW read_member_skus AS
    SELECT tenant_id, member_id, sku, max(purchased_us) AS last_purchased_us
    FROM member_sku_purchases WHERE NOT refunded
    GROUP BY tenant_id, member_id, sku;
