'use strict';
/*
 * Check a launch token before guacamole-lite sees it.
 *
 * guacamole-lite 1.2.0 crashes the whole process on a token it cannot decrypt (ClientConnection
 * sets no connectionSettings, Server still calls connect(), the TypeError becomes an unhandled
 * rejection). So everything guacamole-lite will read is checked here first, decrypted exactly as
 * its Crypt.decrypt does (AES-256-CBC, plaintext read as 'ascii'), and refused unless it has the
 * shape the broker mints: {connection: {type, settings, join?}, launch}.
 */
const crypto = require('crypto');

const MAX_TOKEN_CHARS = 16384;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const PROTOCOLS = new Set(['rdp', 'vnc']);
const CONNECTION_KEYS = new Set(['type', 'settings', 'join']);
const DOCUMENT_KEYS = new Set(['connection', 'launch']);

class TokenRefused extends Error {}

function base64Field(envelope, name) {
    const text = envelope[name];
    if (typeof text !== 'string' || !BASE64.test(text)) {
        throw new TokenRefused(`envelope field ${name} is not base64`);
    }
    return Buffer.from(text, 'base64');
}

function isPlainObject(value) {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function onlyKeys(object, allowed, what) {
    const extra = Object.keys(object).filter((key) => !allowed.has(key));
    if (extra.length) {
        // guacamole-lite acts on more keys than we mint (query, guacdHost, guacdPort): refuse them.
        throw new TokenRefused(`${what} has unexpected keys: ${extra.join(', ')}`);
    }
}

function checkDocument(document) {
    if (!isPlainObject(document)) throw new TokenRefused('token document is not an object');
    onlyKeys(document, DOCUMENT_KEYS, 'token document');
    if (typeof document.launch !== 'string' || !document.launch) throw new TokenRefused('token has no launch id');
    const connection = document.connection;
    if (!isPlainObject(connection)) throw new TokenRefused('token has no connection');
    onlyKeys(connection, CONNECTION_KEYS, 'connection');
    if (!PROTOCOLS.has(connection.type)) throw new TokenRefused('connection type is not rdp or vnc');
    if (!isPlainObject(connection.settings)) throw new TokenRefused('connection settings are not an object');
    for (const [name, value] of Object.entries(connection.settings)) {
        if (typeof value !== 'string') throw new TokenRefused(`setting ${name} is not a string`);
    }
    if ('join' in connection && (typeof connection.join !== 'string' || !connection.join.startsWith('$'))) {
        throw new TokenRefused('join target is not a guacd connection id');
    }
    return document;
}

/** Decrypt and check a token; returns the document or throws TokenRefused. */
function openToken(token, key) {
    if (typeof token !== 'string' || !token || token.length > MAX_TOKEN_CHARS || !BASE64.test(token)) {
        throw new TokenRefused('token is missing or not base64');
    }
    let envelope;
    try {
        envelope = JSON.parse(Buffer.from(token, 'base64').toString('ascii'));
    } catch (error) {
        throw new TokenRefused('token envelope is not JSON');
    }
    if (!isPlainObject(envelope)) throw new TokenRefused('token envelope is not an object');
    const iv = base64Field(envelope, 'iv');
    const value = base64Field(envelope, 'value');
    if (iv.length !== 16) throw new TokenRefused('token IV is not 16 bytes');
    if (value.length === 0 || value.length % 16 !== 0) throw new TokenRefused('token ciphertext is not whole blocks');
    let plaintext;
    try {
        const decipher = crypto.createDecipheriv('aes-256-cbc', key, iv);
        plaintext = decipher.update(value, undefined, 'ascii') + decipher.final('ascii');
    } catch (error) {
        throw new TokenRefused('token does not decrypt with this key');
    }
    let document;
    try {
        document = JSON.parse(plaintext);
    } catch (error) {
        throw new TokenRefused('token plaintext is not JSON');
    }
    return checkDocument(document);
}

module.exports = { openToken, TokenRefused };
