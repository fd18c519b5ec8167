#!/usr/bin/env bash
# Builds the fuzz targets once and runs each for N seconds (default 30) from its committed seed
# corpus; exits non-zero if any target crashes, leaks past the limits or fails to build.
#
#   fuzz/run.sh [--seconds N] [target...]      targets: every one in fuzz/Cargo.toml by default
#
# It runs on the stable toolchain: cargo-fuzz passes -Z flags to rustc, which RUSTC_BOOTSTRAP=1
# lets stable accept, and `--sanitizer none` leaves out AddressSanitizer, which stable's standard
# library is not built for (the targets are safe Rust: `unsafe_code = "forbid"`). The coverage
# instrumentation and libFuzzer are the same as on nightly. Crashing inputs go to
# fuzz/artifacts/<target>/; the corpus a run grows goes to fuzz/corpus-work/<target>/ (both
# ignored by git), so a later run goes on from where the last one stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=30
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --seconds=*) seconds="${1#--seconds=}"; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        -*) echo "fuzz/run.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
# The fuzz crate is its own workspace with its own target dir, whatever the caller's is.
unset CARGO_TARGET_DIR
flags=(--sanitizer none --target-dir fuzz/target)

if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

echo "== building ${targets[*]}"
started=$(date +%s)
cargo fuzz build "${flags[@]}"
echo "   built in $(( $(date +%s) - started )) s"

failed=()
for t in "${targets[@]}"; do
    echo "== fuzzing $t for $seconds s"
    work="fuzz/corpus-work/$t"
    mkdir -p "$work" "fuzz/corpus/$t"
    # The first corpus dir is the one libFuzzer adds to; the committed seeds are only read.
    if cargo fuzz run "${flags[@]}" "$t" "$work" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>"fuzz/target/$t.log"; then
        grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done)' "fuzz/target/$t.log" | tr '\n' ' '; echo
    else
        tail -n 40 "fuzz/target/$t.log"
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz/run.sh: ${failed[*]} crashed; the inputs are in fuzz/artifacts/ (replay one with: RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none TARGET fuzz/artifacts/TARGET/crash-...)" >&2
    exit 1
fi
echo "== every target ran ${seconds} s without a crash"
