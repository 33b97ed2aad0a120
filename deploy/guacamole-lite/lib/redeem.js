'use strict';
/*
 * Ask the broker, over loopback HTTP, to spend a launch. The broker is the authority: the token
 * has no MAC, so the broker compares the SHA-256 of the exact token string with the one it minted.
 * Anything but a 200 with a well-formed body is a refusal (fail closed), including a timeout.
 * The same client asks, while a connection lasts, whether its launch is still alive.
 */
const http = require('http');

const MODES = new Set(['interactive', 'view']);

function call(method, url, body, timeoutMs) {
    return new Promise((resolve, reject) => {
        const payload = body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(body));
        const headers = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': payload.length };
        const request = http.request(url, { method, headers, timeout: timeoutMs }, (response) => {
            const chunks = [];
            response.on('data', (chunk) => chunks.push(chunk));
            response.on('end', () => resolve({ status: response.statusCode, text: Buffer.concat(chunks).toString() }));
            response.on('error', reject);
        });
        request.on('timeout', () => request.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)));
        request.on('error', reject);
        request.end(payload);
    });
}

/** Resolves with {launch_id, user, seat, mode} when the broker grants the launch; rejects otherwise. */
async function redeemLaunch(launchUrl, launchId, tokenSha256, timeoutMs) {
    const { status, text } = await call('POST', `${launchUrl}/redeem`, { launch_id: launchId, token_sha256: tokenSha256 }, timeoutMs);
    if (status !== 200) throw new Error(`broker refused launch (${status}): ${text.slice(0, 200)}`);
    const grant = JSON.parse(text);
    if (grant.launch_id !== launchId || !MODES.has(grant.mode) || typeof grant.user !== 'string') {
        throw new Error('broker answer does not match the launch');
    }
    return grant;
}

/** Tell the broker which guacd connection a launch became, or that it ended; failures are only logged. */
function reportLaunch(launchUrl, event, body, timeoutMs, log) {
    call('POST', `${launchUrl}/${event}`, body, timeoutMs)
        .then(({ status }) => { if (status >= 300) log(`broker answered ${status} to ${event} for ${body.launch_id}`); })
        .catch((error) => log(`could not report ${event} for ${body.launch_id}: ${error.message}`));
}

/**
 * Resolves with the broker's yes or no for a live launch; rejects when there is no well-formed answer. The broker
 * may hold the question up to `waitMs` and answers at once when the launch ends.
 */
async function askAlive(launchUrl, launchId, waitMs, timeoutMs) {
    const url = `${launchUrl}/alive?${new URLSearchParams({ launch_id: launchId, wait_ms: String(waitMs) })}`;
    const { status, text } = await call('GET', url, undefined, timeoutMs);
    const answer = status === 200 ? JSON.parse(text) : null;
    if (!answer || typeof answer.alive !== 'boolean') throw new Error(`broker answered ${status} to alive`);
    return answer.alive;
}

module.exports = { redeemLaunch, reportLaunch, askAlive };
