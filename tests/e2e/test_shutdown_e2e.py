"""test_shutdown_e2e.py — SIGTERM with Redis unresponsive (SPEC §6): funneld is pointed at a
"Redis" that accepts connections and never answers, fed events, then stopped. It must exit
(after its bounded drain) with code 0, and commit nothing it did not finish: the whole input
is still uncommitted, so the next daemon processes it.
"""
import json
import socket
import threading
import time

from harness import Check, Stack, gen_stream, group_lag


def silent_server():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    conns = []

    def accept():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            conns.append(c)  # keep it open, read nothing, answer nothing

    threading.Thread(target=accept, daemon=True).start()
    return srv, conns


def main():
    check = Check("test_shutdown_e2e")
    srv, conns = silent_server()
    port = srv.getsockname()[1]
    st = Stack("shutdown", partitions=3)
    try:
        st.cfg["redis"]["url"] = f"redis://127.0.0.1:{port}/0"
        with open(st.config_path, "w") as f:
            json.dump(st.cfg, f)
        stream = gen_stream(500, 50, seed=5, dup_rate=0, bad_rate=0)
        st.produce(stream)
        p = st.start(unset=("FUNNELD_REDIS_URL",))
        deadline = time.time() + 60
        while "assigned" not in st.log_of(p) and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(2)
        check.true(len(conns) >= 1, "funneld connected to the silent Redis")
        started = time.time()
        rc = st.stop(p, timeout=90)
        took = time.time() - started
        check.eq(rc, 0, "exit code after SIGTERM")
        check.true(took < 60, f"exited within the drain deadline plus shutdown ({took:.1f}s)")
        check.eq(group_lag(st.brokers, st.name, st.input), len(stream),
                 "nothing unfinished was committed")
        print(f"exited {took:.1f}s after SIGTERM")
    finally:
        st.close()
        srv.close()
    check.done()


if __name__ == "__main__":
    main()
