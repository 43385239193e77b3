-- Read contract (issue 12, referrals): every refund, so the campaign
-- service can see whether a referee's first purchase was refunded before
-- it rewards the referral. A plain projection of the append-only refunds
-- table; refunds_purchase_idx (tenant_id, purchase_command_id) serves it.
CREATE VIEW read_refunds AS
    SELECT refund_id, tenant_id, member_id, kind, purchase_command_id, command_id, created_at
    FROM refunds;
