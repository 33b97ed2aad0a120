'use strict';
/*
 * A Guacamole connection lives only as long as the broker says its launch is alive: the agent's
 * seat lease live and their portal session active. guacamole-lite knows nothing of either, so every
 * granted websocket asks the broker every few seconds (GET {SOHOGW_LAUNCH_URL}/alive) and is closed
 * on a "no". A broker that gives no well-formed answer `maxMisses` times in a row is treated as a
 * "no" too (fail closed; one blip, e.g. a gateway restart, is ridden out).
 */
const { askAlive } = require('./redeem.js');

/** Start polling for one launch; `end(reason)` is called at most once. Returns a function that stops it. */
function watchLaunch({ launchUrl, launchId, intervalMs, maxMisses, log, end }) {
    let misses = 0;
    let asking = false;
    let stopped = false;
    const timer = setInterval(poll, intervalMs);

    function stop() {
        stopped = true;
        clearInterval(timer);
    }

    function finish(reason) {
        if (stopped) return;
        stop();
        end(reason);
    }

    function poll() {
        if (asking || stopped) return;
        asking = true;
        askAlive(launchUrl, launchId, intervalMs)
            .then((alive) => {
                misses = 0;
                if (!alive) finish('the seat or the portal session has ended');
            })
            .catch((error) => {
                misses += 1;
                log(`liveness of launch ${launchId} unknown (${misses}/${maxMisses}): ${error.message}`);
                if (misses >= maxMisses) finish(`the broker gave no answer ${misses} times`);
            })
            .finally(() => { asking = false; });
    }

    return stop;
}

module.exports = { watchLaunch };
