# SPDX-License-Identifier: GPL-3.0-or-later
"""The Markdown report of bench/run.

    report.py META RESULTS NOTES

RESULTS has one line per run: SCENARIO TOOL PHASE RUN WALL CPU RSS_KB RC
[bad...]; only PHASE "run" counts (the "warm" runs do not). A cell shows
the median; "(!)" marks a tool whose delivery failed a check in some run,
"fail" one that exited with an error, "-" one that did not run.
"""
import statistics
import sys

PEERS = ["mpop", "fdm", "fetchmail", "getmail6"]

SETUP = """
How the tools ran: each as an unprivileged user, into an empty Maildir,
with every header a peer would add switched off so that bytes can be
compared: mpop (`delivery maildir`, `received_header off`, `auth plain`,
pipelining auto, `keep on` + `uidls_file` for c2); fdm (`set no-received`,
`action maildir`, `new-only cache` + `keep` for c2, `SSL_CERT_FILE` for
the CA); fetchmail (`set invisible` turns its Received header off,
`mda "safecat TMP NEW"`, one safecat process per message, `sslproto ''`
so that a plain run does not try STARTTLS, `sslcommonname localhost` as
it does not match IP addresses, `nokeep fetchall`, `keep uidl` for c2);
getmail6 (SimplePOP3Retriever / SimplePOP3SSLRetriever with `ca_certs`,
Maildir destination, `delivered_to = false`, `received = false`; it
always writes its own Return-Path line, which equals the seeded messages'
first line, so bytes still match). Peak RSS of popfetch from time(1).
Dovecot serves message sizes from the file names (no reads for LIST); a
POP3 session before each timed run lets it index a restored mailbox."""


def load(meta_path, res_path, notes_path):
    meta = {"set": {}, "version": []}
    for line in open(meta_path):
        k, _, v = line.rstrip("\n").partition(" ")
        if k == "set":
            name, count, size = v.split()
            meta["set"][name] = (int(count), int(size))
        elif k == "version":
            meta["version"].append(v)
        else:
            meta[k] = v
    runs = {}
    for line in open(res_path):
        f = line.split()
        if len(f) < 8:
            continue
        scen, tool, phase = f[0], f[1], f[2]
        r = runs.setdefault((scen, tool), {"wall": [], "cpu": [], "rss": [],
                                           "bad": False, "fail": False,
                                           "single": False, "warm": None})
        if "bad" in f[8:]:
            r["bad"] = True
        if "single" in f[8:]:
            r["single"] = True
        ok = f[7] == "0" or (tool == "fetchmail" and f[7] == "1"
                             and scen == "c2")
        if not ok:
            r["fail"] = True
        if phase == "warm":
            r["warm"] = float(f[4])
            continue
        r["wall"].append(float(f[4]))
        r["cpu"].append(float(f[5]))
        r["rss"].append(int(f[6]))
    notes = [n.rstrip("\n") for n in open(notes_path) if n.strip()]
    return meta, runs, notes


def med(runs, scen, tool, key="wall"):
    r = runs.get((scen, tool))
    if not r or not r[key] or r["fail"]:
        return None
    return statistics.median(r[key])


def secs(v):
    if v is None:
        return "-"
    return "%.3f" % v if v < 1 else "%.2f" % v


def cell(runs, scen, tool, key="wall"):
    r = runs.get((scen, tool))
    if r is None:
        return "-"
    if r["fail"]:
        return "fail"
    s = secs(med(runs, scen, tool, key))
    if r["single"]:
        s += "¹"
    return s + " (!)" if r["bad"] else s


def mb(n):
    return ("%.1f MB" if n < 10e6 else "%.0f MB") % (n / 1e6)


def verdict(ok):
    return "met" if ok else "**not met**"


def table(meta, runs, tools):
    sets = meta["set"]
    rows = []
    delay = int(meta.get("delay", "10")) * 2

    def desc(set_name, what):
        c, b = sets.get(set_name, (0, 0))
        return what % {"n": c, "mb": mb(b)}

    spec = [
        ("a", "wall", "mixed-a", "a: delete, POP3, %(n)d msgs, %(mb)s",
         "ratio", 0.7),
        ("a", "cpu", "mixed-a", "a: CPU user+sys", "cpu", 1.0),
        ("b", "wall", "mixed-a", "b: delete, POP3S, %(n)d msgs, %(mb)s",
         "ratio", 0.7),
        ("c2", "wall", "small-c2",
         "c2: keep, POP3, poll %(n)d kept msgs, none new", "fastest", None),
        ("d", "wall", "mixed-d",
         "d: delete, POP3, %(n)d msgs, %(mb)s, " + "%d ms RTT" % delay,
         "ratio", 0.85),
        ("e", "wall", "small-e",
         "e: delete, POP3, %(n)d small msgs, %(mb)s, " + "%d ms RTT" % delay,
         "ratio", 0.4),
    ]
    base = "popfetch-base" in tools
    head = ["scenario"] + tools + ["popfetch/mpop"] + \
        (["popfetch/base"] if base else []) + ["goal"]
    rows.append("| " + " | ".join(head) + " |")
    rows.append("|" + "---|" * len(head))
    nhead = len(rows)
    for scen, key, set_name, what, kind, goal in spec:
        if not any((scen, t) in runs for t in tools):
            continue
        p = med(runs, scen, "popfetch", key)
        m = med(runs, scen, "mpop", key)
        ratio = "%.2fx" % (p / m) if p is not None and m else "-"
        bm = med(runs, scen, "popfetch-base", key)
        bratio = ["%.2fx" % (p / bm) if p is not None and bm else "-"] \
            if base else []
        if kind == "ratio":
            g = "<= %.2gx mpop" % goal
            if p is not None and m:
                g += ": " + verdict(p / m <= goal)
        elif kind == "cpu":
            g = "<= mpop's CPU"
            if p is not None and m is not None:
                g += ": " + verdict(p <= m)
        else:
            peers = [(med(runs, scen, t, key), t) for t in PEERS
                     if t in tools and med(runs, scen, t, key) is not None
                     and not runs[(scen, t)]["bad"]]
            g = "<= fastest peer"
            if peers and p is not None:
                best = min(peers)
                g += " (%s %s s): %s" % (best[1], secs(best[0]),
                                         verdict(p <= best[0]))
        rows.append("| " + " | ".join(
            [desc(set_name, what)]
            + [cell(runs, scen, t, key) for t in tools] + [ratio] + bratio
            + [g])
            + " |")
    return rows if len(rows) > nhead else []


