// Polling for the Admin page: read again every few seconds while the page is open and there
// is something to follow. The reads count against the key's rate limit (60 a minute by
// default) like any request, so a refusal (429) waits as long as its Retry-After says, and
// other failures back off up to a minute: the page slows down, but never stops following.

const MAX_WAIT_MS = 60_000;

export class Poller {
  // run() reads and renders; it returns whether there is more to follow (false: stop until
  // the next tick() is asked for). onError(error, waitMs) tells the user.
  constructor(everyMs, run, onError) {
    this.everyMs = everyMs;
    this.run = run;
    this.onError = onError;
    this.on = false;
    this.timer = null;
    this.failures = 0;
  }

  start() {
    this.on = true;
    this.failures = 0;
    return this.tick();
  }

  stop() {
    this.on = false;
    clearTimeout(this.timer);
    this.timer = null;
  }

  // Read again in a while, unless a read is due already (a read asked for elsewhere found
  // something to follow).
  follow() {
    if (this.on && this.timer === null) {
      this.timer = setTimeout(() => this.tick().catch(() => {}), this.everyMs);
    }
  }

  // Read now. Rejects only when the key is no longer allowed (401, 403), which stops polling.
  async tick() {
    clearTimeout(this.timer);
    let again = true;
    let wait = this.everyMs;
    try {
      again = await this.run();
      this.failures = 0;
    } catch (error) {
      if (error.status === 401 || error.status === 403) {
        this.stop();
        throw error;
      }
      this.failures += 1;
      wait = Math.min(error.status === 429 && error.retryAfter
        ? Math.max(error.retryAfter * 1000, this.everyMs)
        : this.everyMs * 2 ** this.failures, MAX_WAIT_MS);
      this.onError(error, wait);
    }
    // One timer at a time, even when a tick asked for by a button overlapped a timed one;
    // and a reply that arrives after the page was left does not start the clock again.
    clearTimeout(this.timer);
    this.timer = this.on && again ? setTimeout(() => this.tick().catch(() => {}), wait) : null;
  }
}

export function retrying(error, waitMs) {
  return `${error.message}; trying again in ${Math.ceil(waitMs / 1000)} s.`;
}
