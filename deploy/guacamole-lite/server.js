'use strict';
/*
 * SOHO Gateway's guacamole-lite front. guacamole-lite 1.2.0 carries pixels between the browser and
 * guacd; it does not decide who may connect. Two of its behaviours make it unsafe to expose as is:
 *   1. a malformed token crashes the whole process (unhandled rejection in Server.newConnection);
 *   2. a token its processConnectionSettings callback rejects still opens the connection to guacd
 *      and sends every connection parameter (Server.newConnection calls connect() regardless, and
 *      an asynchronous callback cannot even delay it).
 * So the decision is taken in ws's verifyClient hook, before the websocket upgrade completes and
 * before guacamole-lite's code runs at all: the token is checked and decrypted (lib/envelope.js),
 * the broker redeems the one-time launch over loopback (lib/redeem.js), and only a granted launch
 * is upgraded. A refused one gets an HTTP 403 and guacd never hears of it. Supervisors' read-only
 * joins are also filtered here (lib/view-only.js); an agent's input is reported, so that the policy's idle
 * timeout can end a seat nobody uses (lib/agent-input.js). While a connection lasts, a question to the broker
 * is kept open (lib/liveness.js): the broker answers it the moment the seat, the portal session or a
 * watch ends, and the browser's websocket and guacd's socket are closed. guacamole-lite's own cut-off
 * of a quiet guacd is relaxed so that an idle screen is not dropped (lib/guacd-silence.js), and its socket to
 * guacd sends each write at once (lib/guacd-nodelay.js). See docs/guacamole.md.
 *
 * Settings come from the environment only (see settingsFromEnvironment); it refuses to start
 * without a key and a broker URL.
 */
const crypto = require('crypto');
const Url = require('url');
const GuacamoleLite = require('guacamole-lite');

const { openToken, TokenRefused } = require('./lib/envelope.js');
const { redeemLaunch, reportLaunch } = require('./lib/redeem.js');
const { watchLaunch } = require('./lib/liveness.js');
const { makeViewOnly } = require('./lib/view-only.js');
const { reportAgentInput } = require('./lib/agent-input.js');
const { tolerateGuacdKeepAlive } = require('./lib/guacd-silence.js');
const { sendToGuacdWithoutDelay } = require('./lib/guacd-nodelay.js');

const SIZE_PARAMETERS = ['width', 'height', 'dpi'];
const SESSION_CLOSED = '523'; // Guacamole status 0x020B: the session was closed by the server
const TERMINATE_AFTER_MS = 1000;
const DISCONNECT = '10.disconnect;'; // the Guacamole protocol's "this user leaves"
const JOIN_SETTINGS = { 'read-only': 'true', 'disable-paste': 'true' }; // guacd applies both per joining user

function settingsFromEnvironment(env) {
    const keyHex = env.GUACLITE_KEY_HEX || '';
    if (!/^[0-9a-fA-F]{64}$/.test(keyHex)) {
        throw new Error('GUACLITE_KEY_HEX must be the 64 hex digits of the broker\'s token key (derive_token_key of the broker secret)');
    }
    const launchUrl = (env.SOHOGW_LAUNCH_URL || '').replace(/\/+$/, '');
    if (!/^http:\/\/(127\.0\.0\.1|\[::1\]|localhost)(:\d+)?\//.test(`${launchUrl}/`)) {
        throw new Error('SOHOGW_LAUNCH_URL must be the broker\'s loopback launch URL, e.g. http://127.0.0.1:8000/internal/launch');
    }
    return {
        key: Buffer.from(keyHex, 'hex'),
        launchUrl,
        listenHost: env.GUACLITE_LISTEN_HOST || '127.0.0.1',
        listenPort: Number(env.GUACLITE_LISTEN_PORT || 8080),
        guacdHost: env.GUACD_HOST || '127.0.0.1',
        guacdPort: Number(env.GUACD_PORT || 4822),
        redeemTimeoutMs: Number(env.GUACLITE_REDEEM_TIMEOUT_MS || 3000),
        logLevel: env.GUACLITE_LOG_LEVEL || 'ERRORS',
        alivePollMs: boundedNumber(env.GUACLITE_ALIVE_POLL_MS, 3000, 100, 60000, 'GUACLITE_ALIVE_POLL_MS'),
        aliveWaitMs: boundedNumber(env.GUACLITE_ALIVE_WAIT_MS, 20000, 0, 60000, 'GUACLITE_ALIVE_WAIT_MS'),
        aliveMaxMisses: boundedNumber(env.GUACLITE_ALIVE_MAX_MISSES, 3, 1, 100, 'GUACLITE_ALIVE_MAX_MISSES'),
    };
}

