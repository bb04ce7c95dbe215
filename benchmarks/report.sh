#!/usr/bin/env bash
# The benchmark report: runs the echo, idle-memory and weft-redis suites (each on weft's two
# backends and its references) and writes benchmarks/results/report.md with their tables and
# gnuplot charts (PNG) of msgs/s and server CPU per message per server and case, plus the full
# output of each suite beside it.
#
#   benchmarks/report.sh [--long] [-s|--suites echo,idle,redis] [-b|--backend both] [-o DIR]
#                        [--tls]
#     --long  the settings results are recorded with (echo.sh -d 3 -r 5, idle_mem.sh with
#             10,000 connections, redis.sh REPS=5 with its default request counts): about
#             25 minutes on an idle machine, an hour or more on a busy one (one redis.sh
#             repetition took 12.5 minutes at load average 12); the default is short
#             settings for a quick look, about 4 minutes
#     -s  comma list of suites to run (default echo,idle,redis)
#     -b  the backend option handed to every suite: epoll, io_uring or both (default)
#     -o  where to write (default benchmarks/results)
#     --from-logs  run nothing: rebuild report.md and the charts from the suites' output
#                  already in the directory (e.g. after editing this script)
#     --tls   every suite over TLS (echo.sh, idle_mem.sh and redis.sh with --tls); the
#             default directory is then benchmarks/results/tls
#
# Environment: ECHO_ARGS, IDLE_ARGS replace the settings given to echo.sh and idle_mem.sh;
# REPS, N, NP go to redis.sh; the suites' own variables (BUILD_DIR, BUSY_POLL, SERVER_CPU,
# CLIENT_CPU, ...) pass through. A suite that fails is marked in the report; the others
# still run, and the exit status is non-zero.
set -euo pipefail

LONG=0
FROM_LOGS=0
SUITES=echo,idle,redis
BACKEND=both
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/benchmarks/results
TLS=0
OUT_SET=0
usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case $1 in
    --long) LONG=1; shift ;;
    --from-logs) FROM_LOGS=1; shift ;;
    --tls) TLS=1; shift ;;
    -s | --suites) SUITES=${2:-}; shift 2 || shift ;;
    --suites=*) SUITES=${1#--suites=}; shift ;;
    -b | --backend) BACKEND=${2:-}; shift 2 || shift ;;
    --backend=*) BACKEND=${1#--backend=}; shift ;;
    -o) OUT=${2:-}; OUT_SET=1; shift 2 || shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
case $BACKEND in
epoll | io_uring | both) ;;
*) echo "report.sh: --backend wants epoll, io_uring or both" >&2; exit 2 ;;
esac
IFS=, read -r -a SUITE_LIST <<<"$SUITES"
for s in "${SUITE_LIST[@]}"; do
    case $s in
    echo | idle | redis) ;;
    *) echo "report.sh: unknown suite '$s' (echo,idle,redis)" >&2; exit 2 ;;
    esac
done
[ $TLS = 0 ] || [ $OUT_SET = 1 ] || OUT=$OUT/tls
[ -n "$OUT" ] || { usage >&2; exit 2; }
TLS_OPT=()
[ $TLS = 0 ] || TLS_OPT=(--tls)
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac

# shellcheck source=scripts/deps.sh
. "$ROOT/scripts/deps.sh"
if [ $FROM_LOGS -eq 0 ]; then
    weft_require_packages "${WEFT_BENCH_PACKAGES[@]}"
else
    weft_require_packages python3 gnuplot-nox
fi

if [ $LONG -eq 1 ]; then
    SETTINGS=long
    read -r -a ECHO_OPTS <<<"${ECHO_ARGS:--d 3 -r 5}"
    read -r -a IDLE_OPTS <<<"${IDLE_ARGS:--n 10000 -m both}"
    export REPS=${REPS:-5}
else
    SETTINGS=short
    read -r -a ECHO_OPTS <<<"${ECHO_ARGS:--d 1 -r 2}"
    read -r -a IDLE_OPTS <<<"${IDLE_ARGS:--n 2000 -m both}"
    export REPS=${REPS:-1} N=${N:-20000} NP=${NP:-200000}
fi

