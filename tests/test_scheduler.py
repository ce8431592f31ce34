"""Prioritised bounded concurrency."""

from __future__ import annotations

import asyncio

from pytest_bsa.engine.scheduler import PrioritySlots


def test_limit_and_priority_order() -> None:
    async def scenario() -> tuple[list[int], int]:
        slots = PrioritySlots(2)
        order: list[int] = []
        peak = 0
        gate = asyncio.Event()

        async def worker(priority: int) -> None:
            nonlocal peak
            async with slots.slot((priority, 0)):
                peak = max(peak, slots.in_use)
                order.append(priority)
                await gate.wait()

        first = [asyncio.create_task(worker(p)) for p in (50, 51)]
        await asyncio.sleep(0)
        waiting = [asyncio.create_task(worker(p)) for p in (9, 3, 7)]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(*first, *waiting)
        return order, peak

    order, peak = asyncio.run(scenario())
    assert order == [50, 51, 3, 7, 9]
    assert peak == 2


def test_cancelled_waiter_does_not_leak_a_slot() -> None:
    async def scenario() -> int:
        slots = PrioritySlots(1)
        hold = asyncio.Event()

        async def holder() -> None:
            async with slots.slot((0, 0)):
                await hold.wait()

        h = asyncio.create_task(holder())
        await asyncio.sleep(0)
        w = asyncio.create_task(holder())
        await asyncio.sleep(0)
        w.cancel()
        hold.set()
        await asyncio.gather(h, w, return_exceptions=True)
        return slots.in_use

    assert asyncio.run(scenario()) == 0
