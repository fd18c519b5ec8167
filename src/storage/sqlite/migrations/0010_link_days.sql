-- Conversions credited through each link, per UTC day of the sale and currency: what reports by
-- link and by channel read, as partner_days is what a partner's report reads. One row per
-- (link, channel, day, currency), kept up to date by the writer: a conversion counts once for
-- each link whose counted touches carry a share of it (or any counted touch, for an amount of
-- zero), with the sum of those shares; a cancel takes the conversion and its revenue back and
-- counts it cancelled; a refund adds share * refunded / amount, rounded down. A sale credited
-- through a coupon has no link and is in no row. `program` and `partner` are the link's, for
-- a channel's report held to one of them.
CREATE TABLE link_days (
    link TEXT NOT NULL,
    channel TEXT NOT NULL,
    program TEXT NOT NULL,
    partner TEXT NOT NULL,
    day INTEGER NOT NULL,
    currency TEXT NOT NULL,
    conversions INTEGER NOT NULL,
    revenue_minor INTEGER NOT NULL,
    refunded_minor INTEGER NOT NULL,
    cancelled INTEGER NOT NULL,
    PRIMARY KEY (link, channel, day, currency)
);
CREATE INDEX link_days_by_channel ON link_days (channel, day);

-- The conversions recorded before this migration, from their stored attributions.
INSERT INTO link_days (link, channel, program, partner, day, currency, conversions, revenue_minor, refunded_minor, cancelled)
SELECT link, channel, program, partner, day, currency,
    sum(CASE WHEN status = 'cancelled' THEN 0 ELSE 1 END),
    sum(CASE WHEN status = 'cancelled' THEN 0 ELSE share END),
    sum(CASE WHEN amount_minor > 0 THEN share * refunded_minor / amount_minor ELSE 0 END),
    sum(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END)
FROM (
    SELECT c.id, json_extract(t.value, '$.link') AS link, json_extract(t.value, '$.channel') AS channel,
        c.program, json_extract(t.value, '$.partner') AS partner, c.day, c.currency, c.status,
        c.amount_minor, c.refunded_minor, sum(coalesce(json_extract(t.value, '$.share_minor'), 0)) AS share
    FROM conversions c, json_each(c.attribution, '$.touches') t
    WHERE json_valid(c.attribution) AND json_extract(t.value, '$.counted') = 1
        AND json_extract(t.value, '$.link') IS NOT NULL AND json_extract(t.value, '$.channel') IS NOT NULL
    GROUP BY c.id, link, channel, partner
)
WHERE share > 0 OR amount_minor = 0
GROUP BY link, channel, program, partner, day, currency;
