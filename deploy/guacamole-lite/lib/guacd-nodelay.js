'use strict';
/*
 * guacamole-lite 1.2.0 opens its socket to guacd with Node's default, Nagle's algorithm on, and answers guacd's
 * `args` with six separate writes (size, audio, video, image, timezone, connect). Nagle holds the second write
 * until guacd acknowledges the first, and guacd's kernel delays that acknowledgement (Linux: 40 ms), so every
 * launch waited ~40 ms between guacd reading `size` and `audio` (docs/guacamole.md, "Figures"). The same hold
 * applies to a key or a click sent within one round trip of the one before. guacd turns Nagle off on its own end
 * (guacd/daemon.c); this turns it off on ours, as the socket opens and before anything is written.
 */
const GuacdClient = require('guacamole-lite/lib/GuacdClient.js');

function sendToGuacdWithoutDelay() {
    const open = GuacdClient.prototype.processConnectionOpen;
    if (typeof open !== 'function') {
        throw new Error('guacamole-lite has no GuacdClient.processConnectionOpen: check lib/guacd-nodelay.js against this version');
    }
    // Patched on the prototype: GuacdClient's constructor binds processConnectionOpen as the socket's 'connect'
    // handler, and guacamole-lite creates the GuacdClient after our last hook into a new connection has run.
    GuacdClient.prototype.processConnectionOpen = function processConnectionOpenWithoutDelay(...args) {
        this.guacdConnection.setNoDelay(true);
        return open.apply(this, args);
    };
}

module.exports = { sendToGuacdWithoutDelay };
