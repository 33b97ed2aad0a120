'use strict';
/*
 * Supervisors watch, they never type. guacd gives a `read-only=true` joiner no input handlers;
 * this filter makes it true on our side too: from a view-only websocket only the instructions a
 * display needs to stay alive reach guacd (an allow-list, so anything new is dropped).
 * Lengths in the Guacamole protocol count Unicode code points, not UTF-16 units.
 * Parsing costs time in the one event loop every seat on the node shares, so a message over
 * VIEW_ONLY_MAX_BYTES is not parsed at all: the websocket is closed (1009) and nothing of it reaches
 * guacd. What a viewer sends (sync, nop, ack, disconnect) is a few dozen bytes, one instruction per
 * message from guacamole-common-js.
 */
const VIEW_ONLY_OPCODES = new Set(['sync', 'nop', 'ack', 'disconnect', '']);
const VIEW_ONLY_MAX_BYTES = 4096;

class MalformedInstruction extends Error {}

function parseInstructions(text) {
    const chars = Array.from(text);
    const instructions = [];
    let elements = [];
    let at = 0;
    while (at < chars.length) {
        let dot = at;
        while (dot < chars.length && chars[dot] >= '0' && chars[dot] <= '9') dot += 1;
        if (dot === at || chars[dot] !== '.') throw new MalformedInstruction('length prefix expected');
        const length = Number(chars.slice(at, dot).join(''));
        const end = dot + 1 + length;
        if (end >= chars.length) throw new MalformedInstruction('instruction is cut short');
        elements.push(chars.slice(dot + 1, end).join(''));
        if (chars[end] === ';') {
            instructions.push(elements);
            elements = [];
        } else if (chars[end] !== ',') {
            throw new MalformedInstruction('element not followed by , or ;');
        }
        at = end + 1;
    }
    if (elements.length) throw new MalformedInstruction('instruction is not terminated');
    return instructions;
}

function encodeInstruction(elements) {
    return elements.map((element) => `${Array.from(element).length}.${element}`).join(',') + ';';
}

/** Wrap a websocket so its 'message' events carry only view-only instructions. */
function makeViewOnly(webSocket, onDropped) {
    const emit = webSocket.emit.bind(webSocket);
    webSocket.emit = (event, ...args) => {
        if (event !== 'message') return emit(event, ...args);
        if (args[0].length > VIEW_ONLY_MAX_BYTES) {
            webSocket.close(1009, 'message too big');
            return false;
        }
        let instructions;
        try {
            instructions = parseInstructions(args[0].toString('utf8'));
        } catch (error) {
            webSocket.close(1008, 'malformed instruction');
            return false;
        }
        const kept = instructions.filter((instruction) => VIEW_ONLY_OPCODES.has(instruction[0]));
        if (kept.length < instructions.length) onDropped(instructions.length - kept.length);
        if (!kept.length) return false;
        return emit('message', Buffer.from(kept.map(encodeInstruction).join('')), false);
    };
}

module.exports = { makeViewOnly, parseInstructions, VIEW_ONLY_MAX_BYTES };
