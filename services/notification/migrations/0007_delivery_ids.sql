-- Delivery ids are reserved by the decision, DECIDE_IDS_PER_REQUEST (4,
-- one per channel) per request with one nextval each (read with the
-- request's facts, services/notification/decide_io.c): the rows are
-- written by COPY with their ids, and their send_queue rows with the same
-- ids, instead of looking each new row up by its text key to learn it.
ALTER SEQUENCE deliveries_id_seq INCREMENT BY 4;
