#!/usr/bin/env python3
"""Holds `clickgate attribute` to the reference, PyPI `marketing-attribution-models` (module `mam`).

Generates seeded random journeys, splits each with the reference's heuristic models and with
clickgate, and compares the credit per partner per journey. The reference returns floats (a
fraction of the conversion value); clickgate returns integer minor units rounded by the largest
remainder, so each touch may be off by less than one minor unit and a journey's partner by less
than its number of touches. A difference above one minor unit per touch of the journey fails.

Run it with the venv that tests/reference/fetch.sh builds:

    tests/reference/fetch.sh
    target/reference-venv/bin/python tests/reference/compare.py target/release/clickgate

How the reference is fed, and the conventions that differ (read from mam 2.1.1's source,
mam/preprocessing.py and mam/models/heuristics.py):

- Input format. The reference takes "journey" rows: the channels as one string joined by
  " > ", in journey order, and `time_till_conv` as a parallel " > "-joined string of hours. It
  never sorts a journey itself in this format, so the touches are given in clickgate's order,
  (ts, input position); clickgate gets the same touches shuffled, to exercise its own sort.
- Time decay's age. In the "journey" format the age is whatever `time_till_conv` says, in hours
  (float), and the weight is 0.5 ** (hours / half_life) normalised within the journey: the same
  formula as clickgate's. We pass (conversion_ts - ts) / 3,600,000, clickgate's age exactly.
- The "session" format (one row per touch with a datetime) has no conversion time at all: it
  measures each touch's age from the journey's *last touch* (`max(datetime) - datetime`), and
  truncates that age to whole seconds (polars' `dt.total_seconds()` returns an integer).
  Measuring from the last touch instead of the conversion multiplies every weight by the same
  factor, 0.5 ** (gap / half_life), so the normalised split is the same. The truncation is not
  harmless for large amounts (a second is 1.7e-6 of a weight at a 168 h half-life), so the
  extra session-format run below uses whole-second timestamps on both sides, and shows that the
  last-touch convention agrees with clickgate's conversion-time ages.
- Touches after the conversion: clickgate clamps their age to 0; the reference would take the
  negative hours and weigh them above 1. The generated journeys have none.
- Position-based: 40/20/40 by position, 0.5/0.5 for two touches, 1.0 for one, as clickgate.
  The reference weighs touches, not partners, as clickgate does: a partner's credit is the sum
  over its touches.
- Every journey converts (`has_conversion` true) and carries its amount as the conversion value.
"""

import argparse
import json
import math
import random
import subprocess
import sys
from datetime import datetime, timezone

import polars as pl

from mam import MAM

HOUR_MS = 3_600_000
MINUTE_MS = 60_000
DAY_MS = 24 * HOUR_MS
# 2026-01-01T00:00:00Z: conversions fall in the year after it.
EPOCH_2026_MS = 1_767_225_600_000
PARTNERS = ["p-alpha", "p-bravo", "p-charlie", "p-delta", "p-echo", "p-foxtrot"]


def generate(n, seed, whole_seconds=False):
    """Seeded journeys: 2-6 touches from 2-4 partners, ages from a minute to 30 days."""
    rng = random.Random(seed)
    journeys = []
    for i in range(n):
        touches_n = rng.randint(2, 6)
        partners = rng.sample(PARTNERS, rng.randint(2, min(4, touches_n)))
        # Every partner touches at least once, and some touch again.
        names = partners + [rng.choice(partners) for _ in range(touches_n - len(partners))]
        rng.shuffle(names)
        conversion_ts = EPOCH_2026_MS + rng.randrange(365 * DAY_MS)
        touches = []
        for name in names:
            # Log-uniform: minutes, hours and weeks are all common.
            age_ms = int(math.exp(rng.uniform(math.log(MINUTE_MS), math.log(30 * DAY_MS))))
            if rng.random() < 0.05 and touches:
                age_ms = conversion_ts - touches[-1]["ts"]  # now and then, a tie in time
            ts = conversion_ts - age_ms
            if whole_seconds:
                ts -= ts % 1000
            touches.append({"partner": name, "ts": ts})
        if whole_seconds:
            conversion_ts -= conversion_ts % 1000
        # Amounts from a few minor units (where rounding shows) to ten billion.
        amount = rng.choice([rng.randint(0, 10), rng.randint(1, 10_000), rng.randint(1, 10_000_000), rng.randint(1, 10_000_000_000)])
        journeys.append({"id": f"j{i}", "conversion_ts": conversion_ts, "amount_minor": amount, "touches": touches})
    return journeys


