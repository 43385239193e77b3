-- A member's consents per channel and purpose (issue 11, issue 14's
-- members item): set at registration, through /v1/members/{id}/consents
-- and /v1/me/consents. A pair with no row has its default: transactional
-- granted, marketing not. Every change is also sent to notification as
-- ConsentChanged (on notify-requests, from the outbox, in the same
-- statement), which keeps its own copy to decide with.
CREATE TABLE member_consents (
    tenant_id text NOT NULL,
    member_id text NOT NULL,
    channel text NOT NULL CHECK (channel IN ('inbox', 'email', 'sms', 'push')),
    purpose text NOT NULL CHECK (purpose IN ('transactional', 'marketing')),
    granted boolean NOT NULL,
    source text NOT NULL,          -- 'registration' | 'member' | 'api_key:<key id>'
    changed_at_us bigint NOT NULL, -- the service clock's (libs/clock)
    PRIMARY KEY (tenant_id, member_id, channel, purpose)
);