function boundedNumber(text, fallback, lowest, highest, name) {
    const value = text === undefined || text === '' ? fallback : Number(text);
    if (!Number.isInteger(value) || value < lowest || value > highest) {
        throw new Error(`${name} must be a whole number from ${lowest} to ${highest}`);
    }
    return value;
}

/** The URL guacamole-lite will parse: the checked token and the size hints, nothing else. */
function canonicalUrl(token, query) {
    const kept = new URLSearchParams({ token });
    for (const name of SIZE_PARAMETERS) {
        const value = query[name];
        if (typeof value === 'string' && /^\d{1,5}$/.test(value)) kept.set(name, value);
    }
    return `/?${kept.toString()}`;
}

/** Grant or refuse one websocket upgrade; the broker's redemption is the authority. */
async function decide(request, settings) {
    // Parsed with the same legacy parser guacamole-lite uses, then replaced by a canonical URL,
    // so both always read the same single token.
    const query = Url.parse(request.url, true).query;
    const document = openToken(query.token, settings.key);
    const { connection } = document;
    const isJoin = 'join' in connection;
    const unsafeJoin = Object.entries(JOIN_SETTINGS).filter(([name, value]) => connection.settings[name] !== value);
    if (isJoin && unsafeJoin.length) throw new TokenRefused(`a join must carry ${unsafeJoin.map(([n, v]) => `${n}=${v}`).join(', ')}`);
    if (!isJoin && 'read-only' in connection.settings) throw new TokenRefused('read-only is for joins only');
    const digest = crypto.createHash('sha256').update(query.token, 'ascii').digest('hex');
    const grant = await redeemLaunch(settings.launchUrl, document.launch, digest, settings.redeemTimeoutMs);
    if ((grant.mode === 'view') !== isJoin) throw new TokenRefused(`broker granted ${grant.mode} but the token is not`);
    request.url = canonicalUrl(query.token, query);
    // The token's hash is the proof the broker asks for with the `connected` and `closed` reports: a loopback
    // caller that only learned the launch id cannot make them.
    request.sohogwLaunch = { ...grant, token_sha256: digest };
}

