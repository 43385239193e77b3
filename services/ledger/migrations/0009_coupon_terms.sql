-- Coupon templates (issue 12): a coupon may need a minimum spend, and a
-- free_item coupon takes one unit of an item off a purchase that holds it.
ALTER TABLE coupons DROP CONSTRAINT IF EXISTS coupons_kind_check;
ALTER TABLE coupons ADD CONSTRAINT coupons_kind_check
    CHECK (kind IN ('value', 'percent', 'free_item'));
ALTER TABLE coupons ADD COLUMN min_spend bigint NOT NULL DEFAULT 0 CHECK (min_spend >= 0);
ALTER TABLE coupons ADD COLUMN free_sku text NOT NULL DEFAULT '';