ROOT_RE=$(printf '%s' "$ROOT" | sed 's/[][\.*^$#]/\\&/g') # $ROOT as a sed pattern
mkdir -p "$OUT"
rm -f "$OUT"/*.png "$OUT"/report.md
FAILED=()
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_after="?" commit="?" ECHO_DESC="?" IDLE_DESC="?" REDIS_DESC="?" # a rebuild without meta.sh
FAILED_SUITES="" # the suites that failed in the run, as meta.sh recorded them
if [ $FROM_LOGS -eq 1 ]; then
    SUITE_LIST=()
fi
if [ $FROM_LOGS -eq 1 ] && [ -f "$OUT/meta.sh" ]; then
    # shellcheck disable=SC1091 # written by an earlier run of this script
    . "$OUT/meta.sh"
    read -r -a FAILED <<<"$FAILED_SUITES"
elif [ $FROM_LOGS -eq 0 ]; then
    rm -f "$OUT"/echo.txt "$OUT"/idle.txt "$OUT"/redis.txt
fi
for s in ${SUITE_LIST[@]+"${SUITE_LIST[@]}"}; do
    case $s in
    echo) cmd=("$ROOT/benchmarks/echo.sh" "${ECHO_OPTS[@]}" --backend "$BACKEND" ${TLS_OPT[@]+"${TLS_OPT[@]}"}) ;;
    idle) cmd=("$ROOT/benchmarks/idle_mem.sh" "${IDLE_OPTS[@]}" --backend "$BACKEND" ${TLS_OPT[@]+"${TLS_OPT[@]}"}) ;;
    redis) cmd=("$ROOT/benchmarks/redis.sh" --backend "$BACKEND" ${TLS_OPT[@]+"${TLS_OPT[@]}"}) ;;
    esac
    echo "== report: $s: ${cmd[*]}"
    # Paths inside the tree are written relative to it: the logs may be committed.
    if ! "${cmd[@]}" 2>&1 | sed -u "s#$ROOT_RE/##g" | tee "$OUT/$s.txt"; then
        FAILED+=("$s")
        echo "report.sh: the $s suite failed; see $OUT/$s.txt" >&2
    fi
done
if [ $FROM_LOGS -eq 0 ]; then
    load_after=$(cut -d' ' -f1-3 /proc/loadavg)
    commit=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
    ECHO_DESC=${ECHO_OPTS[*]} IDLE_DESC=${IDLE_OPTS[*]} REDIS_DESC="REPS=$REPS N=${N:-100000} NP=${NP:-1000000}"
    FAILED_SUITES=${FAILED[*]:-}
    # What the header of a report rebuilt with --from-logs needs.
    for v in SETTINGS BACKEND TLS started load_before load_after commit ECHO_DESC IDLE_DESC \
        REDIS_DESC FAILED_SUITES; do
        printf '%s=%q\n' "$v" "${!v}"
    done >"$OUT/meta.sh"
fi

# Tables and chart data from the suites' machine-readable lines; then the charts.
python3 - "$OUT" "$SETTINGS" "$BACKEND" "$started" "$load_before" "$load_after" "$commit" \
    "$(nproc)" "$(uname -sr)" "${FAILED[*]:-}" "${ECHO_DESC:-?}" "${IDLE_DESC:-?}" \
    "${REDIS_DESC:-?}" "$TLS" <<'PY'
import os, re, sys

(out, settings, backend, started, load_before, load_after, commit, ncpu, kernel, failed,
 echo_opts, idle_opts, redis_opts, tls) = sys.argv[1:15]
failed = failed.split()
tls = tls == "1"
TLS_OPT, OVER = (" --tls", " over TLS") if tls else ("", "")

# One colour per server, the same in every chart.
COLOUR = {"weft-epoll": "#1f77b4", "weft-uring": "#d62728", "epoll": "#7f7f7f",
          "libevent": "#bcbd22", "uring": "#ff7f0e", "redis": "#2ca02c",
          "libevent-tls": "#8c564b", "weft-redis": "#9467bd"}
CASE_LABEL = {"p1": "64 conns x 64 B, pipeline 1", "p16": "64 conns x 64 B, pipeline 16",
              "16k": "8 conns x 16 KiB, pipeline 1", "churn": "churn: connect, 64 B echo, close"}

def read(name):
    path = os.path.join(out, name + ".txt")
    return open(path, errors="replace").read().splitlines() if os.path.exists(path) else None

def fields(line):
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)

def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None

def fmt(v, digits=0):
    return "-" if v is None else f"{v:,.{digits}f}"

def notes(lines):
    return [l for l in lines if l.startswith(("target ", "note: ")) and "not measured" not in l]

md = [f"# weft benchmark report{OVER}", "",
      f"Recorded {started} by `benchmarks/report.sh` ({settings} settings, backend option "
      f"`{backend}`) at `{commit}`: {ncpu} CPUs, {kernel}, load average {load_before} before "
      f"and {load_after} after. Servers and load generators talk over 127.0.0.1; every suite "
      f"alternates its servers and pins server and client to different CPUs. weft-epoll and "
      f"weft-uring are the same weft program with `WEFT_BACKEND=epoll` and `=io_uring`." +
      (" Every connection is TLS 1.3 with a certificate (ECDSA P-256) made for the run." if tls else ""),
      ""]
def busy(load):
    try:
        return float(load.split()[0]) > float(ncpu)
    except (IndexError, ValueError):
        return False
if busy(load_before) or busy(load_after):
    md += ["**The machine was busy with other work during this run** (a load average above its "
           "CPU count): every absolute figure is lower and noisier than on an idle machine, "
           "and only the ratios between servers measured in the same suite say much.", ""]
if failed:
    md += [f"**Failed suites: {', '.join(failed)}** (see their output beside this file).", ""]
gp = ['set terminal pngcairo size 1280,800 font "sans,10" noenhanced',
      'set style fill solid 0.85 border -1', 'set boxwidth 0.75', 'set grid ytics',
      'set key off', 'set yrange [0:*]', 'set offsets 0.5, 0.5, 0, 0']

def bars(png, title, panels, ylabel, layout, digits=0):
    """One panel per (subtitle, [(server, value)]), a bar per server."""
    gp.append(f"set output '{png}'")
    gp.append(f'set multiplot layout {layout} title "{title}" font "sans,13"')
    for i, (sub, rows) in enumerate(panels):
        dat = f"{png[:-4]}.{i}.dat"
        with open(os.path.join(out, dat), "w") as f:
            for s, v in rows:
                f.write(f'"{s}" {v if v is not None else 0} {int(COLOUR.get(s, "#000000")[1:], 16)}\n')
        gp.append(f'set title "{sub}"')
        gp.append(f'set ylabel "{ylabel}"')
        gp.append("set xtics nomirror")
        gp.append(f"plot '{dat}' using 0:2:3:xtic(1) with boxes lc rgb variable, "
                  f"'' using 0:2:(sprintf(\"%.{digits}f\", $2)) with labels offset 0,0.8")
    gp.append("unset multiplot")

def clusters(png, title, panels, series, ylabel, layout, size=None, labels=False, target=None):
    """One panel per (subtitle, [(group, {server: value})]), clustered bars, a key; with
    labels, each bar's value above it; with target, a dashed line at that value."""
    if size:
        gp.append(f'set terminal pngcairo size {size} font "sans,10" noenhanced')
    gp.append(f"set output '{png}'")
    gp.append(f'set multiplot layout {layout} title "{title}" font "sans,13"')
    gp.append("set style data histograms")
    gp.append("set style histogram clustered gap 1")
    gp.append("set key outside right top vertical")
    gp.append("set offsets 0, 0, 0, 0")
    for i, (sub, groups) in enumerate(panels):
        dat = f"{png[:-4]}.{i}.dat"
        with open(os.path.join(out, dat), "w") as f:
            for g, vals in groups:
                f.write(f'"{g}" ' + " ".join(str(vals.get(s) or 0) for s in series) + "\n")
        gp.append(f'set title "{sub}"')
        gp.append(f'set ylabel "{ylabel}"')
        plots = [f"'{dat}' using {k + 2}:xtic(1) title '{s}' lc rgb '{COLOUR.get(s, '#000000')}'"
                 for k, s in enumerate(series)]
        n = len(series)
        if labels:  # a clustered bar k of row i sits at i + (k - (n - 1) / 2) / (n + gap)
            plots += [f"'{dat}' using ($0 + {(k - (n - 1) / 2) / (n + 1):.4f}):{k + 2}:"
                      f"(sprintf('%.0f', ${k + 2})) with labels offset 0,0.7 notitle"
                      for k in range(n)]
        if target is not None:
            gp.append(f"set arrow 1 from graph 0, first {target} to graph 1, first {target} "
                      "nohead dt 2 lw 1.5 lc rgb '#000000'")
            gp.append(f"set label 1 'target {target}' at graph 0.01, first {target} offset 0,0.7")
        gp.append("plot " + ", ".join(plots))
        gp.append("unset arrow 1")
        gp.append("unset label 1")
    gp.append("unset multiplot")
    if size:
        gp.append(gp[0])
    gp.append("set style data points")
    gp.append("set key off")
    gp.append("set offsets 0.5, 0.5, 0, 0")

charts = []

# ---- echo ----
lines = read("echo")
if lines is not None:
    md += ["## Echo (`echo.sh " + echo_opts + f" --backend {backend}{TLS_OPT}`)", "",
           ("weft-echo with 1 loop (and `--busy-poll 50`) on a tls:// address against the "
            "plain-libevent TLS echo server (OpenSSL bufferevents); churn is a full handshake "
            "per connection. " if tls else
            "weft-echo with 1 loop (and `--busy-poll 50`) against the raw epoll, plain "
            "libevent and raw io_uring echo servers; ") +
           "msgs/s is the median over the runs, "
           "efficiency is messages per second of server CPU time, CPU per message its "
           "inverse in nanoseconds.", ""]
    stats = {}
    for l in lines:
        if l.startswith("CASE "):
            f = fields(l)
            stats[(l.split()[1], f["stat"])] = f
    cases = [c for c in CASE_LABEL if (c, "median") in stats]
    servers = [s for s in COLOUR if cases and s in stats[(cases[0], "median")]]
    ratios = [k for k in (stats[(cases[0], "median")] if cases else {}) if "_" in k]
    for stat, title in (("median", "median msgs/s"), ("best", "best run, msgs/s"),
                        ("efficiency", "msgs per server CPU-second"),
                        ("cpu", "server CPU ns per message")):
        if not cases or (cases[0], stat) not in stats:
            continue
        cols = ratios if stat != "cpu" else []
        md += [f"**{title}**", "", "| case | " + " | ".join(servers + [r.replace("_", "/") for r in cols]) + " |",
               "|---|" + "---:|" * (len(servers) + len(cols))]
        for c in cases:
            f = stats[(c, stat)]
            md.append(f"| {CASE_LABEL[c]} | " + " | ".join(fmt(num(f.get(s))) for s in servers) +
                      "".join(f" | {f.get(r, '-')}" for r in cols) + " |")
        md.append("")
    md += [f"- {n}" for n in notes(lines)] + [""]
    if cases:
        layout = "2,2" if len(cases) > 2 else f"1,{len(cases)}"
        bars("echo_msgs.png", f"Echo{OVER}, 1 loop: median msgs/s (higher is better)",
             [(CASE_LABEL[c], [(s, num(stats[(c, "median")].get(s))) for s in servers]) for c in cases],
             "msgs/s", layout)
        if (cases[0], "cpu") in stats:
            bars("echo_cpu.png", f"Echo{OVER}, 1 loop: server CPU per message in ns (lower is better)",
                 [(CASE_LABEL[c], [(s, num(stats[(c, "cpu")].get(s))) for s in servers]) for c in cases],
                 "ns of server CPU per message", layout)
        md += ["![echo msgs/s](echo_msgs.png)", "", "![echo CPU per message](echo_cpu.png)", ""]

# ---- idle memory ----
lines = read("idle")
if lines is not None:
    md += ["## Idle memory (`idle_mem.sh " + idle_opts + f" --backend {backend}{TLS_OPT}`)", "",
           "Server RSS growth per connection that did one echo and then sits idle, after "
           "256 warm-up connections: `spread` echoes in batches of 256, `burst` has every "
           "connection write at once (RSS read a second after the burst)." +
           (" Each connection did a full TLS handshake first; the Redis servers answered a "
            "PING instead of an echo." if tls else ""), ""]
    res, modes, servers = {}, [], []
    for l in lines:
        if l.startswith("IDLE "):
            s, f = l.split()[1], fields(l)
            res[(s, f["mode"])] = num(f["bytes_per_conn"])
            modes += [f["mode"]] if f["mode"] not in modes else []
            servers += [s] if s not in servers else []
    if res:
        md += ["| server | " + " | ".join(f"{m} (bytes/conn)" for m in modes) + " |",
               "|---|" + "---:|" * len(modes)]
        for s in servers:
            md.append(f"| {s} | " + " | ".join(fmt(res.get((s, m))) for m in modes) + " |")
        md.append("")
        clusters("idle_mem.png", f"Idle memory{OVER}: server RSS bytes per idle connection (lower is better)",
                 [("", [(m, {s: res.get((s, m)) for s in servers}) for m in modes])], servers,
                 "bytes per idle connection", "1,1", size="1000,560", labels=True,
                 target=None if tls else 320)
        md += ["![idle memory](idle_mem.png)", ""]
    md += [f"- {n}" for n in notes(lines)] + [""]

# ---- redis ----
lines = read("redis")
if lines is not None:
    md += [f"## weft-redis against redis-server (`{redis_opts} redis.sh --backend {backend}{TLS_OPT}`)", "",
           "redis-benchmark -c 50, plain and with -P 16; median requests/s and server CPU "
           "microseconds per request.", ""]
    res, tests, servers = {}, [], []
    for l in lines:
        if l.startswith("REDIS "):
            f = fields(l)
            res[(f["mode"], f["test"], f["server"])] = (num(f["rps"]), num(f["cpu_us_per_req"]))
            tests += [f["test"]] if f["test"] not in tests else []
            servers += [f["server"]] if f["server"] not in servers else []
    modes = [m for m in ("plain", "p16") if any(k[0] == m for k in res)]
    MODE_TITLE = {"plain": "plain, -c 50", "p16": "pipelined, -c 50 -P 16"}
    for m in modes:
        md += [f"**{MODE_TITLE[m]}**", "",
               "| test | " + " | ".join(f"{s} req/s" for s in servers) + " | " +
               " | ".join(f"{s} us/req" for s in servers) + " |",
               "|---|" + "---:|" * (2 * len(servers))]
        for t in tests:
            v = [res.get((m, t, s), (None, None)) for s in servers]
            md.append(f"| {t} | " + " | ".join(fmt(x[0]) for x in v) + " | " +
                      " | ".join(fmt(x[1], 2) for x in v) + " |")
        md.append("")
    summary = [l for l in lines if l.startswith(("lowest single", "geometric"))]
    md += [f"- {n}" for n in notes(lines) + [l for l in summary if l.startswith("lowest")]] + [""]
    if res:
        layout = f"{len(modes)},1"
        clusters("redis_rps.png", f"weft-redis vs redis-server{OVER}: median requests/s (higher is better)",
                 [(MODE_TITLE[m], [(t, {s: res.get((m, t, s), (None,))[0] for s in servers}) for t in tests])
                  for m in modes], servers, "requests/s", layout)
        clusters("redis_cpu.png", f"weft-redis vs redis-server{OVER}: server CPU us per request (lower is better)",
                 [(MODE_TITLE[m], [(t, {s: res.get((m, t, s), (None, None))[1] for s in servers}) for t in tests])
                  for m in modes], servers, "us of server CPU per request", layout)
        md += ["![redis requests/s](redis_rps.png)", "", "![redis CPU per request](redis_cpu.png)", ""]

md += ["The full output of each suite is beside this file (`echo.txt`, `idle.txt`, `redis.txt`)."]
open(os.path.join(out, "report.md"), "w").write("\n".join(md) + "\n")
open(os.path.join(out, "charts.gp"), "w").write("\n".join(gp) + "\n")
PY
(cd "$OUT" && gnuplot charts.gp && rm -f ./*.dat charts.gp)
echo "report: $OUT/report.md"
for f in "$OUT"/*.png; do [ -e "$f" ] && echo "  $f"; done
if [ ${#FAILED[@]} -ne 0 ]; then
    echo "report.sh: failed suites: ${FAILED[*]}" >&2
    exit 1
fi
