"""test_loop_stall_e2e.py — a stalled loop is not a dead Redis (issue 16, item 9).

When the daemon's loop is held (a rebalance callback waiting for the group coordinator, a
stopped or starved process), the replies Redis sends meanwhile wait unread in the socket;
the Redis watchdog must not take that time for Redis's silence and drop a healthy
connection. Here the loop is held from outside, deterministically: with Redis frozen
(SIGSTOP) a step is sent and stays outstanding; the daemon itself is then stopped, Redis
resumed (its reply lands in the daemon's socket), and the daemon resumed after longer than
the watchdog's reply timeout. It must read the reply and go on on the same connection:
no reconnect in its log, everything processed and committed.

What it does not show: that the rebalance callback's own waits are bounded (they are, by
COORDINATOR_WAIT_MS in daemon/input/kafka_in.c); this test stalls the loop with SIGSTOP
instead of a slow coordinator.
"""
import shutil
import signal
import tempfile
import time


from harness import (Check, Stack, free_port, gen_stream, metrics, start_redis, wait_drained,
                     wait_for)

STALL_S = 8  # longer than the watchdog's 5 s reply timeout (store.c REPLY_TIMEOUT_MS)


def main():
    check = Check("test_loop_stall_e2e")
    hport = free_port()
    st = Stack("loop-stall", partitions=1)
    data, rport = tempfile.mkdtemp(prefix="funneld-redis-"), free_port()
    srv = start_redis(rport, data)
    st.use_redis(rport, hport)  # the test's own server
    stream = gen_stream(201, 50, seed=31, dup_rate=0, bad_rate=0)
    consumed = lambda: metrics(hport).get(  # noqa: E731
        f'funneld_events_consumed_total{{topic="{st.input}"}}', 0)
    stopped = []
    try:
        st.produce(stream[:200])
        a = st.start(unset=("FUNNELD_REDIS_URL",))
        check.true(wait_drained(st, timeout=120), "the first batch is processed")
        before = st.log_of(a)

        srv.send_signal(signal.SIGSTOP)
        stopped.append(srv)
        st.produce(stream[200:])
        check.true(wait_for(lambda: consumed() >= 201, 30, every=0.05),
                   "the next event was consumed (its step is outstanding)")
        a.send_signal(signal.SIGSTOP)
        stopped.append(a)
        srv.send_signal(signal.SIGCONT)
        stopped.remove(srv)
        time.sleep(STALL_S)  # the reply waits in the stopped daemon's socket
        a.send_signal(signal.SIGCONT)
        stopped.remove(a)

        check.true(wait_drained(st, timeout=60), "the event is processed and committed")
        after = st.log_of(a)[len(before):]
        dropped = [ln for ln in after.splitlines()
                   if '"component":"redis"' in ln and ("reconnect" in ln or "disconnected" in ln)]
        check.eq(dropped, [], "the connection is kept across the stall (no reconnect)")
        check.eq(st.stop(a), 0, "exit code")
    finally:
        for p in stopped:
            p.send_signal(signal.SIGCONT)
        st.close()
        srv.terminate()
        srv.wait()
        shutil.rmtree(data, ignore_errors=True)
    check.done()


if __name__ == "__main__":
    main()
