"""test_redis_late_e2e.py — Redis not there yet (SPEC §6: reconnect with backoff): funneld
starts against a port where no Redis listens, so every connect is refused; events wait.
A redis-server then starts on that port, and funneld must connect, process everything and
commit it — a refused connect must never leave it hanging.
"""
import json
import subprocess
import time

from harness import Check, Stack, free_port, gen_stream, wait_drained


def main():
    check = Check("test_redis_late_e2e")
    port = free_port()
    st = Stack("redis-late", partitions=3)
    srv = None
    try:
        st.cfg["redis"]["url"] = f"redis://127.0.0.1:{port}/0"
        with open(st.config_path, "w") as f:
            json.dump(st.cfg, f)
        stream = gen_stream(2000, 200, seed=9, dup_rate=0, bad_rate=0)
        st.produce(stream)
        p = st.start(unset=("FUNNELD_REDIS_URL",))
        time.sleep(8)  # several refused attempts
        check.true(p.poll() is None, "funneld keeps running without Redis")
        srv = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no",
                                "--dir", st.tmp], stdout=subprocess.DEVNULL)
        check.true(wait_drained(st, timeout=120), "everything processed once Redis is up")
        out = st.transitions(idle=3)
        check.true(len(out) > 0, f"transitions emitted ({len(out)})")
        check.eq(st.stop(p), 0, "exit code")
        print(f"transitions {len(out)}")
    finally:
        st.close()
        if srv:
            srv.terminate()
            srv.wait()
    check.done()


if __name__ == "__main__":
    main()