function start(settings) {
    sendToGuacdWithoutDelay();
    const log = (message) => console.error(`[sohogw-guacamole-lite] ${message}`);
    const wsOptions = {
        host: settings.listenHost,
        port: settings.listenPort,
        maxPayload: 1024 * 1024,
        verifyClient: (info, done) => {
            decide(info.req, settings)
                .then(() => done(true))
                .catch((error) => {
                    log(`refused a connection: ${error.message}`);
                    done(false, 403, 'Launch refused');
                });
        },
    };
    const clientOptions = {
        crypt: { cypher: 'AES-256-CBC', key: settings.key },
        // guacamole-common-js sends `nop` every 5 s; a browser silent for 3 of those is gone.
        maxInactivityTime: 15000,
        log: { level: settings.logLevel },
    };
    const server = new GuacamoleLite(wsOptions, { host: settings.guacdHost, port: settings.guacdPort }, clientOptions);
    const launches = new WeakMap();
    const watches = new WeakMap();

    /**
     * Close guacd's socket and the browser's websocket now, telling guacamole-common-js why. guacd is sent
     * `disconnect` first: its parent process relays a user's socket to the connection's process and notices the
     * socket closing only when it next writes to it (guacd/connection.c), up to a keep-alive later on an idle
     * screen, while `disconnect` makes the connection's process let the user go, and end the RDP/VNC client
     * when that user was the last, at once.
     */
    function endConnection(webSocket, grant, reason) {
        log(`closing launch ${grant.launch_id} of ${grant.user}: ${reason}`);
        // guacamole-lite 1.2.0 keeps its ClientConnection objects in activeConnections; before its
        // connect() ran there is none yet, and its websocket 'close' handler will close guacd.
        const client = [...server.activeConnections.values()].find((c) => c.webSocket === webSocket);
        if (client) {
            client.sendErrorToClient('Your session has ended', SESSION_CLOSED);
            if (client.guacdClient) client.guacdClient.send(DISCONNECT);
            setImmediate(() => client.close()); // let the disconnect leave before guacamole-lite destroys the socket
        } else {
            webSocket.close(1008, 'Session ended');
        }
        // A browser that does not answer the closing handshake is cut off anyway.
        setTimeout(() => webSocket.terminate(), TERMINATE_AFTER_MS).unref();
    }

    function stopWatching(webSocket) {
        const stop = watches.get(webSocket);
        if (stop) stop();
    }

    server.webSocketServer.prependListener('connection', (webSocket, request) => {
        const grant = request.sohogwLaunch;
        launches.set(webSocket, grant);
        watches.set(webSocket, watchLaunch({
            launchUrl: settings.launchUrl,
            launchId: grant.launch_id,
            intervalMs: settings.alivePollMs,
            waitMs: settings.aliveWaitMs,
            maxMisses: settings.aliveMaxMisses,
            log,
            end: (reason) => endConnection(webSocket, grant, reason),
        }));
        webSocket.once('close', () => stopWatching(webSocket));
        // The browser left (tab closed, network gone): tell guacd before guacamole-lite's own 'close' handler
        // destroys its socket, so guacd ends the user now rather than at its next write (see endConnection).
        webSocket.prependOnceListener('close', () => {
            const client = [...server.activeConnections.values()].find((c) => c.webSocket === webSocket);
            if (client && client.guacdClient) client.guacdClient.send(DISCONNECT);
        });
        if (grant.mode === 'view') {
            makeViewOnly(webSocket, (count) => log(`dropped ${count} input instruction(s) from viewer ${grant.user}`));
        } else {
            reportAgentInput(webSocket, (idleMs) => reportLaunch(settings.launchUrl, 'input', {
                launch_id: grant.launch_id, token_sha256: grant.token_sha256, idle_ms: idleMs,
            }, settings.redeemTimeoutMs, log));
        }
    });
    server.on('open', (clientConnection) => {
        tolerateGuacdKeepAlive(clientConnection, log);
        const grant = launches.get(clientConnection.webSocket);
        reportLaunch(settings.launchUrl, 'connected', {
            launch_id: grant.launch_id, token_sha256: grant.token_sha256, connection_id: clientConnection.guacamoleConnectionId,
        }, settings.redeemTimeoutMs, log);
    });
    server.on('close', (clientConnection) => {
        // guacamole-lite removes the websocket's 'close' listeners when it closes first.
        stopWatching(clientConnection.webSocket);
        const grant = launches.get(clientConnection.webSocket);
        if (grant) reportLaunch(settings.launchUrl, 'closed', {
            launch_id: grant.launch_id, token_sha256: grant.token_sha256,
        }, settings.redeemTimeoutMs, log);
    });
    server.webSocketServer.on('listening', () => log(`listening on ${settings.listenHost}:${settings.listenPort}`));
    return server;
}

start(settingsFromEnvironment(process.env));
