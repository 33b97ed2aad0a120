'use strict';
/*
 * A Guacamole connection lives only as long as the broker says its launch is alive: for the agent, the seat
 * lease live and the portal session active; for a supervisor, the watch still open. guacamole-lite knows nothing
 * of either, so every granted websocket keeps one question open at the broker: GET {SOHOGW_LAUNCH_URL}/alive with
 * `wait_ms`. The broker holds it and answers the moment the launch ends (a push: the end reaches the seat in well
 * under a second), or "alive" when the wait is over, and the question is asked again. Asks are at least
 * `intervalMs` apart, so a broker that answers at once is polled, never hammered. A broker that gives no
 * well-formed answer `maxMisses` times in a row counts as a "no" (fail closed; a gateway restart is ridden out).
 */
const { askAlive } = require('./redeem.js');

/** Keep asking for one launch; `end(reason)` is called at most once. Returns a function that stops it. */
function watchLaunch({ launchUrl, launchId, intervalMs, waitMs, maxMisses, log, end }) {
    let misses = 0;
    let stopped = false;
    let timer = null;

    function stop() {
        stopped = true;
        clearTimeout(timer);
    }

    function finish(reason) {
        if (stopped) return;
        stop();
        end(reason);
    }

    function askAgain(askedAt) {
        if (!stopped) timer = setTimeout(ask, Math.max(0, askedAt + intervalMs - Date.now()));
    }

    function ask() {
        const askedAt = Date.now();
        askAlive(launchUrl, launchId, waitMs, waitMs + intervalMs)
            .then((alive) => {
                misses = 0;
                if (alive) askAgain(askedAt);
                else finish('the seat, the portal session or the watch has ended');
            })
            .catch((error) => {
                misses += 1;
                log(`liveness of launch ${launchId} unknown (${misses}/${maxMisses}): ${error.message}`);
                if (misses >= maxMisses) finish(`the broker gave no answer ${misses} times`);
                else askAgain(askedAt);
            });
    }

    ask();
    return stop;
}

module.exports = { watchLaunch };
