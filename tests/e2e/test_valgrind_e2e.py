"""test_valgrind_e2e.py — a graceful shutdown leaves nothing behind (issue 6 item 7): the real
funneld runs under valgrind (memcheck, --leak-check=full), is fed a few thousand events of
gen_stream with malformed messages among them, reloads its configuration once (SIGHUP), serves
/metrics, drains the input and is stopped with SIGTERM. It must exit 0, and valgrind must
report no memory error and no definitely or indirectly lost block (its log is parsed; a
"still reachable" block or a "possibly lost" one inside a library is not a finding).

Valgrind cannot run an ASan build (FN_SANITIZE=ON in FUNNELD_BUILD_DIR's CMakeCache.txt): there
the same scenario runs without valgrind, with ASAN_OPTIONS detect_leaks=1, after checking that
the binary really carries AddressSanitizer with LeakSanitizer on; LeakSanitizer makes a process
that leaks exit nonzero at exit, so "exit code 0" is the leak check there.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

from harness import Check, Stack, build_dir, free_port, gen_stream, wait_drained, wait_for

N_EVENTS = 4000  # valgrind makes funneld many times slower: keep the run well under 3 min
VALGRIND = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite,indirect",
            "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
            "--num-callers=30"]

# Messages the decoder must refuse (each becomes a dead letter), beside gen_stream's
# truncated ones.
MALFORMED = [
    (b"L-bad-1", b""),
    (b"L-bad-2", b"not json at all"),
    (b"L-bad-3", b"\xff\xfe\x00\x01binary"),
    (b"L-bad-4", b"[1, 2, 3]"),
    (b"L-bad-5", b"{}"),
    (None, b'{"event_id": "e", "lead_id": "\xc3\x28", "ts": 1795000000000, '
           b'"channel": "web", "type": "page_view"}'),
    (b"L-bad-7", b"[" * 5000 + b"]" * 5000),
    (b"L-bad-8", json.dumps({"event_id": "e" * 200, "lead_id": "L-bad-8",
                             "ts": 1795000000000, "channel": "web",
                             "type": "page_view"}).encode()),
    (b"L-bad-9", json.dumps({"event_id": "e", "lead_id": "L-bad-9", "ts": "yesterday",
                             "channel": "web", "type": "page_view"}).encode()),
    (b"L-bad-10", json.dumps({"event_id": "e", "lead_id": "L-bad-10", "ts": 1795000000000,
                              "channel": "web", "type": "page_view",
                              "props": {"x": "y" * 100000}}).encode()),
]


def asan_build():
    try:
        with open(os.path.join(build_dir(), "CMakeCache.txt")) as f:
            return any(line.strip() == "FN_SANITIZE:BOOL=ON" for line in f)
    except OSError:
        return False


def lsan_active(env):
    """True when funneld carries AddressSanitizer and its leak check is on: ASan's help=1
    lists its flags with their values before `--version` runs."""
    out = subprocess.run([os.path.join(build_dir(), "funneld"), "--version"], env=env,
                         capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    return (out.returncode == 0 and "Available flags for AddressSanitizer" in text and
            re.search(r"\bdetect_leaks\b", text) is not None)


def valgrind_findings(text):
    """What the valgrind log says: (errors, definitely lost bytes, indirectly lost bytes,
    whether the leak summary was printed at all)."""
    errors = re.findall(r"ERROR SUMMARY: ([\d,]+) errors", text)
    lost = {}
    for kind in ("definitely", "indirectly"):
        m = re.findall(kind + r" lost: ([\d,]+) bytes", text)
        lost[kind] = int(m[-1].replace(",", "")) if m else 0
    freed = "All heap blocks were freed" in text
    summary = freed or "LEAK SUMMARY" in text
    n_errors = int(errors[-1].replace(",", "")) if errors else None
    return n_errors, lost["definitely"], lost["indirectly"], summary


def metrics_ok(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            return r.status == 200 and b"funneld_" in r.read()
    except OSError:
        return False


def main():
    check = Check("test_valgrind_e2e")
    asan = asan_build()
    env_extra = {}
    wrapper = []
    if asan:
        opts = os.environ.get("ASAN_OPTIONS", "")
        opts = ":".join(o for o in opts.split(":") if o and not o.startswith("detect_leaks="))
        env_extra["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "detect_leaks=1"
        probe = dict(os.environ, **env_extra)
        probe["ASAN_OPTIONS"] += ":help=1"
        if not lsan_active(probe):
            check.true(False, "the ASan build of funneld runs with LeakSanitizer on")
            check.done()
        print("ASan build: valgrind cannot run it; relying on LeakSanitizer "
              "(detect_leaks=1, a leak makes the exit code nonzero)", flush=True)
    elif not shutil.which("valgrind"):
        check.true(False, "valgrind is installed (bash deploy/install-deps.sh)")
        check.done()
    port = free_port()
    st = Stack("valgrind", partitions=2)
    try:
        if not asan:
            vlog = os.path.join(st.tmp, "valgrind.log")
            # e.g. FUNNELD_VALGRIND_EXTRA=--show-leak-kinds=all to see the reachable blocks
            wrapper = VALGRIND + os.environ.get("FUNNELD_VALGRIND_EXTRA", "").split() + \
                [f"--log-file={vlog}"]
        # Under valgrind every thread is slow: generous group timeouts, or the broker
        # evicts the member while it works.
        st.cfg["kafka"]["properties"]["session.timeout.ms"] = "45000"
        st.cfg["kafka"]["properties"]["max.poll.interval.ms"] = "300000"
        st.cfg["http"] = {"listen": f"127.0.0.1:{port}"}
        with open(st.config_path, "w") as f:
            json.dump(st.cfg, f, indent=1)

        stream = gen_stream(N_EVENTS, 300, seed=7, dup_rate=0.02, bad_rate=0.02)
        half = len(stream) // 2
        first, second = stream[:half] + MALFORMED[:5], stream[half:] + MALFORMED[5:]
        bad = 0
        for _, v in first + second:
            try:
                json.loads(v)
            except (ValueError, RecursionError):
                bad += 1

        os.environ.update(env_extra)
        started = time.time()
        p = st.start(wrapper=wrapper)
        check.true(wait_for(lambda: "assigned" in st.log_of(p), 180),
                   "funneld joined the group")
        st.produce(first)

        # A reload builds a second set of funnels and frees the first.
        cfg2 = json.loads(json.dumps(st.cfg))
        cfg2["funnels"] = cfg2["funnels"][:1]
        with open(st.config_path, "w") as f:
            json.dump(cfg2, f, indent=1)
        p.send_signal(signal.SIGHUP)
        check.true(wait_for(lambda: "configuration generation 2 applied" in st.log_of(p), 120),
                   "SIGHUP reload applied")
        st.produce(second)
        check.true(wait_drained(st, timeout=240), "input drained")
        check.true(metrics_ok(port), "/metrics answered")
        dlq = st.consume(st.topics["dlq"], expect=bad, idle=3, timeout=60)
        check.true(len(dlq) >= bad, f"malformed messages dead-lettered ({len(dlq)} >= {bad})")

        t0 = time.time()
        rc = st.stop(p, timeout=180)
        print(f"{len(first) + len(second)} messages ({bad} not JSON), exit {rc} "
              f"{time.time() - t0:.1f}s after SIGTERM, {time.time() - started:.0f}s in all",
              flush=True)
        check.eq(rc, 0, "exit code after SIGTERM")
        log = st.log_of(p)
        consumed = re.findall(r"stopping: .* consumed (\d+)", log)
        check.eq(int(consumed[-1]) if consumed else None, len(first) + len(second),
                 "every message consumed before the stop")
        if asan:
            check.true(all(s not in log for s in ("LeakSanitizer", "AddressSanitizer",
                                                  "runtime error:")),
                       "no sanitizer report in the log")
        else:
            with open(vlog) as f:
                vtext = f.read()
            errors, definite, indirect, summary = valgrind_findings(vtext)
            print(f"valgrind: {errors} errors, definitely lost {definite} B, "
                  f"indirectly lost {indirect} B (log {vlog})", flush=True)
            check.true(summary, "valgrind printed its leak summary")
            check.eq(errors, 0, "valgrind errors")
            check.eq(definite, 0, "definitely lost bytes")
            check.eq(indirect, 0, "indirectly lost bytes")
            if errors or definite or indirect:
                sys.stdout.write(vtext[-20000:])
        if check.failed:
            sys.stdout.write(log[-5000:])
    finally:
        st.close()
    check.done()


if __name__ == "__main__":
    main()
