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
 */
const { parseInstructions } = require('./view-only.js');

const INPUT_OPCODES = new Set(['mouse', 'key', 'touch']);
const REPORT_MS = 10000;

function carriesInput(data) {
    let instructions;
    try {
        instructions = parseInstructions(data.toString('utf8'));
    } catch (error) {
        return false; // guacd judges a malformed message; it is no evidence of a person
    }
    return instructions.some((instruction) => INPUT_OPCODES.has(instruction[0]));
}

/** Call `report(idleMs)` when the agent's websocket carries input, throttled as above. */
function reportAgentInput(webSocket, report) {
    let lastInput = 0;
    let lastReport = -Infinity;
    let pending = null;

    function send() {
        pending = null;
        lastReport = Date.now();
        report(lastReport - lastInput);
    }

    webSocket.on('message', (data) => {
        if (!carriesInput(data)) return;
        lastInput = Date.now();
        if (pending === null) pending = setTimeout(send, Math.max(0, lastReport + REPORT_MS - lastInput));
    });
}

module.exports = { reportAgentInput };
