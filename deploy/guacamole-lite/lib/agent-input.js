'use strict';
/*
 * The policy's idle timeout ends a seat nobody uses. An X11 seat's display tells the gateway its own idle time; a
 * Guacamole seat's display is on the RDP or VNC host, so server.js tells the gateway when the agent's browser last
 * sent input: POST {SOHOGW_LAUNCH_URL}/input {launch_id, token_sha256, idle_ms}. Only `mouse`, `key` and `touch`
 * count: a page left open sends `nop` and answers `sync` for ever, and `size` follows the window, not a person.
 * Reports are throttled, leading and trailing: the first input after a quiet spell is reported at once, later ones
 * at most once per REPORT_MS, saying how long ago the last of them was. While a report is pending the gateway's idea
 * of the idle time stays under 2 x REPORT_MS (an idle timeout above that never ends a seat in use), and a typing
 * agent costs one request per REPORT_MS. A report due after the websocket closed is still sent: the input happened.
 * Intervals are measured on the monotonic clock (performance.now()): a wall-clock step back would hold reports back
 * for as long as the step.
 */
const REPORT_MS = 10000;

/*
 * Only the first instruction's opcode is read, in a few bytes, whatever the message's size: parsing a whole message
 * (up to 1 MiB) would stall the event loop every seat on the node shares. guacamole-common-js sends one instruction
 * per message, and an input instruction is under 100 bytes. guacd judges a malformed message; it is no evidence of a
 * person.
 */
const INPUT_PREFIXES = ['5.mouse,', '3.key,', '5.touch,'].map((prefix) => Buffer.from(prefix));

function carriesInput(data) {
    if (typeof data === 'string') data = Buffer.from(data.slice(0, 16));
    if (!Buffer.isBuffer(data)) return false;
    return INPUT_PREFIXES.some((prefix) => data.length > prefix.length && prefix.equals(data.subarray(0, prefix.length)));
}

/** Call `report(idleMs)` when the agent's websocket carries input, throttled as above. */
function reportAgentInput(webSocket, report) {
    let lastInput = 0;
    let lastReport = -Infinity;
    let pending = null;

    function send() {
        pending = null;
        lastReport = performance.now();
        report(Math.round(lastReport - lastInput)); // the gateway takes whole milliseconds
    }

    webSocket.on('message', (data) => {
        if (!carriesInput(data)) return;
        lastInput = performance.now();
        if (pending === null) pending = setTimeout(send, Math.max(0, lastReport + REPORT_MS - lastInput));
    });
}

module.exports = { reportAgentInput, carriesInput };
