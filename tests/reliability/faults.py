"""The faults, one after another, each recorded with when it was on and what it did.

Blocking actions (signals, stack.sh, readiness polls) run in threads so the load never pauses.
After each fault the campaign waits until the system has recovered by itself: a clean melt sent
after the fault ended is answered CLEARED (a bounded wait that fails the campaign if it never
happens; how long it took is a figure, never an assertion).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

from devkit.load import MeltClass, SteadyLoad
from devkit.mint_proxy import Fault
from tests.reliability.rig import Rig, run_topics

RECOVERY_TIMEOUT_S = 180.0


@dataclass
class Phase:
    fault: str
    injected: str
    times: int = 0
    start: float = field(default_factory=time.time)  # unix seconds
    end: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)


async def recovered(load: SteadyLoad, since: float) -> float:
    """Seconds from `since` until a clean melt sent after it was answered CLEARED."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while time.monotonic() < deadline:
        probe = await load.send_melt(MeltClass.CLEAN)
        for _ in range(20):
            answers = load.book.answers.get(probe.request_id)
            if answers:
                if answers[0].verdict == "CLEARED":
                    return round(answers[0].seen_at - since, 2)
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(0.5)
    raise AssertionError(f"not recovered {RECOVERY_TIMEOUT_S} s after a fault")


def _backlog_done(load: SteadyLoad, start: float, end: float) -> float | None:
    """When (unix) the last of the requests sent in [start, end) was first answered."""
    sent = load.book.sent_between(start, end)
    firsts = [
        load.book.answers[m.request_id][0].seen_at
        for m in sent
        if m.request_id in load.book.answers
    ]
    return max(firsts) if firsts and len(firsts) == len(sent) else None


