#!/usr/bin/env bash
# Large frames: one length-field frame at a time, of 1, 64 and 512 MiB, through weft (one
# loop, the frame handed out as one span) against the same bytes pushed through a plain
# loopback socket into one small buffer (what cat into /dev/null does) and into a fresh
# buffer of the frame's size (the least a server that holds a frame whole, and gives the
# memory back afterwards, must do).
#
#   benchmarks/large_frame.sh [-r REPS] [-s SIZES] [-n FRAMES]
#     -r  runs per server and size, alternating the servers (default 3)
#     -s  frame sizes in MiB, comma-separated (default 1,64,512)
#     -n  frames per run, each sent after the previous one's answer (default 2; sizes
#         under 64 MiB send 64 MiB worth, so their CPU time is measurable). The first frame
#         may have to fault its memory in; the others may reuse it.
#
# Per run: wall time of the first frame and the mean of the others, the server's CPU time
# (user + system, from /proc/PID/stat) per frame, and its RSS before, at its peak (VmHWM)
# and 2 s after the last answer. Then per size the medians and weft's ratios to the plain
# push and to the fresh buffer, and a target line for the 512 MiB case (weft <= 2x plain).
#
# Environment: BUILD_DIR (default build-bench), WEFT_BENCH_NO_BUILD=1.
set -euo pipefail

REPS=3
SIZES=1,64,512
FRAMES=2
usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
while getopts "r:s:n:h" o; do
    case $o in
    r) REPS=$OPTARG ;;
    s) SIZES=$OPTARG ;;
    n) FRAMES=$OPTARG ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
[[ $REPS =~ ^[1-9][0-9]*$ && $FRAMES =~ ^[1-9][0-9]*$ && $SIZES =~ ^[0-9]+(,[0-9]+)*$ ]] ||
    { usage >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benchmarks/bench_lib.sh
. "$ROOT/benchmarks/bench_lib.sh"

bench_build large_frame
LF=$BUILD_DIR/benchmarks/large_frame
need_bins "$LF"

declare -A SERVER_CMD
SERVER_CMD[weft]="$LF serve --port {port}"
SERVER_CMD[plain]="$LF sink --port {port}"
SERVER_CMD[fresh]="$LF hold --port {port}"
SERVERS=(weft plain fresh)

kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

echo "large_frame.sh: $PINNING; $REPS runs per server and size; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-6s %4s %9s %9s %9s %10s %10s %10s\n' size server runs first_s rest_s cpu_ms \
    rss_kb peak_kb after_kb
FAILED=0
RESULTS=$TMP/results # size server first rest cpu_ms_per_frame rss peak after
: >"$RESULTS"
IFS=, read -r -a SIZE_LIST <<<"$SIZES"
for size in "${SIZE_LIST[@]}"; do
    frames=$FRAMES
    if [ "$size" -lt 64 ] && [ $((64 / size)) -gt "$frames" ]; then frames=$((64 / size)); fi
    for rep in $(seq "$REPS"); do
        # Rotate the order each run, so slow phases of the machine hit every server.
        order=("${SERVERS[@]:$(((rep - 1) % 3))}" "${SERVERS[@]:0:$(((rep - 1) % 3))}")
        for srv in "${order[@]}"; do
            if ! start_server "$srv"; then FAILED=1; continue; fi
            rss=$(kb "$SRV_PID" VmRSS)
            echo 5 >"/proc/$SRV_PID/clear_refs" 2>/dev/null || true # resets VmHWM
            c0=$(cpu_ticks "$SRV_PID")
            out=$("${CLI_PIN[@]}" "$LF" push --port "$SRV_PORT" --size $((size << 20)) \
                --count "$frames" 2>&1) || { echo "$out" >&2; FAILED=1; }
            c1=$(cpu_ticks "$SRV_PID")
            peak=$(kb "$SRV_PID" VmHWM)
            sleep 2
            after=$(kb "$SRV_PID" VmRSS)
            stop_server "$srv" || FAILED=1
            line=$(grep '^RESULT' <<<"$out" || true)
            [ -n "$line" ] || continue
            if ! grep -q ' errors=0$' <<<"$line"; then
                # A frame went unanswered (the server closed the connection): no times.
                printf '%-6s %-6s %4s %9s\n' "${size}M" "$srv" "$frames" failed
                continue
            fi
            first=${line#*first_s=}
            first=${first%% *}
            rest=${line#*rest_avg_s=}
            rest=${rest%% *}
            cpu=$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" -v f="$frames" \
                'BEGIN { printf "%.1f", (b - a) * 1000 / t / f }')
            printf '%-6s %-6s %4s %9s %9s %9s %10s %10s %10s\n' "${size}M" "$srv" "$frames" \
                "$first" "$rest" "$cpu" "$rss" "$peak" "$after"
            echo "$size $srv $first $rest $cpu $rss $peak $after" >>"$RESULTS"
        done
    done
done

# med SIZE SERVER COLUMN: the median of one column (3 = first, 4 = rest, ...).
med() { awk -v s="$1" -v v="$2" -v c="$3" '$1 == s && $2 == v { print $c }' "$RESULTS" | median; }

echo
echo "Medians (seconds per frame; cpu_ms: server CPU per frame; RSS of the weft server in KiB)"
printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' size "weft first" \
    "plain first" "fresh first" "weft/plain" "weft/fresh" "weft repeat" "plain repeat" \
    "repeat weft/plain" "cpu_ms weft/plain/fresh" "weft RSS before/peak/after"
echo '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|'
for size in "${SIZE_LIST[@]}"; do
    wf=$(med "$size" weft 3) pf=$(med "$size" plain 3) ff=$(med "$size" fresh 3)
    wr=$(med "$size" weft 4) pr=$(med "$size" plain 4)
    printf '| %s MiB | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s / %s | %s / %s / %s |\n' \
        "$size" "$wf" "$pf" "$ff" "$(ratio "$wf" "$pf")" "$(ratio "$wf" "$ff")" "$wr" "$pr" \
        "$(ratio "$wr" "$pr")" "$(med "$size" weft 5)" "$(med "$size" plain 5)" \
        "$(med "$size" fresh 5)" "$(med "$size" weft 6)" "$(med "$size" weft 7)" \
        "$(med "$size" weft 8)"
    echo "CASE ${size}MiB weft_first=$wf plain_first=$pf fresh_first=$ff weft_rest=$wr plain_rest=$pr"
done
if [[ ",$SIZES," == *,512,* ]]; then
    r1=$(ratio "$(med 512 weft 3)" "$(med 512 plain 3)")
    r2=$(ratio "$(med 512 weft 4)" "$(med 512 plain 4)")
    verdict() { awk -v r="$1" 'BEGIN { print (r != "-" && r <= 2.0) ? "yes" : "no" }'; }
    echo "target 512 MiB <= 2x plain: first frame ${r1}x ($(verdict "$r1")), repeated frames ${r2}x ($(verdict "$r2"))"
fi
exit $FAILED
