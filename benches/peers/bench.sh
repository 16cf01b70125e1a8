#!/usr/bin/env bash
# bench.sh [NAME[@PID]=]URL [...] — side-by-side load test of aggregators serving the same answer.
# (From the shared peer kit; this copy also measures CPU: with @PID, the CPU time of PID's process group
#  during the rounds, per request answered, in the table's "CPU µs/req" column.)
#  1. verify: GET each URL once; HTTP 200 + JSON; a GraphQL envelope {"data":{"<one field>":{...}}} without "errors"
#     is unwrapped; the object must equal the FIRST URL's (same keys, same values) or that target is refused (not benched).
#  2. warm-up: wrk for BENCH_WARMUP (3s) per target.
#  3. BENCH_ROUNDS (3) rounds of `wrk -t1 -cBENCH_CONN(32) -dBENCH_DURATION(10s) --latency`, targets alternating A B A B ...
#  4. one markdown table: median req/s, p50, p99 over the rounds, each as a ratio to the first URL; raw wrk output in run/.
# NAME defaults to the kit peer owning the port (envoy, nginx-njs, fastapi, fastapi-aiohttp, apollo; "-slow" for the base+1 ports).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ $# -ge 1 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
command -v wrk >/dev/null || apt_ensure wrk
DUR=${BENCH_DURATION:-10s}; CONN=${BENCH_CONN:-32}; ROUNDS=${BENCH_ROUNDS:-3}; WARM=${BENCH_WARMUP:-3s}
OUT="$RUN/bench-$(date +%Y%m%d-%H%M%S)"; mkdir -p "$OUT"