async def wait_backlog(load: SteadyLoad, start: float, end: float, timeout: float = 120.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = _backlog_done(load, start, end)
        if done is not None:
            return done
        await asyncio.sleep(0.25)
    raise AssertionError(f"requests sent during a fault unanswered {timeout} s later")


async def kill_workers(rig: Rig, load: SteadyLoad, rng: random.Random) -> Phase:
    """kill -9 of a random worker at a random moment, restarted at once (a supervisor's job)."""
    assert rig.fleet is not None
    phase = Phase("worker kill -9", "SIGKILL of a random worker, restarted at once")
    restarts = []
    for _ in range(rig.scale.worker_kills):
        await asyncio.sleep(rng.uniform(*rig.scale.kill_gap_s))
        victim = rng.randrange(len(rig.fleet))
        killed = time.time()
        await asyncio.to_thread(rig.fleet.kill, victim)
        launched = time.time()
        await asyncio.to_thread(rig.fleet.restart, victim, wait=True, timeout=180.0)
        ready = time.time()
        done = await wait_backlog(load, killed - 0.5, ready)
        restarts.append(
            {
                "worker": victim,
                "ready_s": round(ready - launched, 2),
                "backlog_after_restart_s": round(done - launched, 2),
                "backlog_after_ready_s": round(done - ready, 2),
            }
        )
        phase.times += 1
    phase.figures["restarts"] = restarts
    phase.end = time.time()
    print(f"[{time.strftime('%H:%M:%S')}] campaign: {phase.fault} done {phase.figures}", flush=True)
    return phase


async def zombie(rig: Rig, load: SteadyLoad, rng: random.Random) -> Phase:
    """SIGSTOP a worker past its session timeout (its partitions move), then SIGCONT: whatever
    it had in hand it must not answer differently from the workers that took over."""
    assert rig.fleet is not None
    victim = rng.randrange(len(rig.fleet))
    phase = Phase("zombie worker", f"SIGSTOP {rig.scale.freeze_s:.0f} s (session 10 s), SIGCONT")
    await asyncio.to_thread(rig.fleet.freeze, victim)
    await asyncio.sleep(rig.scale.freeze_s)
    thawed = time.time()
    await asyncio.to_thread(rig.fleet.thaw, victim)
    phase.times = 1
    await asyncio.sleep(rig.scale.settle_s)
    phase.figures["recovery_s"] = await recovered(load, thawed)
    phase.figures["zombie_exits"] = list(rig.fleet.members[victim].unplanned_exits)
    phase.end = time.time()
    print(f"[{time.strftime('%H:%M:%S')}] campaign: {phase.fault} done {phase.figures}", flush=True)
    return phase


async def kill_kafka_node(rig: Rig, load: SteadyLoad, rng: random.Random) -> Phase:
    assert rig.cluster is not None and rig.settings is not None
    node = rng.randint(1, 3)
    phase = Phase(
        "Kafka node kill -9", f"SIGKILL of one of 3 nodes, back {rig.scale.node_down_s:.0f} s later"
    )
    await asyncio.to_thread(rig.cluster.kill, node)
    await asyncio.sleep(rig.scale.node_down_s)
    await asyncio.to_thread(rig.cluster.start, node)
    phase.times = 1
    topics = await run_topics(rig.settings, rig.cluster.bootstrap)
    phase.figures["in_sync_after_start_s"] = round(await rig.cluster.wait_in_sync(topics), 2)
    phase.figures["recovery_s"] = await recovered(load, time.time())
    phase.end = time.time()
    print(f"[{time.strftime('%H:%M:%S')}] campaign: {phase.fault} done {phase.figures}", flush=True)
    return phase


async def rolling_restart(rig: Rig, load: SteadyLoad, rng: random.Random) -> Phase:
    assert rig.fleet is not None
    phase = Phase("rolling restart", "SIGTERM, start, ready: each worker in turn")
    for index in range(len(rig.fleet)):
        await asyncio.to_thread(rig.fleet.stop, index)
        await asyncio.to_thread(rig.fleet.restart, index, wait=True, timeout=180.0)
        phase.times += 1
        await asyncio.sleep(rig.scale.settle_s / 2)
    phase.end = time.time()
    print(f"[{time.strftime('%H:%M:%S')}] campaign: {phase.fault} done {phase.figures}", flush=True)
    return phase


async def sink_outage(rig: Rig, load: SteadyLoad, rng: random.Random) -> Phase:
    assert rig.sink is not None
    phase = Phase(
        "ClickHouse sink down",
        f"SIGKILL of `proofrecon sink`, restarted {rig.scale.sink_down_s:.0f} s later",
    )
    await asyncio.to_thread(rig.sink.kill)
    await asyncio.sleep(rig.scale.sink_down_s)
    started = time.monotonic()
    await asyncio.to_thread(rig.sink.start, 180.0)
    phase.times = 1
    phase.figures["sink_ready_s"] = round(time.monotonic() - started, 2)
    phase.end = time.time()
    print(f"[{time.strftime('%H:%M:%S')}] campaign: {phase.fault} done {phase.figures}", flush=True)
    return phase


async def mint_faults(rig: Rig, load: SteadyLoad, rng: random.Random) -> list[Phase]:
    assert rig.proxy is not None
    phases = []
    for fault, hold in rig.scale.mint_faults:
        how = {
            Fault.DOWN: "nothing listens (connections refused)",
            Fault.SLOW: "every answer 10 s late",
            Fault.RATE_LIMIT: "429 to everything",
            Fault.GARBAGE: "200 with broken answers",
        }[fault]
        phase = Phase(f"mint {fault.value}", f"fault proxy: {how}, {hold:.0f} s")
        await asyncio.to_thread(rig.proxy.set_fault, fault, 10.0)
        await asyncio.sleep(hold)
        ended = time.time()
        await asyncio.to_thread(rig.proxy.set_fault, Fault.NONE)
        phase.times = 1
        phase.figures["fault_s"] = hold
        phase.figures["recovery_s"] = await recovered(load, ended)
        phase.end = time.time()
        phases.append(phase)
        print(
            f"[{time.strftime('%H:%M:%S')}] campaign: {phase.fault} done {phase.figures}",
            flush=True,
        )
        await asyncio.sleep(rig.scale.settle_s)
    return phases
