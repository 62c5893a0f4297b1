"""test_hostile_e2e.py — the hostile corpus (tests/hostile: truncated, 10,000-deep, 1 MiB
strings, NUL bytes, invalid UTF-8, numbers and timestamps out of range, ids with {}:* and
newlines, duplicate keys, wrong types, huge props and keys, tombstones) interleaved with a
valid stream, through one funneld run on a real broker and Redis:

- every rejected case is dead-lettered exactly once with the code the manifest names, its
  key and value unchanged (or, for a dead letter the producer refuses as too large, cut with
  funneld.truncated naming the original sizes), and only funneld's three headers;
- every hostile-looking case SPEC allows (ids with {}:*, newlines, control characters, keys
  that disagree with lead_id, -0, leap seconds, ...) is processed: its transitions carry the
  exact lead id, are keyed by it, and its lead hash stores it;
- the valid stream's transitions equal those of a run of the valid stream alone (ids and
  contents but emitted_at);
- nothing of a rejected message reached Redis, every key stays under the stack's prefix and
  hash tag, and the daemon is alive at the end and exits 0 on SIGTERM.
"""
import json
import os
import random
import re
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from harness import REPO, Check, Stack, gen_stream, group_lag

sys.path.insert(0, os.path.join(REPO, "tests", "hostile"))
import generate  # noqa: E402

CUT = 65536  # what a dead letter too large for the producer keeps of its key and value
VALID = gen_stream(3000, 300, seed=66, dup_rate=0, bad_rate=0)
CORPUS = generate.load()


def records(with_corpus):
    """(key, value, headers, case or None): the valid stream in order, the corpus mixed in at
    deterministic places."""
    out = [(k, v, [], None) for k, v in VALID]
    if with_corpus:
        rnd = random.Random(5)
        for c in CORPUS:
            out.insert(rnd.randrange(len(out) + 1), (c.key, c.value, c.headers, c))
    return out


def produce(st, recs):
    prod = Producer({"bootstrap.servers": st.brokers, "linger.ms": 5,
                     "enable.idempotence": True, "message.max.bytes": 10 * 1024 * 1024})
    for key, value, headers, _ in recs:
        while True:
            try:
                prod.produce(st.input, value=value, key=key, headers=headers or None)
                break
            except BufferError:
                prod.poll(0.1)
        prod.poll(0)
    assert prod.flush(60) == 0, "input not fully produced"


def allow_big_input(st):
    """The input topic takes messages up to 8 MiB (the broker's default is 1 MiB), so the
    1 MiB-string cases reach funneld; the dead-letter topic keeps the broker's default."""
    admin = AdminClient({"bootstrap.servers": st.brokers})
    res = ConfigResource(ConfigResource.Type.TOPIC, st.input,
                         set_config={"max.message.bytes": str(8 * 1024 * 1024)})
    for f in admin.alter_configs([res]).values():
        f.result(30)
    time.sleep(1)


