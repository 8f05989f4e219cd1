#!/usr/bin/env bash
# benches/loss_sweep.sh - the loss picture of issue 15: how each transfer
# design's goodput falls as the path loses more, measured, drawn as one SVG.
#
#   benches/loss_sweep.sh            # about 10-25 minutes; writes docs/loss.{json,svg}
#   DRAW_ONLY=1 benches/loss_sweep.sh   # redraw docs/loss.svg from docs/loss.json
#   SCALE=0.1 SEEDS=1 LOSSES="0 5" OUT=/tmp/loss benches/loss_sweep.sh   # a quick look
#
# What runs: one `mioperf serve` (stopwait, tftp, window on 127.0.0.1 port 0,
# stopwait and TFTP with 50 ms retransmission timers and 60 tries, as
# tests/proxy.rs's fast_server), then for every loss rate, seed and protocol a
# fresh `mioperf proxy --latency LAT_MS --drop P --seed S` (loss on both
# directions) and one GET through it:
#   stopwait   `stopwait get` (100 B per round trip), client timer 50 ms
#   tftp-1     `tftp get --windowsize 1` (512 B blocks), client timer 50 ms
#   tftp-16    `tftp get --windowsize 16` (512 B blocks), client timer 50 ms
#   window     `window get` (the userspace TCP engine over UDP, NewReno,
#              its own RFC 6298 timers)
# Goodput = bytes / the client's own `seconds` (its --json). The file size
# depends on the protocol and the loss (SIZES below) so a run takes about
# 1-5 s here; every child is bounded by `timeout` (LIMIT_S per GET), and a
# GET that does not finish is recorded as a timeout: its goodput is at most
# size / LIMIT_S, which is what the picture plots for it (a hollow marker).
# The reference curve is the Mathis et al. bound MSS/RTT * 1.22/sqrt(p) with
# window's MSS (1452 - 12 bytes of timestamps option) and RTT = 2 * LAT_MS.
#
# Env: LAT_MS (5), LOSSES ("0 0.1 1 2 5 10 20", percent), SEEDS ("1 2 3"),
#      PROTOS ("stopwait tftp-1 tftp-16 window"; also window-cubic), LIMIT_S (60), SCALE (1: a
#      factor on every file size), OUT (docs/loss: writes OUT.json, OUT.svg),
#      WORK (/tmp/mioperf-loss-sweep), MIOPERF (a built binary; default:
#      `cargo build --release` and target/release/mioperf), DRAW_ONLY.
# Loopback only: the server and every proxy listen on 127.0.0.1.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
export LAT_MS=${LAT_MS:-5}
export LOSSES=${LOSSES:-"0 0.1 1 2 5 10 20"}
export SEEDS=${SEEDS:-"1 2 3"}
export PROTOS=${PROTOS:-"stopwait tftp-1 tftp-16 window"}
export LIMIT_S=${LIMIT_S:-60}
export SCALE=${SCALE:-1}
export OUT=${OUT:-$ROOT/docs/loss}
export WORK=${WORK:-/tmp/mioperf-loss-sweep}
export DRAW_ONLY=${DRAW_ONLY:-}
if [ -z "$DRAW_ONLY" ] && [ -z "${MIOPERF:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet --bin mioperf) || { echo "cargo build failed"; exit 1; }
  MIOPERF=${CARGO_TARGET_DIR:-$ROOT/target}/release/mioperf
fi
export MIOPERF=${MIOPERF:-}
export COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
exec python3 - <<'PY'
import json, math, os, platform, re, shutil, signal, statistics, subprocess, sys, time

LAT_MS = float(os.environ["LAT_MS"])
RTT_S = 2 * LAT_MS / 1000
LOSSES = [float(x) for x in os.environ["LOSSES"].split()]
SEEDS = [int(x) for x in os.environ["SEEDS"].split()]
PROTOS = os.environ["PROTOS"].split()
LIMIT_S = float(os.environ["LIMIT_S"])
SCALE = float(os.environ["SCALE"])
OUT = os.environ["OUT"]
WORK = os.environ["WORK"]
BIN = os.environ["MIOPERF"]
# window's MSS: a 1472-byte datagram less the 20-byte TCP header (1452),
# less the 12 bytes the timestamps option takes from every segment.
MSS = 1452 - 12
# Retransmission timer and tries of stopwait and TFTP, both ends: five
# round trips, and enough tries that 20 % loss each way rarely exhausts them.
TIMER = "50ms"
TRIES = "60"
# How long the server may live: the whole sweep at its worst, bounded.
SERVER_LIMIT_S = 4 * 3600
# How long a proxy or the server may take to print its address.
START_S = 10

PROTOCOLS = {
    "stopwait": {"label": "stop-and-wait (100 B)", "color": "#d62728",
                 "args": ["stopwait", "get", "{addr}", "{name}", "--timeout", TIMER, "--tries", TRIES]},
    "tftp-1": {"label": "TFTP windowsize 1 (512 B)", "color": "#ff7f0e",
               "args": ["tftp", "get", "{addr}", "{name}", "--windowsize", "1", "--timeout", TIMER, "--tries", TRIES]},
    "tftp-16": {"label": "TFTP windowsize 16 (512 B)", "color": "#2ca02c",
                "args": ["tftp", "get", "{addr}", "{name}", "--windowsize", "16", "--timeout", TIMER, "--tries", TRIES]},
    "window": {"label": "window (TCP engine, NewReno)", "color": "#1f77b4",
               "args": ["window", "get", "{addr}", "{name}"]},
    # Not in the default PROTOS: for a look at the other controller.
    "window-cubic": {"label": "window (TCP engine, CUBIC)", "color": "#9467bd",
                     "args": ["window", "get", "{addr}", "{name}", "--cc", "cubic"]},
}
SERVED = {"stopwait": "stopwait", "tftp-1": "tftp", "tftp-16": "tftp", "window": "window",
          "window-cubic": "window"}

# File sizes in bytes by protocol and loss (%): about 2-3 s each on the
# reference machine at LAT_MS 5 (a GET's goodput there, from a calibration
# run: stopwait 10 kB/s clean, 6 kB/s at 5 %; TFTP-16 0.6 MB/s clean,
# 0.34 MB/s at 5 %, 0.1 MB/s at 20 %; window 10 MB/s clean, 0.6 MB/s at
# 1 %, 0.2 MB/s at 5 %, 0.05 MB/s at 10 %). Losses between the rows take
# the next row down's size.
SIZES = {
    "stopwait": {0: 20_000, 2: 20_000, 5: 15_000, 10: 10_000, 20: 6_000},
    "tftp-1": {0: 100_000, 2: 100_000, 5: 75_000, 10: 50_000, 20: 30_000},
    "tftp-16": {0: 1_500_000, 1: 1_500_000, 2: 1_000_000, 5: 700_000, 10: 400_000, 20: 200_000},
    "window-cubic": {0: 20_000_000, 0.1: 8_000_000, 1: 1_500_000, 2: 1_000_000, 5: 400_000, 10: 150_000, 20: 30_000},
    "window": {0: 20_000_000, 0.1: 8_000_000, 1: 1_500_000, 2: 1_000_000, 5: 400_000, 10: 150_000, 20: 30_000},
}


def size_for(proto, loss):
    table = SIZES[proto]
    row = min((k for k in table if k >= loss), default=max(table))
    return max(1, int(table[row] * SCALE))


def mathis(loss_pct):
    return MSS / RTT_S * 1.22 / math.sqrt(loss_pct / 100)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def start(args, limit, out_path):
    """A child bounded by `timeout`, its output in out_path; waits for `ready`."""
    out = open(out_path, "w")
    p = subprocess.Popen(["timeout", str(int(limit)), BIN, "-q"] + args, stdout=out,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        text = open(out_path).read()
        if re.search(r"^ready", text, re.M):
            return p, text
        if p.poll() is not None:
            break
        time.sleep(0.05)
    p.kill()
    sys.exit(f"{' '.join(args[:1])} did not start: {open(out_path).read()}")


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def one_get(proto, addr, name, out_file):
    args = [a.format(addr=addr, name=name) for a in PROTOCOLS[proto]["args"]]
    cmd = ["timeout", "--kill-after=5", str(int(LIMIT_S)), BIN, "-q"] + args + ["-o", out_file, "-f", "--json"]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    try:
        doc = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        doc = {}
    if r.returncode in (124, 137):
        doc = {"outcome": "timeout", "limit": True}
    return r.returncode, doc, wall


def run_sweep():
    shutil.rmtree(WORK, ignore_errors=True)
    root = os.path.join(WORK, "root")
    os.makedirs(root)
    names = {}
    for proto in PROTOS:
        for loss in LOSSES:
            size = size_for(proto, loss)
            name = f"f-{size}.bin"
            names[(proto, loss)] = (name, size)
            path = os.path.join(root, name)
            if not os.path.exists(path):
                with open(path, "wb") as f:
                    f.write(os.urandom(size))
    with open(os.path.join(WORK, "serve.toml"), "w") as f:
        f.write(f'tftp_timeout = "{TIMER}"\ntftp_tries = {TRIES}\n')
    served = sorted({SERVED[p] for p in PROTOS})
    args = ["serve", "--only", ",".join(served), "--root", root,
            "--stopwait-timeout", TIMER, "--stopwait-tries", TRIES,
            "--config", os.path.join(WORK, "serve.toml")]
    for s in served:
        args += ["--listen", f"{s}=127.0.0.1:0"]
    server, text = start(args, SERVER_LIMIT_S, os.path.join(WORK, "serve.out"))
    upstream = dict(re.findall(r"^listening (\w+) udp (\S+)", text, re.M))
    runs = []
    try:
        total = len(LOSSES) * len(SEEDS) * len(PROTOS)
        for loss in LOSSES:
            for seed in SEEDS:
                for proto in PROTOS:
                    name, size = names[(proto, loss)]
                    # Each GET gets a fresh proxy: its seed alone decides the losses.
                    proxy, ptext = start(
                        ["proxy", "--listen", "127.0.0.1:0", "--upstream", upstream[SERVED[proto]],
                         "--latency", f"{LAT_MS}ms", "--drop", str(loss / 100), "--seed", str(seed)],
                        LIMIT_S + 30, os.path.join(WORK, "proxy.out"))
                    addr = re.search(r"^listening proxy udp (\S+)", ptext, re.M).group(1)
                    rc, doc, wall = one_get(proto, addr, name, os.path.join(WORK, "out.bin"))
                    stop(proxy)
                    ok = rc == 0 and doc.get("outcome") == "ok" and doc.get("bytes") == size
                    row = {"protocol": proto, "loss_pct": loss, "seed": seed, "bytes": size,
                           "outcome": "ok" if ok else ("timeout" if doc.get("outcome") == "timeout" else "failed"),
                           "exit": rc, "wall_s": round(wall, 3)}
                    if ok:
                        row["seconds"] = doc["seconds"]
                        row["goodput_Bps"] = size / doc["seconds"]
                    # The row keeps its own shape (docs/loss.json): the
                    # client's counters are under the protocol's object.
                    for counters in ("stopwait", "tftp"):
                        if counters in doc:
                            row["retransmissions"] = doc[counters]["retransmits"]
                    if "tcp" in doc:
                        row["tcp"] = doc["tcp"]
                    runs.append(row)
                    log(f"[{len(runs)}/{total}] {proto:8} loss {loss:>4} % seed {seed}: "
                        + (f"{row['goodput_Bps'] / 1e3:10.1f} kB/s ({doc['seconds']:.2f} s, {size} B)"
                           if ok else f"{row['outcome']} after {wall:.1f} s ({size} B)"))
    finally:
        stop(server)
    return runs


def summarize(runs):
    rows = []
    for proto in PROTOS:
        for loss in LOSSES:
            these = [r for r in runs if r["protocol"] == proto and r["loss_pct"] == loss]
            if not these:
                continue
            # A timeout's goodput is at most its size over the time limit.
            values = [r.get("goodput_Bps", r["bytes"] / LIMIT_S) for r in these]
            rows.append({"protocol": proto, "loss_pct": loss,
                         "median_Bps": statistics.median(values),
                         "min_Bps": min(values), "max_Bps": max(values),
                         "runs": len(these),
                         "timeouts": sum(r["outcome"] == "timeout" for r in these),
                         "failures": sum(r["outcome"] == "failed" for r in these)})
    return rows


# ---------------------------------------------------------------- drawing
W, H = 980, 600
L, R, T, B = 90, 300, 60, 70  # plot margins; the legend sits on the right


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def human(v):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.3g}"


def draw(doc):
    losses = doc["losses_pct"]
    positive = sorted(x for x in losses if x > 0)
    rows = doc["summary"]
    lo_p, hi_p = (positive[0], positive[-1]) if positive else (0.1, 20)
    # Log x over the positive losses; 0 gets its own place at the left edge,
    # one "gap" left of the smallest positive loss (the axis is broken there).
    gap = 0.9
    lx0, lx1 = math.log10(lo_p) - gap - 0.12, math.log10(hi_p) + 0.12
    px0, px1 = L, W - R

    def x_of(p):
        lp = math.log10(lo_p) - gap if p <= 0 else math.log10(p)
        return px0 + (lp - lx0) / (lx1 - lx0) * (px1 - px0)

    values = [r[k] for r in rows for k in ("min_Bps", "max_Bps")]
    values += [m["goodput_Bps"] for m in doc["mathis"]]
    ly0 = math.floor(math.log10(max(min(values), 1)))
    ly1 = math.ceil(math.log10(max(values)))
    py0, py1 = H - B, T

    def y_of(v):
        lv = math.log10(max(v, 10 ** ly0))
        return py0 + (lv - ly0) / (ly1 - ly0) * (py1 - py0)

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{(px0 + px1) / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">'
         f'{esc(doc["title"])}</text>',
         f'<text x="{(px0 + px1) / 2}" y="42" text-anchor="middle" fill="#555">'
         f'{esc(doc["subtitle"])}</text>']
    # Grid and y ticks: 1, 2, 5 per decade.
    for d in range(ly0, ly1 + 1):
        for m in (1, 2, 5):
            v = m * 10 ** d
            if v > 10 ** ly1:
                break
            y = y_of(v)
            o.append(f'<line x1="{px0}" x2="{px1}" y1="{y:.1f}" y2="{y:.1f}" stroke="{"#ccc" if m == 1 else "#eee"}"/>')
            if m == 1 or ly1 - ly0 <= 4:
                o.append(f'<text x="{px0 - 6}" y="{y + 4:.1f}" text-anchor="end">{human(v)}</text>')
    # x ticks at the measured losses, and the break between 0 and the rest.
    for p in losses:
        x = x_of(p)
        o.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{py0}" y2="{py1}" stroke="#eee"/>')
        o.append(f'<text x="{x:.1f}" y="{py0 + 18}" text-anchor="middle">{p:g}</text>')
    o.append(f'<rect x="{px0}" y="{py1}" width="{px1 - px0}" height="{py0 - py1}" fill="none" stroke="#333"/>')
    if 0 in losses and positive:
        xb = (x_of(0) + x_of(lo_p)) / 2
        o.append(f'<path d="M{xb - 6:.1f},{py0 + 6} l6,-12 M{xb:.1f},{py0 + 6} l6,-12" stroke="#333"/>')
    o.append(f'<text x="{(px0 + px1) / 2}" y="{H - 22}" text-anchor="middle">'
             'datagrams dropped, each way (%, log scale; 0 at the left edge)</text>')
    o.append(f'<text transform="translate(22,{(py0 + py1) / 2}) rotate(-90)" text-anchor="middle">'
             'goodput (bytes/s, log scale)</text>')
    # The Mathis bound, dashed, over the positive losses.
    pts = []
    steps = 60
    for i in range(steps + 1):
        p = 10 ** (math.log10(lo_p) + (math.log10(hi_p) - math.log10(lo_p)) * i / steps)
        pts.append(f"{x_of(p):.1f},{y_of(mathis(p)):.1f}")
    o.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="#555" stroke-width="1.5" '
             'stroke-dasharray="6,4"/>')
    # A line per protocol through the medians; min-max whiskers; markers
    # dodged sideways a little so the whiskers do not hide each other.
    protos = [p for p in doc["protocols"] if any(r["protocol"] == p for r in rows)]
    for i, proto in enumerate(protos):
        color = doc["protocols"][proto]["color"]
        dx = (i - (len(protos) - 1) / 2) * 5
        mine = sorted((r for r in rows if r["protocol"] == proto), key=lambda r: r["loss_pct"])
        line = " ".join(f"{x_of(r['loss_pct']) + dx:.1f},{y_of(r['median_Bps']):.1f}" for r in mine)
        o.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>')
        for r in mine:
            x = x_of(r["loss_pct"]) + dx
            y0, y1, ym = y_of(r["min_Bps"]), y_of(r["max_Bps"]), y_of(r["median_Bps"])
            o.append(f'<path d="M{x:.1f},{y0:.1f} V{y1:.1f} M{x - 3:.1f},{y0:.1f} h6 M{x - 3:.1f},{y1:.1f} h6" '
                     f'stroke="{color}" stroke-width="1.2"/>')
            fill = "white" if r["timeouts"] or r["failures"] else color
            o.append(f'<circle cx="{x:.1f}" cy="{ym:.1f}" r="4" fill="{fill}" stroke="{color}" stroke-width="1.5">'
                     f'<title>{esc(proto)} at {r["loss_pct"]:g} %: median {human(r["median_Bps"])}B/s '
                     f'(min {human(r["min_Bps"])}, max {human(r["max_Bps"])}; {r["timeouts"]} timeouts of '
                     f'{r["runs"]})</title></circle>')
    # Legend.
    lx, ly = px1 + 20, py1 + 10
    o.append(f'<text x="{lx}" y="{ly}" font-weight="bold">GET through mioperf proxy</text>')
    ly += 22
    for proto in protos:
        c = doc["protocols"][proto]["color"]
        o.append(f'<line x1="{lx}" x2="{lx + 28}" y1="{ly - 4}" y2="{ly - 4}" stroke="{c}" stroke-width="2"/>'
                 f'<circle cx="{lx + 14}" cy="{ly - 4}" r="4" fill="{c}"/>'
                 f'<text x="{lx + 36}" y="{ly}">{esc(doc["protocols"][proto]["label"])}</text>')
        ly += 20
    o.append(f'<line x1="{lx}" x2="{lx + 28}" y1="{ly - 4}" y2="{ly - 4}" stroke="#555" stroke-width="1.5" '
             f'stroke-dasharray="6,4"/><text x="{lx + 36}" y="{ly}">Mathis bound, MSS {doc["mss"]} B, '
             f'RTT {doc["rtt_ms"]:g} ms</text>')
    ly += 30
    for note in (f"marker: median of {len(doc['seeds'])} seeds; whisker: min-max",
                 f"hollow: a seed timed out ({doc['limit_s']:g} s) or failed,",
                 "plotted at size / limit (an upper bound)",
                 "stopwait and TFTP: 50 ms timers; window:",
                 "RFC 6298 timers (200 ms floor)",
                 f"mioperf {doc['commit']}"):
        o.append(f'<text x="{lx}" y="{ly}" fill="#555" font-size="11">{esc(note)}</text>')
        ly += 15
    o.append("</svg>")
    return "\n".join(o) + "\n"


