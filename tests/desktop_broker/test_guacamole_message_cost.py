"""server.js judges every message an agent's or a viewer's browser sends (lib/agent-input.js, lib/view-only.js), in
the one event loop all Guacamole seats on the node share: a big message must cost next to nothing, so that nobody
can stall everyone else's sessions. The real modules under node; the websocket is an EventEmitter with close()."""

import json
import subprocess

from tests.support.guacamole_lite import SERVER_DIR

SCRIPT = r"""
const { EventEmitter } = require('events');
const { makeViewOnly } = require('./lib/view-only.js');
const { reportAgentInput } = require('./lib/agent-input.js');

function socket() {
    const ws = new EventEmitter();
    ws.closed = null;
    ws.close = (code) => { ws.closed = code; };
    ws.passed = [];
    return ws;
}
const big = Buffer.from('3.nop;'.repeat(Math.floor(1024 * 1024 / 6)));
const out = {};

const viewer = socket();
viewer.on('message', (data) => viewer.passed.push(data.toString()));
let dropped = 0;
makeViewOnly(viewer, (count) => { dropped += count; });
viewer.emit('message', Buffer.from('5.mouse,3.600,3.500,1.1;'), false);
viewer.emit('message', Buffer.from('4.sync,1.1;'), false);
out.viewerSmall = { passed: viewer.passed.slice(), dropped, closed: viewer.closed };
viewer.passed.length = 0;
let started = performance.now();
for (let i = 0; i < 20; i += 1) viewer.emit('message', big, false);
out.viewerBig = { ms: performance.now() - started, passed: viewer.passed.length, closed: viewer.closed };

const agent = socket();
const reports = [];
reportAgentInput(agent, (idleMs) => reports.push(idleMs));
started = performance.now();
for (let i = 0; i < 20; i += 1) agent.emit('message', big, false);
out.agentBigMs = performance.now() - started;
agent.emit('message', Buffer.from('4.sync,1.1;'), false);
setTimeout(() => {
    out.reportsWithoutInput = reports.length;
    agent.emit('message', Buffer.from('5.mouse,3.100,3.120,1.0;'), false);
    setTimeout(() => {
        out.reportsAfterMouse = reports.length;
        console.log(JSON.stringify(out));
    }, 50);
}, 50);
"""


def _run() -> dict:
    done = subprocess.run(["node", "-e", SCRIPT], cwd=SERVER_DIR, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_big_messages_cost_the_event_loop_next_to_nothing_and_the_filters_still_hold() -> None:
    """Before: twenty 1 MiB messages of `3.nop;` blocked the event loop 2.1 s (each parsed in full)."""
    out = _run()
    assert out["viewerSmall"] == {"passed": ["4.sync,1.1;"], "dropped": 1, "closed": None}
    assert out["viewerBig"]["passed"] == 0  # nothing of an oversized message reaches guacd
    assert out["viewerBig"]["closed"] == 1009
    assert out["viewerBig"]["ms"] < 100, out
    assert out["agentBigMs"] < 100, out
    assert (out["reportsWithoutInput"], out["reportsAfterMouse"]) == (0, 1)
