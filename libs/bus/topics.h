/* The project's Kafka topics. Every topic is keyed by member id. */
#ifndef TESSERA_TOPICS_H
#define TESSERA_TOPICS_H

#define TOPIC_MEMBER_EVENTS   "member-events"
#define TOPIC_LEDGER_COMMANDS "ledger-commands"
#define TOPIC_LEDGER_EVENTS   "ledger-events"
#define TOPIC_TIER_EVENTS     "tier-events"
#define TOPIC_NOTIFY_REQUESTS "notify-requests"
#define TOPIC_NOTIFY_EVENTS   "notify-events"
#define TOPIC_DEAD_LETTER     "dead-letter"

/* All of them, for the development broker and for readiness checks. */
#define TOPICS_ALL                                                                                 \
    {                                                                                              \
        TOPIC_MEMBER_EVENTS, TOPIC_LEDGER_COMMANDS, TOPIC_LEDGER_EVENTS, TOPIC_TIER_EVENTS,        \
            TOPIC_NOTIFY_REQUESTS, TOPIC_NOTIFY_EVENTS, TOPIC_DEAD_LETTER                          \
    }
#define TOPICS_ALL_COUNT 7

#endif