def table(doc):
    rows = {(r["protocol"], r["loss_pct"]): r for r in doc["summary"]}
    protos = [p for p in doc["protocols"] if any(k[0] == p for k in rows)]
    lines = ["goodput, median of seeds (min-max), bytes/s; T = timeouts",
             f"{'loss %':>7} " + " ".join(f"{p:>24}" for p in protos) + f" {'Mathis':>10}"]
    for loss in doc["losses_pct"]:
        cells = []
        for p in protos:
            r = rows.get((p, loss))
            if r is None:
                cells.append(f"{'-':>24}")
                continue
            t = f" T{r['timeouts']}" if r["timeouts"] else ""
            cells.append(f"{human(r['median_Bps']) + ' (' + human(r['min_Bps']) + '-' + human(r['max_Bps']) + ')' + t:>24}")
        m = f"{human(mathis(loss)):>10}" if loss > 0 else f"{'-':>10}"
        lines.append(f"{loss:>7g} " + " ".join(cells) + " " + m)
    if any(("window", l) in rows and ("tftp-16", l) in rows for l in (1.0, 5.0)):
        lines.append("")
        lines.append("window / TFTP-16 and window / Mathis (medians):")
        for loss in (1.0, 5.0):
            w, t = rows.get(("window", loss)), rows.get(("tftp-16", loss))
            if w and t:
                lines.append(f"  at {loss:g} %: window {human(w['median_Bps'])}B/s = "
                             f"{w['median_Bps'] / t['median_Bps']:.2f} x TFTP-16, "
                             f"{w['median_Bps'] / mathis(loss):.2f} x Mathis")
    return "\n".join(lines)


