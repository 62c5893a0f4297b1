"""test_commit_forward_e2e.py — a partition handed back to the same daemon never has its
committed offset moved backwards (issue 16, item 10).

One funneld (A) consumes a 2-partition topic with a Redis of its own. Once it has committed
a first batch, its Redis is frozen (SIGSTOP), so the steps of a second batch stay in flight.
A second group member (B, a plain consumer standing in for another daemon) joins and takes
one partition; a third batch is produced, and B commits that partition at its end and
leaves, which hands the partition back to A. Only then is Redis resumed: A's steps of the
second batch, consumed in its earlier assignment of that partition, finish after it was
given back. They must not count for the new assignment: the group's committed offsets,
sampled all along, may never go down, and the group must end with everything committed.
"""
import shutil
import signal
import tempfile
import threading
import time

from confluent_kafka import Consumer, TopicPartition

from harness import (Check, Stack, free_port, gen_stream, group_lag, metrics, start_redis,
                     wait_drained, wait_for)


class Sampler:
    """Reads the group's committed offsets every 0.1 s in a thread; remembers every time a
    partition's offset went down."""

    def __init__(self, st):
        self.c = Consumer({"bootstrap.servers": st.brokers, "group.id": st.name,
                           "enable.auto.commit": False})
        md = self.c.list_topics(st.input, timeout=10)
        self.parts = [TopicPartition(st.input, p) for p in md.topics[st.input].partitions]
        self.last, self.backwards, self.samples = {}, [], 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            try:
                got = self.c.committed(self.parts, timeout=10)
            except Exception:  # a rebalance or a slow answer: the next sample
                got = []
            for tp in got:
                if tp.offset < 0:
                    continue
                before = self.last.get(tp.partition, -1)
                if tp.offset < before:
                    self.backwards.append((tp.partition, before, tp.offset))
                self.last[tp.partition] = tp.offset
            self.samples += 1
            time.sleep(0.1)

    def close(self):
        self.stop.set()
        self.t.join()
        self.c.close()


def assigned_lines(st, p, n):
    return lambda: st.log_of(p).count(f"assigned {n} partition(s)")


def main():
    check = Check("test_commit_forward_e2e")
    hport = free_port()
    st = Stack("commit-forward", partitions=2)
    data, rport = tempfile.mkdtemp(prefix="funneld-redis-"), free_port()
    srv = start_redis(rport, data)
    st.use_redis(rport, hport)  # the test's own server
    stream = gen_stream(900, 150, seed=23, dup_rate=0, bad_rate=0)
    batch1, batch2, batch3 = stream[:300], stream[300:600], stream[600:]
    sampler, b, frozen = None, None, False
    consumed = lambda: metrics(hport).get(  # noqa: E731
        f'funneld_events_consumed_total{{topic="{st.input}"}}', 0)
    try:
        st.produce(batch1)
        a = st.start(unset=("FUNNELD_REDIS_URL",))
        check.true(wait_drained(st, timeout=120), "A commits the first batch")
        sampler = Sampler(st)

        srv.send_signal(signal.SIGSTOP)
        frozen = True
        st.produce(batch2)
        check.true(wait_for(lambda: consumed() >= len(batch1) + len(batch2), 60),
                   "A consumed the second batch (its steps are stuck in flight)")

        # B joins: one partition moves to it while A's steps of it are in flight
        given = []
        b = Consumer({"bootstrap.servers": st.brokers, "group.id": st.name,
                      "enable.auto.commit": False, "auto.offset.reset": "earliest",
                      "session.timeout.ms": 6000})
        b.subscribe([st.input], on_assign=lambda c, parts: given.extend(parts))
        deadline = time.time() + 60
        while not given and time.time() < deadline:
            b.poll(0.2)
        check.eq(len(given), 1, "B got one partition")
        check.true(wait_for(lambda: assigned_lines(st, a, 1)() >= 1, 60),
                   "A kept the other one")
        st.produce(batch3)
        ends = []
        for tp in given:
            _, hi = b.get_watermark_offsets(tp, timeout=10, cached=False)
            ends.append(TopicPartition(st.input, tp.partition, hi))
        b.commit(offsets=ends, asynchronous=False)
        b.close()  # leaves the group: the partition goes back to A
        b = None
        check.true(wait_for(lambda: assigned_lines(st, a, 2)() >= 2, 60),
                   "A got both partitions back")

        srv.send_signal(signal.SIGCONT)
        frozen = False
        check.true(wait_for(lambda: group_lag(st.brokers, st.name, st.input) == 0, 90),
                   "the group ends with everything committed")
        time.sleep(2)  # a few more samples after the last commit
        check.eq(st.stop(a), 0, "A exits 0")
    finally:
        if sampler:
            sampler.close()
        if b:
            b.close()
        if frozen:
            srv.send_signal(signal.SIGCONT)
        st.close()
        srv.terminate()
        srv.wait()
        shutil.rmtree(data, ignore_errors=True)
    check.true(sampler and sampler.samples > 20, "the committed offsets were sampled")
    check.eq(sampler.backwards if sampler else None, [],
             "no committed offset ever went down (partition, before, after)")
    print(f"samples {sampler.samples if sampler else 0}, last committed {sampler.last}")
    check.done()


if __name__ == "__main__":
    main()
