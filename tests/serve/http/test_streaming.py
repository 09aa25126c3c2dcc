"""An answer run's slot: given back before the run's end is handed over."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from core.types import Principal
from serve.http.limits import AnswerGate
from serve.http.streaming import AnswerRun

REPLY = object()


class InstantService:
    """Answers at once; the run's own bookkeeping is what is under test."""

    def answer(self, principal: Principal, exchange: Any, **_: Any) -> Any:
        return REPLY

    def abandoned(self, principal: Principal, exchange: Any) -> None:
        raise AssertionError("the run was not abandoned")


def test_the_slot_is_free_by_the_time_the_reply_is_handed_over() -> None:
    gate = AnswerGate(1)
    lease = gate.take("test")
    give_back = lease.release

    def slowly() -> None:  # a thread the machine is slow to schedule
        time.sleep(0.3)
        give_back()

    lease.release = slowly  # type: ignore[method-assign]
    run = AnswerRun(InstantService(), lease, Principal("ann", (), ("employee",)),
                    exchange=None)  # type: ignore[arg-type]

    async def ask() -> tuple[Any, int]:
        run.start()
        reply = await run.reply()
        return reply, gate.busy()

    reply, busy = asyncio.run(ask())
    assert reply is REPLY
    assert busy == 0  # so the client's next question gets the slot, not a 503
    gate.take("next").release()