def extras(meta, runs):
    out = []
    sets = meta["set"]
    delay = int(meta.get("delay", "10")) * 2
    big = med(runs, "big", "popfetch")
    if big is not None or ("big", "popfetch") in runs:
        n = sets.get("tiny-big", (0, 0))[0]
        r = runs.get(("big", "popfetch"), {})
        out.append("- c2, popfetch alone, keep mode, %d msgs on the server, "
                   "none new: poll %s s (target < 0.5 s: %s); the first "
                   "fetch of all of them took %s s."
                   % (n, secs(big), verdict(big is not None and big < 0.5),
                      secs(r.get("warm"))))
    mem = med(runs, "mem", "popfetch", "rss")
    bigrss = med(runs, "big", "popfetch", "rss")
    if mem is not None or bigrss is not None:
        parts = []
        if mem is not None:
            size = sets.get("single-mem", (0, 0))[1]
            parts.append("fetching one %.1f MiB message %.1f MiB (target "
                         "< 16 MiB: %s)" % (size / 1048576, mem / 1024,
                                  verdict(mem / 1024 < 16)))
        if bigrss is not None:
            parts.append("polling %d UIDs %.1f MiB (target < 32 MiB: %s)"
                         % (sets.get("tiny-big", (0, 0))[0], bigrss / 1024,
                            verdict(bigrss / 1024 < 32)))
        out.append("- memory, popfetch peak RSS (median): " +
                   "; ".join(parts) + ".")
    nacc, per = (meta.get("accounts", "100 50").split() + ["50"])[:2]
    one = med(runs, "acct1", "popfetch")
    for tag, how in (("", "default max_parallel and max_per_host"),
                     ("-wide", "max_parallel = max_per_host = %s" % nacc)):
        many = med(runs, "acct" + nacc + tag, "popfetch")
        if many is None or not one:
            continue
        bad = " (!)" if runs[("acct" + nacc + tag, "popfetch")]["bad"] \
            else ""
        out.append("- accounts, popfetch, delete mode, %s ms RTT, %s: %s "
                   "accounts x %s msgs %s s%s, one such account %s s: "
                   "%.1fx (target < 3x: %s)."
                   % (delay, how, nacc, per, secs(many), bad, secs(one),
                      many / one, verdict(many / one < 3)))
    n, b = sets.get("mixed-busy", (0, 0))
    for tool, goal in (("popfetch", 2.0), ("popfetch-base", None),
                       ("mpop", None)):
        quiet = med(runs, "busy-quiet", tool)
        load = med(runs, "busy-load", tool)
        if quiet is None or load is None:
            continue
        bad = " (!)" if runs[("busy-quiet", tool)]["bad"] or \
            runs[("busy-load", tool)]["bad"] else ""
        out.append("- busy file system, %s, delete mode, %d msgs, %s: quiet "
                   "%s s, while another process writes %s MB files to the "
                   "same file system %s s: %.2fx%s%s."
                   % (tool, n, mb(b), secs(quiet), meta.get("busyfile", "?"),
                      secs(load), load / quiet, bad,
                      " (target <= %.0fx: %s)" % (goal, verdict(
                          load / quiet <= goal)) if goal else ""))
    return out


def main():
    meta, runs, notes = load(*sys.argv[1:4])
    tools = meta.get("tools", "popfetch " + " ".join(PEERS)).split()
    print("<!-- SPDX-License-Identifier: GPL-3.0-or-later -->")
    print("# popfetch benchmark results\n")
    print("Command: `%s`%s, on %s." % (
        meta.get("command", "bench/run"),
        " (BENCH_SMALL: 1/20 of the sizes)" if meta.get("small", "0")
        not in ("", "0") else "", meta.get("machine", "?")))
    print("Run %s." % meta.get("when", "?"))
    print("Versions: %s.\n" % "; ".join(meta["version"]))
    print("Wall-clock seconds, median of %s runs per tool after one "
          "warm-up run (c2: after the tool's first fetch of the mailbox); "
          "tool order rotates each round. Every run's delivery was checked "
          "against the seeded messages (sha256, CRLF read as LF; delete "
          "mode: server left empty); (!) marks a tool that failed that "
          "check, fail one that exited with an error.\n"
          % meta.get("runs", "?"))
    for row in table(meta, runs, tools):
        print(row)
    if any(r["single"] for r in runs.values()):
        print("\n¹ one run only: its warm-up run took over %s s, so that "
              "run is its measurement (BENCH_SLOW)." % meta.get("slow", "20"))
    ex = extras(meta, runs)
    if ex:
        print()
        for line in ex:
            print(line)
    print(SETUP)
    if notes:
        print("\nNotes from this run:\n")
        for n in notes:
            print("- " + n)


if __name__ == "__main__":
    main()
