-- A message id is a hash of (tenant_id, request_id, channel), which is
-- unique already (deliveries_tenant_id_request_id_channel_key): its own
-- unique index only cost every insert of a run (issue 11's benchmark).
-- Nothing looks a delivery up by message id.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_message_id_key;
