#!/usr/bin/env bash
# Codec echo benchmark: weft-echo (1 loop) raw against weft-echo with the line codec and with
# the length-field codec, the load generator sending the same stream framed to match, so
# every frame is decoded, handed to on_traffic as a span and framed again by the encoder.
# The servers run alternately, REPS times each, server and load generator pinned to
# different CPUs; prints median msgs/s, the codec/raw ratios, and the target (codec-on echo
# >= 0.90x codec-off echo).
#
#   benchmarks/codec_echo.sh [-d SECONDS] [-r REPS]
#
# Environment: BUILD_DIR (default build-bench), WEFT_BENCH_NO_BUILD=1, SERVER_CPU/CLIENT_CPU.
set -euo pipefail
DURATION=3
REPS=3
while getopts "d:r:h" o; do
    case $o in
    d) DURATION=$OPTARG ;;
    r) REPS=$OPTARG ;;
    h) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) exit 2 ;;
    esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benchmarks/bench_lib.sh
. "$ROOT/benchmarks/bench_lib.sh"
check_run_args
bench_build loadgen weft-echo
LOADGEN=$BUILD_DIR/benchmarks/loadgen
WEFT=$BUILD_DIR/examples/echo/weft-echo
need_bins "$LOADGEN" "$WEFT"

declare -A SERVER_CMD FRAME
SERVER_CMD[raw]="$WEFT --addr tcp://127.0.0.1:{port} --loops 1"
SERVER_CMD[line]="$WEFT --addr tcp://127.0.0.1:{port} --loops 1 --codec line"
SERVER_CMD[lf]="$WEFT --addr tcp://127.0.0.1:{port} --loops 1 --codec length-field"
FRAME[raw]=none
FRAME[line]=line
FRAME[lf]=length-field
SERVERS=(raw line lf)
CASES=("--conns 64 --size 64 --pipeline 1" "--conns 64 --size 64 --pipeline 16"
    "--conns 8 --size 4096 --pipeline 4")

echo "codec echo benchmark: ${#SERVERS[@]} servers x $REPS runs x ${DURATION}s per case; $PINNING"
: >"$TMP/results"
MEET=yes
for ci in "${!CASES[@]}"; do
    args=${CASES[$ci]}
    echo
    echo "== loadgen $args"
    for rep in $(seq "$REPS"); do
        for k in 0 1 2; do
            s=${SERVERS[$(((rep - 1 + k) % 3))]}
            start_server "$s" || exit 1
            # shellcheck disable=SC2086
            "${CLI_PIN[@]}" "$LOADGEN" --port "$SRV_PORT" $args --frame "${FRAME[$s]}" \
                --duration "$DURATION" >"$TMP/lg.out" 2>&1 || {
                cat "$TMP/lg.out" >&2
                exit 1
            }
            stop_server "$s" || exit 1
            m=$(sed -n 's/^RESULT msgs_per_s=\([0-9.]*\).*/\1/p' "$TMP/lg.out")
            echo "$ci $s $m" >>"$TMP/results"
            printf '  [run %d] %-5s %12s msgs/s\n' "$rep" "$s" "$m"
        done
    done
    for s in "${SERVERS[@]}"; do
        declare "med_$s=$(awk -v c="$ci" -v s="$s" '$1 == c && $2 == s { print $3 }' "$TMP/results" | median)"
    done
    r_line=$(ratio "$med_line" "$med_raw")
    r_lf=$(ratio "$med_lf" "$med_raw")
    printf '  median: raw %s  line %s (%sx)  length-field %s (%sx)\n' "$med_raw" "$med_line" \
        "$r_line" "$med_lf" "$r_lf"
    echo "CODEC case=\"$args\" raw=$med_raw line=$med_line lf=$med_lf line_raw=$r_line lf_raw=$r_lf" >>"$TMP/machine"
    for r in "$r_line" "$r_lf"; do
        if [ "$r" = "-" ] || awk -v r="$r" 'BEGIN { exit !(r < 0.90) }'; then MEET=no; fi
    done
done
echo
cat "$TMP/machine"
echo "target codec-on echo >= 0.90x codec-off echo in every case: $MEET"
