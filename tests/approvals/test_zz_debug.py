import asyncio, sys
import pytest
import orjson
from kubegate.approvals.service import ApprovalService
from kubegate.approvals.stage import ApprovalStage
from tests.approvals.builders import BOB, cancel, held, make_flow

BODY = orjson.dumps({"propagationPolicy": "Background"})

def dump(tag):
    print("HANG at", tag, file=sys.stderr)
    for t in asyncio.all_tasks():
        t.print_stack(file=sys.stderr)

@pytest.mark.parametrize("n", range(40))
async def test_dbg(service: ApprovalService, n: int) -> None:
    if service.store.dialect != "postgresql":
        return
    stage = ApprovalStage(service)
    steps = []
    async def step(tag, coro):
        try:
            async with asyncio.timeout(15):
                return await coro
        except TimeoutError:
            dump(tag); raise
    waiting, request_id = await step("held1", held(stage, service, body=BODY))
    await step("cancel1", cancel(waiting))
    await step("approve", service.approve(request_id, BOB))
    variant, new_id = await step("held2", held(stage, service, body=BODY, connection="prod"))
    await step("cancel2", cancel(variant))
    await step("exact", stage.on_request(make_flow(body=BODY)))