def in_time_order(journey):
    """The touches as clickgate orders them: by (ts, input position)."""
    return [t for _, t in sorted(enumerate(journey["touches"]), key=lambda it: (it[1]["ts"], it[0]))]


def rfc3339(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def clickgate_input(journeys):
    """JSON lines for `clickgate attribute`; every third touch time as RFC 3339 text."""
    lines = []
    for j in journeys:
        touches = [
            {"partner": t["partner"], "ts": rfc3339(t["ts"]) if k % 3 == 2 else t["ts"]} for k, t in enumerate(j["touches"])
        ]
        lines.append(json.dumps({**j, "touches": touches}))
    return "\n".join(lines) + "\n"


def run_clickgate(binary, model, half_life_hours, journeys):
    args = [binary, "attribute", "--model", model]
    if half_life_hours is not None:
        args += ["--half-life-hours", str(half_life_hours)]
    done = subprocess.run(args, input=clickgate_input(journeys), capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"clickgate attribute --model {model} failed ({done.returncode}): {done.stderr}")
    credits = {}
    for line in done.stdout.splitlines():
        out = json.loads(line)
        credits[out["id"]] = {s["partner"]: s["amount_minor"] for s in out["shares"]}
    return credits


def journey_frame(journeys):
    """The reference's "journey" format, with ages in hours from the conversion."""
    rows = {"journey_id": [], "channels": [], "time_till_conv": [], "has_conv": [], "value": []}
    for j in journeys:
        touches = in_time_order(j)
        rows["journey_id"].append(j["id"])
        rows["channels"].append(" > ".join(t["partner"] for t in touches))
        rows["time_till_conv"].append(" > ".join(repr((j["conversion_ts"] - t["ts"]) / HOUR_MS) for t in touches))
        rows["has_conv"].append(True)
        rows["value"].append(float(j["amount_minor"]))
    frame = pl.DataFrame(rows)
    return MAM(
        frame,
        format_type="journey",
        channels_colname="channels",
        journey_with_conv_colname="has_conv",
        user_id_colname="journey_id",
        time_till_conv_colname="time_till_conv",
        conversion_value_colname="value",
    )


def session_frame(journeys):
    """The reference's "session" format: one row per touch, the value on the journey's last row."""
    rows = {"journey_id": [], "at_ms": [], "channel": [], "has_conv": [], "value": []}
    for j in journeys:
        touches = in_time_order(j)
        for k, t in enumerate(touches):
            rows["journey_id"].append(j["id"])
            rows["at_ms"].append(t["ts"])
            rows["channel"].append(t["partner"])
            last = k == len(touches) - 1
            rows["has_conv"].append(last)
            rows["value"].append(float(j["amount_minor"]) if last else 0.0)
    frame = pl.DataFrame(rows).with_columns(pl.from_epoch("at_ms", time_unit="ms").alias("at")).drop("at_ms")
    return MAM(
        frame,
        format_type="session",
        channels_colname="channel",
        journey_with_conv_colname="has_conv",
        datetime_colname="at",
        user_id_colname="journey_id",
        conversion_value_colname="value",
    )


def reference_credits(mam, model, half_life_hours):
    """{journey id: {partner: float credit}} from the reference's per-journey (raw) results."""
    if model == "last_click":
        raw = mam.run_last_click().to_raw_polars()
    elif model == "first_click":
        raw = mam.run_first_click().to_raw_polars()
    elif model == "linear":
        # One row per journey: the channel list and each touch's equal split.
        raw = (
            mam.run_linear()
            .to_raw_polars()
            .explode("channels")
            .select("journey_id", pl.col("channels").alias("attribution_channel"), pl.col("split_value").alias("attribution_value"))
        )
    elif model == "position_based":
        raw = mam.run_position_based().to_raw_polars().rename({"channels": "attribution_channel"})
    elif model == "time_decay":
        raw = mam.run_time_decay(half_life_hours=half_life_hours).to_raw_polars().rename({"channels": "attribution_channel"})
    else:
        raise ValueError(model)
    summed = raw.group_by("journey_id", pl.col("attribution_channel").cast(pl.String)).agg(pl.col("attribution_value").sum())
    credits = {}
    for jid, partner, value in summed.iter_rows():
        credits.setdefault(jid, {})[partner] = value
    return credits


def compare(label, journeys, ours, theirs, verbose=False):
    """Prints one summary line; returns whether every difference is within one unit per touch."""
    worst_abs, worst_per_touch, worst = 0.0, 0.0, None
    failures = 0
    for j in journeys:
        mine, ref = ours.get(j["id"]), theirs.get(j["id"], {})
        if mine is None:
            print(f"  {j['id']}: clickgate printed no line", file=sys.stderr)
            failures += 1
            continue
        if sum(mine.values()) != j["amount_minor"]:
            print(f"  {j['id']}: clickgate's shares sum to {sum(mine.values())}, not {j['amount_minor']}", file=sys.stderr)
            failures += 1
        touches = len(j["touches"])
        for partner in set(mine) | set(ref):
            diff = abs(mine.get(partner, 0) - ref.get(partner, 0.0))
            if diff > worst_abs:
                worst_abs, worst = diff, (j, partner)
            worst_per_touch = max(worst_per_touch, diff / touches)
            if diff > touches:
                failures += 1
                print(f"  {j['id']} {partner}: clickgate {mine.get(partner, 0)}, reference {ref.get(partner, 0.0)}", file=sys.stderr)
    verdict = "ok" if failures == 0 else f"FAILED ({failures})"
    print(f"{label} journeys={len(journeys)} max_abs_diff_minor={worst_abs:.3f} max_diff_per_touch={worst_per_touch:.3f} {verdict}", flush=True)
    if worst is not None and verbose:
        j, partner = worst
        print(f"  worst: {j['id']} {partner} touches={[t['partner'] for t in in_time_order(j)]} ours={ours[j['id']]} reference={theirs.get(j['id'])}", flush=True)
    return failures == 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clickgate", help="path to the clickgate binary")
    parser.add_argument("--journeys", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("-v", action="store_true", help="show the worst journey of each model")
    args = parser.parse_args()

    journeys = generate(args.journeys, args.seed)
    reference = journey_frame(journeys)
    runs = [
        ("last_click", None),
        ("first_click", None),
        ("linear", None),
        ("position_based", None),
        ("time_decay", 168.0),
        ("time_decay", 24.0),
    ]
    ok = True
    for model, half_life in runs:
        label = f"model={model}" + (f" half_life_hours={half_life:g}" if half_life is not None else "")
        ours = run_clickgate(args.clickgate, model, half_life, journeys)
        ok &= compare(label, journeys, ours, reference_credits(reference, model, half_life), args.v)

    # The session format measures ages from the last touch, in whole seconds: see the top.
    whole = generate(args.journeys, args.seed + 1, whole_seconds=True)
    ours = run_clickgate(args.clickgate, "time_decay", 168.0, whole)
    session = reference_credits(session_frame(whole), "time_decay", 168.0)
    ok &= compare("model=time_decay half_life_hours=168 input=session", whole, ours, session, args.v)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