def drain(st, p, timeout=300):
    """Waits until the group committed the whole input, or the daemon died."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if p.poll() is not None:
            return False
        if group_lag(st.brokers, st.name, st.input) == 0:
            return True
        time.sleep(1)
    return False


def redis_state(st):
    """{stored lead id (bytes): lead key} and the list of every key under the prefix."""
    keys = [k.decode() for k in st.redis.scan_iter(f"{st.name}:*", count=1000)]
    leads = {}
    for k in keys:
        if re.fullmatch(re.escape(st.name) + r":\{\d+\}:lead:[0-9a-f]{32}", k):
            leads[st.redis.hget(k, "id")] = k
    return leads, keys


def run(check, label, with_corpus):
    st = Stack("hostile" if with_corpus else "hostile-ref", partitions=3)
    try:
        if with_corpus:
            allow_big_input(st)
        recs = records(with_corpus)
        produce(st, recs)
        p = st.start()
        t0 = time.time()
        drained = drain(st, p)
        check.true(drained, f"{label}: input drained with the daemon alive (rc {p.poll()})")
        print(f"{label}: {len(recs)} messages drained in {time.time() - t0:.1f} s", flush=True)
        out = st.consume(st.topics["transitions"], idle=3)
        dlq = st.consume(st.topics["dlq"], idle=3) if with_corpus else []
        leads, keys = redis_state(st)
        check.true(p.poll() is None, f"{label}: daemon alive after the input")
        rc = st.stop(p)
        check.eq(rc, 0, f"{label}: exit code after SIGTERM")
        if rc != 0 or not drained:
            print(st.log_of(p)[-3000:])
        return out, dlq, leads, keys, st.name
    finally:
        st.close()


def check_dead_letters(check, dlq, source_re):
    rejected = [c for c in CORPUS if not c.accept]
    check.eq(len(dlq), len(rejected), "one dead letter per rejected case, nothing else")
    by_key_value = {}
    for m in dlq:
        by_key_value.setdefault((m.key(), m.value()), []).append(m)
    for c in rejected:
        key, value = c.key, c.value
        if c.truncated:
            key = key[:CUT] if key is not None else None
            value = value[:CUT]
        ms = by_key_value.get((key, value), [])
        check.eq(len(ms), 1, f"dead letters of {c.name}")
        if len(ms) != 1:
            continue
        h = ms[0].headers() or []
        names = sorted(k for k, _ in h)
        want = ["funneld.error", "funneld.reason", "funneld.source"]
        if c.truncated:
            want = sorted(want + ["funneld.truncated"])
        check.eq(names, want, f"{c.name}: only funneld's headers")
        h = {k: v.decode("ascii", "replace") for k, v in h}
        check.eq(h.get("funneld.error"), c.expect, f"{c.name}: error code ({h.get('funneld.reason')})")
        reason = h.get("funneld.reason", "")
        check.true(0 < len(reason) < 256 and all(0x20 <= ord(ch) < 0x7f for ch in reason),
                   f"{c.name}: reason is short printable ASCII: {reason!r}")
        check.true(re.fullmatch(source_re, h.get("funneld.source", "")),
                   f"{c.name}: source {h.get('funneld.source')}")
        if c.truncated:
            klen = 0 if c.key is None else len(c.key)
            check.eq(h.get("funneld.truncated"), f"key={klen} value={len(c.value)}",
                     f"{c.name}: original sizes")


def check_accepted(check, out, leads):
    by_lead = {}
    for m in out:
        e = json.loads(m.value())
        by_lead.setdefault(e["lead_id"], []).append((m.key(), e))
    for c in [c for c in CORPUS if c.accept]:
        got = by_lead.get(c.lead_id, [])
        check.eq(len(got), c.transitions, f"{c.name}: transitions of {c.lead_id!r}")
        for key, e in got:
            check.eq(key, c.lead_id.encode(), f"{c.name}: transition keyed by the lead id")
            check.eq(e["type"], "stage_changed", f"{c.name}: transition type")
            check.true(e["to"] in ("awareness", "attention"), f"{c.name}: entered stage {e['to']}")
        check.true(c.lead_id.encode() in leads, f"{c.name}: lead hash stores the exact id")


def check_redis(check, leads, keys, prefix, want_ids):
    check.eq(set(leads), want_ids, "lead hashes are exactly those of accepted messages")
    leaked = sorted(i for i in leads if i.startswith(b"HX-") or i.startswith(b"H-"))
    check.eq(leaked, [], "no lead hash from a rejected message")
    # per-lead keys carry the lead only as its hash, inside the shard's hash tag
    odd = [k for k in keys if not re.fullmatch(
        re.escape(prefix) + r":(\{\d+\}:(lead|seen|out):[0-9a-f]{32}|\{\d+\}:[a-z]+(:.*)?|"
        r"[a-z]+(:.*)?)", k)]
    check.eq(odd, [], "every key is prefix:{shard}:… with a lead only as its hash")
    texts = [c.lead_id for c in CORPUS if c.accept and len(c.lead_id) >= 3]
    rests = [re.sub(re.escape(prefix) + r":(\{\d+\}:)?", "", k, count=1) for k in keys]
    check.eq([r for r in rests if "\n" in r or any(t in r for t in texts)], [],
             "no lead id text in any key")


def run_topic_refusal(check):
    """A dead letter the producer accepts but the DLQ topic refuses (its max.message.bytes
    below the producer's message.max.bytes): cut in the delivery report instead of produced
    again unchanged forever."""
    st = Stack("hostile-refusal", partitions=1)
    try:
        admin = AdminClient({"bootstrap.servers": st.brokers})
        res = ConfigResource(ConfigResource.Type.TOPIC, st.topics["dlq"],
                             set_config={"max.message.bytes": "200000"})
        for f in admin.alter_configs([res]).values():
            f.result(30)
        time.sleep(1)
        big = generate.GEN["many-props-20000"]()  # 289,023 bytes
        produce(st, [(b"big", big, [], None)] + [(k, v, [], None) for k, v in VALID[:50]])
        p = st.start()
        check.true(drain(st, p, 120), "refusal: input drained with the daemon alive")
        dlq = st.consume(st.topics["dlq"], expect=1, idle=3)
        check.eq(len(dlq), 1, "refusal: one dead letter")
        if dlq:
            h = {k: v.decode() for k, v in dlq[0].headers() or []}
            check.eq(h.get("funneld.error"), "oversize", "refusal: code")
            check.eq(h.get("funneld.truncated"), f"key=3 value={len(big)}", "refusal: sizes")
            check.eq((dlq[0].key(), dlq[0].value()), (b"big", big[:CUT]), "refusal: cut bytes")
        check.eq(st.stop(p), 0, "refusal: exit code after SIGTERM")
        check.true("too large" in st.log_of(p), "refusal: the broker refused the whole letter")
    finally:
        st.close()


def transitions_of(out, valid_leads):
    res = {}
    for m in out:
        e = json.loads(m.value())
        if e["lead_id"] in valid_leads:
            e.pop("emitted_at")
            res[e["id"]] = e
    return res


def main():
    check = Check("test_hostile_e2e")
    print(f"corpus: {len(CORPUS)} cases, {sum(c.accept for c in CORPUS)} to accept; "
          f"valid stream: {len(VALID)} events", flush=True)
    valid_leads = {json.loads(v)["lead_id"] for _, v in VALID}
    ref_out, _, ref_leads, _, _ = run(check, "valid stream alone", False)
    out, dlq, leads, keys, prefix = run(check, "valid stream + corpus", True)

    ref = transitions_of(ref_out, valid_leads)
    got = transitions_of(out, valid_leads)
    check.true(len(ref) > 1000, f"reference run has transitions ({len(ref)})")
    check.eq(len(got), len(ref), "valid stream: as many transitions as alone")
    check.eq(sorted(got), sorted(ref), "valid stream: same transition ids as alone")
    diff = [i for i in ref if got.get(i) != ref[i]]
    check.eq(diff[:5], [], "valid stream: same transition contents as alone")
    check.eq(len(out), len(ref_out) + sum(c.transitions for c in CORPUS if c.accept),
             "no transition besides the valid stream's and the accepted cases'")

    check_dead_letters(check, dlq, re.escape(prefix) + r"\.touchpoints/\d+/\d+")
    check_accepted(check, out, leads)
    want_ids = {lid.encode() for lid in valid_leads} | \
        {c.lead_id.encode() for c in CORPUS if c.accept}
    check_redis(check, leads, keys, prefix, want_ids)
    check.eq(set(ref_leads), {lid.encode() for lid in valid_leads}, "reference run's leads")
    run_topic_refusal(check)
    check.done()


if __name__ == "__main__":
    main()