names=(); urls=(); pgids=()
for a in "$@"; do
  pg=""
  if [[ "$a" =~ ^([A-Za-z0-9_.-]+)@([0-9]+)=(https?://.*)$ ]]; then
    n=${BASH_REMATCH[1]}; pg=$(ps -o pgid= -p "${BASH_REMATCH[2]}" | tr -d ' '); u=${BASH_REMATCH[3]}
  elif [[ "$a" =~ ^([A-Za-z0-9_.-]+)=(https?://.*)$ ]]; then n=${BASH_REMATCH[1]}; u=${BASH_REMATCH[2]}
  else
    u=$a; port=$(sed -E 's#^https?://[^:/]+:([0-9]+).*#\1#' <<<"$u"); n="$port"
    for pn in envoy:$PORT_envoy nginx-njs:$PORT_nginx_njs fastapi:$PORT_fastapi fastapi-aiohttp:$PORT_fastapi_aiohttp apollo:$PORT_apollo; do
      b=${pn##*:}; [ "$port" = "$b" ] && n=${pn%%:*}; [ "$port" = "$((b + 1))" ] && n="${pn%%:*}-slow"
    done
  fi
  names+=("$n"); urls+=("$u"); pgids+=("$pg")
done

pg_cpu() {  # pg_cpu PGID : user + system clock ticks of every process of the group
  python3 - "$1" <<'PY'
import os, sys
pg, total = int(sys.argv[1]), 0
for p in os.listdir("/proc"):
    if not p.isdigit(): continue
    try: s = open(f"/proc/{p}/stat").read()
    except OSError: continue
    f = s[s.rindex(")") + 2:].split()
    if int(f[2]) == pg: total += int(f[11]) + int(f[12])
print(total)
PY
}

# ---- 1. verify identical answers
ok_names=(); ok_urls=(); ok_pgids=(); i=0
for u in "${urls[@]}"; do
  n=${names[$i]}; f="$OUT/answer-$i.json"
  code=$(curl -s -o "$f" -w '%{http_code}' --max-time 5 "$u" || true); code=${code:-000}
  verdict=$(python3 - "$OUT/answer-0.json" "$f" "$code" "$i" <<'PY'
import json, sys
ref_f, f, code, i = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def load(p):
    o = json.load(open(p))
    if isinstance(o, dict) and set(o) == {"data"} and isinstance(o["data"], dict) and len(o["data"]) == 1:
        inner = next(iter(o["data"].values()))     # GraphQL envelope, no errors
        if isinstance(inner, dict): return inner
    return o
if code != "200": print(f"REFUSE HTTP {code}"); sys.exit()
try: a = load(f)
except Exception as e: print(f"REFUSE not JSON ({e})"); sys.exit()
if not isinstance(a, dict) or not a: print("REFUSE not a JSON object"); sys.exit()
if i == 0: print("OK reference " + json.dumps(a, sort_keys=True)); sys.exit()
b = load(ref_f)
if a == b: print("OK same"); sys.exit()
diff = sorted(set(a) ^ set(b)) + [k for k in sorted(set(a) & set(b)) if a[k] != b[k]]
print("REFUSE differs from the first URL on keys " + ", ".join(diff) + " : " + json.dumps(a, sort_keys=True))
PY
)
  log "verify $n: $verdict"
  if [[ "$verdict" == OK* ]]; then ok_names+=("$n"); ok_urls+=("$u"); ok_pgids+=("${pgids[$i]}")
  elif [ "$i" -eq 0 ]; then die "the first URL must answer correctly (it is the reference)"; fi
  i=$((i + 1))
done
[ ${#ok_urls[@]} -ge 1 ] || die "nothing to bench"

# ---- 2. warm-up, 3. alternating rounds
for j in "${!ok_urls[@]}"; do log "warm-up ${ok_names[$j]} ($WARM)"; wrk -t1 -c"$CONN" -d"$WARM" "${ok_urls[$j]}" >/dev/null; done
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$ROUNDS"); do
  for j in "${!ok_urls[@]}"; do
    log "round $r/$ROUNDS ${ok_names[$j]}"
    pg=${ok_pgids[$j]}; [ -n "$pg" ] && before=$(pg_cpu "$pg")
    wrk -t1 -c"$CONN" -d"$DUR" --latency "${ok_urls[$j]}" > "$OUT/wrk-$j-$r.txt"
    [ -n "$pg" ] && echo $(( $(pg_cpu "$pg") - before )) > "$OUT/cpu-$j-$r.txt"
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- 4. table
printf '%s\n' "${ok_names[@]}" > "$OUT/names.txt"
python3 - "$OUT" "$ROUNDS" <<'PY'
import os, re, sys, statistics as st
out, rounds = sys.argv[1], int(sys.argv[2])
names = open(f"{out}/names.txt").read().split("\n")[:-1]
unit = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
def ms(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", v); return float(m[1]) * unit[m[2]]
rows = []
for j, n in enumerate(names):
    rps, p50, p99, err = [], [], [], 0
    for r in range(1, rounds + 1):
        t = open(f"{out}/wrk-{j}-{r}.txt").read()
        rps.append(float(re.search(r"Requests/sec:\s+([\d.]+)", t)[1]))
        p50.append(ms(re.search(r"^\s+50%\s+(\S+)", t, re.M)[1]))
        p99.append(ms(re.search(r"^\s+99%\s+(\S+)", t, re.M)[1]))
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", t); err += int(m[1]) if m else 0
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
        err += sum(map(int, m.groups())) if m else 0
    # CPU of the process group per request answered, over every round (clock ticks -> µs).
    cpu = None
    try:
        ticks = sum(int(open(f"{out}/cpu-{j}-{r}.txt").read()) for r in range(1, rounds + 1))
        done = sum(int(re.search(r"(\d+) requests in", open(f"{out}/wrk-{j}-{r}.txt").read())[1])
                   for r in range(1, rounds + 1))
        cpu = ticks / os.sysconf("SC_CLK_TCK") * 1e6 / done
    except (OSError, ValueError, TypeError):
        pass
    rows.append((n, st.median(rps), min(rps), max(rps), st.median(p50), st.median(p99), err, cpu))
b = rows[0]
def ratio(a, b): return f"{a / b:.2f}" if a is not None and b else "—"
print("| target | req/s (median) | req/s min–max | p50 ms | p99 ms | CPU µs/req | req/s ÷ first | p50 ÷ first | p99 ÷ first | CPU ÷ first | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for n, r, lo, hi, p5, p9, e, c in rows:
    cs = f"{c:.0f}" if c is not None else "—"
    print(f"| {n} | {r:,.0f} | {lo:,.0f}–{hi:,.0f} | {p5:.2f} | {p9:.2f} | {cs} | {r/b[1]:.2f} | {p5/b[4]:.2f} | {p9/b[5]:.2f} | {ratio(c, b[7])} | {e} |")
PY
echo
echo "wrk -t1 -c$CONN -d$DUR, $ROUNDS rounds alternating, warm-up $WARM; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //');" \
     "load avg before $load_before, after $load_after; $(date -u '+%Y-%m-%d %H:%M UTC'); raw: run/$(basename "$OUT")/"
