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
    day BIGINT NOT NULL,
    currency TEXT NOT NULL,
    conversions BIGINT NOT NULL,
    revenue_minor BIGINT NOT NULL,
    refunded_minor BIGINT NOT NULL,
    cancelled BIGINT NOT NULL,
    PRIMARY KEY (link, channel, day, currency)
);
CREATE INDEX link_days_by_channel ON link_days (channel, day);

-- The conversions recorded before this migration, from their stored attributions.
INSERT INTO link_days (link, channel, program, partner, day, currency, conversions, revenue_minor, refunded_minor, cancelled)
SELECT link, channel, program, partner, day, currency,
    sum(CASE WHEN status = 'cancelled' THEN 0 ELSE 1 END),
    sum(CASE WHEN status = 'cancelled' THEN 0 ELSE share END),
    sum(CASE WHEN amount_minor > 0 THEN div(share::numeric * refunded_minor, amount_minor)::bigint ELSE 0 END),
    sum(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END)
FROM (
    SELECT c.id, t ->> 'link' AS link, t ->> 'channel' AS channel, c.program, t ->> 'partner' AS partner,
        c.day, c.currency, c.status, c.amount_minor, c.refunded_minor,
        sum(coalesce((t ->> 'share_minor')::bigint, 0)) AS share
    FROM conversions c, jsonb_array_elements(c.attribution::jsonb -> 'touches') t
    WHERE (t ->> 'counted')::boolean AND t ->> 'link' IS NOT NULL AND t ->> 'channel' IS NOT NULL
    GROUP BY c.id, t ->> 'link', t ->> 'channel', t ->> 'partner'
) s
WHERE share > 0 OR amount_minor = 0
GROUP BY link, channel, program, partner, day, currency;