def main():
    if os.environ["DRAW_ONLY"]:
        with open(OUT + ".json") as f:
            doc = json.load(f)
    else:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        runs = run_sweep()
        doc = {
            "title": f"Goodput against loss, {LAT_MS:g} ms latency each way",
            "subtitle": f"one GET at a time through mioperf proxy on loopback "
                        f"(RTT {2 * LAT_MS:g} ms), loss on both directions",
            "latency_ms": LAT_MS, "rtt_ms": 2 * LAT_MS, "mss": MSS,
            "losses_pct": LOSSES, "seeds": SEEDS, "limit_s": LIMIT_S, "scale": SCALE,
            "timers": {"stopwait_tftp": TIMER, "tries": int(TRIES)},
            "protocols": {p: {"label": PROTOCOLS[p]["label"], "color": PROTOCOLS[p]["color"],
                              "command": "mioperf " + " ".join(PROTOCOLS[p]["args"])} for p in PROTOS},
            "commit": os.environ.get("COMMIT", "unknown"),
            "environment": {"started": started, "kernel": platform.release(),
                            "cpus": os.cpu_count(), "load_average": os.getloadavg()},
            "runs": runs,
            "summary": summarize(runs),
            "mathis": [{"loss_pct": p, "goodput_Bps": mathis(p)} for p in LOSSES if p > 0],
        }
        os.makedirs(os.path.dirname(OUT) or ".", exist_ok=True)
        with open(OUT + ".json", "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
    with open(OUT + ".svg", "w") as f:
        f.write(draw(doc))
    print(table(doc))
    print(f"wrote {OUT}.json and {OUT}.svg")


main()
PY
