'use strict';
/*
 * guacamole-lite 1.2.0 closes its guacd socket when guacd has sent nothing for 10 s (a constant in
 * GuacdClient's constructor). guacd's keep-alive thread checks every 5 s whether it wrote anything in the
 * last 5 s and only then sends `nop` (libguac socket.c, GUAC_SOCKET_KEEP_ALIVE_INTERVAL): on an idle screen
 * two `nop`s can be just under 10 s apart, so an idle seat could be dropped. Once the connection is open the
 * check is replaced by one that allows GUACD_SILENCE_MS (two whole keep-alive periods and then some).
 * GuacdClient.close() clears `activityCheckInterval`, so it clears this one too.
 */
const GUACD_SILENCE_MS = 25000;

function tolerateGuacdKeepAlive(clientConnection, log) {
    const guacd = clientConnection.guacdClient;
    if (!guacd || guacd.activityCheckInterval === undefined) {
        log('guacamole-lite has no GuacdClient.activityCheckInterval: check lib/guacd-silence.js against this version');
        return;
    }
    clearInterval(guacd.activityCheckInterval);
    guacd.activityCheckInterval = setInterval(() => {
        if (Date.now() > guacd.lastActivity + GUACD_SILENCE_MS) guacd.close(new Error('guacd sent nothing for too long'));
    }, 1000);
}

module.exports = { tolerateGuacdKeepAlive, GUACD_SILENCE_MS };
